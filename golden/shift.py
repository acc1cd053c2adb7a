"""Shift scaling: leading-one detection and a barrel shift (bit-exact twins of ``hdl/shift.py``).

All scales in spikeops are powers of two, so rescaling is a shift:

* ``bit_length(x)`` = 1 + the position of the leading one of ``x >= 0`` (0 for ``x == 0``);
* ``barrel_shift(x, s)`` = ``x * 2**s`` for ``s >= 0`` and ``floor(x * 2**s)`` (an arithmetic right
  shift) for ``s < 0``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["bit_length", "barrel_shift", "normalise"]


def bit_length(x) -> np.ndarray:
    """Leading-one detection on non-negative int64: ``floor(log2(x)) + 1``, and 0 for 0."""
    v = np.asarray(x, dtype=np.int64)
    # frexp gives the exact exponent below 2**53; above, rounding to float64 may carry into the
    # next power of two, which the check below undoes (it never rounds down across one).
    n = np.frexp(v.astype(np.float64))[1].astype(np.int64)
    over = (n > 0) & ((v >> np.maximum(n - 1, 0)) == 0)
    return n - over


def barrel_shift(x, s) -> np.ndarray:
    """``x * 2**s`` for ``s >= 0``, ``floor(x / 2**-s)`` for ``s < 0`` (element-wise shift amounts).

    Left shifts must not overflow int64 (callers bound them); right shifts by 63 or more give the
    sign (0 or -1), as an arithmetic shift of any width would.
    """
    x = np.asarray(x, dtype=np.int64)
    s = np.asarray(s, dtype=np.int64)
    if s.ndim == 0 or (s.min() >= 0 if s.size else True) or s.max() <= 0:
        # one direction for every element: a single vector shift
        if s.size and s.max() > 0:
            return x << s
        return x >> np.minimum(-s, 63)
    return np.where(s >= 0, x << np.maximum(s, 0), x >> np.minimum(-s, 63))


def normalise(x, width: int):
    """Shift ``x >= 0`` so that its leading one sits at bit ``width - 1``.

    Returns ``(m, e)`` with ``m = barrel_shift(x, e)`` and ``e = width - bit_length(x)``: ``m`` has
    exactly ``width`` significant bits (truncated when ``x`` is wider), and ``x ~= m * 2**-e``.
    """
    e = width - bit_length(x)
    return barrel_shift(x, e), e
