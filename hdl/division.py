"""The Division Neuron Group in hardware (twin of ``golden/division.py``; same equations).

Stage 1 (shift scaling, one pipeline stage): leading-one detection on B, the threshold
``theta = B * 2**(theta_bits - bit_length(B))`` and the input current
``I = A * 2**(e + shift - b_exp)`` (+ ``theta >> 1`` for rounding to nearest), with the saturation test
``A != 0 and bit_length(A) + e + shift - b_exp > q_width + theta_bits``.

Stage 2, the population, in one of three realisations:

* ``binary``: ``q_width`` pipeline stages, stage ``j`` one LIF neuron with threshold ``theta * 2**j``
  that subtracts it when it fires (latency ``1 + q_width``, II 1);
* ``thermometer``: ``2**q_width - 1`` comparators ``I >= i * theta`` in one stage, then a population
  count (latency 3, II 1);
* ``temporal``: one integrate-and-fire neuron stepped once per cycle until it stops firing
  (latency ``2 + q``, one division at a time).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream
from amaranth.lib.wiring import In, Out

from spikeops.golden.division import DivisionConfig

from .component import ConfigComponent, ConfigSignature
from .neurons import lif_update
from .pipeline import Pipeline
from .shift import barrel_shift, bit_length

__all__ = ["DivisionNeuronGroup", "division_stages", "division_latency", "check_pipelined"]


def _stage1(m, a, b, b_exp, cfg: DivisionConfig, b_exp_range):
    """Comb expressions ``(current, theta, saturated)`` of stage 1."""
    t, qw = cfg.theta_bits, cfg.q_width
    bl_b = bit_length(m, b, name="bl_b")
    bl_a = bit_length(m, a, name="bl_a")
    e = Signal(signed(max(t, cfg.den_width).bit_length() + 2), name="e")
    m.d.comb += e.eq(t - bl_b)
    theta = barrel_shift(b, e, lo=min(0, t - cfg.den_width), hi=t, width=t)
    lo_b, hi_b = b_exp_range
    k = Signal(signed(max(abs(t + cfg.shift - lo_b), abs(t - cfg.den_width + cfg.shift - hi_b), 1)
                      .bit_length() + 2), name="k")
    m.d.comb += k.eq(e + cfg.shift - b_exp)
    saturated = (a != 0) & ((bl_a + k) > (qw + t))  # 0 / B = 0 however small B is
    cw = qw + t + 1
    current = barrel_shift(a, k, lo=-cfg.num_width, hi=qw + t, width=cw)
    if cfg.rounding == "nearest":
        current = (current + (theta >> 1))[:cw]
    return current, theta, saturated


def division_latency(cfg: DivisionConfig) -> int:
    """Pipeline latency in cycles of the II=1 realisations (not defined for ``temporal``)."""
    if cfg.arch == "binary":
        return 1 + cfg.q_width
    if cfg.arch == "thermometer":
        return 3
    raise ValueError(f"division: arch={cfg.arch!r} has a data-dependent latency")


def check_pipelined(cfg: DivisionConfig, owner: str = "division", name: str = "arch"):
    """Raise ValueError unless ``cfg``'s realisation fits an II=1 pipeline (not ``temporal``)."""
    if cfg.arch == "temporal":
        raise ValueError(f"{owner}: {name}='temporal' is iterative (one division at a time, up to "
                         f"2**{cfg.q_width} - 1 steps) and cannot sit in an II=1 pipeline; "
                         "allowed: 'binary', 'thermometer'")


