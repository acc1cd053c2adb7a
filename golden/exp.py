"""PWL-Exp: ``e**z`` on ``[-H, H]`` as ``K`` chords read from a table (twin of ``hdl/exp.py``).

Number formats: the argument ``z`` is a signed ``in_width``-bit code with ``in_frac`` fraction bits;
the result is unsigned with ``out_frac`` fraction bits (``out_width`` = bit length of ``e**H``).

With ``Hc = H * 2**in_frac`` (H in argument codes) the segments are the integer intervals
``[b_k, b_(k+1))`` with ``b_k = ceil(2 * Hc * k / K) - Hc`` (``k = 0 .. K``).  The segment of ``z`` is

    k = floor((z + Hc) * K / (2 * Hc))      (a bit slice of z + Hc when 2*Hc/K is a power of two)
    t = z - b_k                              (offset in the segment, L_k = b_(k+1) - b_k codes)

and the table holds intercepts and slopes of the chords through the rounded end points:

    c_k = round(e**(b_k * 2**-in_frac) * 2**out_frac)                   k = 0 .. K
    s_k = floor((c_(k+1) - c_k) * 2**(slope_frac + seg_bits) / L_k)     k = 0 .. K-1
    exp(z) = c_k + ((s_k * t) >> (slope_frac + seg_bits))

``seg_bits = ceil(log2(max L_k))``, so ``slope_frac`` counts fraction bits of the slope per segment.
Below ``-Hc`` the result is 0, at or above ``Hc`` it clamps to ``c_K ~ e**H``.  Flooring the slope
makes the result non-decreasing in ``z`` by construction.  Chord error (relative, before rounding):
``(2H/K)**2 / 8 * e**(2H/K)`` (the paper's ``H**2/(2K**2) e**(2H/K)``).  The table is computed once,
with 60-digit decimal arithmetic so it is the same on every machine, and ``hdl`` fills its ROM from
it: there is never a second copy.
"""

from __future__ import annotations

import decimal
import functools
import math
from dataclasses import dataclass

import numpy as np

from .config import Config
from .fixed import FixedFormat

__all__ = ["ExpConfig", "ExpTable", "exp_table", "pwl_exp"]


