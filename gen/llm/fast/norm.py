"""The RMSNorm / LayerNorm path: steps 1-4 of :mod:`spikeops.golden.ops.norms`, row by row.

With the input codes ``x`` of a row of ``d`` (LayerNorm centred exactly: ``v = d x - sum(x)``;
RMSNorm ``v = x``):

1. block shift ``r = bit_length(max(max |v|, eps_code)) - norm_width`` (golden's helper, per row);
2. PolarNorm ``N`` of the leaves ``barrel_shift([|v|, eps_code], -r) << guard_bits``: the CORDIC
   tree in golden's merge order (:func:`_cordic_rows`: the ``spikeops_cordic_rows`` kernel, or
   golden's ``polar_norm``) or the exact ``isqrt`` of the sum of squares;
3. read-out ``(n_m, e) = normalise(N, READOUT_BITS)``, ``rms = n_m * readout_constant``,
   ``b_exp = r - e - gain_frac``;
4. the Division Neuron Group (:mod:`.division`) on ``A = |v_i gamma_i|`` with the sign of the
   float64 product ``v_i gamma_i``, whose signed zeros give golden's rule
   ``(v < 0) != (gamma < 0)``; then ``+ beta`` clipped to the output format (LayerNorm).

Float32 inputs take the kernels for step 0 (codes, ``v``, ``max |v|``) and step 4; the per-row
decisions of steps 1-3 always call golden's helpers on numpy rows.  Divisions wider than float64
holds exactly (``num_width > 53`` or ``current_width > 52``), wrong shapes, NaN, ``-inf`` go to golden.
"""

from __future__ import annotations

import numpy as np
import torch

from spikeops.golden.norm import isqrt, polar_norm
from spikeops.golden.ops.norms import READOUT_BITS, check_row
from spikeops.golden.shift import barrel_shift, bit_length, normalise

from . import kernel
from .division import apply_division, row_division
from .quantize import codes_of_half, dequantize_codes, scaled
from .reference import Fallback

__all__ = ["norm"]


def _row_shift(v: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """``spikeops.golden.shift.barrel_shift`` of int64 ``v >= 0`` by per-row amounts ``s`` (shape (rows, 1))."""
    if bool((s >= 0).all()):
        return v << s
    if bool((s <= 0).all()):
        return v >> (-s).clamp_max(63)
    return torch.where(s >= 0, v << s.clamp_min(0), v >> (-s).clamp(0, 63))


def _cordic_rows(v: torch.Tensor, shift: np.ndarray, ncfg, eps: int) -> np.ndarray:
    """Root of the CORDIC tree of every row: ``polar_norm(barrel_shift([|v|, eps], shift), ncfg)``."""
    rows, d = v.shape
    if not kernel.kernel_available():
        leaves = np.concatenate([v.abs().numpy().astype(np.int64), np.full((rows, 1), eps, dtype=np.int64)], axis=-1)
        return polar_norm(barrel_shift(leaves, shift[:, None]), ncfg)
    v = v.to(torch.int64).contiguous()
    shift = np.ascontiguousarray(shift, dtype=np.int64)
    out = np.empty(rows, dtype=np.int64)
    kernel.run("spikeops_cordic_rows", rows, kernel.ptr(v), d, kernel.ptr(shift), eps, ncfg.guard_bits,
               ncfg.iterations, kernel.ptr(out), grain=16)
    return out


def _centred_codes(cfg, x: torch.Tensor, use_kernel: bool):
    """Step 0: ``(v, max |v|)`` per row, ``v`` of shape (rows, d) (centred for LayerNorm)."""
    d, fmt = cfg.d, cfg.in_format
    if use_kernel:
        rows = x.numel() // d
        xr = x.contiguous()  # kept alive for the kernel
        v = torch.empty((rows, d), dtype=torch.int64)
        top = torch.empty(rows, dtype=torch.int64)
        kernel.run("spikeops_norm_codes_f32", rows, kernel.ptr(xr), d, 2.0 ** (fmt.frac + 1),
                   float((1 << fmt.width) - 2), int(cfg.centred), kernel.ptr(v), kernel.ptr(top), grain=16)
        return v, top
    kind, c, _ = scaled(x, fmt, allow_mask=False)
    if kind == "half":
        c = codes_of_half(c)
    c = c.reshape(-1, d)
    if cfg.centred:  # v = d * x - sum(x): d times the centred value, exact
        c = c.to(torch.int64)
        v = c * d - c.sum(-1, keepdim=True)
    else:
        v = c
    return v, v.abs().amax(-1)


def norm(cfg, x: torch.Tensor, gamma=None, beta=None) -> torch.Tensor:
    """Steps 1-4 of ``spikeops.golden.ops.norms`` (block shift, PolarNorm, read-out, division) row-wise;
    ``gamma`` (gamma format) and ``beta`` (output format) are code vectors of length ``d`` or None."""
    d = cfg.d
    if x.ndim < 1 or x.shape[-1] != d:
        raise Fallback
    dcfg, fmt = cfg.division, cfg.in_format
    if dcfg.num_width > 53 or dcfg.current_width > 52:
        raise Fallback
    use_kernel = kernel.kernel_quantizes(x, fmt)
    v, top = _centred_codes(cfg, x, use_kernel)
    # after x (NaN, -inf) as in golden, so the first error is golden's
    g = None if gamma is None else check_row(gamma, cfg, "gamma", cfg.gamma_format, vector=True)
    bt = None if beta is None else check_row(beta, cfg, "beta", cfg.out_format, vector=True)
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
    n_m, e = normalise(big_n, READOUT_BITS)
    rms = n_m * cfg.readout_constant
    b_exp = r - e - cfg.gain_frac
    # step 4: the division, A = |v_i gamma_i| with sign(v_i gamma_i) (a float64 signed zero keeps
    # golden's sign rule (v < 0) != (gamma < 0) for v == 0 or gamma == 0)
    params, floor_needed, _ = row_division(rms, dcfg, b_exp)
    g_f = np.full(d, float(cfg.gamma_one)) if g is None else g.astype(np.float64)
    out_fmt = cfg.out_format
    if use_kernel:
        out = torch.empty(x.shape, dtype=torch.float32)
        bo = None if bt is None else np.ascontiguousarray(bt, dtype=np.float64)
        scale, beta_div, t = params
        p = kernel.ptr
        kernel.run("spikeops_norm_out_f32", v.shape[0], p(v), d, p(g_f), p(bo), p(scale), p(beta_div), p(t),
                   float(dcfg.q_max), float(out_fmt.min_code), float(out_fmt.max_code), out_fmt.lsb,
                   p(out), grain=16)
        return out
    prod = v.to(torch.float64).mul_(torch.from_numpy(g_f))  # exact: num_width <= 53
    q = apply_division(prod.abs(), (params, floor_needed), dcfg.q_max)
    y = torch.copysign(q, prod).add_(0.0)  # -0.0 + 0.0 = +0.0, as golden's integer -0
    if bt is not None:
        y = y.add_(torch.from_numpy(bt.astype(np.float64))).clamp_(out_fmt.min_code, out_fmt.max_code)
    return dequantize_codes(y, out_fmt, x.dtype).view(x.shape)
