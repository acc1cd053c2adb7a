"""A registered 18 x 18 multiplier: the vendor's DSP block with its registers on, or the same
registers in the fabric.

:class:`Multiplier` computes ``p = a * b`` for signed 18-bit operands (narrower values are
extended: an unsigned operand of up to 17 bits by zeros, a signed one of up to 18 by its sign) into
a 36-bit signed product, exact, with :data:`MULTIPLIER_LATENCY` = 2 registers under the enable
``en``: the operands are registered, then the product:

    cycle c:      a, b (with en)
    cycle c + 1:  a_r = a, b_r = b
    cycle c + 2:  p = a_r * b_r

Which circuit holds the registers is the emission's :class:`Primitives` choice, found on the
``platform`` that Amaranth hands to every ``elaborate`` (:func:`primitives_of`):

- ``generic`` (the default; iCE40 and every other vendor, Amaranth's simulator, the co-simulation
  of the default emission): two registers in the fabric and Amaranth's ``*`` between them, which
  Yosys maps to whatever multiplier the family has.  Yosys' ECP5 mapping leaves the DSP block's own
  registers off, so the product path runs from fabric flip-flops through the block's combinational
  multiplier (3.93 ns at speed grade 6) to fabric flip-flops.
- ``ecp5``: Lattice's ``MULT18X18D`` instantiated with its input registers (``REG_INPUTA_CLK``,
  ``REG_INPUTB_CLK``) and output register (``REG_OUTPUT_CLK``) on ``CLK0``/``CE0``, signed
  operands.  The same two registers, inside the block: the fabric sees a register input and a
  0.7 ns clock-to-out.  Yosys knows the primitive as a black box; the simulators take
  this folder's ``ecp5_mult18x18d.v`` (one of :data:`ECP5_SIMULATION_MODELS`), a behavioural model
  of the modes used here, which the co-simulation compares, cycle for cycle, with the golden model.

The same choice places the tables' output registers (:mod:`spikeops.hdl.rom`).

Both choices give the same values in the same cycles; the registers hold no reset (the valid bits
that travel beside them do).
"""

from __future__ import annotations

from pathlib import Path

from amaranth.hdl import ClockSignal, Elaboratable, Instance, Module, Signal, Value, signed

from spikeops.golden.choices import Choice

__all__ = ["Primitives", "PrimitivePlatform", "primitives_of", "Multiplier", "MULTIPLIER_LATENCY",
           "MULTIPLIER_WIDTH", "ECP5_SIMULATION_MODELS", "simulation_models"]

#: the operand width of one multiplier block (signed)
MULTIPLIER_WIDTH = 18
#: registers from the operands to the product
MULTIPLIER_LATENCY = 2
#: the behavioural models of ``MULT18X18D``, ``DP16KD`` and ``CCU2C`` (:mod:`spikeops.hdl.carry`) that
#: the simulators read beside an ``ecp5`` emission
ECP5_SIMULATION_MODELS = tuple(Path(__file__).with_name(f"ecp5_{cell}.v") for cell in ("mult18x18d", "dp16kd", "ccu2c"))


class Primitives(Choice):
    """Which circuits hold the multipliers' registers (module docstring)."""

    GENERIC = "generic"   # fabric registers around an inferred multiplier, any vendor
    ECP5 = "ecp5"         # Lattice ECP5 MULT18X18D with its input and output registers on


class PrimitivePlatform:
    """The ``platform`` an emission hands to Amaranth: it carries only the :class:`Primitives`
    choice (Amaranth passes it to every ``elaborate``)."""

    def __init__(self, primitives="generic"):
        self.primitives = Primitives.parse(primitives, "emit", "primitives")

    def __repr__(self):
        return f"PrimitivePlatform({self.primitives.value!r})"


def primitives_of(platform) -> Primitives:
    """The :class:`Primitives` choice of ``platform`` (``None`` or any other platform: generic)."""
    return getattr(platform, "primitives", Primitives.GENERIC)


def simulation_models(primitives) -> list[Path]:
    """The Verilog models a simulator needs beside an emission with ``primitives`` (none for
    ``generic``)."""
    return list(ECP5_SIMULATION_MODELS) if Primitives.parse(primitives, "emit", "primitives") == Primitives.ECP5 else []


def _operand(v):
    v = Value.cast(v)
    limit = MULTIPLIER_WIDTH - (0 if v.shape().signed else 1)
    if len(v) > limit:
        raise ValueError(f"Multiplier: an operand of shape {v.shape()} is not allowed; allowed: signed of "
                         f"at most {MULTIPLIER_WIDTH} bits or unsigned of at most {MULTIPLIER_WIDTH - 1}")
    return v.as_signed() if v.shape().signed else v


class Multiplier(Elaboratable):
    """``p = a * b`` two registered cycles later (module docstring); ``en`` enables both registers."""

    def __init__(self, a, b, *, en=1):
        self.a, self.b = _operand(a), _operand(b)
        self.en = Value.cast(en)
        self.p = Signal(signed(2 * MULTIPLIER_WIDTH))

    def elaborate(self, platform):
        m = Module()
        a = Signal(signed(MULTIPLIER_WIDTH))
        b = Signal(signed(MULTIPLIER_WIDTH))
        m.d.comb += [a.eq(self.a), b.eq(self.b)]
        if primitives_of(platform) == Primitives.ECP5:
            ports = {f"i_A{k}": a[k] for k in range(MULTIPLIER_WIDTH)}
            ports.update({f"i_B{k}": b[k] for k in range(MULTIPLIER_WIDTH)})
            ports.update({f"o_P{k}": self.p[k] for k in range(2 * MULTIPLIER_WIDTH)})
            m.submodules.dsp = Instance(
                "MULT18X18D",
                p_REG_INPUTA_CLK="CLK0", p_REG_INPUTB_CLK="CLK0", p_REG_OUTPUT_CLK="CLK0",
                p_GSR="DISABLED", p_RESETMODE="SYNC",
                i_SIGNEDA=1, i_SIGNEDB=1, i_SOURCEA=0, i_SOURCEB=0,
                i_CLK0=ClockSignal(), i_CE0=self.en, i_RST0=0, **ports)
        else:
            a_r = Signal(signed(MULTIPLIER_WIDTH))
            b_r = Signal(signed(MULTIPLIER_WIDTH))
            with m.If(self.en):
                m.d.sync += [a_r.eq(a), b_r.eq(b), self.p.eq(a_r * b_r)]
        return m
