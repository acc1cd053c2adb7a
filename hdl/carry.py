"""One add-or-subtract carry chain: ``s = a - b if sub else a + b``, modulo ``2**width``, with ``sub``
a signal: ``sub = (ctl == subtract_when)`` for a one-bit control ``ctl`` (the non-restoring division
neuron subtracts when its predecessor's sign is 0; the sign stage negates when the sign is 1; a
CORDIC vectoring step of PolarNorm adds or subtracts by the sign of ``b``).

The arithmetic is ``a + (b XOR sub) + sub``: ``b`` inverted by ``sub`` and ``sub`` the carry in.
Which circuit computes it is the emission's :class:`spikeops.hdl.dsp.Primitives` choice:

- ``generic`` (any vendor, Amaranth's simulator, the default emission): Amaranth's
  ``(Cat(sub, a) + Cat(sub, b ^ sub))[1:]``, the carry in entered as a low bit of both operands.
  Yosys maps the ``XOR`` to a LUT of its own in front of the carry chain: on ECP5 the path from
  ``sub`` runs through a LUT and two routing hops before it reaches the chain (2.7 ns of a 5 ns
  clock in the SiLU's division at speed grade 6).
- ``ecp5``: Lattice ``CCU2C`` cells instantiated with the function Yosys' own ``$alu`` mapping
  gives them, ``INIT = 0x96AA`` with ``D = 1``: the cell's LUT4 computes the propagate ``A XOR B XOR
  C`` and its LUT2 the generate ``A``, so ``C = 1`` inverts ``B`` (with ``0x69AA``, ``C = 0`` does).
  Driving ``C`` with ``ctl`` folds the inversion, and the polarity, into the chain's own LUTs: no
  LUT and no routing hop in front of the chain (and one LUT4 less a bit).  The first cell's low half
  enters the carry: ``A0 = ctl``, ``C0 = 0``, ``D0 = 1`` with ``INIT0 = 0x000A`` (``0x0005``):
  propagate 0, generate ``ctl`` (``NOT ctl``).  Yosys knows the cell as a black box; the simulators
  read this folder's ``ecp5_ccu2c.v`` (one of :data:`spikeops.hdl.dsp.ECP5_SIMULATION_MODELS`), a
  model of the cell as Yosys' ``ccu2c_sim.vh`` describes it, and ``tests/test_primitives.py``
  proves the instantiated chain equal to the generic one with Yosys' own cell models (SAT).

Both give the same bits in the same cycle (the chain is combinational).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Elaboratable, Instance, Module, Signal, Value

from .dsp import Primitives, primitives_of

__all__ = ["AddSub", "add_or_subtract", "negated_if", "CCU2C_BIT_INIT", "CCU2C_CARRY_IN_INIT"]

#: ``CCU2C`` LUT functions of an add-or-subtract bit by ``subtract_when``: with ``D = 1`` the LUT4
#: gives ``A ^ B ^ (C == subtract_when)`` (``B`` inverted when ``C == subtract_when``); its low
#: nibble (the LUT2, the generate) gives ``A``.  ``0x96AA`` is Yosys' own ``$alu`` mapping.
CCU2C_BIT_INIT = {1: 0x96AA, 0: 0x69AA}
#: ``CCU2C`` LUT function of the half that enters the carry (``D = 1``, ``C = 0``): propagate 0,
#: generate ``A`` (``subtract_when = 1``) or ``NOT A`` (0)
CCU2C_CARRY_IN_INIT = {1: 0x000A, 0: 0x0005}


def _generic(a, b, sub, width: int):
    bw = Cat(b, Const(0, max(0, width - len(b))))[:width] ^ sub.replicate(width)
    return (Cat(sub, a[:width]) + Cat(sub, bw))[1:width + 1]


class AddSub(Elaboratable):
    """``s = a - b if ctl == subtract_when else a + b`` modulo ``2**width`` (module docstring);
    ``a`` and ``b`` are zero-extended or cut to ``width`` bits, ``ctl`` is one bit."""

    def __init__(self, a, b, ctl, width: int, subtract_when: int = 1):
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ValueError(f"AddSub: width={width!r} is not allowed; allowed: an integer >= 1")
        if isinstance(subtract_when, bool) or subtract_when not in (0, 1):
            raise ValueError(f"AddSub: subtract_when={subtract_when!r} is not allowed; allowed: 0 or 1")
        self.width, self.subtract_when = width, subtract_when
        self.a = Cat(Value.cast(a), Const(0, width))[:width]
        self.b = Cat(Value.cast(b), Const(0, width))[:width]
        self.ctl = Value.cast(ctl)
        if len(self.ctl) != 1:
            raise ValueError(f"AddSub: ctl has {len(self.ctl)} bits; allowed: one bit")
        self.s = Signal(width)

    def elaborate(self, platform):
        m = Module()
        if primitives_of(platform) != Primitives.ECP5:
            sub = self.ctl if self.subtract_when else ~self.ctl
            m.d.comb += self.s.eq(_generic(self.a, self.b, sub, self.width))
            return m
        ctl, zero = Signal(), Const(0, 1)
        m.d.comb += ctl.eq(self.ctl)
        # the chain's halves (A, B, C, INIT, output bit): the carry-in half, then one half a bit (an
        # odd count ends on a half whose output is left open)
        halves = [(ctl, zero, zero, CCU2C_CARRY_IN_INIT[self.subtract_when], None)]
        halves += [(self.a[i], self.b[i], ctl, CCU2C_BIT_INIT[self.subtract_when], i) for i in range(self.width)]
        if len(halves) % 2:
            halves.append((zero, zero, zero, CCU2C_CARRY_IN_INIT[1], None))
        carry = zero
        for c in range(len(halves) // 2):
            cout = Signal(name=f"cout{c}")
            ports = {"i_CIN": carry, "o_COUT": cout}
            for h, (a, b, inv, init, bit) in enumerate(halves[2 * c:2 * c + 2]):
                out = self.s[bit] if bit is not None else Signal(name=f"open{c}_{h}")
                ports.update({f"i_A{h}": a, f"i_B{h}": b, f"i_C{h}": inv, f"i_D{h}": Const(1, 1), f"o_S{h}": out,
                              f"p_INIT{h}": init})
            m.submodules[f"ccu{c}"] = Instance("CCU2C", p_INJECT1_0="NO", p_INJECT1_1="NO", **ports)
            carry = cout
        return m


def add_or_subtract(m: Module, a, b, ctl, width: int, name: str, subtract_when: int = 1):
    """Add an :class:`AddSub` to ``m`` as submodule ``name``; return its ``s``."""
    unit = AddSub(a, b, ctl, width, subtract_when)
    m.submodules[name] = unit
    return unit.s


def negated_if(m: Module, q, neg, name: str):
    """``-q`` if ``neg`` else ``q`` for an unsigned ``q``, signed and one bit wider, as one
    :func:`add_or_subtract` chain (``0 - q`` or ``0 + q``): nothing before it or after it.  The
    operators' sign stages (SiLU, GELU, the norms) share it."""
    w = len(Value.cast(q)) + 1
    return add_or_subtract(m, 0, q, neg, w, name).as_signed()
