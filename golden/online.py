"""The online normaliser (Softmax ``normalizer="online"``): a running maximum and a running sum of
exponentials, the sum rescaled by right shifts whenever the maximum grows, so that a row's sum is
known a fixed number of cycles after its last element, whatever its length.

Number format: each valid position ``j`` of a row brings an exponent ``n_j`` (a signed integer in
log2 units) and a mantissa ``p_j`` in ``[2**f, 2**(f+1))`` (``f`` = ``mant_frac`` fraction bits;
:func:`spikeops.golden.exp.range_mantissa`), so that ``e**x_j ~ p_j 2**(n_j - f)``.  The reference
is the running maximum of the exponents, an integer, so a change of reference is a shift.

The positions are taken in row order ``j = 0 .. n-1`` in :data:`LANES` = 2 interleaved lanes (lane
``j mod 2``, masked positions included), each lane's sum a recurrence of its own; the hardware's
sum is a loop of two cycles (shift, then add), so each lane is updated every other element at most::

    R_j = max(R_(j-1), n_j)  if j is valid, else R_(j-1)             R_(-1) = R_(-2) = -inf
    S^(j mod 2) <- (S^(j mod 2) >> (R_j - R_(j-2))) + (p_j >> (R_j - n_j))   (+ 0 if j is masked)
    R = R_(n-1)
    S = S^((n-1) mod 2) + (S^(n mod 2) >> (R_(n-1) - R_(n-2)))               (second term: n >= 2)

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

__all__ = ["LANES", "NO_REFERENCE", "online_sum", "shift_right"]

#: interleaved partial sums (the RTL's loop of shift then add takes two cycles)
LANES = 2
#: the reference of a row with no valid position so far: below every exponent by more than any
#: word's width (the exponents of a 62-bit argument times log2 e stay far above it)
NO_REFERENCE = -(1 << 20)


def shift_right(value, amount) -> np.ndarray:
    """``value >> amount`` for non-negative int64 ``value`` and ``amount`` (0 from 63 on)."""
    return np.asarray(value, dtype=np.int64) >> np.minimum(np.asarray(amount, dtype=np.int64), 63)


def online_sum(n, p, valid) -> tuple[np.ndarray, np.ndarray]:
    """``(R, S)`` over the last axis (module docstring): ``n``, ``p`` int64 exponents and mantissas,
    ``valid`` bool, all of one shape; ``R`` and ``S`` have the last axis kept (length 1)."""
    n = np.asarray(n, dtype=np.int64)
    p = np.asarray(p, dtype=np.int64)
    valid = np.broadcast_to(np.asarray(valid, dtype=bool), n.shape)
    length = n.shape[-1]
    rows = n.shape[:-1]
    ref = np.full(rows, NO_REFERENCE, dtype=np.int64)    # R_(j-1)
    ref2 = ref.copy()                                    # R_(j-2)
    lanes = [np.zeros(rows, dtype=np.int64) for _ in range(LANES)]
    for j in range(length):
        v = valid[..., j]
        new = np.where(v, np.maximum(ref, n[..., j]), ref)
        term = np.where(v, shift_right(p[..., j], new - np.where(v, n[..., j], new)), 0)
        lane = j % LANES
        lanes[lane] = shift_right(lanes[lane], new - ref2) + term
        ref2, ref = ref, new
    total = lanes[(length - 1) % LANES]
    if length >= 2:
        total = total + shift_right(lanes[length % LANES], ref - ref2)
    return ref[..., None], total[..., None]
