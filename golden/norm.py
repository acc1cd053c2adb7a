"""PolarNorm: the l2 norm of a vector of non-negative leaves, by a streaming tree of CORDIC merges on
block-floating nodes, or exactly.

Number format: a *node* is a pair ``(m, e)`` of integers standing for ``m * 2**e``, with a mantissa
of ``width`` bits, normalised (``2**(width-1) <= m < 2**width``) or zero (``m = 0``, ``e = -width``,
below every other exponent).  An integer ``u >= 0`` becomes the node :func:`node_of` ``(u)``: its
leading ``width`` bits (floor), ``e = bit_length(u) - width``.  The root ``(m, e)`` satisfies
``m * 2**e ~ gain * ||v||``, with ``gain`` a known constant, and is the operator's read-out mantissa.

``method="cordic"`` (twin of the RTL's streaming tree):

* the ``length`` leaf nodes are merged pairwise, level by level, in index order: level ``l`` pairs
  ``(x[2i], x[2i+1])``; a level with an odd count pairs its last node with the zero node (the zero
  padding to ``2**levels``, ``levels = ceil(log2(length))``).  The order is part of the
  specification; because every pair is adjacent, the tree can merge as the leaves arrive;
* a merge of ``(ma, ea)`` and ``(mb, eb)``: with ``E = max(ea, eb)`` and ``g = guard_bits``, align
  ``a = (ma << g) >> (E - ea)``, ``b = (mb << g) >> (E - eb)`` (floor), then ``iterations`` CORDIC
  vectoring steps ``k = 0 .. iterations-1``::

      s  = +1 if b >= 0 else -1
      a' = a + s * (b >> k)
      b' = b - s * (a >> k)             (>> is an arithmetic, flooring shift)

  so ``a`` ends at about ``G * hypot(a, b)``, ``G = prod_k sqrt(1 + 2**-2k)`` (about 1.6468); the
  result is ``a`` normalised back to ``width`` bits (floor): ``(a >> t, E - g + t)`` with
  ``t = bit_length(a) - width``, which is ``g``, ``g + 1`` or ``g + 2`` (``a`` never decreases and
  ``G sqrt 2 < 4``); two zero nodes merge to the zero node;
* ``gain = G**levels``: every leaf sits at the same depth, so one constant, applied once by the
  operator as an integer multiply;
* ``units`` (hardware only: the tree, its order and its results do not depend on it) spreads the
  merges over CORDIC units: ``"shared"``, one pipelined unit for every level (the leaf pairs queue
  for the cycles the upper levels leave free; at most ``leaves / merges`` leaves a cycle,
  :func:`tree_merges`), ``"split"``, the leaf level's own unit and one shared by the levels above
  (two units, a leaf every cycle at any length), or ``"per_level"``, one unit per level, each pair
  merged the cycle it forms (``levels`` units' area for the fewest cycles after the last leaf,
  :func:`spikeops.hdl.norm.tree_latency`).

Every node keeps ``width`` significant bits whatever the scale of the row, so no block exponent of
the whole row is needed before the first merge: small rows and rows with outliers get the same
relative precision, about ``2**-(width-1)`` per level for the alignment and the normalisation, and
``2**(-2*iterations-1)`` per level for the CORDIC itself.

``method="exact"``: ``(m, e) =`` :func:`sqrt_node` ``(sum_j v_j**2)``: the sum, exact in integers,
is shifted by an even ``2e`` to ``2 width`` (or ``2 width - 1``) bits (floor) and ``m`` is its
integer square root (floor), ``width`` bits; ``gain = 1``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from .choices import NormMethod, NormUnits
from .config import Config
from .shift import normalise

__all__ = ["NormConfig", "node_of", "node_product", "merge", "cordic_root", "sqrt_node", "polar_norm",
           "sum_of_squares", "level_sizes", "tree_merges", "METHODS"]

METHODS = NormMethod.values()


def cordic_gain(iterations: int) -> float:
    """``G = prod_{k < iterations} sqrt(1 + 2**-2k)``."""
    return math.prod(math.sqrt(1.0 + 2.0 ** (-2 * k)) for k in range(iterations))


@dataclass(frozen=True)
class NormConfig(Config):
    """PolarNorm of ``length`` leaves below ``2**leaf_bits`` (see the module docstring)."""

    kind = "norm"
    length: int = 2
    width: int = 24
    method: str = "cordic"
    iterations: int = 12
    guard_bits: int = 2
    leaf_bits: int = 24
    units: str = "shared"

    def _validate(self):
        self._int("length", 1, 1 << 16)
        self._int("width", 2, 31)
        self._choice("method", NormMethod)
        self._int("iterations", 1, 32)
        self._int("guard_bits", 0, 16)
        self._int("leaf_bits", 1, 96)
        if self._choice("units", NormUnits) != NormUnits.SHARED and self.method != NormMethod.CORDIC:
            self._fail("units", f"needs the CORDIC tree ({self._label('method')}={str(self.method)!r} has no units); "
                       "allowed with it: 'shared'")

    @functools.cached_property
    def levels(self) -> int:
        return (self.length - 1).bit_length()

    @functools.cached_property
    def merges(self) -> int:
        """CORDIC merges per vector: :func:`tree_merges` of ``length``."""
        return tree_merges(self.length)

    @functools.cached_property
    def gain(self) -> float:
        return cordic_gain(self.iterations) ** self.levels if self.method == "cordic" else 1.0

    @functools.cached_property
    def zero_exp(self) -> int:
        """The exponent of the zero node, ``-width`` (below every nonzero node's)."""
        return -self.width

    @functools.cached_property
    def exp_range(self) -> tuple[int, int]:
        """Bounds of the root's exponent (and, for the tree, of every node's)."""
        if self.method == "exact":
            top = 2 * self.leaf_bits + self.length.bit_length()     # bits of the sum of squares
            return 1 - self.width, (top - 2 * self.width + 1) // 2
        return self.zero_exp, self.leaf_bits - self.width + 2 * self.levels

    @functools.cached_property
    def exp_width(self) -> int:
        """Bits of a signed exponent register."""
        lo, hi = self.exp_range
        return max((-lo - 1).bit_length(), hi.bit_length()) + 1

    @functools.cached_property
    def datapath_width(self) -> int:
        """Bits of the signed CORDIC registers: aligned operands below ``2**(width+g)``, results
        below ``4 * 2**(width+g)``, plus the sign."""
        return self.width + self.guard_bits + 3

    def costs(self) -> dict:
        return {"norm_method": self.method, "norm_units": self.units, "norm_levels": self.levels,
                "norm_datapath_width": self.datapath_width}

    def derived(self) -> dict:
        return {"levels": self.levels, "gain": self.gain, "exp_range": list(self.exp_range),
                "datapath_width": self.datapath_width}


def level_sizes(cfg: NormConfig) -> list[int]:
    """Nodes entering each level: ``L_0 = length``, ``L_(l+1) = ceil(L_l / 2)`` (``levels`` of them)."""
    return _sizes(cfg.length)


def _sizes(length: int) -> list[int]:
    sizes, n = [], length
    while n > 1:
        sizes.append(n)
        n = (n + 1) // 2
    return sizes


def tree_merges(length: int) -> int:
    """CORDIC merges per vector of ``length`` leaves: ``sum_l ceil(L_l / 2)`` over the level sizes
    (``length - 1`` plus one zero pair per odd level).  One unit shared by every level does one a
    cycle, so it takes at most ``min(1, leaves streamed / merges)`` leaves a cycle (65 leaves: 70
    merges); the ``split`` layout gives the leaf level a unit of its own and so takes one a cycle."""
    return sum((n + 1) // 2 for n in _sizes(length))


def _normalised(x: np.ndarray, e: np.ndarray, width: int):
    """``(x, e)`` with ``x >= 0`` brought to ``width`` bits (floor) by
    :func:`spikeops.golden.shift.normalise`: ``x * 2**s`` at exponent ``e - s``; zero gives the
    zero node."""
    m, s = normalise(x, width)
    return m, np.where(x == 0, -width, e - s)


def node_of(u, width: int):
    """The node of integers ``u >= 0`` (int64): ``(m, e)``, ``m`` the leading ``width`` bits."""
    u = np.asarray(u, dtype=np.int64)
    return _normalised(u, np.zeros_like(u), width)


def node_product(m, e, cm: int | np.ndarray, ce, width: int):
    """The node of ``(m * 2**e) * (cm * 2**ce)`` for nodes of ``width`` bits (``width <= 31``): the
    product's leading ``width`` bits (floor)."""
    m = np.asarray(m, dtype=np.int64)
    p = m * np.asarray(cm, dtype=np.int64)
    pm, pe = _normalised(p, np.asarray(e) + np.asarray(ce), width)
    return np.where(m == 0, 0, pm), np.where(m == 0, -width, pe)


def merge(am, ae, bm, be, cfg: NormConfig):
    """One CORDIC merge of node pairs (the module docstring), element-wise."""
    g, w = cfg.guard_bits, cfg.width
    big = np.maximum(ae, be)
    a = (am << g) >> np.minimum(big - ae, 63)
    b = (bm << g) >> np.minimum(big - be, 63)
    for k in range(cfg.iterations):
        s = 1 - 2 * (b < 0)
        da = s * (b >> k)
        b = b - s * (a >> k)
        a = a + da
    return _normalised(a, big - g, w)


def cordic_root(m, e, cfg: NormConfig):
    """The root node of the CORDIC tree over the last axis of leaf nodes ``(m, e)``."""
    m = np.asarray(m, dtype=np.int64)
    e = np.asarray(e, dtype=np.int64)
    while m.shape[-1] > 1:
        if m.shape[-1] % 2:
            pad = m.shape[:-1] + (1,)
            m = np.concatenate([m, np.zeros(pad, dtype=np.int64)], axis=-1)
            e = np.concatenate([e, np.full(pad, cfg.zero_exp, dtype=np.int64)], axis=-1)
        m, e = merge(m[..., 0::2], e[..., 0::2], m[..., 1::2], e[..., 1::2], cfg)
    return m[..., 0], e[..., 0]


def sqrt_node(q, width: int):
    """``(m, e)`` with ``m = isqrt(floor(q * 4**-e))`` of ``width`` bits, for integers ``q >= 1``
    (Python ints, any size: an object array or a list): ``e`` is the smallest shift that brings
    ``q * 4**-e`` below ``4**width``."""
    flat = [int(x) for x in np.asarray(q, dtype=object).reshape(-1)]
    ms, es = [], []
    for x in flat:
        if x < 1:
            raise ValueError(f"sqrt_node: the sum of squares must be at least 1, not {x}")
        e = (x.bit_length() - 2 * width + 1) // 2
        xm = x >> (2 * e) if e >= 0 else x << (-2 * e)
        ms.append(math.isqrt(xm))
        es.append(e)
    shape = np.shape(q)
    return np.array(ms, dtype=np.int64).reshape(shape), np.array(es, dtype=np.int64).reshape(shape)


def sum_of_squares(v) -> np.ndarray:
    """``sum_j v_j**2`` over the last axis of int64 ``v`` (``|v| < 2**40``, at most ``2**14``
    terms), exact, as Python ints (an object array): the squares are summed in 20-bit halves, so no
    int64 sum overflows."""
    v = np.abs(np.asarray(v, dtype=np.int64))
    hi, lo = v >> 20, v & ((1 << 20) - 1)
    hh, hl, ll = (np.asarray(p.sum(-1), dtype=object) for p in (hi * hi, hi * lo, lo * lo))
    return (hh << 40) + (hl << 21) + ll


def polar_norm(v, cfg: NormConfig):
    """The root ``(m, e)``, ``m * 2**e ~ cfg.gain * ||v||``, over the last axis of integer leaves
    ``v >= 0`` (length ``cfg.length``)."""
    v = np.asarray(v, dtype=np.int64)
    if v.shape[-1] != cfg.length:
        raise ValueError(f"polar_norm: vector length {v.shape[-1]} does not match length={cfg.length}")
    if cfg.method == "exact":
        return sqrt_node(sum_of_squares(v), cfg.width)
    return cordic_root(*node_of(v, cfg.width), cfg)
