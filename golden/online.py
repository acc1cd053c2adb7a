"""The online normaliser (Softmax ``normalizer="online"``): a running maximum and a running sum of
exponentials, the sum rescaled by right shifts whenever the maximum grows, so that a row's sum is
known a fixed number of cycles after its last element, whatever its length.

Number format: each valid position ``j`` of a row brings an exponent ``n_j`` (a signed integer in
log2 units) and a mantissa ``p_j`` in ``[2**f, 2**(f+1))`` (``f`` = ``mant_frac`` fraction bits;
:func:`spikeops.golden.exp.range_mantissa`), so that ``e**x_j ~ p_j 2**(n_j - f)``.  The reference
is the running maximum of the exponents, an integer, so a change of reference is a shift.

The positions are taken in row order ``j = 0 .. n-1`` in ``L`` = :data:`LANES` = 3 interleaved
lanes (lane ``j mod L``, masked positions included), each lane's sum a recurrence of its own; the
hardware's sum is a loop of three cycles (a shift in two stages, then an add), so each lane is
updated every third element at most::

    R_j = max(R_(j-1), n_j)  if j is valid, else R_(j-1)             R_(-1) = .. = R_(-L) = -inf
    S^(j mod L) <- (S^(j mod L) >> (R_j - R_(j-L))) + (p_j >> (R_j - n_j))   (+ 0 if j is masked)
    R = R_(n-1)
    S = sum_(k = 0 .. min(L, n) - 1) S^((n-1-k) mod L) >> (R_(n-1) - R_(n-1-k))

Every shift is to the right by a non-negative amount (by the word's width or more it gives 0), and
a lane's sum starts at 0 at its row's first position, so ``S`` is an integer the RTL reproduces to
the bit.  Error: a floor of a sum is at least the sum of the floors, so with ``e_j = p_j >> (R -
n_j)`` (each term floored once, at the final reference: what the send pass divides)::

    sum_j e_j  <=  S  <=  sum_j p_j 2**(n_j - R)            (valid j)

the same band the three-pass Softmax's sum lies in, whatever the order of the row.  With no valid
position ``S = 0`` and ``R`` stays at :data:`NO_REFERENCE`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["LANES", "NO_REFERENCE", "online_sum", "online_softmax_terms", "shift_right"]

#: interleaved partial sums (the RTL's loop, a shift in two stages then an add, takes three cycles)
LANES = 3
#: the reference of a row with no valid position so far: below every exponent by more than any
#: word's width (the exponents of a 62-bit argument times log2 e stay far above it)
NO_REFERENCE = -(1 << 20)


def shift_right(value, amount) -> np.ndarray:
    """``value >> amount`` for non-negative int64 ``value`` and ``amount`` (0 from 63 on)."""
    return np.asarray(value, dtype=np.int64) >> np.minimum(np.asarray(amount, dtype=np.int64), 63)


def online_sum(n, p, valid) -> tuple[np.ndarray, np.ndarray]:
    """``(R, S)`` over the last axis (module docstring): ``n``, ``p`` int64 exponents and mantissas,
    ``valid`` bool, all of one shape; ``R`` and ``S`` have the last axis kept (length 1).

    Everything but the lanes' own recurrence is vectorised (the running maximum is a cumulative
    maximum, the terms and the lanes' shift amounts follow from it); the recurrence steps ``LANES``
    positions at a time, one for each lane."""
    n = np.asarray(n, dtype=np.int64)
    p = np.asarray(p, dtype=np.int64)
    valid = np.broadcast_to(np.asarray(valid, dtype=bool), n.shape)
    length = n.shape[-1]
    groups = -(-length // LANES)
    # R_(j), with LANES references of -inf before the row, and the row padded to whole groups (a
    # padded position shifts its lane by 0 and adds 0)
    ref = np.maximum.accumulate(np.where(valid, n, NO_REFERENCE), axis=-1)
    pad = [(0, 0)] * (n.ndim - 1)
    refs = np.pad(ref, pad + [(LANES, groups * LANES - length)], constant_values=NO_REFERENCE)
    terms = np.where(valid, shift_right(p, ref - np.where(valid, n, ref)), 0)
    terms = np.pad(terms, pad + [(0, groups * LANES - length)])
    shifts = refs[..., LANES:] - refs[..., :-LANES]          # R_j - R_(j-L)
    shifts[..., length:] = 0
    lanes = np.zeros(n.shape[:-1] + (LANES,), dtype=np.int64)
    for g in range(groups):
        at = slice(g * LANES, (g + 1) * LANES)
        lanes = shift_right(lanes, shifts[..., at]) + terms[..., at]
    last = refs[..., LANES + length - 1]
    total = np.zeros(n.shape[:-1], dtype=np.int64)
    for k in range(min(LANES, length)):
        j = length - 1 - k
        total = total + shift_right(lanes[..., j % LANES], last - refs[..., LANES + j])
    return last[..., None], total[..., None]


def online_softmax_terms(n, p, valid) -> tuple[np.ndarray, np.ndarray]:
    """``(e, S)``: the numerators ``e_j = p_j >> (R - n_j)`` (0 where not valid) and the row sums
    of :func:`online_sum` (last axis kept), what the division of the online Softmax takes."""
    valid = np.broadcast_to(np.asarray(valid, dtype=bool), np.shape(n))
    ref, total = online_sum(n, p, valid)
    return np.where(valid, shift_right(p, ref - np.where(valid, n, ref)), 0), total
