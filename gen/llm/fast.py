"""The golden operators on torch tensors, bit-identical to the numpy golden model and much faster.

``fast_golden(op, cfg, x, *args, mask=None)`` returns exactly ``numpy_golden(...)``, the definition
``dequantize(golden(quantize(x, cfg.in_format)), cfg.out_format)`` in ``x``'s dtype and device that
``run_golden`` (``operators.py``) computes with its numpy back end.  The golden model stays the
specification: every table below is *computed by* golden (``registry.get(op).golden``,
``exp.pwl_exp``), the per-row decisions (division branch, theta, shifts, read-out) call golden's
``shift``/``norm``/``division`` helpers on per-row numpy values, and only per-element arithmetic is
ported:

* quantize: ``round(x * 2**frac)`` half away from zero, saturated.  For float32/16/bf16 inputs it is
  ``code(n) = (n + [n > 0]) >> 1`` of ``n = trunc(clamp(x * 2**(frac+1), +-(2**w - 2)))``, which is
  exact (golden's float64 ``floor(|v| + 0.5)`` never rounds for a float32 ``v``); float64 inputs
  take golden's own formula in torch float64.
* sigmoid, SiLU, GELU (``in_width <= 22``): a pure function of the code, so golden runs once on every
  code and the fast path is quantize + one gather from a table indexed by ``n``.
* Softmax: ``e = PWL-Exp(x - m + H)`` is a table over ``x - m`` (filled by ``pwl_exp``), the row sum
  ``S`` is exact in int64 (or float64 below ``2**53``), and the Division Neuron Group is
  ``q = min(floor((floor(A * 2**k) + beta) / T), q_max)`` with per-row ``k, beta, T`` from golden's
  stage 1 (or its exact path).  That float64 quotient is exact when ``A <= 2**53`` and
  ``N + T <= 2**53`` (``N`` the unsaturated current): then ``N/T`` lies ``>= 1/T`` below the next
  integer, more than half an ulp, so ``floor(fl(N/T)) = floor(N/T)``.  Saturated currents exceed
  ``2**q_width * T`` and reach ``q_max`` through the ``min``.
* RMSNorm, LayerNorm: block shift, PolarNorm (the CORDIC tree in the fixed merge order, or the exact
  ``isqrt``), read-out and the division as for Softmax; ``sign(v gamma)`` is the sign of the float64
  product, whose signed zeros give golden's rule ``(v < 0) != (gamma < 0)``.

Two realisations of that arithmetic, both tested bit for bit: small C kernels (one pass per step,
built once per process with the system C compiler, IEEE float arithmetic, rows split over torch's
thread count) for float32 inputs, and torch code (with golden's ``polar_norm``) for everything else
and for machines without a compiler (``SPIKEOPS_FAST_NO_KERNEL=1`` forces it).  Configurations
outside the proven-exact ranges (wider codes, quotients beyond 53 bits, non-float tensors) and every
invalid input (NaN, -inf where no mask code is allowed, wrong shapes) go to ``numpy_golden``, so
errors are golden's.  ``python -m spikeops.gen.llm.fast`` prints the benchmark on SmolLM2-135M shapes.
"""

from __future__ import annotations

import ctypes
import functools
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from spikeops.golden import registry
from spikeops.golden.exp import pwl_exp
from spikeops.golden.fixed import dequantize, quantize
from spikeops.golden.norm import isqrt, polar_norm
from spikeops.golden.ops.norms import _READOUT_BITS, _check_row
from spikeops.golden.shift import barrel_shift, bit_length, normalise

__all__ = ["benchmark", "fast_golden", "kernel_available", "main", "numpy_golden", "quantize_codes"]

#: widest input code the sigmoid family tabulates (2**(in_width+1) table entries)
TABLE_MAX_WIDTH = 22
#: widest input code quantised in float32 (the clamp bound 2**w - 2 and codes exact in float32)
_F32_MAX_WIDTH = 24
_ELEMENTWISE = ("sigmoid", "silu", "gelu")
_FLOAT_TYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


class _Fallback(Exception):
    """Raised inside the fast path: hand the call to ``numpy_golden`` (which raises golden's errors)."""


