"""Error metrics of the integer operators against the exact float64 ones: one copy of each rule.

Two views, both in output LSBs (``2**-out_frac``) and in real units:

* :func:`grid_errors` (the error report): ours against the exact result *rounded to the same grid
  the same way* (``reference.round_to_grid`` with the configuration's rounding) and clipped to the
  output format, so that a perfect operator scores 0 LSB; plus the unrounded distance where the
  exact result is representable, and the fraction of elements whose exact result is not.
* :class:`ErrorStats` (captured activations, sweeps, the main job): the unrounded distance
  ``|ours * 2**-out_frac - clip(exact)|`` over the valid elements, accumulated over groups that may
  have different output formats (each captured instance has its own calibrated scale).  The exact
  result is clipped to the output format's range first: saturation is the format's, not an error
  of the operator; the share of elements it affects is reported as ``saturated``.
"""

from __future__ import annotations

import numpy as np

from .fixed import FixedFormat, dequantize
from .reference import round_to_grid

__all__ = ["grid_errors", "ErrorStats"]


def grid_errors(ours, exact, fmt: FixedFormat, rounding: str) -> dict:
    """The error report's figures of output codes ``ours`` against float64 ``exact`` (same shape)."""
    n = fmt.frac
    ref = np.clip(round_to_grid(exact, n, rounding), fmt.min_code, fmt.max_code)
    err = np.abs(ours - ref)
    err_u = np.abs(ours * 2.0 ** -n - exact)
    in_range = np.abs(exact) <= fmt.max_value
    return {
        "max_lsb": int(err.max()), "mean_lsb": float(err.mean()),
        "max_abs": float(err.max() * 2.0 ** -n), "mean_abs": float(err.mean() * 2.0 ** -n),
        "max_abs_unrounded": float(err_u[in_range].max()) if in_range.any() else 0.0,
        "mean_abs_unrounded": float(err_u[in_range].mean()) if in_range.any() else 0.0,
        "saturated_fraction": float(1.0 - in_range.mean()),
    }


class ErrorStats:
    """Running max / mean of ``|ours - exact|`` over groups of elements (see the module docstring)."""

    def __init__(self):
        self.elements = 0
        self.max_real = self.sum_real = self.max_lsb = self.sum_lsb = 0.0
        self.saturated = 0

    def add(self, ours, exact, fmt: FixedFormat, valid=None) -> "ErrorStats":
        """Add output codes ``ours`` (in ``fmt``) against float64 ``exact``; ``valid`` (bool) selects
        the elements that count (default: all)."""
        exact = np.asarray(exact, dtype=np.float64)
        valid = np.ones(exact.shape, dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
        lo, hi = fmt.min_code * fmt.lsb, fmt.max_code * fmt.lsb
        e = exact[valid]
        err = np.abs(dequantize(ours, fmt)[valid] - np.clip(e, lo, hi))
        if err.size:
            self.elements += err.size
            self.max_real = max(self.max_real, float(err.max()))
            self.sum_real += float(err.sum())
            self.max_lsb = max(self.max_lsb, float(err.max()) / fmt.lsb)
            self.sum_lsb += float(err.sum()) / fmt.lsb
            self.saturated += int(np.count_nonzero((e < lo) | (e > hi)))
        return self

    def as_dict(self) -> dict:
        """``elements``, ``err_max_lsb``, ``err_mean_lsb``, ``err_max_real``, ``err_mean_real`` and
        ``saturated`` (the fraction of elements whose exact result lies outside the format)."""
        n = max(self.elements, 1)
        return {"elements": self.elements, "err_max_lsb": self.max_lsb, "err_mean_lsb": self.sum_lsb / n,
                "err_max_real": self.max_real, "err_mean_real": self.sum_real / n,
                "saturated": self.saturated / n}
