"""The lookup tables of the fast paths, every entry computed by golden, cached per configuration.

* the sigmoid family (any elementwise operator whose golden output is a pure function of the input
  code): :func:`half_table` holds ``dequantize(golden(code(n)))`` for every quantiser index
  ``n = -(2**w - 2) .. 2**w - 2`` (``code(n) = (n + [n > 0]) >> 1``, see :mod:`.quantize`), at
  index ``n + 2**w - 2``: golden runs once on every code ``min_code .. max_code``.  Up to
  ``TABLE_MAX_WIDTH`` input bits (``2**(w+1)`` entries).
* Softmax: :func:`exp_by_difference` holds ``e = PWL-Exp(d + Hc)`` (golden's ``pwl_exp``) for the
  difference ``d = x - m = -(2 Hc + 1) .. 0`` to the row maximum ``m``, at index
  ``j = d + 2 Hc + 1``; ``j = 0`` (and any clamped index) is 0, the value of a masked position.

Tables are kept per ``(what, cfg.stable_hash(), dtype)``, at most 32 of them.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from spikeops.golden.exp import pwl_exp
from spikeops.golden.fixed import dequantize

from .quantize import codes_of_half

__all__ = ["TABLE_MAX_WIDTH", "half_table", "exp_by_difference"]

#: widest input code the sigmoid family tabulates (2**(in_width+1) table entries)
TABLE_MAX_WIDTH = 22

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


def half_table(op, cfg, dtype: torch.dtype) -> torch.Tensor:
    """``dequantize(golden(code(n)))`` for ``n = -(2**w - 2) .. 2**w - 2`` at index
    ``n + 2**w - 2``, for the operator record ``op``; golden runs once on every code."""
    def build():
        fmt = cfg.in_format
        codes = np.arange(fmt.min_code, fmt.max_code + 1, dtype=np.int64)
        values = torch.from_numpy(dequantize(op.run(codes, cfg), cfg.out_format))
        lim = (1 << fmt.width) - 2
        n = codes_of_half(torch.arange(-lim, lim + 1, dtype=torch.int64))
        return values[n - fmt.min_code].to(dtype).contiguous()
    return _cached((op.name, _stable_hash(cfg), dtype), build)


def exp_by_difference(cfg, dtype: torch.dtype) -> torch.Tensor:
    """``pwl_exp(d + Hc)`` at index ``j = d + 2Hc + 1`` for ``d = x - m = -(2Hc + 1) .. 0`` (j = 0: 0)."""
    def build():
        hc = cfg.exp.H_codes
        z = np.arange(2 * hc + 2, dtype=np.int64) - (hc + 1)
        return torch.from_numpy(pwl_exp(z, cfg.exp)).to(dtype)
    return _cached(("softmax-exp", _stable_hash(cfg), dtype), build)
