"""PolarNorm: the l2 norm of a non-negative integer vector by a tree of CORDIC merges, or exactly.

Number format: the leaves ``v_j`` are unsigned ``in_width``-bit integers (any common scale); the
result ``N`` is an integer with ``N ~ gain * ||v||`` where ``gain`` is a known constant.

``method="cordic"`` (twin of the RTL's tree):

* the ``length`` leaves, shifted left by ``guard_bits``, are zero-padded to ``2**levels`` with
  ``levels = ceil(log2(length))``;
* each level merges the pairs ``(a, b) = (x[2i], x[2i+1])`` in index order (this fixed order is part
  of the specification; the RTL uses the same one) by ``iterations`` CORDIC vectoring steps
  ``k = 0 .. iterations-1``::

      s  = +1 if b >= 0 else -1
      a' = a + s * (b >> k)
      b' = b - s * (a >> k)             (>> is an arithmetic, flooring shift)

  so ``a`` ends at about ``G * hypot(a, b)`` with ``G = prod_k sqrt(1 + 2**-2k)`` (about 1.6468);
* the result is the root's ``a``: ``gain = G**levels * 2**guard_bits``.  Every leaf sits at the same
  depth, so the gain is one constant, applied once by the operator as an integer multiply.

Only shifts, adds and sign tests; the relative error per level is about ``2**(-2*iterations-1)`` plus
the truncation of the shifts (``guard_bits`` keep it small).

``method="exact"``: ``N = isqrt(sum_j (v_j << guard_bits)**2)`` (floor of the square root), with
``gain = 2**guard_bits``.
"""

from __future__ import annotations

import functools

import math
from dataclasses import dataclass

import numpy as np

from .choices import NormMethod
from .config import Config

__all__ = ["NormConfig", "polar_norm", "isqrt", "METHODS"]

METHODS = NormMethod.values()


def cordic_gain(iterations: int) -> float:
    """``G = prod_{k < iterations} sqrt(1 + 2**-2k)``."""
    return math.prod(math.sqrt(1.0 + 2.0 ** (-2 * k)) for k in range(iterations))


@dataclass(frozen=True)
class NormConfig(Config):
    """PolarNorm of ``length`` unsigned ``in_width``-bit leaves (see the module docstring)."""

    kind = "norm"
    length: int = 2
    in_width: int = 24
    method: str = "cordic"
    iterations: int = 12
    guard_bits: int = 2

    def _validate(self):
        self._int("length", 1, 1 << 16)
        self._int("in_width", 1, 48)
        self._choice("method", NormMethod)
        self._int("iterations", 1, 32)
        self._int("guard_bits", 0, 16)
        if self.datapath_width > 62:
            n = self._label
            self._fail("in_width", f"needs a {self.datapath_width}-bit datapath for {n('length')}={self.length}, "
                       f"{n('guard_bits')}={self.guard_bits}, {n('method')}={str(self.method)!r}; "
                       "allowed: at most 62 bits")

    @functools.cached_property
    def levels(self) -> int:
        return (self.length - 1).bit_length()

    @functools.cached_property
    def gain(self) -> float:
        g = cordic_gain(self.iterations) ** self.levels if self.method == "cordic" else 1.0
        return g * 2.0 ** self.guard_bits

    @functools.cached_property
    def out_width(self) -> int:
        """Bits of N: the norm of ``length`` full-scale leaves times the gain (+1 for truncation slack)."""
        top = ((1 << self.in_width) - 1) * math.sqrt(self.length) * self.gain
        return int(math.floor(math.log2(top))) + 2

    @functools.cached_property
    def datapath_width(self) -> int:
        """Widest intermediate: the CORDIC registers (signed) or the exact sum of squares."""
        if self.method == "exact":
            return 2 * (self.in_width + self.guard_bits) + max(self.levels, 0) + 1
        return self.out_width + 1

    def costs(self) -> dict:
        return {"norm_method": self.method, "norm_levels": self.levels,
                "norm_datapath_width": self.datapath_width}

    def derived(self) -> dict:
        return {"levels": self.levels, "gain": self.gain, "out_width": self.out_width,
                "datapath_width": self.datapath_width}


def isqrt(s) -> np.ndarray:
    """Exact ``floor(sqrt(s))`` for int64 ``0 <= s < 2**62``."""
    s = np.asarray(s, dtype=np.int64)
    r = np.floor(np.sqrt(s.astype(np.float64))).astype(np.int64)
    for _ in range(2):
        r = np.where(r * r > s, r - 1, r)
        r = np.where((r + 1) * (r + 1) <= s, r + 1, r)
    return r


def _cordic_tree(leaves: np.ndarray, cfg: NormConfig) -> np.ndarray:
    x = leaves << cfg.guard_bits
    # Zero padding to 2**levels, done level by level: a pair of padding zeros merges to 0, so only
    # an odd level's last element needs its zero partner.
    while x.shape[-1] > 1:
        if x.shape[-1] % 2:
            x = np.concatenate([x, np.zeros(x.shape[:-1] + (1,), dtype=np.int64)], axis=-1)
        a = x[..., 0::2]
        b = x[..., 1::2]
        for k in range(cfg.iterations):
            s = 1 - 2 * (b < 0)
            da = s * (b >> k)
            b = b - s * (a >> k)
            a = a + da
        x = a
    return x[..., 0]


def polar_norm(v, cfg: NormConfig) -> np.ndarray:
    """``N ~ cfg.gain * ||v||`` over the last axis of non-negative int64 ``v`` (length ``cfg.length``)."""
    v = np.asarray(v, dtype=np.int64)
    if v.shape[-1] != cfg.length:
        raise ValueError(f"polar_norm: vector length {v.shape[-1]} does not match length={cfg.length}")
    if cfg.method == "exact":
        w = v << cfg.guard_bits
        return isqrt(np.sum(w * w, axis=-1))
    return _cordic_tree(v, cfg)