def numpy_golden(op: str, cfg, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    """The definition: ``dequantize(golden(quantize(x)))`` in numpy, as ``x``'s dtype and device
    (``run_golden``'s numpy back end; ``mask`` may be a torch tensor)."""
    if isinstance(kwargs.get("mask"), torch.Tensor):
        kwargs = dict(kwargs, mask=kwargs["mask"].cpu().numpy())
    codes = quantize(x.detach().to(torch.float64).cpu().numpy(), cfg.in_format)
    y = registry.get(op).golden(codes, cfg, *args, **kwargs)
    return torch.from_numpy(dequantize(y, cfg.out_format)).to(dtype=x.dtype, device=x.device)


# -- quantize / dequantize ----------------------------------------------------------------------
def _scaled(x: torch.Tensor, fmt, *, allow_mask: bool):
    """``(kind, t, neg_inf)``: ``kind == "half"``: ``t = n`` (int32, see ``_codes_of_half``);
    ``kind == "code"``: ``t`` the int64 codes.  ``neg_inf``: bool tensor of the -inf positions
    (only when ``allow_mask`` and any), else None."""
    if x.dtype != torch.float64 and fmt.width <= _F32_MAX_WIDTH and fmt.frac >= 0:
        u = torch.mul(x.to(torch.float32), 2.0 ** (fmt.frac + 1))  # exact: a power-of-two scale
        lo, hi = (float(v) for v in torch.aminmax(u))
        if math.isnan(lo) or math.isnan(hi):
            raise _Fallback
        neg_inf = None
        if lo == -np.inf:  # -inf in x, or a finite x beyond float32 once scaled
            neg_inf = torch.isneginf(x)
            if not bool(neg_inf.any()):
                neg_inf = None
            elif not allow_mask:
                raise _Fallback
        lim = float((1 << fmt.width) - 2)  # n = +-(2**w - 2) is code +-max_code
        if lo < -lim or hi > lim:
            u.clamp_(-lim, lim)
        return "half", u.to(torch.int32), neg_inf
    a = x.to(torch.float64)
    if torch.isnan(a).any():
        raise _Fallback
    # spikeops.golden.fixed.quantize, literally (same IEEE float64 operations)
    r = torch.sign(a) * torch.floor(a.abs() * 2.0 ** fmt.frac + 0.5)
    q = r.clamp_(fmt.min_code, fmt.max_code).to(torch.int64)
    neg_inf = None
    if torch.isneginf(a).any():
        if not (allow_mask and fmt.signed):
            raise _Fallback
        neg_inf = torch.isneginf(a)
        q.masked_fill_(neg_inf, fmt.mask_code)
    return "code", q, neg_inf


def _codes_of_half(n: torch.Tensor) -> torch.Tensor:
    """``code = round_half_away(n / 2) = (n + [n > 0]) >> 1`` for ``n = trunc(2 v)`` (in place).

    ``v >= 0``: ``floor(v + 1/2) = floor((floor(2v) + 1) / 2)``; ``v < 0`` mirrors it."""
    return n.add_(n > 0).bitwise_right_shift_(1)


def quantize_codes(x: torch.Tensor, fmt, *, allow_mask: bool = True) -> torch.Tensor:
    """``spikeops.golden.fixed.quantize(x, fmt)`` (nearest, saturating; -inf -> mask code) as int64 codes.

    Raises ValueError (golden's message) for NaN, and for -inf when ``allow_mask`` is False or the
    format is unsigned."""
    try:
        kind, t, neg_inf = _scaled(x.detach(), fmt, allow_mask=allow_mask and fmt.signed)
    except _Fallback:
        q = quantize(x.detach().to(torch.float64).cpu().numpy(), fmt)  # raises golden's error
        if not allow_mask and (q == fmt.mask_code).any():
            raise ValueError(f"quantize_codes: -inf has no code in {fmt.describe()} here") from None
        return torch.from_numpy(q)
    if kind == "half":
        t = _codes_of_half(t).to(torch.int64)
        if neg_inf is not None:
            t.masked_fill_(neg_inf, fmt.mask_code)
    return t


def _dequantize(q: torch.Tensor, fmt, dtype: torch.dtype) -> torch.Tensor:
    """``spikeops.golden.fixed.dequantize(q, fmt).astype(dtype)`` for integer-valued ``q`` (int or float64).

    The ops' outputs never reach a signed format's mask code (sigmoid and Softmax are unsigned,
    SiLU/GELU stay within +-q_max, the norms clip to the finite range), so no -inf appears.
    ``q * 2**-frac`` is exact in float64 and one rounding to float32 equals rounding ``q`` first."""
    if dtype in (torch.float32, torch.float64):
        return q.to(dtype).mul_(fmt.lsb)
    return q.to(torch.float64).mul_(fmt.lsb).to(dtype)


# -- compiled kernels (optional) ------------------------------------------------------------------------
_C_SOURCE = r"""
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Every function works on the rows [lo, hi) and returns nonzero when it met an input that golden
   rejects (NaN; -inf where no mask code is allowed): the caller then runs golden itself.
   Quantisation (gen/llm/fast.py, _scaled): n = trunc(clamp(x * 2**(frac+1), -lim, lim)) and
   code = (n + (n > 0)) >> 1, exactly spikeops.golden.fixed.quantize's round-half-away for float32 x.
   NaN and -inf are recognised by their bits (integer tests keep the loops vectorisable). */
static inline uint32_t bits(float v) { uint32_t b; memcpy(&b, &v, sizeof b); return b; }
static inline int is_nan(uint32_t b) { return (b & 0x7fffffffu) > 0x7f800000u; }
static inline int is_neg_inf(uint32_t b) { return b == 0xff800000u; }
static inline int32_t half_index(float x, float scale2, float lim) {
    float u = x * scale2;
    u = u >= -lim ? u : -lim;  /* NaN fails the test: any index, the call is rejected */
    u = u > lim ? lim : u;
    return (int32_t)u;
}
static inline int32_t half_code(int32_t n) { return (n + (n > 0)) >> 1; }

/* sigmoid / SiLU / GELU: out = table[n + lim] (the table holds golden's output for code(n)). */
int64_t spikeops_lookup_f32(int64_t lo, int64_t hi, const float *restrict x, float scale2, float lim,
                            const float *restrict table, float *restrict out) {
    int bad = 0;
    const int32_t off = (int32_t)lim;
    for (int64_t i = lo; i < hi; ++i) {
        const uint32_t b = bits(x[i]);
        bad |= is_nan(b) | is_neg_inf(b);
        out[i] = table[half_index(x[i], scale2, lim) + off];
    }
    return bad;
}

/* Softmax, pass 1: m[r] = the largest valid code (min_code when none), s[r] = sum of the valid
   e_j = tab[max(c_j - m + off, 0)] (int64, exact).  Valid: not -inf and (without a mask) or
   valid[vrow[r] + j] != 0 (a broadcast mask is not copied: rows share their mask row). */
int64_t spikeops_softmax_sum_f32(int64_t lo, int64_t hi, const float *restrict x, const uint8_t *restrict valid,
                                 const int64_t *restrict vrow, int64_t L, float scale2, float lim, int64_t min_code,
                                 int64_t off,
                                 const int64_t *restrict tab, int64_t *restrict m_out, int64_t *restrict s_out) {
    int bad = 0;
    for (int64_t r = lo; r < hi; ++r) {
        const float *xr = x + r * L;
        const uint8_t *vr = valid ? valid + vrow[r] : 0;
        int32_t m = (int32_t)min_code;
        for (int64_t j = 0; j < L; ++j) {  /* masked: pushed 2**30 below every code */
            const int32_t masked = is_neg_inf(bits(xr[j])) | (vr ? vr[j] == 0 : 0);
            const int32_t c = half_code(half_index(xr[j], scale2, lim)) - (masked << 30);
            m = c > m ? c : m;
        }
        const int32_t base = m - (int32_t)off;
        int64_t s = 0;
        for (int64_t j = 0; j < L; ++j) {
            const uint32_t b = bits(xr[j]);
            bad |= is_nan(b);
            const int ok = !is_neg_inf(b) & (vr ? vr[j] != 0 : 1);
            const int32_t k = half_code(half_index(xr[j], scale2, lim)) - base;
            s += tab[ok & (k > 0) ? k : 0];
        }
        m_out[r] = m;
        s_out[r] = s;
    }
    return bad;
}

/* Softmax, pass 2: e_j as in pass 1 (tab[0] = 0 for masked positions) and the Division Neuron
   Group with the row's constants (fast.py, _row_division):
   out = float(min(floor((floor(e * scale) + beta) / t), qmax) * lsb). */
int64_t spikeops_softmax_out_f32(int64_t lo, int64_t hi, const float *restrict x, const uint8_t *restrict valid,
                                 const int64_t *restrict vrow, int64_t L, float scale2, float lim, int64_t off,
                                 const int64_t *restrict m_in,
                                 const double *restrict tab, const double *restrict scale,
                                 const double *restrict beta, const double *restrict t, double qmax, double lsb,
                                 float *restrict out) {
    for (int64_t r = lo; r < hi; ++r) {
        const float *xr = x + r * L;
        const uint8_t *vr = valid ? valid + vrow[r] : 0;
        float *orow = out + r * L;
        const int32_t base = (int32_t)m_in[r] - (int32_t)off;
        const double sc = scale[r], be = beta[r], tt = t[r];
        for (int64_t j = 0; j < L; ++j) {
            const uint32_t b = bits(xr[j]);
            const int ok = !is_neg_inf(b) & (vr ? vr[j] != 0 : 1);
            const int32_t k = half_code(half_index(xr[j], scale2, lim)) - base;
            const double e = tab[ok & (k > 0) ? k : 0];
            double q = floor((floor(e * sc) + be) / tt);
            q = q < qmax ? q : qmax;
            orow[j] = (float)(q * lsb);
        }
    }
    return 0;
}

/* RMSNorm / LayerNorm, step 0: v = code (centred: d * code - sum(code)), top[r] = max |v|. */
int64_t spikeops_norm_codes_f32(int64_t lo, int64_t hi, const float *restrict x, int64_t d, float scale2,
                                float lim, int64_t centred, int64_t *restrict v, int64_t *restrict top) {
    int bad = 0;
    for (int64_t r = lo; r < hi; ++r) {
        const float *xr = x + r * d;
        int64_t *vr = v + r * d, sum = 0, t = 0;
        for (int64_t j = 0; j < d; ++j) {
            const uint32_t b = bits(xr[j]);
            bad |= is_nan(b) | is_neg_inf(b);
            vr[j] = half_code(half_index(xr[j], scale2, lim));
            sum += vr[j];
        }
        for (int64_t j = 0; j < d; ++j) {
            const int64_t vv = centred ? d * vr[j] - sum : vr[j];
            const int64_t a = vv < 0 ? -vv : vv;
            vr[j] = vv;
            t = a > t ? a : t;
        }
        top[r] = t;
    }
    return bad;
}

/* golden/norm.py PolarNorm, method "cordic": leaves barrel_shift(|v_j|, shift[r]) << guard and
   barrel_shift(eps, shift[r]) << guard; zero padding per level, pairs (x[2i], x[2i+1]) in index
   order, `iterations` vectoring steps a += s (b >> k), b -= s (a >> k) with s = sign(b) (+1 for
   b >= 0), written s*y = (y ^ m) - m with m = b >> 63. */
int64_t spikeops_cordic_rows(int64_t lo, int64_t hi, const int64_t *restrict v, int64_t d,
                             const int64_t *restrict shift, int64_t eps, int64_t guard, int64_t iterations,
                             int64_t *restrict out) {
    const int64_t n = d + 1, half = (d + 2) / 2;
    int64_t *work = malloc(sizeof(int64_t) * (size_t)(n + 2 * half));
    if (!work) return 1;
    int64_t *restrict x = work, *restrict a = work + n, *restrict b = a + half;
    for (int64_t r = lo; r < hi; ++r) {
        const int64_t *row = v + r * d;
        const int64_t s = shift[r];
        const int64_t t = -s > 63 ? 63 : -s;
        for (int64_t j = 0; j < n; ++j) {
            const int64_t m = j < d ? (row[j] < 0 ? -row[j] : row[j]) : eps;
            x[j] = (s >= 0 ? m << s : m >> t) << guard;
        }
        int64_t len = n;
        while (len > 1) {
            const int64_t p = (len + 1) / 2;
            for (int64_t i = 0; i < len / 2; ++i) { a[i] = x[2 * i]; b[i] = x[2 * i + 1]; }
            if (len & 1) { a[p - 1] = x[len - 1]; b[p - 1] = 0; }
            for (int64_t k = 0; k < iterations; ++k) {
                for (int64_t i = 0; i < p; ++i) {
                    const int64_t ai = a[i], bi = b[i], m = bi >> 63;
                    a[i] = ai + (((bi >> k) ^ m) - m);
                    b[i] = bi - (((ai >> k) ^ m) - m);
                }
            }
            memcpy(x, a, (size_t)p * sizeof(int64_t));
            len = p;
        }
        out[r] = x[0];
    }
    free(work);
    return 0;
}

/* RMSNorm / LayerNorm, step 4: p = v_j * g_j (exact), q = min(floor((floor(|p| * scale) + beta) / t),
   qmax), y = sign(p) q (+0.0: golden's integer -0 is 0), y = clip(y + bo_j) when bo, out = y * lsb. */
int64_t spikeops_norm_out_f32(int64_t lo, int64_t hi, const int64_t *restrict v, int64_t d,
                              const double *restrict g, const double *restrict bo, const double *restrict scale,
                              const double *restrict beta, const double *restrict t, double qmax, double ymin,
                              double ymax, double lsb, float *restrict out) {
    for (int64_t r = lo; r < hi; ++r) {
        const double sc = scale[r], b = beta[r], tt = t[r];
        const int64_t *vr = v + r * d;
        float *orow = out + r * d;
        for (int64_t j = 0; j < d; ++j) {
            const double p = (double)vr[j] * g[j];
            double q = floor((floor(fabs(p) * sc) + b) / tt);
            q = q < qmax ? q : qmax;
            double y = copysign(q, p) + 0.0;
            if (bo) {
                y += bo[j];
                y = y < ymin ? ymin : (y > ymax ? ymax : y);
            }
            orow[j] = (float)(y * lsb);
        }
    }
    return 0;
}
"""

_P, _I, _F, _D = ctypes.c_void_p, ctypes.c_int64, ctypes.c_float, ctypes.c_double
_SIGNATURES = {
    "spikeops_lookup_f32": [_P, _F, _F, _P, _P],
    "spikeops_softmax_sum_f32": [_P, _P, _P, _I, _F, _F, _I, _I, _P, _P, _P],
    "spikeops_softmax_out_f32": [_P, _P, _P, _I, _F, _F, _I, _P, _P, _P, _P, _P, _D, _D, _P],
    "spikeops_norm_codes_f32": [_P, _I, _F, _F, _I, _P, _P],
    "spikeops_cordic_rows": [_P, _I, _P, _I, _I, _I, _P],
    "spikeops_norm_out_f32": [_P, _I, _P, _P, _P, _P, _P, _D, _D, _D, _D, _P],
}
_kernel_lock = threading.Lock()
_kernel_state: dict = {}


def _compile_kernel():
    """Build ``_C_SOURCE`` with the system C compiler (``$CC``, ``cc`` or ``gcc``) into a private
    temporary directory, once per process.  The float arithmetic stays IEEE: no fast-math, no FMA
    contraction; ``-fno-trapping-math`` only lets the loops vectorise (no trap is ever enabled).
    None when there is no compiler or ``SPIKEOPS_FAST_NO_KERNEL`` is set: then everything runs in
    torch (and golden's ``polar_norm``)."""
    if os.environ.get("SPIKEOPS_FAST_NO_KERNEL"):
        return None
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        return None
    tmp = tempfile.mkdtemp(prefix="spikeops-fast-")
    src, lib = os.path.join(tmp, "kernels.c"), os.path.join(tmp, "kernels.so")
    with open(src, "w") as f:
        f.write(_C_SOURCE)
    common = ["-O3", "-std=c99", "-ffp-contract=off", "-fno-trapping-math", "-shared", "-fPIC"]
    dll = None
    for flags in (["-march=native"], []):
        try:
            subprocess.run([cc, *common, *flags, "-o", lib, src, "-lm"],
                           check=True, capture_output=True, timeout=120)
            dll = ctypes.CDLL(lib)
            break
        except (OSError, subprocess.SubprocessError):
            continue
    shutil.rmtree(tmp, ignore_errors=True)  # a loaded library stays mapped
    if dll is None:
        return None
    for name, args in _SIGNATURES.items():
        fn = getattr(dll, name)
        fn.restype, fn.argtypes = ctypes.c_int64, [_I, _I, *args]
    return dll


def _kernel():
    try:
        return _kernel_state["dll"]
    except KeyError:
        with _kernel_lock:
            if "dll" not in _kernel_state:
                _kernel_state["dll"] = _compile_kernel()
            return _kernel_state["dll"]


def kernel_available() -> bool:
    """True when the compiled kernels are in use (else the torch code, and golden's ``polar_norm``)."""
    return _kernel() is not None


@functools.lru_cache(maxsize=1)
def _pool(workers: int, pid: int) -> ThreadPoolExecutor:
    """One pool per process (a forked child must not wait on its parent's threads)."""
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="spikeops-fast")