def division_stages(pipe: Pipeline, a, b, cfg: DivisionConfig, *, b_exp=0, b_exp_range=(0, 0)):
    """Add the II=1 Division Neuron Group to ``pipe``; return ``q`` (registered, aligned with
    ``pipe.valid``).  ``b_exp`` is B's power-of-two exponent, known to lie in ``b_exp_range``."""
    check_pipelined(cfg)
    m = pipe.m
    current, theta, saturated = _stage1(m, a, b, b_exp, cfg, b_exp_range)
    s = pipe.stage(v=current, theta=theta, sat=saturated)
    if cfg.arch == "binary":
        v, theta_r, sat, q = s.v, s.theta, s.sat, 0
        for j in range(cfg.q_width - 1, -1, -1):
            v_next, spike = lif_update(v, 0, theta_r << j, reset="subtract")
            s = pipe.stage(v=v_next[:len(v)], theta=theta_r, sat=sat, q=q | (spike << j))
            v, theta_r, sat, q = s.v, s.theta, s.sat, s.q
        return Mux(sat, cfg.q_max, q)
    # thermometer: neuron i fires iff I >= i * theta (one step), then the population count
    fires = [s.v >= s.theta * i for i in range(1, cfg.q_max + 1)]
    s2 = pipe.stage(fires=Cat(*fires), sat=s.sat)
    count = _popcount([s2.fires[i] for i in range(cfg.q_max)])
    s3 = pipe.stage(q=Mux(s2.sat, cfg.q_max, count))
    return s3.q


def _popcount(bits):
    """Number of set bits as a balanced adder tree (log depth)."""
    if len(bits) == 1:
        return bits[0]
    half = len(bits) // 2
    return _popcount(bits[:half]) + _popcount(bits[half:])


def _layouts(cfg: DivisionConfig):
    return (data.StructLayout({"a": unsigned(cfg.num_width), "b": unsigned(cfg.den_width)}),
            unsigned(cfg.q_width))


class DivisionNeuronGroup(ConfigComponent):
    """Stream divider ``q = A * 2**shift / B`` for one :class:`spikeops.golden.division.DivisionConfig`.

    ``i``: stream of ``{a: u<num_width>, b: u<den_width>}``; ``o``: stream of ``u<q_width>`` quotients
    (fraction bits ``shift``), in order, bit-identical to :func:`spikeops.golden.division.divide`.
    """

    class Signature(ConfigSignature):
        config_type = DivisionConfig
        owner = "DivisionNeuronGroup"

        @classmethod
        def build_members(cls, config):
            in_layout, out_shape = _layouts(config)
            return {"i": In(stream.Signature(in_layout)), "o": Out(stream.Signature(out_shape))}

    @property
    def latency(self):
        """Cycles from input to output without stalls (``None``: data-dependent, temporal)."""
        return None if self.config.arch == "temporal" else division_latency(self.config)

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        if cfg.arch == "temporal":
            return self._elaborate_temporal(m, cfg)
        en = ~self.o.valid | self.o.ready
        m.d.comb += self.i.ready.eq(en)
        pipe = Pipeline(m, en, self.i.valid & en, name="div")
        q = division_stages(pipe, self.i.payload.a, self.i.payload.b, cfg)
        out = pipe.stage(q=q)
        m.d.comb += [self.o.payload.eq(out.q), self.o.valid.eq(out.valid)]
        return m

    def _elaborate_temporal(self, m, cfg):
        # one IF neuron, reset by subtraction: charged with I, then stepped with no input until it
        # stops firing (the golden model's q_max steps end the same way: no spike, no more spikes)
        current, theta, saturated = _stage1(m, self.i.payload.a, self.i.payload.b, 0, cfg, (0, 0))
        v = Signal(unsigned(len(current)), name="membrane")
        th = Signal(unsigned(len(theta)), name="theta")
        count = Signal(unsigned(cfg.q_width), name="count")
        v_next, spike = lif_update(v, 0, th, reset="subtract")
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    m.d.sync += [v.eq(current), th.eq(theta), count.eq(0)]
                    with m.If(saturated):
                        m.d.sync += count.eq(cfg.q_max)
                        m.next = "DONE"
                    with m.Else():
                        m.next = "RUN"
            with m.State("RUN"):
                with m.If(spike & (count != cfg.q_max)):
                    m.d.sync += [v.eq(v_next[:len(v)]), count.eq(count + 1)]
                with m.Else():
                    m.next = "DONE"
            with m.State("DONE"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(count)]
                with m.If(self.o.ready):
                    m.next = "IDLE"
        return m
