"""Quantisation and dequantisation on torch tensors, bit-identical to :mod:`spikeops.golden.fixed`.

Golden's ``quantize(x, fmt)`` is ``round(x * 2**frac)`` half away from zero, saturated to
``[min_code, max_code]`` (``-inf`` -> the mask code of a signed format, NaN an error).

* float32/16/bf16 inputs, formats of up to 24 bits with ``frac >= 0``: with
  ``n = trunc(clamp(x * 2**(frac+1), +-(2**w - 2)))`` (int32; the power-of-two scale is exact in
  float32), ``code(n) = (n + [n > 0]) >> 1``.  This is exact: golden's float64
  ``floor(|v| + 0.5)`` never rounds for a float32 ``v``, and for ``v >= 0``
  ``floor(v + 1/2) = floor((floor(2v) + 1) / 2)`` (``v < 0`` mirrors it).
* everything else (float64 inputs, wider formats): golden's own formula in torch float64.

``dequantize(q) = q * 2**-frac`` is exact in float64, so one rounding to float32 equals golden's
``dequantize(q).astype(float32)``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from spikeops.golden.fixed import quantize

from .reference import Fallback

__all__ = ["F32_MAX_WIDTH", "scaled", "codes_of_half", "quantize_codes", "dequantize_codes"]

#: widest input code quantised in float32 (the clamp bound 2**w - 2 and codes exact in float32)
F32_MAX_WIDTH = 24


def scaled(x: torch.Tensor, fmt, *, allow_mask: bool):
    """``(kind, t, neg_inf)``: ``kind == "half"``: ``t = n`` (int32, see ``codes_of_half``);
    ``kind == "code"``: ``t`` the int64 codes.  ``neg_inf``: bool tensor of the -inf positions
    (only when ``allow_mask`` and any), else None.  Raises ``Fallback`` for NaN, and for -inf
    when ``allow_mask`` is False."""
    if x.dtype != torch.float64 and fmt.width <= F32_MAX_WIDTH and fmt.frac >= 0:
        u = torch.mul(x.to(torch.float32), 2.0 ** (fmt.frac + 1))  # exact: a power-of-two scale
        lo, hi = (float(v) for v in torch.aminmax(u))
        if math.isnan(lo) or math.isnan(hi):
            raise Fallback
        neg_inf = None
        if lo == -np.inf:  # -inf in x, or a finite x beyond float32 once scaled
            neg_inf = torch.isneginf(x)
            if not bool(neg_inf.any()):
                neg_inf = None
            elif not allow_mask:
                raise Fallback
        lim = float((1 << fmt.width) - 2)  # n = +-(2**w - 2) is code +-max_code
        if lo < -lim or hi > lim:
            u.clamp_(-lim, lim)
        return "half", u.to(torch.int32), neg_inf
    a = x.to(torch.float64)
    if torch.isnan(a).any():
        raise Fallback
    # spikeops.golden.fixed.quantize, literally (same IEEE float64 operations)
    r = torch.sign(a) * torch.floor(a.abs() * 2.0 ** fmt.frac + 0.5)
    q = r.clamp_(fmt.min_code, fmt.max_code).to(torch.int64)
    neg_inf = None
    if torch.isneginf(a).any():
        if not (allow_mask and fmt.signed):
            raise Fallback
        neg_inf = torch.isneginf(a)
        q.masked_fill_(neg_inf, fmt.mask_code)
    return "code", q, neg_inf


def codes_of_half(n: torch.Tensor) -> torch.Tensor:
    """``code = round_half_away(n / 2) = (n + [n > 0]) >> 1`` for ``n = trunc(2 v)`` (in place).

    ``v >= 0``: ``floor(v + 1/2) = floor((floor(2v) + 1) / 2)``; ``v < 0`` mirrors it."""
    return n.add_(n > 0).bitwise_right_shift_(1)


def quantize_codes(x: torch.Tensor, fmt, *, allow_mask: bool = True) -> torch.Tensor:
    """``spikeops.golden.fixed.quantize(x, fmt)`` (nearest, saturating; -inf -> mask code) as int64 codes.

    Raises ValueError (golden's message) for NaN, and for -inf when ``allow_mask`` is False or the
    format is unsigned."""
    try:
        kind, t, neg_inf = scaled(x.detach(), fmt, allow_mask=allow_mask and fmt.signed)
    except Fallback:
        q = quantize(x.detach().to(torch.float64).cpu().numpy(), fmt)  # raises golden's error
        if not allow_mask and (q == fmt.mask_code).any():
            raise ValueError(f"quantize_codes: -inf has no code in {fmt.describe()} here") from None
        return torch.from_numpy(q)
    if kind == "half":
        t = codes_of_half(t).to(torch.int64)
        if neg_inf is not None:
            t.masked_fill_(neg_inf, fmt.mask_code)
    return t


def dequantize_codes(q: torch.Tensor, fmt, dtype: torch.dtype) -> torch.Tensor:
    """``spikeops.golden.fixed.dequantize(q, fmt).astype(dtype)`` for integer-valued ``q`` (int or float64).

    The ops' outputs never reach a signed format's mask code (sigmoid and Softmax are unsigned,
    SiLU/GELU stay within +-q_max, the norms clip to the finite range), so no -inf appears.
    ``q * 2**-frac`` is exact in float64 and one rounding to float32 equals rounding ``q`` first."""
    if dtype in (torch.float32, torch.float64):
        return q.to(dtype).mul_(fmt.lsb)
    return q.to(torch.float64).mul_(fmt.lsb).to(dtype)
