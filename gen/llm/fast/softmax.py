"""The Softmax path: ``q_i = Division(e_i, S)`` over the valid positions of each row.

With the input codes ``c`` of a row, its valid positions (mask True and not ``-inf``) and their
largest code ``m`` (``min_code`` when none is valid):

    e_i = PWL-Exp(c_i - m + Hc)                  (:func:`.tables.exp_by_difference`; masked: 0)
    S   = sum_i e_i                              (exact: int64, or float64 below 2**53)
    q_i = min(floor((floor(e_i * 2**k) + beta) / T), q_max)    (:mod:`.division`, per row)

with ``k, beta, T`` from golden's stage 1 (or its exact path) on ``S``; a fully masked row
(``S = 0``) gives 0 everywhere (golden's ``where(valid, q, 0)``).  Float32 inputs take two kernel
passes (``spikeops_softmax_sum_f32``: ``m`` and ``S``; ``spikeops_softmax_out_f32``: the
quotients) when ``sum_width <= 62`` and the division is exact in float64; else torch computes
``e`` and ``S`` and the division runs in torch float64, or golden's ``divide`` when float64 is not
exact.  Rows longer than ``d_max``, masks that do not broadcast to ``x``, NaN go to golden.  The
online normaliser (``normalizer="online"``) runs golden's mantissas and recurrence along the row on
the quantised codes (its sum is a recurrence, vectorised over the rows), then the same division.
"""

from __future__ import annotations

import numpy as np
import torch

from spikeops.golden.division import divide
from spikeops.golden.exp import range_mantissa
from spikeops.golden.online import online_softmax_terms

from . import kernel
from .division import apply_division, neutral_rows, row_division
from .quantize import codes_of_half, dequantize_codes, scaled
from .reference import Fallback
from .tables import exp_by_difference

__all__ = ["softmax"]


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


def _valid(mask, x: torch.Tensor):
    """``mask`` as a CPU bool tensor that broadcasts to ``x`` (None stays None)."""
    if mask is None:
        return None
    valid = torch.as_tensor(mask, dtype=torch.bool).cpu()
    try:
        if np.broadcast_shapes(tuple(valid.shape), tuple(x.shape)) != tuple(x.shape):
            raise Fallback
    except ValueError:
        raise Fallback from None
    return valid


def _softmax_kernel(cfg, x: torch.Tensor, valid):
    """The two kernel passes; None when the row constants are not exact in float64."""
    fmt, dcfg, hc = cfg.in_format, cfg.division, cfg.exp.H_codes
    length, rows = x.shape[-1], x.numel() // x.shape[-1]
    xr = x.contiguous()
    vm, vrow = _mask_rows(valid, x.shape)
    m = np.empty(rows, dtype=np.int64)
    s = np.empty(rows, dtype=np.int64)
    quant = (2.0 ** (fmt.frac + 1), float((1 << fmt.width) - 2))
    p = kernel.ptr
    kernel.run("spikeops_softmax_sum_f32", rows, p(xr), p(vm), p(vrow), length, *quant, fmt.min_code, 2 * hc + 1,
               p(exp_by_difference(cfg, torch.int64)), p(m), p(s), grain=256)
    params, _, exact = row_division(s, dcfg)
    if not exact:
        return None
    neutral_rows(params, s == 0)  # fully masked (S >= c_K > 0 otherwise)
    scale, beta, t = params
    out = torch.empty(x.shape, dtype=torch.float32)
    kernel.run("spikeops_softmax_out_f32", rows, p(xr), p(vm), p(vrow), length, *quant, 2 * hc + 1, p(m),
               p(exp_by_difference(cfg, torch.float64)), p(scale), p(beta), p(t),
               float(dcfg.q_max), cfg.out_format.lsb, p(out), grain=256)
    return out


def softmax(cfg, x: torch.Tensor, mask) -> torch.Tensor:
    """``q_i = Division(e_i, S)`` with ``e_i = PWL-Exp(x_i - m + H)`` over the valid positions
    (``mask``: bool tensor or array broadcastable to ``x``, True = valid; or None)."""
    if x.ndim == 0 or x.shape[-1] == 0 or x.shape[-1] > cfg.d_max:
        raise Fallback
    fmt, dcfg, hc = cfg.in_format, cfg.division, cfg.exp.H_codes
    valid = _valid(mask, x)
    if cfg.online:
        return _online(cfg, x, valid)
    if kernel.kernel_quantizes(x, fmt) and cfg.sum_width <= 62:
        out = _softmax_kernel(cfg, x, valid)
        if out is not None:
            return out
    fast_sum = cfg.sum_width <= 53  # the float64 row sum is exact
    table = exp_by_difference(cfg, torch.float64 if fast_sum else torch.int64)
    kind, c, neg_inf = scaled(x, fmt, allow_mask=True)
    if kind == "half":
        c = codes_of_half(c)
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
    return _divide(cfg, e, s, x.dtype, fast_sum)


def _online(cfg, x: torch.Tensor, valid) -> torch.Tensor:
    """``normalizer="online"``: golden's mantissas and its recurrence along the row
    (:func:`spikeops.golden.online.online_sum`, vectorised over the rows) on the quantised codes,
    then the division as above."""
    kind, c, neg_inf = scaled(x, cfg.in_format, allow_mask=True)
    if kind == "half":
        c = codes_of_half(c)
    codes = c.numpy().astype(np.int64, copy=False)
    ok = codes != cfg.in_format.mask_code
    if valid is not None:
        ok = ok & np.broadcast_to(valid.numpy(), codes.shape)
    if neg_inf is not None:
        ok = ok & ~neg_inf.numpy()
    e, s = online_softmax_terms(*range_mantissa(codes, cfg.exp), ok)
    fast_sum = cfg.sum_width <= 53
    e_t = torch.from_numpy(e.astype(np.float64) if fast_sum else e)
    return _divide(cfg, e_t, s.reshape(-1), x.dtype, fast_sum)


def _divide(cfg, e: torch.Tensor, s: np.ndarray, dtype, fast_sum: bool) -> torch.Tensor:
    """``q_i = Division(e_i, S)`` per row (``s``: the row sums, flat), dequantised to ``dtype``."""
    dcfg = cfg.division
    params, floor_needed, exact = row_division(s, dcfg)
    neutral_rows(params, s == 0)
    if exact and fast_sum:
        q = apply_division(e, (params, floor_needed), dcfg.q_max)
    else:
        e_np = e.numpy().astype(np.int64, copy=False)
        s_np = s.reshape(e_np.shape[:-1] + (1,))
        q = torch.from_numpy(np.where(s_np == 0, 0, divide(e_np, s_np, dcfg, check=False)))
    return dequantize_codes(q, cfg.out_format, dtype)
