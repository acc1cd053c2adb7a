"""Fixed-point formats and the float <-> integer boundary of the golden model.

A :class:`FixedFormat` ``(width, frac, signed)`` maps an integer code ``q`` to the real value
``q * 2**-frac``.  Signed formats are symmetric: finite values use
``[-(2**(width-1) - 1), 2**(width-1) - 1]`` and the most negative code ``-2**(width-1)`` is reserved
as *minus infinity*, the in-band mask of Softmax.  Unsigned formats use ``[0, 2**width - 1]``.

Amaranth has no fixed-point type, so every width and fraction count in spikeops is explicit in a
``FixedFormat`` (or named ``*_width`` / ``*_frac``) and stated in docstrings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["FixedFormat", "quantize", "dequantize", "check_codes", "check_int"]


def check_int(owner: str, name: str, value, lo: int, hi: int | None = None) -> int:
    """Return ``value`` if it is an int in ``[lo, hi]``; else raise ValueError naming everything."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{owner}: {name} must be an integer, not {value!r}")
    if value < lo or (hi is not None and value > hi):
        allowed = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ValueError(f"{owner}: {name}={value} is out of range; allowed: {allowed}")
    return int(value)


@dataclass(frozen=True)
class FixedFormat:
    """Integer code ``q`` of ``width`` bits standing for ``q * 2**-frac`` (``signed``: two's complement)."""

    width: int
    frac: int
    signed: bool = True

    def __post_init__(self):
        check_int("FixedFormat", "width", self.width, 1 if not self.signed else 2, 62)
        check_int("FixedFormat", "frac", self.frac, -62, 62)

    @property
    def max_code(self) -> int:
        return (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1

    @property
    def min_code(self) -> int:
        """Smallest finite code (symmetric for signed formats; the mask code lies below it)."""
        return -self.max_code if self.signed else 0

    @property
    def mask_code(self) -> int:
        """The code of minus infinity (signed formats only): ``-2**(width-1)``."""
        if not self.signed:
            raise ValueError("FixedFormat: an unsigned format has no mask code")
        return -(1 << (self.width - 1))

    @property
    def lsb(self) -> float:
        return 2.0 ** -self.frac

    @property
    def max_value(self) -> float:
        return self.max_code * self.lsb

    def describe(self) -> str:
        return f"{'s' if self.signed else 'u'}{self.width}.{self.frac}"

    def to_json(self) -> dict:
        return {"width": self.width, "frac": self.frac, "signed": self.signed,
                "min_code": self.min_code, "max_code": self.max_code, "lsb": self.lsb}


def quantize(x, fmt: FixedFormat, *, rounding: str = "nearest", name: str = "x") -> np.ndarray:
    """Float -> int64 codes of ``fmt``: ``round(x * 2**frac)`` saturated to the finite code range.

    ``-inf`` becomes ``fmt.mask_code`` (the Softmax mask) in signed formats, ``+inf`` saturates to the
    largest code; NaN raises ValueError.  ``rounding`` is ``"nearest"`` (half away from zero) or
    ``"floor"``.
    """
    a = np.asarray(x, dtype=np.float64)
    if np.isnan(a).any():
        raise ValueError(f"quantize: {name} contains NaN at index {np.argwhere(np.isnan(a))[0].tolist()}; "
                         "NaN has no fixed-point code")
    if rounding == "nearest":
        r = np.sign(a) * np.floor(np.abs(a) * 2.0 ** fmt.frac + 0.5)
    elif rounding == "floor":
        r = np.floor(a * 2.0 ** fmt.frac)
    else:
        raise ValueError(f"quantize: rounding={rounding!r} is not allowed; allowed: 'nearest', 'floor'")
    neg_inf = np.isneginf(a)
    if neg_inf.any() and not fmt.signed:
        raise ValueError(f"quantize: {name} contains -inf but format {fmt.describe()} is unsigned "
                         "and has no mask code")
    r = np.where(np.isnan(r), 0.0, r)  # inf * 0 cases cannot occur; keep clip below well-defined
    q = np.clip(r, fmt.min_code, fmt.max_code).astype(np.int64)
    if neg_inf.any():
        q = np.where(neg_inf, fmt.mask_code, q)
    return q


def dequantize(q, fmt: FixedFormat) -> np.ndarray:
    """int codes -> float64 values ``q * 2**-frac``; the mask code becomes ``-inf``."""
    a = np.asarray(q, dtype=np.int64)
    v = a.astype(np.float64) * fmt.lsb
    if fmt.signed:
        v = np.where(a == fmt.mask_code, -np.inf, v)
    return v


def check_codes(q, fmt: FixedFormat, *, owner: str, name: str = "x", allow_mask: bool = False) -> np.ndarray:
    """Validate integer input codes against ``fmt``; return them as int64.

    Raises ValueError naming the operator, the parameter, the first offending value and the range.
    """
    a = np.asarray(q)
    if a.dtype.kind not in "iub":
        raise ValueError(f"{owner}: {name} must hold integer codes, not dtype {a.dtype}")
    a = a.astype(np.int64, copy=False)
    lo = fmt.mask_code if (allow_mask and fmt.signed) else fmt.min_code
    bad = (a < lo) | (a > fmt.max_code)
    if bad.any():
        idx = tuple(np.argwhere(bad)[0].tolist())
        raise ValueError(f"{owner}: {name}[{', '.join(map(str, idx))}]={int(a[idx])} is outside the "
                         f"{fmt.describe()} input format; allowed: [{lo}, {fmt.max_code}]")
    return a
