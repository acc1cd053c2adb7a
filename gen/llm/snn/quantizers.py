"""Quantisation of the converted network: integer weights, activation scales, integer rescaling.

**Weights** (per output channel ``c``, symmetric, W bits): ``s_w[c] = max_j |w[c, j]| / (2**(W-1) - 1)``
and ``w_int = round(w / s_w[c])`` (half away from zero), so ``|w_int| <= 2**(W-1) - 1``; an all-zero
row gets ``s_w = 1``.  A bias enters the accumulator once, in accumulator units:
``b_int = round(b / (s_in * s_w[c]))``.

**Activation scales** (per tensor, N levels, deterministic, from the calibration sample of
:mod:`.observe`; ``m = max |x|`` over the calibration text):

* ``max``: ``s = m / (N/2 - 1)``; with ``pow2`` the next power of two above it (nothing clips);
* ``mse``: the ``s`` minimising ``sum (x - Q(x))**2`` over the site's sample, where
  ``Q(x) = clamp(floor(x/s + 1/2), -N/2, N/2 - 1) * s``, among the candidates
  ``s = s_max * 2**(-j/8)`` (``j = 0 .. 95``) or, with ``pow2``, the powers of two
  ``2**ceil(log2 s_max) * 2**-j`` (``j = 0 .. 15``); ties go to the larger ``s``.

**Integer rescaling** (:class:`Requant`): a total ``A`` in units ``sigma_c`` (per channel) meets a
destination whose unit is ``u`` (a neuron's threshold ``s``, an operator's input LSB
``2**-in_frac``, the residual grid).  The ratio ``r_c = sigma_c / u`` becomes an integer multiplier
over a power of two, ``r_c ~ M_c / 2**G``: exactly when every ``r_c`` is dyadic with ``P``-bit
multipliers (then ``G`` is the smallest that makes every ``M_c`` an integer), else ``G = P - 1 - floor(log2 max_c |r_c|)`` and
``M_c = round(r_c * 2**G)`` (``P``-bit multipliers).  A neuron integrates ``M_c * A`` against the
threshold ``2**G``; an operator input is ``clamp(floor((M_c * A + 2**(G-1)) / 2**G))`` on its
format (round half up; a pure shift when the ratio is a power of two).

**Integer matrix products** (:func:`int_matmul`): exact.  Integer operands go through float32
when ``max_row sum |a| * max |b| < 2**24`` (every partial sum is then an integer float32 holds,
whatever order the BLAS sums in), else float64 below ``2**53``, else int64.  Torch's int8 x int8
-> int32 product (a weight matrix of at most 8 bits times operands that fit int8, exact while
``k * max|a| * max|w| < 2**31``) is used only where it is faster than float32 on this machine
(:func:`int8_products_pay`, timed once per process): on a CPU with VNNI it can be; on one
without (AVX2 only) it ran 46 times slower.  Every path gives the same integers.
"""

from __future__ import annotations

import functools
import math
import time

import numpy as np
import torch

from .config import ScaleRule

__all__ = ["quantize_weight", "bias_codes", "activation_scale", "Requant", "int_matmul", "round_half_away",
           "MSE_CANDIDATES", "POW2_CANDIDATES"]

#: candidates of the mse rule: s_max * 2**(-j/8), j < 96 (12 octaves); pow2: 16 powers of two
MSE_CANDIDATES = 96
POW2_CANDIDATES = 16
_F32_EXACT = 1 << 24
_F64_EXACT = 1 << 53
_I32_EXACT = 1 << 31


def round_half_away(x: np.ndarray) -> np.ndarray:
    """``sign(x) * floor(|x| + 1/2)`` (float64 in, int64 out)."""
    x = np.asarray(x, dtype=np.float64)
    return (np.sign(x) * np.floor(np.abs(x) + 0.5)).astype(np.int64)


