"""The elementwise path (sigmoid, SiLU, GELU): quantise and one table gather.

An elementwise operator's golden output is a pure function of the input code, so with the
quantiser index ``n = trunc(clamp(x * 2**(frac+1), +-lim))``, ``lim = 2**in_width - 2``,

    y = table[n + lim],   table = dequantize(golden(code(n)))   (:func:`.tables.half_table`)

for inputs of up to ``TABLE_MAX_WIDTH`` bits; float32 inputs take the ``spikeops_lookup_f32``
kernel (one pass), the others the torch quantiser and ``index_select``.  NaN and ``-inf`` (no mask
code here) go to golden.
"""

from __future__ import annotations

import torch

from . import kernel
from .quantize import scaled
from .reference import Fallback
from .tables import TABLE_MAX_WIDTH, half_table

__all__ = ["elementwise"]


def elementwise(op, cfg, x: torch.Tensor) -> torch.Tensor:
    """``table[n + lim]`` for the operator record ``op``: quantise and one gather (kernel: one pass)."""
    fmt = cfg.in_format
    if fmt.width > TABLE_MAX_WIDTH:
        raise Fallback
    lim = (1 << fmt.width) - 2
    table = half_table(op, cfg, x.dtype)
    if kernel.kernel_quantizes(x, fmt):
        x = x.contiguous()
        out = torch.empty_like(x)
        kernel.run("spikeops_lookup_f32", x.numel(), kernel.ptr(x), 2.0 ** (fmt.frac + 1), float(lim),
                   kernel.ptr(table), kernel.ptr(out), grain=1 << 16)
        return out
    kind, t, _ = scaled(x, fmt, allow_mask=False)
    idx = t.add_(lim) if kind == "half" else (t * 2).add_(lim)
    return table.index_select(0, idx.reshape(-1)).view(x.shape)