def _run(name: str, rows: int, *args, grain: int = 64) -> None:
    """Kernel ``name`` on rows ``[0, rows)``, split over torch's thread count (ctypes drops the GIL);
    raises ``_Fallback`` when the kernel met an input golden rejects."""
    fn = getattr(_kernel(), name)
    workers = max(1, min(torch.get_num_threads(), rows // grain))
    if workers == 1:
        bad = fn(0, rows, *args)
    else:
        cuts = np.linspace(0, rows, workers + 1).astype(np.int64).tolist()
        bad = max(_pool(workers, os.getpid()).map(lambda lo, hi: fn(lo, hi, *args), cuts[:-1], cuts[1:]))
    if bad:
        raise _Fallback


def _ptr(a) -> int | None:
    if a is None:
        return None
    return a.data_ptr() if isinstance(a, torch.Tensor) else a.ctypes.data


def _kernel_quantizes(x: torch.Tensor, fmt) -> bool:
    """The kernels quantise float32 inputs of formats up to 24 bits (as ``_scaled``'s float32 path)."""
    return x.dtype == torch.float32 and fmt.width <= _F32_MAX_WIDTH and fmt.frac >= 0 and _kernel() is not None


def _cordic_rows(v: torch.Tensor, shift: np.ndarray, ncfg, eps: int) -> np.ndarray:
    """Root of the CORDIC tree of every row: ``polar_norm(barrel_shift([|v|, eps], shift), ncfg)``."""
    rows, d = v.shape
    if _kernel() is None:
        leaves = np.concatenate([v.abs().numpy().astype(np.int64), np.full((rows, 1), eps, dtype=np.int64)], axis=-1)
        return polar_norm(barrel_shift(leaves, shift[:, None]), ncfg)
    v = v.to(torch.int64).contiguous()
    shift = np.ascontiguousarray(shift, dtype=np.int64)
    out = np.empty(rows, dtype=np.int64)
    _run("spikeops_cordic_rows", rows, _ptr(v), d, _ptr(shift), eps, ncfg.guard_bits, ncfg.iterations,
         _ptr(out), grain=16)
    return out


# -- the Division Neuron Group, row-wise ----------------------------------------------------------
def _row_division(b, dcfg, b_exp=None):
    """Per-row constants of ``spikeops.golden.division.divide(A, b, dcfg, b_exp=...)`` (fast realisation).

    Every quotient of a row is ``q = min(floor((floor(A * scale) + beta) / T), q_max)``:

    * golden's exact path (``b_exp`` scalar 0, ``den_width <= theta_bits``, ...):
      nearest ``scale = 2**(shift+1), beta = b, T = 2b``; floor ``scale = 2**shift, beta = 0, T = b``;
    * stage 1: ``e = theta_bits - bit_length(b)``, ``T = theta = barrel_shift(b, e)``,
      ``scale = 2**k`` with ``k = e + shift - b_exp``, ``beta = theta >> 1`` (nearest) or 0.

    ``b == 0`` (``theta == 0``) gives ``q_max`` for the whole row: ``scale = 0, beta = q_max, T = 1``;
    with ``k > current_width`` every non-zero numerator saturates and a zero one gives 0:
    ``scale = 2**60, beta = 0, T = 1``.  Elements that saturate
    (``bit_length(A) + k > current_width``) have ``A * 2**k / T > 2**q_width`` and so give
    ``q_max`` through the ``min``.  Returns ``((scale, beta, T), floor_needed, exact)``: float64
    numpy rows, whether any ``k < 0`` (the inner floor matters), and whether float64 evaluates it
    without error (``A <= 2**53`` and ``N + T <= 2**53`` for every unsaturated ``N``).
    """
    b = np.asarray(b, dtype=np.int64)
    nearest = dcfg.rounding == "nearest"
    if b_exp is None:
        k = dcfg.shift
        if dcfg.den_width <= dcfg.theta_bits and k >= 0 and dcfg.num_width + k + 2 <= 62:
            scale = np.full(b.shape, 2.0 ** (k + 1 if nearest else k))
            beta = b.astype(np.float64) if nearest else np.zeros(b.shape)
            t = (2 * b if nearest else b).astype(np.float64)
            full = b == 0
            exact = dcfg.num_width + k + 2 <= 52 and dcfg.den_width + 2 <= 52
            return _saturate_rows(scale, beta, t, full, dcfg), False, exact
        b_exp = 0
    e = dcfg.theta_bits - bit_length(b)
    theta = barrel_shift(b, e)
    k = e + (dcfg.shift - np.asarray(b_exp, dtype=np.int64))
    full = theta == 0
    over = ~full & (k > dcfg.current_width)
    kk = np.where(full | over, 0, k)
    scale = np.ldexp(1.0, kk)
    beta = (theta >> 1).astype(np.float64) if nearest else np.zeros(b.shape)
    exact = dcfg.num_width <= 53 and dcfg.current_width <= 52
    scale, beta, t = _saturate_rows(scale, beta, theta.astype(np.float64), full, dcfg)
    # every non-zero numerator of such a row saturates, a zero one gives 0: A * 2**60 / 1 does that
    scale[over], beta[over], t[over] = 2.0 ** 60, 0.0, 1.0
    return (scale, beta, t), bool((kk < 0).any()), exact


def _saturate_rows(scale, beta, t, full, dcfg):
    scale, beta, t = np.broadcast_arrays(scale, beta, t)
    scale, beta, t = scale.copy(), beta.copy(), t.copy()
    scale[full], beta[full], t[full] = 0.0, float(dcfg.q_max), 1.0
    return scale, beta, t


def _apply_division(a: torch.Tensor, params, q_max: int) -> torch.Tensor:
    """``min(floor((floor(a * scale) + beta) / T), q_max)`` on float64 ``a`` (rows on the last axis)."""
    (scale, beta, t), floor_needed = params
    col = a.shape[:-1] + (1,)

    def rows(v):
        return torch.from_numpy(np.ascontiguousarray(v, dtype=np.float64)).reshape(col)

    if floor_needed:
        n = torch.mul(a, rows(scale)).floor_().add_(rows(beta))
    else:
        n = torch.addcmul(rows(beta), a, rows(scale))
    return n.div_(rows(t)).floor_().clamp_max_(float(q_max))


# -- sigmoid, SiLU, GELU: one table over every input code ----------------------------------------
_TABLES: dict = {}


@functools.lru_cache(maxsize=256)
def _stable_hash(cfg) -> str:
    return cfg.stable_hash()


def _cached(key, build):
    """Tables per ``(what, cfg.stable_hash(), dtype)``, built once (at most 32 kept)."""
    table = _TABLES.get(key)
    if table is None:
        if len(_TABLES) >= 32:
            _TABLES.pop(next(iter(_TABLES)))
        table = _TABLES[key] = build()
    return table


def _half_table(op: str, cfg, dtype: torch.dtype) -> torch.Tensor:
    """``dequantize(golden(code(n)))`` for ``n = -(2**w - 2) .. 2**w - 2`` (see ``_scaled``), at
    index ``n + 2**w - 2``; golden runs once on every code ``min_code .. max_code``."""
    def build():
        fmt = cfg.in_format
        codes = np.arange(fmt.min_code, fmt.max_code + 1, dtype=np.int64)
        values = torch.from_numpy(dequantize(registry.get(op).golden(codes, cfg), cfg.out_format))
        lim = (1 << cfg.in_width) - 2
        n = _codes_of_half(torch.arange(-lim, lim + 1, dtype=torch.int64))
        return values[n - fmt.min_code].to(dtype).contiguous()
    return _cached((op, _stable_hash(cfg), dtype), build)


def _elementwise(op: str, cfg, x: torch.Tensor) -> torch.Tensor:
    """``table[n + lim]``: quantize and one gather (kernel: one pass)."""
    if cfg.in_width > TABLE_MAX_WIDTH:
        raise _Fallback
    fmt, lim = cfg.in_format, (1 << cfg.in_width) - 2
    table = _half_table(op, cfg, x.dtype)
    if _kernel_quantizes(x, fmt):
        x = x.contiguous()
        out = torch.empty_like(x)
        _run("spikeops_lookup_f32", x.numel(), _ptr(x), 2.0 ** (fmt.frac + 1), float(lim), _ptr(table),
             _ptr(out), grain=1 << 16)
        return out
    kind, t, _ = _scaled(x, fmt, allow_mask=False)
    idx = t.add_(lim) if kind == "half" else (t * 2).add_(lim)
    return table.index_select(0, idx.reshape(-1)).view(x.shape)


# -- Softmax ----------------------------------------------------------------------------------------
def _exp_by_difference(cfg, dtype: torch.dtype) -> torch.Tensor:
    """``pwl_exp(d + Hc)`` at index ``j = d + 2Hc + 1`` for ``d = x - m = -(2Hc + 1) .. 0`` (j = 0: 0)."""
    def build():
        hc = cfg.exp.H_codes
        z = np.arange(2 * hc + 2, dtype=np.int64) - (hc + 1)
        return torch.from_numpy(pwl_exp(z, cfg.exp)).to(dtype)
    return _cached(("softmax-exp", _stable_hash(cfg), dtype), build)


def _mask_rows(valid, shape):
    """``(mask, row_offsets)`` for the kernels: row ``r`` of ``valid`` broadcast to ``shape`` starts at
    element ``row_offsets[r]`` of the contiguous ``mask`` (no copy of a broadcast mask)."""
    if valid is None:
        return None, None
    vm = valid.contiguous()
    ve = vm.expand(shape)
    rows = int(np.prod(shape[:-1], dtype=np.int64))
    if ve.stride(-1) != 1:  # the mask itself broadcasts along the rows: materialise it
        vm = ve.contiguous()
        return vm, torch.arange(rows, dtype=torch.int64) * shape[-1]
    offsets = torch.as_strided(torch.arange(max(vm.numel(), 1), dtype=torch.int64), shape[:-1], ve.stride()[:-1])
    return vm, offsets.reshape(rows).contiguous()


def _softmax(cfg, x: torch.Tensor, mask) -> torch.Tensor:
    """``q_i = Division(e_i, S)`` with ``e_i = PWL-Exp(x_i - m + H)`` over the valid positions."""
    if x.ndim == 0 or x.shape[-1] == 0 or x.shape[-1] > cfg.d_max:
        raise _Fallback
    fmt, dcfg, hc = cfg.in_format, cfg.division, cfg.exp.H_codes
    valid = None
    if mask is not None:
        valid = torch.as_tensor(mask, dtype=torch.bool).cpu()
        try:
            if np.broadcast_shapes(tuple(valid.shape), tuple(x.shape)) != tuple(x.shape):
                raise _Fallback
        except ValueError:
            raise _Fallback from None
    if _kernel_quantizes(x, fmt) and cfg.sum_width <= 62:
        length, rows = x.shape[-1], x.numel() // x.shape[-1]
        xr = x.contiguous()
        vm, vrow = _mask_rows(valid, x.shape)
        m = np.empty(rows, dtype=np.int64)
        s = np.empty(rows, dtype=np.int64)
        quant = (2.0 ** (fmt.frac + 1), float((1 << fmt.width) - 2))
        _run("spikeops_softmax_sum_f32", rows, _ptr(xr), _ptr(vm), _ptr(vrow), length, *quant, fmt.min_code, 2 * hc + 1,
             _ptr(_exp_by_difference(cfg, torch.int64)), _ptr(m), _ptr(s), grain=256)
        (scale, beta, t), _, exact = _row_division(s, dcfg)
        if exact:
            empty = s == 0  # fully masked (S >= c_K > 0 otherwise): golden's where(valid, q, 0) gives 0
            scale[empty], beta[empty], t[empty] = 0.0, 0.0, 1.0
            out = torch.empty(x.shape, dtype=torch.float32)
            _run("spikeops_softmax_out_f32", rows, _ptr(xr), _ptr(vm), _ptr(vrow), length, *quant, 2 * hc + 1, _ptr(m),
                 _ptr(_exp_by_difference(cfg, torch.float64)), _ptr(scale), _ptr(beta), _ptr(t),
                 float(dcfg.q_max), cfg.out_format.lsb, _ptr(out), grain=256)
            return out
    fast_sum = cfg.sum_width <= 53  # the float64 row sum is exact
    table = _exp_by_difference(cfg, torch.float64 if fast_sum else torch.int64)
    kind, c, neg_inf = _scaled(x, fmt, allow_mask=True)
    if kind == "half":
        c = _codes_of_half(c)
    invalid = None if valid is None else ~valid
    if neg_inf is not None:
        invalid = neg_inf if invalid is None else invalid | neg_inf
    if invalid is not None:
        # far below min_code - (2Hc + 1): masked positions take no part in the max and get e = 0
        c.masked_fill_(invalid, -(1 << (fmt.width + 3)))
    m = c.amax(-1, keepdim=True).clamp_min_(fmt.min_code)  # a fully masked row: all e = 0
    j = (c - (m - (2 * hc + 1))).clamp_min_(0)
    e = table.index_select(0, j.reshape(-1)).view(x.shape)
    s = e.sum(-1).reshape(-1).numpy().astype(np.int64)  # float64: exact integers below 2**53
    (scale, beta, t), floor_needed, exact = _row_division(s, dcfg)
    empty = s == 0
    scale[empty], beta[empty], t[empty] = 0.0, 0.0, 1.0
    if exact and fast_sum:
        q = _apply_division(e, ((scale, beta, t), floor_needed), dcfg.q_max)
    else:
        from spikeops.golden.division import divide
        e_np = e.numpy().astype(np.int64, copy=False)
        s_np = s.reshape(e_np.shape[:-1] + (1,))
        q = torch.from_numpy(np.where(s_np == 0, 0, divide(e_np, s_np, dcfg, check=False)))
    return _dequantize(q, cfg.out_format, x.dtype)


# -- RMSNorm, LayerNorm -------------------------------------------------------------------------------
def _row_shift(v: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """``spikeops.golden.shift.barrel_shift`` of int64 ``v >= 0`` by per-row amounts ``s`` (shape (rows, 1))."""
    if bool((s >= 0).all()):
        return v << s
    if bool((s <= 0).all()):
        return v >> (-s).clamp_max(63)
    return torch.where(s >= 0, v << s.clamp_min(0), v >> (-s).clamp(0, 63))


def _norm(cfg, x: torch.Tensor, gamma, beta) -> torch.Tensor:
    """Steps 1-4 of ``spikeops.golden.ops.norms`` (block shift, PolarNorm, read-out, division) row-wise."""
    d = cfg.d
    if x.ndim < 1 or x.shape[-1] != d:
        raise _Fallback
    dcfg, fmt = cfg.division, cfg.in_format
    if dcfg.num_width > 53 or dcfg.current_width > 52:
        raise _Fallback
    use_kernel = _kernel_quantizes(x, fmt)
    if use_kernel:  # step 0: codes, v (centred for LayerNorm), max |v| per row
        rows = x.numel() // d
        xr = x.contiguous()
        v = torch.empty((rows, d), dtype=torch.int64)
        top = torch.empty(rows, dtype=torch.int64)
        _run("spikeops_norm_codes_f32", rows, _ptr(xr), d, 2.0 ** (fmt.frac + 1), float((1 << fmt.width) - 2),
             int(cfg.centred), _ptr(v), _ptr(top), grain=16)
    else:
        kind, c, _ = _scaled(x, fmt, allow_mask=False)
        if kind == "half":
            c = _codes_of_half(c)
        c = c.reshape(-1, d)
        if cfg.centred:  # v = d * x - sum(x): d times the centred value, exact
            c = c.to(torch.int64)
            v = c * d - c.sum(-1, keepdim=True)
        else:
            v = c
        top = v.abs().amax(-1)
    # after x (NaN, -inf) as in golden, so the first error is golden's
    g = None if gamma is None else _check_row(gamma, cfg, "gamma", cfg.gamma_format, vector=True)
    bt = None if beta is None else _check_row(beta, cfg, "beta", cfg.out_format, vector=True)
    # step 1: the block shift r of each row (golden's helpers on per-row numpy values)
    r = bit_length(np.maximum(top.to(torch.int64).numpy(), cfg.eps_code)) - cfg.norm_width
    # step 2: PolarNorm
    ncfg = cfg.norm
    if ncfg.method == "cordic":
        big_n = _cordic_rows(v, -r, ncfg, cfg.eps_code)
    else:
        w = _row_shift(v.abs().to(torch.int64), torch.from_numpy(-r).reshape(-1, 1)) << ncfg.guard_bits
        eps_w = barrel_shift(np.full(r.shape, cfg.eps_code, dtype=np.int64), -r) << ncfg.guard_bits
        big_n = isqrt((w * w).sum(-1).numpy() + eps_w * eps_w)
    # step 3: read-out
    n_m, e = normalise(big_n, _READOUT_BITS)
    rms = n_m * cfg.readout_constant
    b_exp = r - e - cfg.gain_frac
    # step 4: the division, A = |v_i gamma_i| with sign(v_i gamma_i) (a float64 signed zero keeps
    # golden's sign rule (v < 0) != (gamma < 0) for v == 0 or gamma == 0)
    params, floor_needed, _ = _row_division(rms, dcfg, b_exp)
    g_f = np.full(d, float(cfg.gamma_one)) if g is None else g.astype(np.float64)
    out_fmt = cfg.out_format
    if use_kernel:
        out = torch.empty(x.shape, dtype=torch.float32)
        bo = None if bt is None else np.ascontiguousarray(bt, dtype=np.float64)
        scale, beta_div, t = params
        _run("spikeops_norm_out_f32", v.shape[0], _ptr(v), d, _ptr(g_f), _ptr(bo), _ptr(scale), _ptr(beta_div),
             _ptr(t), float(dcfg.q_max), float(out_fmt.min_code), float(out_fmt.max_code), out_fmt.lsb,
             _ptr(out), grain=16)
        return out
    p = v.to(torch.float64).mul_(torch.from_numpy(g_f))  # exact: num_width <= 53
    q = _apply_division(p.abs(), (params, floor_needed), dcfg.q_max)
    y = torch.copysign(q, p).add_(0.0)  # -0.0 + 0.0 = +0.0, as golden's integer -0
    if bt is not None:
        y = y.add_(torch.from_numpy(bt.astype(np.float64))).clamp_(out_fmt.min_code, out_fmt.max_code)
    return _dequantize(y, out_fmt, x.dtype).view(x.shape)


# -- the entry point ------------------------------------------------------------------------------------
def fast_golden(op: str, cfg, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    """``numpy_golden(op, cfg, x, *args, **kwargs)`` (``run_golden``'s numpy back end), bit for bit.

    ``op``: sigmoid, silu, gelu, softmax (``mask=``: bool tensor or array broadcastable to ``x``,
    True = valid), rmsnorm (``gamma`` codes) or layernorm (``gamma``, ``beta`` codes).  Anything
    else, and every input the fast path does not cover, is ``numpy_golden`` itself."""
    n_args = len(args) + len(kwargs)
    ok = {"softmax": n_args <= 1 and set(kwargs) <= {"mask"}, "rmsnorm": n_args <= 1,
          "layernorm": n_args <= 2}.get(op, n_args == 0 and op in _ELEMENTWISE)
    if not ok or x.dtype not in _FLOAT_TYPES or x.numel() == 0 or registry.get(op).config is not type(cfg):
        return numpy_golden(op, cfg, x, *args, **kwargs)
    try:
        with torch.no_grad():
            xc = x.detach().cpu()
            if op in _ELEMENTWISE:
                y = _elementwise(op, cfg, xc)
            elif op == "softmax":
                y = _softmax(cfg, xc, kwargs["mask"] if "mask" in kwargs else (args[0] if args else None))
            else:
                vals = dict(zip(("gamma", "beta"), args))
                if set(vals) & set(kwargs):
                    raise _Fallback
                vals.update(kwargs)
                if set(vals) - {"gamma", "beta"}:
                    raise _Fallback
                y = _norm(cfg, xc, vals.get("gamma"), vals.get("beta"))
    except _Fallback:
        return numpy_golden(op, cfg, x, *args, **kwargs)
    return y.to(x.device)


# -- benchmark ------------------------------------------------------------------------------------------
def _smollm2_cases(seed: int = 0):
    """SmolLM2-135M shapes for one batch of 16 x 100 tokens (9 heads, MLP 1536, hidden 576)."""
    gen = torch.Generator().manual_seed(seed)
    scores = torch.randn(16, 9, 100, 100, generator=gen) * 3
    causal = torch.ones(100, 100, dtype=torch.bool).tril()
    act = torch.randn(16, 100, 1536, generator=gen) * 2
    hidden = torch.randn(16, 100, 576, generator=gen)
    hidden[..., [5, 77, 300]] *= 2000.0  # outlier channels like real LLM activations
    sm = registry.get("softmax").default()
    rms = registry.get("rmsnorm").default(d=576)
    gamma = rms.quantize_gamma(np.linspace(0.5, 2.0, 576))
    return [("softmax", sm, scores, (), {"mask": causal}),
            ("silu", registry.get("silu").default(), act, (), {}),
            ("rmsnorm", rms, hidden, (gamma,), {})]


def benchmark(repeats: int = 5, seed: int = 0) -> list[dict]:
    """Median seconds of ``numpy_golden`` and ``fast_golden`` on SmolLM2 shapes; checks equality."""
    results = []
    for op, cfg, x, args, kw in _smollm2_cases(seed):
        fast = fast_golden(op, cfg, x, *args, **kw)  # warm the tables and the kernel
        same = torch.equal(fast, numpy_golden(op, cfg, x, *args, **kw))
        times = {}
        for name, fn in (("golden", numpy_golden), ("fast", fast_golden)):
            ts = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                fn(op, cfg, x, *args, **kw)
                ts.append(time.perf_counter() - t0)
            times[name] = float(np.median(ts))
        n = x.numel()
        results.append({"op": op, "shape": tuple(x.shape), "elements": n, "golden_s": times["golden"],
                        "fast_s": times["fast"], "golden_eps": n / times["golden"],
                        "fast_eps": n / times["fast"], "speedup": times["golden"] / times["fast"],
                        "bit_exact": same})
    return results


def main(argv=None) -> int:
    import argparse
    parser = argparse.ArgumentParser(prog="python -m spikeops.gen.llm.fast",
                                     description="numpy golden vs fast_golden on SmolLM2-135M shapes")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = benchmark(args.repeats)
    print(f"torch threads {torch.get_num_threads()}, CORDIC kernel: "
          f"{'compiled' if kernel_available() else 'none (golden polar_norm)'}, median of {args.repeats}")
    print(f"{'op':8} {'shape':18} {'golden ms':>10} {'fast ms':>9} {'golden Mel/s':>13} "
          f"{'fast Mel/s':>11} {'speed-up':>9} {'exact':>6}")
    for r in rows:
        print(f"{r['op']:8} {'x'.join(map(str, r['shape'])):18} {r['golden_s'] * 1e3:10.1f} "
              f"{r['fast_s'] * 1e3:9.1f} {r['golden_eps'] / 1e6:13.1f} {r['fast_eps'] / 1e6:11.1f} "
              f"{r['speedup']:8.1f}x {r['bit_exact']!s:>6}")
    return 0 if all(r["bit_exact"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
