"""PWL-Exp: ``e**z`` on ``[-H, H]`` from a small chord table (twin of ``hdl/exp.py``), by one of two
methods (:class:`spikeops.golden.choices.ExpMethod`): ``uniform``, the paper's ``K`` chords over
``[-H, H]`` (below), or ``range``, range reduction to ``2**r`` on ``[0, 1)`` (further below).

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

**Range reduction** (``method="range"``): ``e**z = 2**(z log2 e) = 2**n * 2**r`` with the integer
``n`` applied as a shift (the paper's bit-shift scaling) and ``2**r``, ``r`` in ``[0, 1)``, by ``K``
chords (``K`` a power of two, at most 64, so the table lives in LUTs):

    L  = round(log2(e) * 2**LOG2E_FRAC)                 (LOG2E_FRAC = 24)
    w  = z * L                       F = in_frac + LOG2E_FRAC fraction bits
    n  = w >> F                      (floor),   r = w & (2**F - 1)
    k  = r >> (F - kb),              t = the next tb = mant_frac - kb bits of r   (kb = log2 K)
    c_k = round(2**(k/K) * 2**mant_frac)    k = 0 .. K   (c_K = 2**(mant_frac+1))
    m  = c_k + (((c_(k+1) - c_k) * t) >> tb)               (the mantissa, in [1, 2))
    e**z = m >> (n_top - n)          mant_frac = out_frac + n_top,  n_top = (Hc * L) >> F

Below ``-Hc`` the result is 0, at or above ``Hc`` it clamps to the value at ``Hc`` (``one_code``).
The chord error is relative and the same on every segment: ``(1/K)**2 / 8 * ln(2)**2`` (1.5e-5 at
K = 64, against 4.9e-4 for the paper's K = 256 on [-8, 8]); ``L``'s rounding adds at most
``H * 2**-25 * ln 2``.  Chords through rounded end points and floors keep the result
non-decreasing in ``z``.  ``slope_frac`` is not used by this method.
"""

from __future__ import annotations

import decimal
import functools
import math
from dataclasses import dataclass

import numpy as np

from .choices import ExpMethod
from .config import Config
from .fixed import FixedFormat

__all__ = ["ExpConfig", "ExpTable", "exp_table", "pwl_exp", "RangeTable", "range_table", "range_mantissa",
           "LOG2E_FRAC", "default_k"]

#: fraction bits of log2(e) in the range-reduced method
LOG2E_FRAC = 24
#: the most chords a range-reduced table may have (it is held in LUTs)
RANGE_K_MAX = 64


def default_k(method) -> int:
    """The operators' default number of chords for an exp ``method``: 256 (uniform), 64 (range).
    An unknown method gets 256 here and its error from the configuration's validation."""
    return 64 if method == ExpMethod.RANGE else 256


