"""Shift scaling in hardware: leading-one detection and barrel shifts (twin of ``golden/shift.py``)."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["leading_one", "leading_one_groups", "leading_one_of_groups", "LOD_GROUP", "bit_length", "barrel_shift",
           "right_shift_stages", "SHIFT_STAGES", "LeadingOneDetector"]


def leading_one(value):
    """``(p, nz)`` of an unsigned value: ``nz`` is ``value != 0`` and ``p`` the position of its
    leading one (``bit_length(value) - 1``; 0 for 0), as a tree of depth ``log2(width)``: each node
    takes its upper half's position, with a 1 on top, when that half is non-zero, else its lower
    half's."""
    value = Value.cast(value)
    if len(value) <= 1:
        return Const(0, 1), value.any() if len(value) else Const(0, 1)
    half = 1 << ((len(value) - 1).bit_length() - 1)      # the lower half: a power of two
    p_lo, nz_lo = leading_one(value[:half])
    p_hi, nz_hi = leading_one(value[half:])
    bits = (half - 1).bit_length()
    p_lo, p_hi = p_lo[:bits] if bits else Const(0, 0), p_hi[:bits] if bits else Const(0, 0)
    if len(p_hi) < bits:
        p_hi = Cat(p_hi, Const(0, bits - len(p_hi)))
    if len(p_lo) < bits:
        p_lo = Cat(p_lo, Const(0, bits - len(p_lo)))
    return Mux(nz_hi, Cat(p_hi, Const(1, 1)), Cat(p_lo, Const(0, 1))), nz_hi | nz_lo


#: bits of a group in the two-stage leading-one detection (:func:`leading_one_groups`)
LOD_GROUP = 8


def leading_one_groups(value, group: int = LOD_GROUP):
    """The first stage of a two-stage :func:`leading_one`: ``(p, nz)`` of each ``group``-bit group
    of ``value``, lowest first (``group`` a power of two; the last group may be narrower), each a
    tree of depth ``log2(group)``.  :func:`leading_one_of_groups` finishes it."""
    value = Value.cast(value)
    if group < 1 or group & (group - 1):
        raise ValueError(f"leading_one_groups: group={group} is not allowed; allowed: a power of two")
    return [leading_one(value[lo:lo + group]) for lo in range(0, max(1, len(value)), group)]


def leading_one_of_groups(groups, group: int = LOD_GROUP):
    """The second stage: ``(p, nz)`` of the whole value from its groups' (:func:`leading_one_groups`,
    registered in between), the same tree as :func:`leading_one` with the groups as its leaves, so
    the same ``p`` and ``nz``."""
    bits = (group - 1).bit_length()
    if len(groups) == 1:
        p, nz = groups[0]
        return (Cat(p, Const(0, bits - len(p))) if len(p) < bits else p[:bits]), nz
    half = 1 << ((len(groups) - 1).bit_length() - 1)
    p_lo, nz_lo = leading_one_of_groups(groups[:half], group)
    p_hi, nz_hi = leading_one_of_groups(groups[half:], group)
    bits = (half * group - 1).bit_length()
    p_lo, p_hi = (Cat(v, Const(0, bits - len(v))) if len(v) < bits else v for v in (p_lo, p_hi))
    return Mux(nz_hi, Cat(p_hi, Const(1, 1)), Cat(p_lo, Const(0, 1))), nz_hi | nz_lo


def bit_length(m, value, *, name="bl"):
    """A signal holding ``floor(log2(value)) + 1`` (0 for 0) of an unsigned value: the
    :func:`leading_one` tree, plus one."""
    width = len(value)
    n = Signal(range(width + 1), name=name)
    p, nz = leading_one(value)
    m.d.comb += n.eq(Mux(nz, p + 1, 0))
    return n


def barrel_shift(value, amount, *, lo: int, hi: int, width: int):
    """``value * 2**amount`` (floor for negative amounts) as a ``width``-bit expression.

    ``amount`` is a signed value known to lie in ``[lo, hi]``; shifts are clamped to that range so
    the shifter is no wider than it must be.  Signed values shift arithmetically.
    """
    value = Value.cast(value)
    parts = []
    if hi > 0:
        left = Mux(amount > 0, amount, 0)
        left = Mux(left > hi, hi, left)
        parts.append((amount > 0, (value << left.as_unsigned()[:max(1, hi.bit_length())])[:width]))
    if lo < 0:
        right = Mux(amount < 0, -amount, 0)
        right = Mux(right > -lo, -lo, right)
        shifted = value >> right.as_unsigned()[:max(1, (-lo).bit_length())]
        parts.append((amount < 0, shifted if len(shifted) <= width else shifted[:width]))
    out = value if len(value) <= width else value[:width]
    for cond, v in parts:
        out = Mux(cond, v, out)
    return out[:width].as_signed() if value.shape().signed else out[:width]


#: pipeline stages of :func:`right_shift_stages`
SHIFT_STAGES = 2


def right_shift_stages(pipe, lanes):
    """``(value >> amount)[:width]`` for each ``(value, amount, width)`` of ``lanes`` (unsigned
    values and amounts; shifts past a value's width give 0), side by side in :data:`SHIFT_STAGES`
    registered stages: the first shifts by the amounts' upper bits, the second by their lower bits,
    so that each stage holds a multiplexer tree of half the depth.  Returns the shifted values."""
    firsts, lows, splits = {}, {}, []
    for n, (value, amount, width) in enumerate(lanes):
        value, amount = Value.cast(value), Value.cast(amount)
        split = len(amount) // 2                 # the second stage's amount bits
        for i in range(len(amount) - 1, split - 1, -1):
            value = Mux(amount[i], value >> (1 << i), value)
        firsts[f"v{n}"] = value[:min(len(value), width + (1 << split) - 1)]
        lows[f"r{n}"] = amount[:split] if split else Const(0, 1)
        splits.append(split)
    s = pipe.stage(**firsts, **lows)
    outs = {}
    for n, (_, _, width) in enumerate(lanes):
        value = s[f"v{n}"]
        for i in range(splits[n] - 1, -1, -1):
            value = Mux(s[f"r{n}"][i], value >> (1 << i), value)
        outs[f"v{n}"] = value[:width]
    s = pipe.stage(**outs)
    return [s[f"v{n}"] for n in range(len(lanes))]


class LeadingOneDetector(wiring.Component):
    """Combinational bit length of a ``width``-bit unsigned input: ``count = bit_length(value)``."""

    class Signature(wiring.Signature):
        def __init__(self, width: int):
            self.check_parameters(width)
            self._width = width
            super().__init__({"value": In(unsigned(width)), "count": Out(range(width + 1))})

        @classmethod
        def check_parameters(cls, width):
            if not isinstance(width, int) or width < 1:
                raise ValueError(f"LeadingOneDetector: width={width!r} must be a positive integer")

        @property
        def width(self):
            return self._width

        def __eq__(self, other):
            return isinstance(other, LeadingOneDetector.Signature) and other.width == self.width

        def __repr__(self):
            return f"LeadingOneDetector.Signature(width={self.width})"

    def __init__(self, width: int):
        super().__init__(self.Signature(width))

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.count.eq(bit_length(m, self.value))
        return m