@dataclass(frozen=True)
class ExpConfig(Config):
    """PWL-Exp parameters: argument ``s<in_width>.<in_frac>``, ``K`` chords on ``[-H, H]``."""

    kind = "exp"
    in_width: int = 16
    in_frac: int = 8
    H: int = 8
    K: int = 256
    out_frac: int = 12
    slope_frac: int = 8

    def _validate(self):
        self._int("in_frac", 0, 40)
        self._int("H", 1, 24)
        self._int("in_width", 2, 62)
        self._int("K", 1, 1 << 14)
        self._int("out_frac", 0, 40)
        self._int("slope_frac", 0, 32)
        if self.H_codes >= 1 << (self.in_width - 1):
            self._fail("in_width", f"cannot hold H={self.H} at {self._label('in_frac')}={self.in_frac} "
                       f"({self.H_codes} codes); allowed: {self._label('in_width')} >= "
                       f"{self.H_codes.bit_length() + 1}")
        if self.K > 2 * self.H_codes:
            self._fail("K", f"gives segments narrower than one argument code; allowed: K <= "
                       f"2*H*2**{self._label('in_frac')} = {2 * self.H_codes}")
        top = math.exp(self.H) * 2.0 ** self.out_frac
        if top >= 2.0 ** 48:
            self._fail("out_frac", f"makes e**H = 2**{math.log2(top):.1f} codes; allowed: "
                       f"H * log2(e) + {self._label('out_frac')} < 48")
        if self.slope_width + self.seg_bits > 62:
            self._fail("slope_frac", f"gives a {self.slope_width + self.seg_bits}-bit slope product; "
                       "allowed: at most 62 bits")

    # -- derived -------------------------------------------------------------------------------
    @functools.cached_property
    def H_codes(self) -> int:
        return self.H << self.in_frac

    @functools.cached_property
    def in_format(self) -> FixedFormat:
        return FixedFormat(self.in_width, self.in_frac, signed=True)

    @functools.cached_property
    def seg_bits(self) -> int:
        """Bits of the in-segment offset ``t``: ``ceil(log2(max L_k))``."""
        longest = -(-2 * self.H_codes // self.K)
        return max(0, (longest - 1).bit_length())

    @functools.cached_property
    def index_is_bit_slice(self) -> bool:
        """True when ``2*H*2**in_frac / K`` is a power of two, so ``k`` is a bit slice of ``z + Hc``."""
        width, rem = divmod(2 * self.H_codes, self.K)
        return rem == 0 and width & (width - 1) == 0

    @functools.cached_property
    def slope_shift(self) -> int:
        return self.slope_frac + self.seg_bits

    @functools.cached_property
    def one_code(self) -> int:
        """``c_K``, the table's value at ``H``: the clamp above ``H`` and ``e**H`` in output codes."""
        return int(exp_table(self).intercepts[-1])

    @functools.cached_property
    def out_width(self) -> int:
        return self.one_code.bit_length()

    @functools.cached_property
    def out_format(self) -> FixedFormat:
        return FixedFormat(self.out_width, self.out_frac, signed=False)

    @functools.cached_property
    def slope_width(self) -> int:
        # bound without building the table: c_K - c_(K-1) < e**H * (1 - e**(-2H/K)) * 2**out_frac
        step = math.exp(self.H) * (1 - math.exp(-2 * self.H / self.K)) * 2.0 ** self.out_frac + 1
        return max(1, int(math.ceil(math.log2(step + 1))) + self.slope_frac + 1)

    @functools.cached_property
    def table_bits(self) -> int:
        """ROM size: K intercepts of out_width bits, K slopes of slope_width bits, plus c_K."""
        return self.K * (self.out_width + self.slope_width) + self.out_width

    @functools.cached_property
    def chord_error_bound(self) -> float:
        """Relative chord error ``h**2/8 * e**h`` for the longest segment ``h`` (``2H/K`` when even)."""
        h = -(-2 * self.H_codes // self.K) * 2.0 ** -self.in_frac
        return h * h / 8 * math.exp(h)

    def costs(self) -> dict:
        return {"exp_segments": self.K, "exp_table_bits": self.table_bits,
                "exp_table_bytes": -(-self.table_bits // 8), "exp_intercept_width": self.out_width,
                "exp_slope_width": self.slope_width}

    def derived(self) -> dict:
        return {"H_codes": self.H_codes, "seg_bits": self.seg_bits,
                "index_is_bit_slice": self.index_is_bit_slice, "out_width": self.out_width,
                "slope_width": self.slope_width, "slope_shift": self.slope_shift,
                "table_bits": self.table_bits, "table_bytes": -(-self.table_bits // 8),
                "chord_error_bound": self.chord_error_bound}


@dataclass(frozen=True, eq=False)
class ExpTable:
    """The PWL-Exp table: segment starts ``starts[k] = b_k + Hc``, ``intercepts`` (K+1), ``slopes`` (K).

    ``lookup_*`` are the same with two extra rows for the vectorised model: row ``K`` is the clamp
    (intercept ``c_K``, slope 0) and row ``-1`` (the last) gives 0 below ``-H``.
    """

    starts: np.ndarray
    intercepts: np.ndarray
    slopes: np.ndarray
    lookup_starts: np.ndarray
    lookup_intercepts: np.ndarray
    lookup_slopes: np.ndarray


@functools.lru_cache(maxsize=64)
def exp_table(cfg: ExpConfig) -> ExpTable:
    """Build (once per configuration) the table of ``cfg`` in exact decimal arithmetic."""
    hc, k_count = cfg.H_codes, cfg.K
    starts = [-(-2 * hc * k // k_count) for k in range(k_count + 1)]  # ceil(2*Hc*k/K) = b_k + Hc
    ctx = decimal.Context(prec=60, rounding=decimal.ROUND_HALF_UP)
    scale_in = decimal.Decimal(2) ** -cfg.in_frac
    scale_out = decimal.Decimal(2) ** cfg.out_frac
    intercepts = []
    for st in starts:
        value = ctx.multiply(ctx.exp(ctx.multiply(decimal.Decimal(st - hc), scale_in)), scale_out)
        intercepts.append(int(value.to_integral_value(rounding=decimal.ROUND_HALF_UP, context=ctx)))
    shift = cfg.slope_shift
    slopes = [((intercepts[k + 1] - intercepts[k]) << shift) // (starts[k + 1] - starts[k])
              for k in range(k_count)]
    arrays = [np.array(v, dtype=np.int64) for v in (
        starts, intercepts, slopes, starts + [0], intercepts + [0], slopes + [0, 0])]
    for a in arrays:
        a.setflags(write=False)
    return ExpTable(*arrays)


def pwl_exp(z, cfg: ExpConfig) -> np.ndarray:
    """``e**z`` for argument codes ``z`` (int64 array, format ``cfg.in_format``) as ``out_format`` codes."""
    tab = exp_table(cfg)
    hc = cfg.H_codes
    # u = -1 selects the zero row (-1), u = 2*Hc the clamp row (K); see ExpTable
    u = np.clip(np.asarray(z, dtype=np.int64) + hc, -1, 2 * hc)
    if cfg.index_is_bit_slice:
        p = (2 * hc // cfg.K).bit_length() - 1
        k = u >> p
        t = u & ((1 << p) - 1)
    else:
        k = (u * cfg.K) // (2 * hc)
        t = u - tab.lookup_starts[k]
    return tab.lookup_intercepts[k] + ((tab.lookup_slopes[k] * t) >> cfg.slope_shift)