@dataclass(frozen=True)
class ExpConfig(Config):
    """PWL-Exp parameters: argument ``s<in_width>.<in_frac>``, ``K`` chords on ``[-H, H]``
    (``uniform``) or on ``2**r``, ``r`` in ``[0, 1)`` (``range``; K a power of two <= 64)."""

    kind = "exp"
    in_width: int = 16
    in_frac: int = 8
    H: int = 8
    K: int = 256
    out_frac: int = 12
    slope_frac: int = 8
    method: str = "uniform"

    def _validate(self):
        method = self._choice("method", ExpMethod)
        self._int("in_frac", 0, 40)
        self._int("H", 1, 24)
        self._int("in_width", 2, 62)
        self._int("K", 1, 1 << 14)
        if method == ExpMethod.RANGE and (self.K > RANGE_K_MAX or self.K & (self.K - 1)):
            self._fail("K", f"is not allowed with {self._label('method')}='range'; allowed: a power of two "
                            f"<= {RANGE_K_MAX} (the table is held in LUTs)")
        self._int("out_frac", 0, 40)
        self._int("slope_frac", 0, 32)
        if self.H_codes >= 1 << (self.in_width - 1):
            self._fail("in_width", f"cannot hold H={self.H} at {self._label('in_frac')}={self.in_frac} "
                       f"({self.H_codes} codes); allowed: {self._label('in_width')} >= "
                       f"{self.H_codes.bit_length() + 1}")
        if method == ExpMethod.UNIFORM and self.K > 2 * self.H_codes:
            self._fail("K", f"gives segments narrower than one argument code; allowed: K <= "
                       f"2*H*2**{self._label('in_frac')} = {2 * self.H_codes}")
        top = math.exp(self.H) * 2.0 ** self.out_frac
        if top >= 2.0 ** 48:
            self._fail("out_frac", f"makes e**H = 2**{math.log2(top):.1f} codes; allowed: "
                       f"H * log2(e) + {self._label('out_frac')} < 48")
        if method == ExpMethod.UNIFORM and self.slope_width + self.seg_bits > 62:
            self._fail("slope_frac", f"gives a {self.slope_width + self.seg_bits}-bit slope product; "
                       "allowed: at most 62 bits")
        if method == ExpMethod.RANGE and (self.in_width + LOG2E_FRAC + 2 > 62 or self.mant_frac > 40):
            self._fail("in_width", f"with {self._label('in_frac')}={self.in_frac} is too wide for range "
                       f"reduction; allowed: {self._label('in_width')} + 26 <= 62 and out_frac + H log2(e) <= 40")

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
        """The value at ``H`` (``c_K`` of the uniform table): the clamp above ``H`` and ``e**H`` in
        output codes."""
        if self.method == ExpMethod.RANGE:
            return int(_range_exp(np.array([self.H_codes]), self)[0])
        return int(exp_table(self).intercepts[-1])

    # -- the range-reduced method ----------------------------------------------------------------
    @functools.cached_property
    def log2e_code(self) -> int:
        """``L = round(log2(e) 2**LOG2E_FRAC)``."""
        return round(math.log2(math.e) * (1 << LOG2E_FRAC))

    @property
    def w_frac(self) -> int:
        """``F``: fraction bits of ``w = z * L``."""
        return self.in_frac + LOG2E_FRAC

    @functools.cached_property
    def n_top(self) -> int:
        """The exponent ``n`` at ``z = Hc``."""
        return (self.H_codes * self.log2e_code) >> self.w_frac

    @functools.cached_property
    def n_bottom(self) -> int:
        """The exponent ``n`` at ``z = -Hc``."""
        return (-self.H_codes * self.log2e_code) >> self.w_frac

    @property
    def mant_frac(self) -> int:
        """Fraction bits of the mantissa ``m`` in ``[1, 2)``: ``out_frac + n_top``."""
        return self.out_frac + self.n_top

    @property
    def index_bits(self) -> int:
        """``kb = log2 K`` (range method)."""
        return max(0, self.K.bit_length() - 1)

    @property
    def offset_bits(self) -> int:
        """``tb = mant_frac - kb``: the bits of ``r`` kept below the segment index (range method)."""
        return max(0, self.mant_frac - self.index_bits)

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
        """ROM size: K intercepts of out_width bits, K slopes of slope_width bits, plus c_K (range
        method: K mantissas of mant_frac + 1 bits and K differences)."""
        if self.method == ExpMethod.RANGE:
            tab = range_table(self)
            return self.K * ((self.mant_frac + 1) + int(tab.diffs.max()).bit_length())
        return self.K * (self.out_width + self.slope_width) + self.out_width

    @functools.cached_property
    def chord_error_bound(self) -> float:
        """Relative chord error: ``h**2/8 * e**h`` for the longest segment ``h`` (uniform; ``2H/K``
        when even), ``(1/K)**2/8 * ln(2)**2`` (range)."""
        if self.method == ExpMethod.RANGE:
            return (1.0 / self.K) ** 2 / 8 * math.log(2) ** 2
        h = -(-2 * self.H_codes // self.K) * 2.0 ** -self.in_frac
        return h * h / 8 * math.exp(h)

    def costs(self) -> dict:
        if self.method == ExpMethod.RANGE:
            return {"exp_method": self.method, "exp_segments": self.K, "exp_table_bits": self.table_bits,
                    "exp_table_bytes": -(-self.table_bits // 8), "exp_intercept_width": self.mant_frac + 1,
                    "exp_slope_width": int(range_table(self).diffs.max()).bit_length()}
        return {"exp_method": self.method, "exp_segments": self.K, "exp_table_bits": self.table_bits,
                "exp_table_bytes": -(-self.table_bits // 8), "exp_intercept_width": self.out_width,
                "exp_slope_width": self.slope_width}

    def derived(self) -> dict:
        if self.method == ExpMethod.RANGE:
            return {"H_codes": self.H_codes, "log2e_code": self.log2e_code, "w_frac": self.w_frac,
                    "n_top": self.n_top, "n_bottom": self.n_bottom, "mant_frac": self.mant_frac,
                    "index_bits": self.index_bits, "offset_bits": self.offset_bits,
                    "out_width": self.out_width, "table_bits": self.table_bits,
                    "table_bytes": -(-self.table_bits // 8), "chord_error_bound": self.chord_error_bound}
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


@dataclass(frozen=True, eq=False)
class RangeTable:
    """The range-reduced method's table: mantissas ``c_k = round(2**(k/K) 2**mant_frac)`` (K+1)
    and their differences ``d_k = c_(k+1) - c_k`` (K)."""

    mantissas: np.ndarray
    diffs: np.ndarray


@functools.lru_cache(maxsize=64)
def range_table(cfg: ExpConfig) -> RangeTable:
    """Build (once per configuration) the range-reduced table in exact decimal arithmetic."""
    ctx = decimal.Context(prec=60, rounding=decimal.ROUND_HALF_UP)
    scale = decimal.Decimal(2) ** cfg.mant_frac
    two = decimal.Decimal(2)
    ln2 = ctx.ln(two)
    c = [int(ctx.multiply(ctx.exp(ctx.multiply(ln2, ctx.divide(decimal.Decimal(k), decimal.Decimal(cfg.K)))),
                          scale).to_integral_value(rounding=decimal.ROUND_HALF_UP, context=ctx))
         for k in range(cfg.K + 1)]
    mant = np.array(c, dtype=np.int64)
    diffs = np.diff(mant)
    for a in (mant, diffs):
        a.setflags(write=False)
    return RangeTable(mant, diffs)


def range_mantissa(z, cfg: ExpConfig) -> tuple[np.ndarray, np.ndarray]:
    """``(n, m)`` with ``e**z ~ m * 2**(n - mant_frac)`` for argument codes ``z`` (any that fit
    ``in_width``): the exponent ``n = floor(z L 2**-F)`` and the mantissa ``m`` in
    ``[2**mant_frac, 2**(mant_frac+1))`` (module docstring, range reduction)."""
    tab = range_table(cfg)
    f, kb, tb = cfg.w_frac, cfg.index_bits, cfg.offset_bits
    w = np.asarray(z, dtype=np.int64) * cfg.log2e_code
    n = w >> f
    r = w & ((1 << f) - 1)
    k = r >> (f - kb)
    low = f - kb
    t = (r & ((1 << low) - 1)) >> (low - tb) if low >= tb else (r & ((1 << low) - 1)) << (tb - low)
    m = tab.mantissas[k] + ((tab.diffs[np.minimum(k, cfg.K - 1)] * t) >> tb)
    return n, m


def _range_exp(z, cfg: ExpConfig) -> np.ndarray:
    """The range-reduced method on argument codes already in ``[-Hc, Hc]`` (module docstring)."""
    n, m = range_mantissa(z, cfg)
    return m >> (cfg.n_top - n)


def pwl_exp(z, cfg: ExpConfig) -> np.ndarray:
    """``e**z`` for argument codes ``z`` (int64 array, format ``cfg.in_format``) as ``out_format`` codes."""
    if cfg.method == ExpMethod.RANGE:
        z = np.asarray(z, dtype=np.int64)
        hc = cfg.H_codes
        inside = _range_exp(np.clip(z, -hc, hc), cfg)
        return np.where(z < -hc, 0, np.where(z >= hc, cfg.one_code, inside))
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
