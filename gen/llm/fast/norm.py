"""The RMSNorm / LayerNorm path: the steps of :mod:`spikeops.golden.ops.norms`, row by row.

With the input codes ``x`` of a row of ``d`` (LayerNorm centred exactly: ``v = d x - sum(x)``;
RMSNorm ``v = x``):

1. the root ``(m, e)`` of PolarNorm: golden's :func:`~spikeops.golden.ops.norms.norm_root` on the
   rows (LayerNorm: ``(v - v_1) / d``, the codes less the row's first, which gives the same root),
   leaves and CORDIC tree in the ``spikeops_norm_root`` kernel when it is compiled;
2. read-out ``rms = m * readout_constant``, ``b_exp = e - gain_frac``;
3. the Division Neuron Group (:mod:`.division`) on ``A = |v_i gamma_i|`` with the sign of the
   float64 product ``v_i gamma_i``, whose signed zeros give golden's rule
   ``(v < 0) != (gamma < 0)``; then ``+ beta`` clipped to the output format (LayerNorm).

Float32 inputs take the kernels for step 0 (codes, ``v``) and step 3.  Divisions wider than float64
holds exactly (``num_width > 53`` or ``current_width > 52``), wrong shapes, NaN, ``-inf`` go to golden.
"""

from __future__ import annotations

import numpy as np
import torch

from spikeops.golden.ops.norms import check_row, helmert_constants, norm_root

from . import kernel
from .division import apply_division, row_division
from .quantize import codes_of_half, dequantize_codes, scaled
from .reference import Fallback

__all__ = ["norm"]


def _root(cfg, v: np.ndarray) -> tuple:
    """``spikeops.golden.ops.norms.norm_root`` of the int64 rows ``v`` (LayerNorm: centred,
    ``d x - sum(x)``), in the ``spikeops_norm_root`` kernel (leaves and tree) when it is compiled,
    the norm is the CORDIC tree and ``j v_j`` fits int64."""
    n, d = v.shape
    if (cfg.norm_method != "cordic" or not kernel.kernel_available()
            or cfg.v_width + d.bit_length() > 62):
        # golden takes the codes; for LayerNorm any constant may be added to a row: (v - v_1) / d
        return norm_root((v - v[:, :1]) // d if cfg.centred else v, cfg)
    ncfg = cfg.norm
    rows = np.ascontiguousarray(v, dtype=np.int64)
    cm, ce = (np.ascontiguousarray(a) for a in helmert_constants(cfg)) if cfg.helmert else (np.zeros(1, np.int64),) * 2
    out_m, out_e = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64)
    p = kernel.ptr
    kernel.run("spikeops_norm_root", n, p(rows), d, cfg.eps_code, int(cfg.helmert), p(cm), p(ce), ncfg.width,
               ncfg.guard_bits, ncfg.iterations, p(out_m), p(out_e), grain=16)
    return out_m, out_e


def _centred_codes(cfg, x: torch.Tensor, use_kernel: bool):
    """Step 0: the rows ``v``, shape (rows, d) (centred for LayerNorm)."""
    d, fmt = cfg.d, cfg.in_format
    if use_kernel:
        rows = x.numel() // d
        xr = x.contiguous()  # kept alive for the kernel
        v = torch.empty((rows, d), dtype=torch.int64)
        kernel.run("spikeops_norm_codes_f32", rows, kernel.ptr(xr), d, 2.0 ** (fmt.frac + 1),
                   float((1 << fmt.width) - 2), int(cfg.centred), kernel.ptr(v), grain=16)
        return v
    kind, c, _ = scaled(x, fmt, allow_mask=False)
    if kind == "half":
        c = codes_of_half(c)
    c = c.reshape(-1, d)
    if cfg.centred:  # v = d * x - sum(x): d times the centred value, exact
        c = c.to(torch.int64)
        v = c * d - c.sum(-1, keepdim=True)
    else:
        v = c
    return v


def norm(cfg, x: torch.Tensor, gamma=None, beta=None) -> torch.Tensor:
    """The steps of ``spikeops.golden.ops.norms`` (PolarNorm, read-out, division) row-wise;
    ``gamma`` (gamma format) and ``beta`` (output format) are code vectors of length ``d`` or None."""
    d = cfg.d
    if x.ndim < 1 or x.shape[-1] != d:
        raise Fallback
    dcfg, fmt = cfg.division, cfg.in_format
    if dcfg.num_width > 53 or dcfg.current_width > 52:
        raise Fallback
    use_kernel = kernel.kernel_quantizes(x, fmt)
    v = _centred_codes(cfg, x, use_kernel)
    # after x (NaN, -inf) as in golden, so the first error is golden's
    g = None if gamma is None else check_row(gamma, cfg, "gamma", cfg.gamma_format, vector=True)
    bt = None if beta is None else check_row(beta, cfg, "beta", cfg.out_format, vector=True)
    # step 1: the root of PolarNorm
    m, e = _root(cfg, v.to(torch.int64).numpy())
    # step 2: read-out
    rms = m * cfg.readout_constant
    b_exp = e - cfg.gain_frac
    # step 3: the division, A = |v_i gamma_i| with sign(v_i gamma_i) (a float64 signed zero keeps
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
