"""The golden operators on torch tensors, bit-identical to ``run_golden`` and many times faster.

``fast_golden(op, cfg, x, *args, mask=None)`` returns exactly what ``run_golden`` (``operators.py``)
returns: ``dequantize(golden(quantize(x, cfg.in_format)), cfg.out_format)`` in ``x``'s dtype and
device.  The golden model stays the specification: every table below is *computed by* golden code
(``registry.get(op).golden``, ``exp.pwl_exp``), the per-row steps call golden's ``shift``/``norm``
helpers on per-row numpy views, and only the per-element array arithmetic is ported:

* quantize: ``round(x * 2**frac)`` half away from zero, saturated; for float32/16/bf16 inputs it is
  ``code(n) = (n + [n > 0]) >> 1`` of ``n = trunc(clamp(x * 2**(frac+1)))``, which is exact (golden's
  float64 ``floor(|v| + 0.5)`` never rounds for a float32 ``v``); float64 inputs take golden's own
  formula in torch float64.
* sigmoid, SiLU, GELU: a pure function of the input code, so golden is run once on every code
  (``in_width <= 22``) and the fast path is quantize + one gather (table indexed by ``n``).
* Softmax: ``e = PWL-Exp(x - m + H)`` is a table over ``x - m`` (filled by ``pwl_exp``), the row sum
  is exact in float64 (``sum_width <= 53``), and the Division Neuron Group is
  ``q = min(floor((floor(A * 2**k) + beta) / T), q_max)`` with per-row ``k, beta, T`` from golden's
  stage 1 (or its exact path): the float64 quotient is exact whenever ``N + T <= 2**53``.
* RMSNorm, LayerNorm: element-wise parts in torch, per-row block shift / read-out by golden's helpers,
  the PolarNorm CORDIC tree by a small C kernel compiled with the system C compiler on first use
  (falling back to golden's ``polar_norm`` when there is none), the exact method by golden's
  ``isqrt`` on the row sums of squares, and the division as for Softmax.

Configurations outside the proven-exact ranges (wider codes, 53-bit-plus quotients, integer input
tensors) and every invalid input (NaN, a mask code where none is allowed, wrong shapes) go to
``run_golden`` itself, so errors are golden's.  ``python -m gen.llm.fast`` prints the benchmark.
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

from golden import registry
from golden.exp import pwl_exp
from golden.fixed import dequantize, quantize
from golden.norm import isqrt, polar_norm
from golden.ops.norms import _READOUT_BITS, _check_row
from golden.shift import barrel_shift, bit_length, normalise

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
    # golden.fixed.quantize, literally (same IEEE float64 operations)
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
    """``golden.fixed.quantize(x, fmt)`` (nearest, saturating; -inf -> mask code) as int64 codes.

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
    """``golden.fixed.dequantize(q, fmt).astype(dtype)`` for integer-valued ``q`` (int or float64).

    The ops' outputs never reach a signed format's mask code (sigmoid and Softmax are unsigned,
    SiLU/GELU stay within +-q_max, the norms clip to the finite range), so no -inf appears.
    ``q * 2**-frac`` is exact in float64 and one rounding to float32 equals rounding ``q`` first."""
    if dtype in (torch.float32, torch.float64):
        return q.to(dtype).mul_(fmt.lsb)
    return q.to(torch.float64).mul_(fmt.lsb).to(dtype)