def quantize_weight(w: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(w_int, s_w)``: int64 codes ``(out, in)`` and float64 per-output-channel scales (see the
    module docstring)."""
    w = w.detach().to(torch.float64).cpu()
    top = (1 << (bits - 1)) - 1
    s = w.abs().amax(dim=1) / top
    s = torch.where(s > 0, s, torch.ones_like(s))
    q = torch.from_numpy(round_half_away((w / s[:, None]).numpy())).clamp_(-top, top)
    return q, s


def bias_codes(bias, s_in: float, s_w: torch.Tensor) -> torch.Tensor | None:
    """The bias in accumulator units, ``round(b / (s_in * s_w))`` (int64), or None."""
    if bias is None:
        return None
    b = bias.detach().to(torch.float64).cpu()
    return torch.from_numpy(round_half_away((b / (s_in * s_w)).numpy()))


def _quant_error(x: np.ndarray, s: float, lo: int, hi: int) -> float:
    q = np.clip(np.floor(x / s + 0.5), lo, hi)
    return float(np.sum((x - q * s) ** 2))


def activation_scale(sample: np.ndarray, top: float, levels: int, rule: str = "mse", pow2: bool = True) -> float:
    """The scale of an N-level quantiser (``levels = N``) by ``rule`` (module docstring);
    ``top = max |x|`` over the calibration text, ``sample`` a deterministic sample of it."""
    rule = ScaleRule.parse(rule, "snn", "scale")
    half = levels // 2
    top = float(top)
    if not top > 0 or not math.isfinite(top):
        return 1.0
    s_max = top / (half - 1) if half > 1 else top
    if pow2:
        s_max = 2.0 ** math.ceil(math.log2(s_max))
    if rule == ScaleRule.MAX:
        return s_max
    x = np.asarray(sample, dtype=np.float64).ravel()
    if x.size == 0:
        return s_max
    cands = ([s_max * 2.0 ** -j for j in range(POW2_CANDIDATES)] if pow2
             else [s_max * 2.0 ** (-j / 8) for j in range(MSE_CANDIDATES)])
    errs = [_quant_error(x, s, -half, half - 1) for s in cands]
    return float(cands[int(np.argmin(errs))])  # argmin: the first (largest s) of equal errors


def _dyadic_shift(r: np.ndarray, cap: int) -> int | None:
    """The smallest ``G >= 0`` (at most ``cap``) with every ``r * 2**G`` an integer, or None."""
    r = r[r != 0]
    if r.size == 0:
        return 0
    for g in range(cap + 1):
        v = np.ldexp(r, g)
        if np.all(v == np.floor(v)):
            return g
    return None


class Requant:
    """``r_c ~ M_c / 2**G`` (module docstring), with the overflow guard of its products.

    ``ratio``: float64 array broadcast against the totals (per channel on the last axis, or a
    scalar); ``P``: multiplier bits; ``min_G``: the least shift (1 for a neuron, whose membrane starts
    at half a threshold, ``2**(G-1)``); ``fixed_G``: force the shift (the residual stream's grid).
    """

    def __init__(self, ratio, P: int, *, min_G: int = 0, fixed_G: int | None = None, site: str = ""):
        r = np.asarray(ratio, dtype=np.float64)
        self.site = site
        top = float(np.max(np.abs(r))) if r.size else 0.0
        if fixed_G is not None:
            G, exact = fixed_G, _dyadic_shift(r, fixed_G) is not None
        else:
            g = _dyadic_shift(r, 62)
            # exact when the ratios are dyadic with multipliers of at most P bits
            exact = g is not None and top * 2.0 ** max(g, min_G) < 2.0 ** P
            if exact:
                G = max(g, min_G)
            else:
                G = max(min_G, (P - 1 - math.floor(math.log2(top))) if top > 0 else min_G)
        if not 0 <= G <= 62:
            raise ValueError(f"snn: the rescaling at {site or 'a site'} needs a shift of {G} bits; "
                             "allowed: 0 .. 62 (a scale is degenerate)")
        M = round_half_away(np.ldexp(r, G))
        self.G, self.exact = int(G), bool(exact)
        self.M = torch.from_numpy(np.ascontiguousarray(M))
        self.scalar = self.M.numel() == 1
        self.m_int = int(self.M.reshape(-1)[0]) if self.scalar else None
        self.m_max = int(self.M.abs().max()) if self.M.numel() else 0
        self.is_shift = self.scalar and self.m_int > 0 and (self.m_int & (self.m_int - 1)) == 0
        self.safe = self.m_max <= 1  # set by bound(): no product can overflow, skip the run-time guard

    def bound(self, max_abs_input: int) -> "Requant":
        """Declare that inputs never exceed ``max_abs_input`` in magnitude: when then no product
        ``M * a`` can leave 62 bits, the run-time overflow guard is skipped."""
        self.safe = int(max_abs_input).bit_length() + self.m_max.bit_length() <= 62
        return self

    def __repr__(self):
        return f"Requant(G={self.G}, {'exact' if self.exact else 'rounded'}, max M={self.m_max})"

    def _guard(self, a: torch.Tensor):
        if self.m_max and a.numel() and not self.safe:
            top = int(a.abs().max())
            if top and (top.bit_length() + self.m_max.bit_length() > 62):
                raise OverflowError(f"snn: the integer product at {self.site or 'a site'} needs "
                                    f"{top.bit_length() + self.m_max.bit_length()} bits; allowed: 62 "
                                    "(lower P or check the scales)")

    def current(self, a: torch.Tensor) -> torch.Tensor:
        """``M * a`` (int64): the current in units of ``2**-G`` destination units."""
        self._guard(a)
        if self.scalar:
            if self.is_shift:
                return a << (self.m_int.bit_length() - 1)
            return a * self.m_int
        return a * self.M

    def codes(self, a: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
        """``clamp(floor((M a + 2**(G-1)) / 2**G), lo, hi)`` (int64): the total on the destination
        grid, rounded half up."""
        v = self.current(a)
        if self.G:
            v = (v + (1 << (self.G - 1))) >> self.G
        return v.clamp_(lo, hi)


def _exact_dtype(bound: int):
    if bound < _F32_EXACT:
        return torch.float32
    if bound < _F64_EXACT:
        return torch.float64
    return torch.int64


@functools.lru_cache(maxsize=None)
def int8_products_pay() -> bool:
    """Whether torch's int8 x int8 -> int32 product beats the float32 product on this machine, on
    a linear layer's shape (512 x 576 spikes times 576 x 1536 weights, best of three each); False
    when torch has no CPU kernel for it.  Timed once per process: the answer changes the speed of
    :func:`int_matmul`, never its result."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randint(-16, 17, (512, 576), generator=gen)
    b = torch.randint(-127, 128, (576, 1536), generator=gen)
    a8, b8, af, bf = a.to(torch.int8), b.to(torch.int8), a.to(torch.float32), b.to(torch.float32)

    def best(fn):
        fn()
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times)

    try:
        t8 = best(lambda: torch._int_mm(a8, b8))
    except (RuntimeError, AttributeError):
        return False
    return t8 < 0.8 * best(lambda: af @ bf)


def _int8_matmul(a: torch.Tensor, b8: torch.Tensor, top: int):
    """``a @ b`` by torch's int8 x int8 -> int32 product when ``a`` fits int8 and no sum can leave
    int32 (``k * max|a| * max|b| < 2**31``); None otherwise."""
    lo, hi = (int(v) for v in torch.aminmax(a))
    k = a.shape[-1]
    if lo < -128 or hi > 127 or k * max(-lo, hi) * top >= _I32_EXACT:
        return None
    try:
        out = torch._int_mm(a.reshape(-1, k).to(torch.int8), b8)
    except (RuntimeError, AttributeError):  # a torch without the CPU kernel: the float paths
        return None
    return out.reshape(*a.shape[:-1], b8.shape[-1]).to(torch.int64)


def int_matmul(a: torch.Tensor, b: torch.Tensor, b_float: dict | None = None, a_max: int | None = None) -> torch.Tensor:
    """``a @ b`` exactly for integer tensors (int64 result); see the module docstring.
    ``b_float`` caches ``b`` converted per dtype and its largest magnitude (a weight matrix: int8
    operands then go through torch's int8 product where :func:`int8_products_pay`);
    ``a_max``, a bound on ``|a|`` known beforehand (a step's spikes: ``L``), spares the pass over
    ``a`` that measures its row sums when ``k * a_max * max|b|`` already proves float32 exact."""
    if a.numel() == 0 or b.numel() == 0:
        return torch.matmul(a.to(torch.float64), b.to(torch.float64)).to(torch.int64)
    if b_float is not None:
        top = b_float.get("max")
        if top is None:
            top = b_float["max"] = int(b.abs().max())
            pays = b.dim() == 2 and top <= 127 and int8_products_pay()
            b_float["int8"] = b.to(torch.int8).contiguous() if pays else None
        if b_float["int8"] is not None:
            out = _int8_matmul(a, b_float["int8"], top)
            if out is not None:
                return out
    else:
        top = int(b.abs().max())
    if a_max is not None and a.shape[-1] * a_max * top < _F32_EXACT:
        bound = a.shape[-1] * a_max * top
    else:
        bound = int(a.abs().sum(-1).max()) * top
    dt = _exact_dtype(bound)
    if dt is torch.int64:
        return torch.matmul(a.to(torch.int64), b.to(torch.int64))
    if b_float is not None:
        bf = b_float.get(dt)
        if bf is None:
            bf = b_float[dt] = b.to(dt)
    else:
        bf = b.to(dt)
    return torch.matmul(a.to(dt), bf).to(torch.int64)
