"""The Division Neuron Group in hardware (twin of ``golden/division.py``; same equations).

Shift scaling (``SCALING_STAGES`` = 5 pipeline stages in the II=1 realisations, one step in the
temporal one): leading-one detection on A and B, the threshold ``theta = B * 2**(theta_bits -
bit_length(B))`` and the input current ``I = A * 2**(e + shift - b_exp)`` (+ ``theta >> 1`` for
rounding to nearest), with the saturation test ``A != 0 and bit_length(A) + e + shift - b_exp >
q_width + theta_bits``.

The population, in one of three realisations:

* ``binary``: ``q_width`` pipeline stages, stage ``j`` one LIF neuron with threshold ``theta * 2**j``
  that subtracts it when it fires, one or more neurons per pipeline stage (latency ``5 +
  ceil(q_width / neurons_per_stage)``, II 1).  Each neuron is one ``theta_bits + 2``-bit
  add-or-subtract carry chain in non-restoring form (:func:`division_stages`): the same spikes as
  the restoring neurons of golden, with no multiplexer after the chain;
* ``thermometer``: ``2**q_width - 1`` comparators ``I >= i * theta`` in one stage, then a population
  count (latency 7, II 1);
* ``temporal``: one integrate-and-fire neuron stepped once per cycle until it stops firing
  (latency ``2 + q``, one division at a time).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream
from amaranth.lib.wiring import In, Out

from spikeops.golden.division import DivisionConfig

from .carry import add_or_subtract
from .component import ConfigComponent, ConfigSignature
from .neurons import lif_update
from .pipeline import CreditPipeline, Pipeline, credit_latency
from .shift import (SHIFT_STAGES, barrel_shift, bit_length, leading_one, leading_one_groups, leading_one_of_groups,
                    right_shift_stages)

__all__ = ["DivisionNeuronGroup", "division_stages", "division_latency", "check_pipelined", "zero_dividend"]


def _shift_amounts(bl_a, bl_b, b_exp, cfg: DivisionConfig, b_exp_range):
    """Comb ``(e, k, saturated)`` of shift scaling from the operands' bit lengths: ``e = theta_bits -
    bit_length(B)`` places B's leading one at bit ``theta_bits - 1``, ``k = e + shift - b_exp`` scales
    A, and ``A != 0 and bit_length(A) + k > q_width + theta_bits`` saturates."""
    t, qw = cfg.theta_bits, cfg.q_width
    lo_b, hi_b = b_exp_range
    e = (t - bl_b).as_signed()
    e = e[:max(t, cfg.den_width).bit_length() + 2].as_signed()
    k = (e + cfg.shift - b_exp)
    k = k[:max(abs(t + cfg.shift - lo_b), abs(t - cfg.den_width + cfg.shift - hi_b), 1).bit_length() + 2]
    k = k.as_signed()
    saturated = (bl_a != 0) & ((bl_a + k) > (qw + t))  # 0 / B = 0 however small B is
    return e, k, saturated


def _stage1(m, a, b, b_exp, cfg: DivisionConfig, b_exp_range):
    """Comb expressions ``(current, theta, saturated)`` of shift scaling in one step (the temporal
    group's single stage)."""
    e, k, saturated = _shift_amounts(bit_length(m, a, name="bl_a"), bit_length(m, b, name="bl_b"),
                                     b_exp, cfg, b_exp_range)
    t, cw = cfg.theta_bits, cfg.q_width + cfg.theta_bits + 1
    theta = barrel_shift(b, e, lo=min(0, t - cfg.den_width), hi=t, width=t)
    current = barrel_shift(a, k, lo=-cfg.num_width, hi=cfg.q_width + t, width=cw)
    if cfg.rounding == "nearest":
        current = (current + (theta >> 1))[:cw]
    return current, theta, saturated


#: pipeline stages of shift scaling in the II=1 realisations with one leading-one stage: bit
#: lengths; shift amounts; the two shift stages (the saturation test beside the first); the rounding
#: bias
SCALING_STAGES = 3 + SHIFT_STAGES


def division_latency(cfg: DivisionConfig, neurons_per_stage: int = 1, leading_one_stages: int = 1) -> int:
    """Pipeline latency in cycles of the II=1 realisations (not defined for ``temporal``);
    ``neurons_per_stage``: binary neurons sharing a pipeline stage, ``leading_one_stages``: 1 or 2
    (:func:`division_stages`)."""
    scaling = SCALING_STAGES + leading_one_stages - 1
    if cfg.arch == "binary":
        return scaling + -(-cfg.q_width // neurons_per_stage)
    if cfg.arch == "thermometer":
        return scaling + 2
    raise ValueError(f"division: arch={cfg.arch!r} has a data-dependent latency")


def check_pipelined(cfg: DivisionConfig, owner: str = "division", name: str = "arch"):
    """Raise ValueError unless ``cfg``'s realisation fits an II=1 pipeline (not ``temporal``)."""
    if cfg.arch == "temporal":
        raise ValueError(f"{owner}: {name}='temporal' is iterative (one division at a time, up to "
                         f"2**{cfg.q_width} - 1 steps) and cannot sit in an II=1 pipeline; "
                         "allowed: 'binary', 'thermometer'")


def check_leading_one_stages(value, owner: str = "division"):
    """Raise ValueError unless ``value`` is 1 or 2 (the stages of the leading-one detection)."""
    if isinstance(value, bool) or value not in (1, 2):
        raise ValueError(f"{owner}: leading_one_stages={value!r} is not allowed; allowed: 1 or 2")


def division_stages(pipe: Pipeline, a, b, cfg: DivisionConfig, *, b_exp=0, b_exp_range=(0, 0),
                    neurons_per_stage: int = 1, leading_one_stages: int = 1, b_leading_one=None):
    """Add the II=1 Division Neuron Group to ``pipe``; return ``q`` (aligned with ``pipe.valid``).
    ``b_exp`` is B's power-of-two exponent, known to lie in ``b_exp_range``.  ``b_leading_one``:
    B's leading-one position (``bit_length(B) - 1``) where the caller has it without a priority
    encoder (the norms' B is a normalised mantissa times a constant, so its leading one is one of two
    bits); any value when B is 0, whose quotient is ``q_max`` whatever the shifts.  The result is the
    same; only B's priority encoder leaves the first stage.

    Shift scaling takes :data:`SCALING_STAGES` stages (one more with ``leading_one_stages=2``), so
    that no stage holds more than one priority encoder (half of one with two stages), half a barrel
    shifter or one wide carry chain: (1) the leading ones of A and B (``bit_length = p + 1``;
    :func:`spikeops.hdl.shift.leading_one`, or in two stages each 8-bit group's and then the groups',
    :func:`~spikeops.hdl.shift.leading_one_groups`, :func:`~spikeops.hdl.shift.leading_one_of_groups`);
    (2) the shift amounts; (3, 4) ``theta = B << e = (B << t) >> bl_b`` and
    ``I = A << k = (A << hi) >> (hi - k)`` with ``hi = q_width + theta_bits``, as right shifts in
    two stages (:func:`spikeops.hdl.shift.right_shift_stages`), the saturation test beside the first;
    (5) the rounding bias
    ``I += theta >> 1``.  The first neuron's stage also tests for overflow,
    ``I >= theta << q_width`` (the top neuron would fire twice: every neuron fires, as in golden, so
    ``q = q_max``).

    ``binary``: neuron ``j`` (``j = q_width-1 .. 0``) has threshold ``theta << j``;
    ``neurons_per_stage`` of them share a pipeline stage, each passing its membrane on within the
    cycle (2 halves the stages for a chain of two carry chains per stage: a latency for a clock).
    Below the overflow the membrane ``R_j`` (its bits from ``j`` up) stays under ``2 theta``, so a
    neuron works on ``theta_bits + 2`` bits and the bits below ``j`` ride along untouched until their
    stage.  The arithmetic is non-restoring: the register holds ``P_j = R_j - theta`` (signed, in
    ``[-theta, theta)``) whether or not the neuron fired, its sign is the spike (``P_j >= 0``), and
    the next neuron forms ``R_(j-1) - theta`` as ``2 P_j + bit - theta`` after a spike and ``2 P_j +
    bit + theta`` otherwise (where the restoring neuron would have kept ``R_j``): one add-or-subtract
    carry chain a neuron, ``theta`` inverted by the previous sign and that sign the carry in, and no
    multiplexer after it.  The spikes, so the quotient, equal the restoring neurons' of golden.
    """
    check_pipelined(cfg)
    m = pipe.m
    t, qw = cfg.theta_bits, cfg.q_width
    cw = qw + t + 1
    hi = qw + t
    check_leading_one_stages(leading_one_stages)
    first = pipe.latency
    extra = {} if isinstance(b_exp, int) else {"b_exp": b_exp}
    if b_leading_one is not None:
        extra["b_lead"] = b_leading_one
    if leading_one_stages == 2:
        ga = leading_one_groups(a)
        gb = leading_one_groups(b) if b_leading_one is None else []
        s = pipe.stage(a=a, b=b, **{f"ga{i}_p": p for i, (p, _) in enumerate(ga)},
                       **{f"ga{i}_nz": nz for i, (_, nz) in enumerate(ga)},
                       **{f"gb{i}_p": p for i, (p, _) in enumerate(gb)},
                       **{f"gb{i}_nz": nz for i, (_, nz) in enumerate(gb)}, **extra)
        (p_a, nz_a), (p_b, _) = (leading_one_of_groups([(s[f"g{x}{i}_p"], s[f"g{x}{i}_nz"]) for i in range(len(g))])
                                 if g else (None, None) for x, g in (("a", ga), ("b", gb)))
        a, b, extra = s.a, s.b, {k: s[k] for k in extra}
    else:
        (p_a, nz_a), (p_b, _) = leading_one(a), (leading_one(b) if b_leading_one is None else (None, None))
    if b_leading_one is not None:
        p_b = extra.pop("b_lead")
    s = pipe.stage(a=a, b=b, p_a=p_a, nz_a=nz_a, p_b=p_b, **extra)
    b_exp = s["b_exp"] if extra else b_exp
    # I = A << k = (A << hi) >> (hi - k) and theta = B << (t - bl_b) = (B << (t - 1)) >> p_b: right
    # shifts only, with k = t - 1 - p_b + shift - b_exp (B != 0; B == 0 gives q_max whatever the
    # shifts).  hi - k < 0 only where A saturates or is 0, so it counts as 0.
    # a signed constant makes the sum signed and one bit wider: p_b + off can reach the top bit of
    # the unsigned sum, which ``as_signed()`` would have read as negative (every such B saturated)
    off = hi - t - cfg.shift + 1
    r = s.p_b + b_exp + Const(off, signed(max(abs(off), 1).bit_length() + 1))
    r_max = max(1, hi - (t - cfg.den_width + cfg.shift - b_exp_range[1]))
    r = Mux(r < 0, 0, r)[:r_max.bit_length()]
    s = pipe.stage(a=s.a, b=s.b, r=r, p_b=s.p_b, p_a=s.p_a, nz_a=s.nz_a)
    # bit_length(A) + k > hi, i.e. p_a - p_b - b_exp >= q_width + 1 - shift, is p_a >= r (before
    # the clamp; after it too, since r < 0 becomes 0): one compare beside the first shift stage
    pipe.carry(div_sat=s.nz_a & (s.p_a >= s.r))
    current, theta = right_shift_stages(pipe, [(Cat(Const(0, hi), s.a), s.r, cw),
                                               (Cat(Const(0, t - 1), s.b), s.p_b, t)])
    v = (current + (theta >> 1))[:cw] if cfg.rounding == "nearest" else current
    s = pipe.stage(v=v, theta=theta, sat=pipe.carried.pop("div_sat"))
    if cfg.arch == "binary":
        # non-restoring: the membrane above bit j, less theta, is kept signed, P_j = R_j - theta
        # (R_j: the restoring neuron's membrane, bits j and up, so spike_j = P_j >= 0); the next
        # neuron's R_(j-1) - theta is 2 P_j + bit + theta when P_j < 0 (the restoring neuron would
        # have kept R_j), else 2 P_j + bit - theta.  One add-or-subtract carry chain a neuron, its
        # sign the spike: no multiplexer after the chain.  P_j lies in [-theta, theta), t + 1 bits.
        w = t + 2
        a_j, low, theta_r = s.v[qw - 1:], s.v[:qw - 1], s.theta
        sat = s.sat | (a_j >= (theta_r << 1))  # overflow; also theta == 0 (B == 0): every neuron fires
        # ``nq`` collects the signs (bit j: P_j < 0, no spike), so that no inverter follows a chain
        neg, nq = Const(0), 0
        for top in range(qw - 1, -1, -neurons_per_stage):
            for j in range(top, max(top - neurons_per_stage, -1), -1):
                # a signal, so that the next neuron in the stage refers to it (its sign enters
                # that neuron's chain at every bit: as an expression it would be copied each time)
                p_j = Signal(t + 1, name=f"{pipe.name}_div_p{j}")
                m.d.comb += p_j.eq(add_or_subtract(m, a_j, theta_r, neg, w, f"{pipe.name}_div_n{j}",
                                                 subtract_when=0))
                neg = p_j[t]
                nq = nq | (neg << j)
                a_j = Cat(low[j - 1], p_j) if j else None
            regs = {"low": low[:j - 1]} if j > 1 else {}
            s = pipe.stage(theta=theta_r, sat=sat, nq=nq, **regs, **({"a": a_j} if j else {}))
            theta_r, sat, nq = s.theta, s.sat, s.nq
            low = s["low"] if j > 1 else None
            if j:
                a_j = s.a
                neg = a_j[w - 1]                   # P_j's sign (a_j's top bit)
        pipe.spans["division"] = range(first, pipe.latency)
        return Mux(sat, cfg.q_max, ~nq[:qw])
    # thermometer: neuron i fires iff I >= i * theta (one step), then the population count
    fires = [s.v >= s.theta * i for i in range(1, cfg.q_max + 1)]
    s2 = pipe.stage(fires=Cat(*fires), sat=s.sat)
    count = _popcount([s2.fires[i] for i in range(cfg.q_max)])
    q = pipe.stage(q=Mux(s2.sat, cfg.q_max, count)).q
    pipe.spans["division"] = range(first, pipe.latency)
    return q


def zero_dividend(pipe: Pipeline, b_placed):
    """What the stages :func:`division_stages` added to ``pipe`` hold while they carry a zero
    dividend that B's placement makes a zero quotient, as ``zero(s, registers)`` for
    :meth:`~spikeops.hdl.pipeline.CreditPipeline.row_segments` (a condition, or None where the stage
    states nothing or is not the division's).

    At the scaling stages that hold A and B: ``A = 0``, its leading-one test says so (``nz_a``), no
    saturation (``div_sat``), and ``b_placed(registers)``, the caller's statement that B's leading
    one is where the stage's ``b_lead`` / ``p_b`` says (the caller knows B's range; B = 0 answers
    ``q_max``).  Then the membrane ``I = theta >> 1`` (or 0) is below ``theta`` and no saturation;
    no thermometer neuron fires; ``q = 0``.  The shift stages and the binary neurons' stages state
    nothing (their run lengthens :attr:`~spikeops.hdl.claims.Claims.settle`)."""
    span = pipe.spans["division"]

    def zero(s, r):
        if s not in span:
            return None
        if "q" in r:
            return r["q"] == 0
        if "fires" in r:
            return ~r["sat"] & (r["fires"] == 0)
        if "v" in r and "theta" in r:
            return ~r["sat"] & (r["v"] < r["theta"])
        if "a" in r and "b" in r:
            return (r["a"] == 0) & ~r.get("nz_a", Const(0)) & b_placed(r) & ~r.get("div_sat", Const(0))
        return None
    return zero


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
    ``neurons_per_stage``: binary neurons sharing a pipeline stage; ``leading_one_stages``: 1 or 2
    (:func:`division_stages`).
    """

    def __init__(self, config, *, neurons_per_stage: int = 1, leading_one_stages: int = 1):
        if isinstance(neurons_per_stage, bool) or not isinstance(neurons_per_stage, int) or neurons_per_stage < 1:
            raise ValueError(f"DivisionNeuronGroup: neurons_per_stage={neurons_per_stage!r} is not allowed; "
                             "allowed: an integer >= 1")
        check_leading_one_stages(leading_one_stages, "DivisionNeuronGroup")
        self.neurons_per_stage = neurons_per_stage
        self.leading_one_stages = leading_one_stages
        super().__init__(config)

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
        if self.config.arch == "temporal":
            return None
        return credit_latency(division_latency(self.config, self.neurons_per_stage, self.leading_one_stages))

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        if cfg.arch == "temporal":
            return self._elaborate_temporal(m, cfg)
        pipe = CreditPipeline(m, self.o, i=self.i, name="div")
        pipe.finish(division_stages(pipe, self.i.payload.a, self.i.payload.b, cfg,
                                    neurons_per_stage=self.neurons_per_stage,
                                    leading_one_stages=self.leading_one_stages))
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