# -- the Division Neuron Group, row-wise ----------------------------------------------------------
def _row_division(b, dcfg, b_exp=None):
    """Per-row constants of ``golden.division.divide(A, b, dcfg, b_exp=...)`` (fast realisation).

    Every quotient of a row is ``q = min(floor((floor(A * scale) + beta) / T), q_max)``:

    * golden's exact path (``b_exp`` scalar 0, ``den_width <= theta_bits``, ...):
      nearest ``scale = 2**(shift+1), beta = b, T = 2b``; floor ``scale = 2**shift, beta = 0, T = b``;
    * stage 1: ``e = theta_bits - bit_length(b)``, ``T = theta = barrel_shift(b, e)``,
      ``scale = 2**k`` with ``k = e + shift - b_exp``, ``beta = theta >> 1`` (nearest) or 0.

    ``b == 0`` (``theta == 0``) and ``k > current_width`` (every element saturates) give ``q_max``
    for the whole row: those rows get ``scale = 0, beta = q_max, T = 1``.  Elements that saturate
    (``bit_length(A) + k > current_width``) have ``A * 2**k / T > 2**q_width`` and so give
    ``q_max`` through the ``min``.  Returns ``(scale, beta, T, floor_needed, exact)`` as float64
    numpy rows; ``exact``: float64 evaluates it without error (``A <= 2**53`` and
    ``N + T <= 2**53`` for every unsaturated ``N``, so ``floor(fl(N / T)) = floor(N / T)``).
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
    full = (theta == 0) | (k > dcfg.current_width)
    kk = np.where(full, 0, k)
    scale = np.ldexp(1.0, kk)
    beta = (theta >> 1).astype(np.float64) if nearest else np.zeros(b.shape)
    exact = dcfg.num_width <= 53 and dcfg.current_width <= 52
    return _saturate_rows(scale, beta, theta.astype(np.float64), full, dcfg), bool((kk < 0).any()), exact


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
    return _cached((op, cfg.stable_hash(), dtype), build)


def _elementwise(op: str, cfg, x: torch.Tensor) -> torch.Tensor:
    if cfg.in_width > TABLE_MAX_WIDTH:
        raise _Fallback
    kind, t, _ = _scaled(x, cfg.in_format, allow_mask=False)
    lim = (1 << cfg.in_width) - 2
    idx = t.add_(lim) if kind == "half" else (t * 2).add_(lim)
    table = _half_table(op, cfg, x.dtype)
    return table.index_select(0, idx.reshape(-1)).view(x.shape)


# -- Softmax ----------------------------------------------------------------------------------------
def _exp_by_difference(cfg, dtype: torch.dtype) -> torch.Tensor:
    """``pwl_exp(d + Hc)`` at index ``j = d + 2Hc + 1`` for ``d = x - m = -(2Hc + 1) .. 0`` (j = 0: 0)."""
    def build():
        hc = cfg.exp.H_codes
        z = np.arange(2 * hc + 2, dtype=np.int64) - (hc + 1)
        return torch.from_numpy(pwl_exp(z, cfg.exp)).to(dtype)
    return _cached(("softmax-exp", cfg.stable_hash(), dtype), build)


def _softmax(cfg, x: torch.Tensor, mask) -> torch.Tensor:
    if x.ndim == 0 or x.shape[-1] == 0 or x.shape[-1] > cfg.d_max:
        raise _Fallback
    fmt, dcfg, hc = cfg.in_format, cfg.division, cfg.exp.H_codes
    invalid = None
    if mask is not None:
        valid = torch.as_tensor(mask, dtype=torch.bool).cpu()
        if torch.broadcast_shapes(valid.shape, x.shape) != x.shape:
            raise _Fallback
        invalid = ~valid
    kind, c, neg_inf = _scaled(x, fmt, allow_mask=True)
    if kind == "half":
        c = _codes_of_half(c)
    if neg_inf is not None:
        invalid = neg_inf if invalid is None else invalid | neg_inf
    if invalid is not None:
        # far below min_code - (2Hc + 1): masked positions take no part in the max and get e = 0
        c.masked_fill_(invalid, -(1 << (fmt.width + 3)))
    m = c.amax(-1, keepdim=True).clamp_min_(fmt.min_code)  # a fully masked row: all e = 0
    j = (c - (m - (2 * hc + 1))).clamp_min_(0)
    fast_sum = cfg.sum_width <= 53
    table = _exp_by_difference(cfg, torch.float64 if fast_sum else torch.int64)
    e = table.index_select(0, j.reshape(-1)).view(x.shape)
    s = e.sum(-1).reshape(-1).numpy().astype(np.int64)  # float64: exact integers below 2**53
    (scale, beta, t), floor_needed, exact = _row_division(s, dcfg)
    empty = s == 0  # fully masked (S >= c_K > 0 otherwise): golden's where(valid, q, 0) gives 0
    scale[empty], beta[empty], t[empty] = 0.0, 0.0, 1.0
    if exact and fast_sum:
        q = _apply_division(e, ((scale, beta, t), floor_needed), dcfg.q_max)
    else:
        from golden.division import divide
        e_np = e.numpy().astype(np.int64, copy=False)
        s_np = s.reshape(e_np.shape[:-1] + (1,))
        q = torch.from_numpy(np.where(s_np == 0, 0, divide(e_np, s_np, dcfg, check=False)))
    return _dequantize(q, cfg.out_format, x.dtype)


# -- RMSNorm, LayerNorm -------------------------------------------------------------------------------
_C_SOURCE = r"""
#include <stdint.h>
#include <string.h>

