"""The Division Neuron Group row by row, shared by the Softmax and norm paths (and their kernels).

Golden's ``divide(A, b, dcfg, b_exp=...)`` (:mod:`spikeops.golden.division`) has one denominator
per row, so every quotient of a row is

    q = min(floor((floor(A * scale) + beta) / T), q_max)

with per-row float64 constants ``scale, beta, T`` from golden's own helpers (``bit_length``,
``barrel_shift``) on the row's denominator (:func:`row_division`).  That float64 quotient is exact
when ``A <= 2**53`` and ``N + T <= 2**53`` (``N`` the unsaturated current): then ``N/T`` lies
``>= 1/T`` below the next integer, more than half an ulp, so ``floor(fl(N/T)) = floor(N/T)``.
Saturated currents exceed ``2**q_width * T`` and reach ``q_max`` through the ``min``.  The inner
floor only matters when some ``scale < 1``; else ``floor(A * scale) = A * scale`` and one fused
``beta + A * scale`` serves (:func:`apply_division`).  The kernels evaluate the same expression
in C doubles.
"""

from __future__ import annotations

import numpy as np
import torch

from spikeops.golden.shift import barrel_shift, bit_length

__all__ = ["row_division", "apply_division", "neutral_rows"]


def row_division(b, dcfg, b_exp=None):
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


def neutral_rows(params, rows) -> None:
    """Set the constants of ``rows`` (a bool mask) to ``scale = 0, beta = 0, T = 1``: every
    quotient 0 (Softmax's fully masked rows, whose ``where(valid, q, 0)`` is 0 everywhere)."""
    scale, beta, t = params
    scale[rows], beta[rows], t[rows] = 0.0, 0.0, 1.0


def apply_division(a: torch.Tensor, params, q_max: int) -> torch.Tensor:
    """``min(floor((floor(a * scale) + beta) / T), q_max)`` on float64 ``a`` (rows on the last axis);
    ``params = ((scale, beta, T), floor_needed)`` from :func:`row_division`."""
    (scale, beta, t), floor_needed = params
    col = a.shape[:-1] + (1,)

    def rows(v):
        return torch.from_numpy(np.ascontiguousarray(v, dtype=np.float64)).reshape(col)

    if floor_needed:
        n = torch.mul(a, rows(scale)).floor_().add_(rows(beta))
    else:
        n = torch.addcmul(rows(beta), a, rows(scale))
    return n.div_(rows(t)).floor_().clamp_max_(float(q_max))
