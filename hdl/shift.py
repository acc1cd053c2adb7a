"""Shift scaling in hardware: leading-one detection and barrel shifts (twin of ``golden/shift.py``)."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, Value, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["bit_length", "barrel_shift", "LeadingOneDetector"]


def bit_length(m, value, *, name="bl"):
    """A signal holding ``floor(log2(value)) + 1`` (0 for 0) of an unsigned value: a priority encoder."""
    width = len(value)
    n = Signal(range(width + 1), name=name)
    for i in range(width):
        with m.If(value[i]):
            m.d.comb += n.eq(i + 1)
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