/* golden/norm.py PolarNorm, method "cordic", one row at a time.  Leaves of row r:
   barrel_shift(mag[r][j], shift[r]) << guard for j < d, and barrel_shift(eps, shift[r]) << guard;
   zero padding per level, pairs (x[2i], x[2i+1]) in index order, `iterations` vectoring steps
   a += s (b >> k), b -= s (a >> k), s = sign(b) (+1 for b >= 0): s*y is (y ^ m) - m, m = b >> 63.
   work: 2 * (d + 2) int64. */
#define CORDIC_ROWS(NAME, T)                                                                 \
void NAME(const T *mag, int64_t rows, int64_t d, const int64_t *shift, int64_t eps,        \
          int64_t guard, int64_t iterations, int64_t *out, int64_t *work)                  \
{                                                                                          \
    const int64_t n = d + 1, half = (d + 2) / 2;                                           \
    int64_t *restrict x = work, *restrict a = work + n, *restrict b = a + half;            \
    for (int64_t r = 0; r < rows; ++r) {                                                   \
        const T *row = mag + r * d;                                                        \
        const int64_t s = shift[r];                                                        \
        if (s >= 0) {                                                                      \
            for (int64_t j = 0; j < d; ++j) x[j] = ((int64_t)row[j] << s) << guard;        \
            x[d] = (eps << s) << guard;                                                    \
        } else {                                                                           \
            const int64_t t = -s > 63 ? 63 : -s;                                           \
            for (int64_t j = 0; j < d; ++j) x[j] = ((int64_t)row[j] >> t) << guard;        \
            x[d] = (eps >> t) << guard;                                                    \
        }                                                                                  \
        int64_t len = n;                                                                   \
        while (len > 1) {                                                                  \
            const int64_t p = (len + 1) / 2;                                               \
            for (int64_t i = 0; i < len / 2; ++i) { a[i] = x[2 * i]; b[i] = x[2 * i + 1]; } \
            if (len & 1) { a[p - 1] = x[len - 1]; b[p - 1] = 0; }                          \
            for (int64_t k = 0; k < iterations; ++k) {                                     \
                for (int64_t i = 0; i < p; ++i) {                                          \
                    const int64_t ai = a[i], bi = b[i], m = bi >> 63;                      \
                    a[i] = ai + (((bi >> k) ^ m) - m);                                     \
                    b[i] = bi - (((ai >> k) ^ m) - m);                                     \
                }                                                                          \
            }                                                                              \
            memcpy(x, a, (size_t)p * sizeof(int64_t));                                     \
            len = p;                                                                       \
        }                                                                                  \
        out[r] = x[0];                                                                     \
    }                                                                                      \
}
CORDIC_ROWS(spikeops_cordic_rows_i32, int32_t)
CORDIC_ROWS(spikeops_cordic_rows_i64, int64_t)
"""

_kernel_lock = threading.Lock()
_kernel_state: dict = {}


def _compile_kernel():
    """Build ``_C_SOURCE`` with the system C compiler into a private temporary directory (once per
    process); None when there is no compiler or ``SPIKEOPS_FAST_NO_KERNEL`` is set."""
    if os.environ.get("SPIKEOPS_FAST_NO_KERNEL"):
        return None
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        return None
    tmp = tempfile.mkdtemp(prefix="spikeops-fast-")
    src, lib = os.path.join(tmp, "cordic.c"), os.path.join(tmp, "cordic.so")
    with open(src, "w") as f:
        f.write(_C_SOURCE)
    for flags in (["-O3", "-march=native"], ["-O3"]):
        try:
            subprocess.run([cc, *flags, "-std=c99", "-shared", "-fPIC", "-o", lib, src],
                           check=True, capture_output=True, timeout=120)
            dll = ctypes.CDLL(lib)
            break
        except (OSError, subprocess.SubprocessError):
            continue
    else:
        return None
    for name in ("spikeops_cordic_rows_i32", "spikeops_cordic_rows_i64"):
        fn = getattr(dll, name)
        fn.restype = None
        fn.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64,
                       ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p]
    return dll


def _kernel():
    with _kernel_lock:
        if "dll" not in _kernel_state:
            _kernel_state["dll"] = _compile_kernel()
        return _kernel_state["dll"]


def kernel_available() -> bool:
    """True when the CORDIC tree runs in the compiled kernel (else golden's numpy ``polar_norm``)."""
    return _kernel() is not None


@functools.lru_cache(maxsize=1)
def _pool(workers: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="spikeops-fast")


def _cordic_rows(mag: torch.Tensor, shift: np.ndarray, ncfg, eps: int) -> np.ndarray:
    """Root of the CORDIC tree of every row: ``polar_norm(barrel_shift([mag, eps], shift), ncfg)``."""
    dll = _kernel()
    rows, d = mag.shape
    if dll is None:
        leaves = np.concatenate([mag.numpy().astype(np.int64), np.full((rows, 1), eps, dtype=np.int64)], axis=-1)
        return polar_norm(barrel_shift(leaves, shift[:, None]), ncfg)
    fn = dll.spikeops_cordic_rows_i32 if mag.dtype == torch.int32 else dll.spikeops_cordic_rows_i64
    mag = mag.contiguous()
    shift = np.ascontiguousarray(shift, dtype=np.int64)
    out = np.empty(rows, dtype=np.int64)
    workers = max(1, min(torch.get_num_threads(), rows // 32))
    bounds = np.linspace(0, rows, workers + 1).astype(np.int64)

    def run(lo, hi):
        work = np.empty(2 * (d + 2), dtype=np.int64)
        fn(mag.data_ptr() + int(lo) * d * mag.element_size(), int(hi - lo), d,
           shift.ctypes.data + int(lo) * 8, eps, ncfg.guard_bits, ncfg.iterations,
           out.ctypes.data + int(lo) * 8, work.ctypes.data)

    if workers == 1:
        run(0, rows)
    else:
        list(_pool(workers).map(run, bounds[:-1], bounds[1:]))
    return out


def _row_shift(v: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """``golden.shift.barrel_shift`` of int64 ``v >= 0`` by per-row amounts ``s`` (shape (rows, 1))."""
    if bool((s >= 0).all()):
        return v << s
    if bool((s <= 0).all()):
        return v >> (-s).clamp_max(63)
    return torch.where(s >= 0, v << s.clamp_min(0), v >> (-s).clamp(0, 63))


def _norm(cfg, x: torch.Tensor, gamma, beta) -> torch.Tensor:
    d = cfg.d
    if x.ndim < 1 or x.shape[-1] != d:
        raise _Fallback
    g = None if gamma is None else _check_row(gamma, cfg, "gamma", cfg.gamma_format, vector=True)
    bt = None if beta is None else _check_row(beta, cfg, "beta", cfg.out_format, vector=True)
    dcfg = cfg.division
    if dcfg.num_width > 53 or dcfg.current_width > 52:
        raise _Fallback
    kind, c, _ = _scaled(x, cfg.in_format, allow_mask=False)
    if kind == "half":
        c = _codes_of_half(c)
    rows = c.reshape(-1, d)
    if cfg.centred:  # v = d * x - sum(x): d times the centred value, exact
        rows = rows.to(torch.int64)
        v = rows * d - rows.sum(-1, keepdim=True)
    else:
        v = rows
    mag = v.abs()
    # step 1: the block shift r of each row (golden's helpers on per-row numpy values)
    top = np.maximum(mag.amax(-1).to(torch.int64).numpy(), cfg.eps_code)
    r = bit_length(top) - cfg.norm_width
    # step 2: PolarNorm
    ncfg = cfg.norm
    if ncfg.method == "cordic":
        big_n = _cordic_rows(mag, -r, ncfg, cfg.eps_code)
    else:
        w = _row_shift(mag.to(torch.int64), torch.from_numpy(-r).reshape(-1, 1)) << ncfg.guard_bits
        eps_w = barrel_shift(np.full(r.shape, cfg.eps_code, dtype=np.int64), -r) << ncfg.guard_bits
        big_n = isqrt((w * w).sum(-1).numpy() + eps_w * eps_w)
    # step 3: read-out
    n_m, e = normalise(big_n, _READOUT_BITS)
    rms = n_m * cfg.readout_constant
    b_exp = r - e - cfg.gain_frac
    # step 4: the division, A = |v_i gamma_i| with sign(v_i gamma_i) (a float64 signed zero keeps
    # golden's sign rule (v < 0) != (gamma < 0) for v == 0 or gamma == 0)
    p = v.to(torch.float64)  # exact: num_width <= 53
    p = p.mul_(torch.from_numpy(g.astype(np.float64))) if g is not None else p.mul_(float(1 << cfg.gamma_frac))
    params, floor_needed, _ = _row_division(rms, dcfg, b_exp)
    q = _apply_division(p.abs(), (params, floor_needed), dcfg.q_max)
    y = torch.copysign(q, p).add_(0.0)  # -0.0 + 0.0 = +0.0, as golden's integer -0
    if bt is not None:
        fmt = cfg.out_format
        y = y.add_(torch.from_numpy(bt.astype(np.float64))).clamp_(fmt.min_code, fmt.max_code)
    return _dequantize(y, cfg.out_format, x.dtype).view(x.shape)


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
    parser = argparse.ArgumentParser(prog="python -m gen.llm.fast",
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
