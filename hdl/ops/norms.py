"""RMSNorm and LayerNorm in hardware (twin of ``golden/ops/norms.py``; same equations).

Ports: ``i`` streams ``{data: s<in_width>.<in_frac>, last}`` rows of exactly ``d`` elements (framed by
count; a ``last`` that disagrees with the count sets the sticky ``error`` output); ``o`` streams
``{data: s<out_width>.<out_frac>, last}``.  ``gamma_we/gamma_addr/gamma_data`` (and ``beta_*`` for
LayerNorm) write the weight memories (``s<gamma_width>.<gamma_frac>``; beta in the output format),
initialised from the constructor's ``gamma``/``beta`` codes (default 1 and 0).

Passes over a row buffer of two halves (``2d`` entries, block RAM): while one row is processed
the next is received into the other half.

1. receive (``d`` cycles): store ``x``; RMSNorm tracks ``max |x|``, LayerNorm ``sum x``, ``max x``,
   ``min x`` (so ``max |d x - sum|`` needs no extra pass);
2. block exponent ``r = bit_length(max(max |v|, eps_code)) - norm_width`` (1 cycle);
3. leaves ``|v_j| >> r`` and the eps element stream into :class:`spikeops.hdl.norm.PolarNorm`;
4. read-out: ``N = N_m 2**-e`` (31-bit mantissa), ``R = N_m * C``, ``b_exp = r - e - gain_frac``;
5. send: ``A = |v_i| |gamma_i|``, the II=1 Division Neuron Group with ``B = R * 2**b_exp``, the sign,
   ``+ beta_i`` with saturation, under the output stream's backpressure.

Latency: :meth:`RMSNorm.latency_for` (the first output after the later of the row's last input and
the previous row's last output); the next row is received while one is processed.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream
from amaranth.lib.wiring import In, Out

from spikeops.golden.ops.norms import READOUT_BITS, LayerNormConfig, RMSNormConfig, NormOpConfig

from ..division import division_latency, division_stages
from ..norm import PolarNorm, level_sizes
from ..pipeline import Pipeline
from ..rowbuffer import RowBuffer
from ..shift import barrel_shift, bit_length
from ..component import ConfigComponent
from .base import OperatorSignature

__all__ = ["RMSNorm", "LayerNorm"]


class _Norm(ConfigComponent):
    class Signature(OperatorSignature):
        config_type = NormOpConfig

        @classmethod
        def build_members(cls, config):
            members = {
                "i": In(stream.Signature(data.StructLayout({"data": signed(config.in_width), "last": 1}))),
                "o": Out(stream.Signature(data.StructLayout({"data": signed(config.out_width), "last": 1}))),
                "error": Out(1),
                "gamma_we": In(1), "gamma_addr": In(range(config.d)), "gamma_data": In(signed(config.gamma_width)),
            }
            if config.centred:
                members.update({"beta_we": In(1), "beta_addr": In(range(config.d)),
                                "beta_data": In(signed(config.out_width))})
            return members

    def __init__(self, config, *, gamma=None, beta=None):
        self._gamma, self._beta = self.check_weights(config, gamma, beta)
        super().__init__(config)

    @classmethod
    def check_weights(cls, config, gamma=None, beta=None):
        """The gamma and beta codes (defaults 1, or the largest code below it when the format's
        fraction bits leave no room for 1.0, and 0), checked against ``d`` and their formats."""
        cls.Signature.check_parameters(config)
        d = config.d
        gamma = [config.gamma_one] * d if gamma is None else [int(g) for g in gamma]
        beta = [0] * d if beta is None else [int(b) for b in beta]
        for name, vals, fmt in (("gamma", gamma, config.gamma_format), ("beta", beta, config.out_format)):
            if len(vals) != d or min(vals) < fmt.min_code or max(vals) > fmt.max_code:
                raise ValueError(f"{cls.Signature.owner}: {name} must be {d} codes in "
                                 f"[{fmt.min_code}, {fmt.max_code}]")
        return gamma, beta

    @staticmethod
    def b_exp_range(config) -> tuple[int, int]:
        """Bounds of the divisor's exponent ``r - e - gain_frac`` (sizes the shifters)."""
        nw = config.norm_width
        top_bits = max(config.v_width, config.eps_code.bit_length())
        r_lo, r_hi = 1 - nw, top_bits - nw
        e_lo, e_hi = READOUT_BITS - config.norm.out_width, READOUT_BITS - 1
        return r_lo - e_hi - config.gain_frac, r_hi - e_lo - config.gain_frac

    ii = 1

    @staticmethod
    def latency_for(config, n: int | None = None) -> int:
        """Cycles from accepting a row's last element to its first output (sink always ready);
        every row has ``d`` elements, so ``n`` is not used.

        ``division latency + 10`` for the hand-over, scale, leaf, read-out and send stages, plus the norm: the
        CORDIC tree takes ``sum_l L_l + levels * (iterations + 2) + levels - 1``, the exact norm
        ``L_0 + ceil(datapath_width / 2) + 1``."""
        ncfg = config.norm
        base = division_latency(config.division) + 10
        if ncfg.method == "exact":
            return base + ncfg.length + (ncfg.datapath_width + 1) // 2 + 1
        sizes = level_sizes(ncfg)
        return base + sum(sizes) + ncfg.levels * (ncfg.iterations + 2) + ncfg.levels - 1

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        d, centred = cfg.d, cfg.centred
        ncfg = cfg.norm
        m.submodules.norm = norm = PolarNorm(ncfg)

        # two halves: the next row is received into one while the other is processed
        xbuf = RowBuffer(m, "xbuf", signed(cfg.in_width), 2 * d)
        gbuf = RowBuffer(m, "gamma", signed(cfg.gamma_width), d, init=self._gamma)
        gbuf.write(m, self.gamma_addr, self.gamma_data, self.gamma_we)
        if centred:
            bbuf = RowBuffer(m, "beta", signed(cfg.out_width), d, init=self._beta)
            bbuf.write(m, self.beta_addr, self.beta_data, self.beta_we)

        idx = range(d + 2)
        sum_w = cfg.in_width + d.bit_length()
        # receive side: counter, half, running sum / max / min / max |x|
        wr = Signal(idx)
        wsel = Signal()
        total = Signal(signed(sum_w))
        xmax = Signal(signed(cfg.in_width), init=cfg.in_format.min_code)
        xmin = Signal(signed(cfg.in_width), init=cfg.in_format.max_code)
        amax = Signal(unsigned(cfg.in_width))
        rx_full = Signal()
        take = Signal()
        # process side: its copies of the row's statistics, its half, read counter
        rd = Signal(idx)
        psel = Signal()
        total_p = Signal.like(total)
        xmax_p, xmin_p, amax_p = Signal.like(xmax), Signal.like(xmin), Signal.like(amax)
        vw = cfg.v_width + 1
        r = Signal(signed(8))
        n_val = Signal(unsigned(ncfg.out_width))
        rms = Signal(unsigned(cfg.division.den_width))
        b_exp = Signal(signed(10))
        const_c = cfg.readout_constant

        def v_of(x):
            return ((x * d) - total_p)[:vw].as_signed() if centred else x

        def addr(half, i):
            return Mux(half, d + i, i)

        # pass 3: leaves into the norm (the eps element last)
        en_l = ~norm.i.valid | norm.i.ready
        leaf_go = Signal()
        eps_go = Signal()
        p_l = Pipeline(m, en_l, (leaf_go | eps_go) & en_l, name="leaf")
        s_l = p_l.stage(eps=eps_go)
        mag = Mux(s_l.eps, cfg.eps_code, abs(v_of(xbuf.data)))
        leaf = barrel_shift(mag, -r, lo=-(cfg.v_width - cfg.norm_width + 1), hi=cfg.norm_width,
                            width=cfg.norm_width)
        s_leaf = p_l.stage(leaf=leaf)
        m.d.comb += [norm.i.payload.eq(s_leaf.leaf), norm.i.valid.eq(s_leaf.valid)]

        # pass 5: division and output
        en3 = ~self.o.valid | self.o.ready
        send_go = Signal()
        p3 = Pipeline(m, en3, send_go & en3, name="y")
        s0 = p3.stage(last=rd == d - 1)
        v = v_of(xbuf.data)
        g = gbuf.data
        extra = {"beta": bbuf.data} if centred else {}
        s1 = p3.stage(a=abs(v) * abs(g), neg=(v < 0) ^ (g < 0), last=s0.last, **extra)
        p3.carry(neg=s1.neg, last=s1.last, **({"beta": s1.beta} if centred else {}))
        q = division_stages(p3, s1.a, rms, cfg.division, b_exp=b_exp, b_exp_range=self.b_exp_range(cfg))
        y = Mux(p3.carried["neg"], -q, q)
        fmt = cfg.out_format
        if centred:
            yb = y + p3.carried["beta"]
            y = Mux(yb > fmt.max_code, fmt.max_code, Mux(yb < fmt.min_code, fmt.min_code, yb))
        out = p3.stage(y=y, last=p3.carried["last"])
        m.d.comb += [self.o.valid.eq(out.valid), self.o.payload.data.eq(out.y),
                     self.o.payload.last.eq(out.last)]

        with m.FSM(name="receive"):
            with m.State("RECEIVE"):
                m.d.comb += self.i.ready.eq(1)
                x = self.i.payload.data
                xbuf.write(m, addr(wsel, wr), x, self.i.valid)
                with m.If(self.i.valid):
                    m.d.sync += [wr.eq(wr + 1), total.eq(total + x)]
                    with m.If(x > xmax):
                        m.d.sync += xmax.eq(x)
                    with m.If(x < xmin):
                        m.d.sync += xmin.eq(x)
                    with m.If(abs(x) > amax):
                        m.d.sync += amax.eq(abs(x))
                    at_end = wr == d - 1
                    with m.If(self.i.payload.last != at_end):
                        m.d.sync += self.error.eq(1)
                    with m.If(at_end):
                        m.next = "FULL"
            with m.State("FULL"):
                m.d.comb += rx_full.eq(1)
                with m.If(take):
                    m.d.sync += [wr.eq(0), wsel.eq(~wsel), total.eq(0), xmax.eq(cfg.in_format.min_code),
                                 xmin.eq(cfg.in_format.max_code), amax.eq(0)]
                    m.next = "RECEIVE"

        with m.FSM(name="process"):
            with m.State("IDLE"):
                with m.If(rx_full):
                    m.d.comb += take.eq(1)
                    m.d.sync += [psel.eq(wsel), total_p.eq(total), xmax_p.eq(xmax), xmin_p.eq(xmin),
                                 amax_p.eq(amax)]
                    m.next = "SCALE"
            with m.State("SCALE"):
                if centred:
                    hi = abs((xmax_p * d - total_p)[:vw].as_signed())
                    lo = abs((xmin_p * d - total_p)[:vw].as_signed())
                    vmax = Mux(hi > lo, hi, lo)
                else:
                    vmax = amax_p
                top = Mux(vmax > cfg.eps_code, vmax, cfg.eps_code)
                m.d.sync += [r.eq(bit_length(m, top, name="bl_top") - cfg.norm_width), rd.eq(0)]
                m.next = "LEAVES"
            with m.State("LEAVES"):
                issuing = rd < d
                m.d.comb += [leaf_go.eq(issuing), eps_go.eq(rd == d)]
                xbuf.read(m, addr(psel, rd), en_l)
                with m.If((rd <= d) & en_l):
                    m.d.sync += rd.eq(rd + 1)
                with m.If(norm.o.valid):
                    m.d.sync += n_val.eq(norm.o.payload)
                    m.next = "READOUT"
                m.d.comb += norm.o.ready.eq(1)
            with m.State("READOUT"):
                e = READOUT_BITS - bit_length(m, n_val, name="bl_n")
                n_m = barrel_shift(n_val, e, lo=READOUT_BITS - ncfg.out_width, hi=READOUT_BITS - 1,
                                   width=READOUT_BITS)
                m.d.sync += [rms.eq(n_m * const_c), b_exp.eq(r - e - cfg.gain_frac), rd.eq(0)]
                m.next = "SEND"
            with m.State("SEND"):
                issuing = rd < d
                m.d.comb += send_go.eq(issuing)
                xbuf.read(m, addr(psel, rd), en3)
                gbuf.read(m, rd, en3)
                if centred:
                    bbuf.read(m, rd, en3)
                with m.If(issuing & en3):
                    m.d.sync += rd.eq(rd + 1)
                with m.If(self.o.valid & self.o.ready & self.o.payload.last):
                    m.next = "IDLE"
        return m


class RMSNorm(_Norm):
    """Stream RMSNorm over rows of ``d`` elements (one :class:`RMSNormConfig`)."""

    class Signature(_Norm.Signature):
        config_type = RMSNormConfig
        owner = "RMSNorm"


class LayerNorm(_Norm):
    """Stream LayerNorm over rows of ``d`` elements (one :class:`LayerNormConfig`)."""

    class Signature(_Norm.Signature):
        config_type = LayerNormConfig
        owner = "LayerNorm"
