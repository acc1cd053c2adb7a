"""The online normaliser in hardware (twin of ``golden/online.py``; the same recurrence, to the bit).

:func:`online_sum_stages` adds to a pipeline that never stalls, whose current stage holds each
element's exponent ``n`` and mantissa ``p`` (``p = 0`` where the position is masked), the stages
that keep the running maximum ``R`` and the ``L`` = :data:`spikeops.golden.online.LANES` lanes'
sums, and hands out ``(R, S)`` at a row's end:

1. ``R_j = max(R_(j-1), n_j)``: a compare and a multiplexer in the loop; ``R_(j-1)`` .. ``R_(j-L)``
   registered beside it (before the row's first position they are golden's ``-inf``,
   :func:`no_reference`, far enough below every exponent that any shift by a difference with it
   clears its word; the RTL holds exponents biased by it, :func:`biased_exponent`), the lane
   ``j mod L`` counted;
2. the shift amounts, each saturated at the width it shifts (a shift by all ones clears the word):
   the term's ``R_j - n_j``, the lane's ``R_j - R_(j-L)`` (all ones at the row's first ``L``
   positions: the lane starts at 0), the end's ``R_j - R_(j-k)``, ``k = 1 .. L-1``;
3. and 4. the term ``p_j`` and the lane's sum, each shifted by its amount
   (:func:`spikeops.hdl.shift.right_shift_stages`: high bits, then low bits);
5. ``S^(j mod L) = X + term``: the loop of a lane is stages 3 to 5, and the lanes take turns, so an
   element a cycle updates each lane at most every third cycle.  At a row's end the stage also
   registers the new sum and the other lanes' (0 for a lane the row did not reach);
6. and 7. the other lanes' sums shifted to the row's reference, by ``R_(n-1) - R_(n-1-k)``;
8. ``S`` = their sum.

:data:`ONLINE_STAGES` stages in all.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Mux, Signal, unsigned

from spikeops.golden.online import LANES

from .pipeline import Stage
from .shift import SHIFT_STAGES, right_shift_stages

__all__ = ["online_sum_stages", "no_reference", "exponent_range", "reference_shape", "biased_exponent", "saturated",
           "ONLINE_STAGES"]

#: stages of :func:`online_sum_stages`: the maximum, the amounts, the shifts, the add, the other
#: lanes' shifts, the row's sum
ONLINE_STAGES = 2 + SHIFT_STAGES + 1 + SHIFT_STAGES + 1


def exponent_range(cfg) -> tuple[int, int]:
    """The exponents ``n = (x L) >> F`` of Softmax ``cfg``'s input codes: ``(lowest, highest)``."""
    ecfg, fmt = cfg.exp, cfg.in_format
    return (fmt.min_code * ecfg.log2e_code) >> ecfg.w_frac, (fmt.max_code * ecfg.log2e_code) >> ecfg.w_frac


def no_reference(cfg) -> int:
    """The RTL's reference before a row's first valid position: 64 below the lowest exponent, so a
    difference with it saturates every shift (golden's is lower still; the results are the same)."""
    return exponent_range(cfg)[0] - 64


def reference_shape(cfg):
    """The shape of the RTL's exponents and references, biased by :func:`no_reference` (so the
    reference before a row's first valid position is 0 and every compare is unsigned: one carry
    chain whose carry out is the answer)."""
    return unsigned((exponent_range(cfg)[1] - no_reference(cfg)).bit_length())


def biased_exponent(n, cfg, valid=None):
    """The exponent ``n`` as the RTL holds it, ``n - no_reference(cfg)`` (0 where ``valid`` is low)."""
    b = (n - no_reference(cfg))[:reference_shape(cfg).width]
    return b if valid is None else Mux(valid, b, 0)


def saturated(diff, width: int):
    """``diff`` (never negative where it matters) as a ``width``-bit shift amount: all ones from
    ``2**width - 1`` on.  Any bit above the amount's sets it to all ones (an OR of those bits, no
    compare chain after the subtraction that forms ``diff``)."""
    top = (1 << width) - 1
    if len(diff) <= width:
        return diff[:width]
    return Mux(diff[width:].any(), top, diff[:width])


def online_sum_stages(pipe, n, p, *, first, last, cfg):
    """Add the stages (module docstring) to ``pipe``; ``n`` (:func:`biased_exponent`, 0 where
    masked), ``p`` (0 where masked) and ``first``/``last`` (the row's first/last position) are this
    stage's.  Return the last stage: ``r`` (the biased reference), ``total`` (``S``) and ``last``
    (read them where ``valid & last``); values carried on ``pipe`` ride along."""
    m = pipe.m
    lanes_n = LANES
    none = 0                              # no_reference, biased
    rshape = reference_shape(cfg)
    sum_width = cfg.sum_width
    term_bits = max(1, (cfg.e_width).bit_length())
    sum_bits = max(1, sum_width.bit_length())

    # 1. the running maximum and the references before it (R_(j-1-k), k < LANES, of this element:
    # -inf before the row's first position), the lane, whether the lane starts here, and for each
    # k >= 1 whether position j - k is in the row
    hist = [Signal(rshape, init=none, name=f"on_ref{k}") for k in range(lanes_n)]
    prev = [Mux(first, none, h) for h in hist]
    # the loop: an unsigned compare of two registers, the row's start beside it
    new = Mux(first | (n > hist[0]), n, hist[0])
    lane_next = Signal(range(lanes_n), name="on_lane_next")
    lane = Mux(first, 0, lane_next)
    firsts = Signal(lanes_n - 1, name="on_firsts")     # bit k: position j-1-k was its row's first
    with m.If(pipe.valid):
        m.d.sync += [hist[0].eq(new), lane_next.eq(Mux(lane == lanes_n - 1, 0, lane + 1)),
                     firsts.eq(Cat(first, firsts[:-1]))]
        m.d.sync += [hist[k].eq(prev[k - 1]) for k in range(1, lanes_n)]
    inside = [~(first | firsts[:k - 1].any()) if k > 1 else ~first for k in range(1, lanes_n)]
    s1 = pipe.stage(r=new, n=n, p=p, start=first | firsts.any(), lane=lane, last=last,
                    **{f"r{k}": prev[k - 1] for k in range(1, lanes_n + 1)},
                    **{f"in{k}": inside[k - 1] for k in range(1, lanes_n)})
    # 2. the shift amounts
    ends = {f"end{k}": saturated(s1.r - s1[f"r{k}"], sum_bits) for k in range(1, lanes_n)}
    s2 = pipe.stage(r=s1.r, p=s1.p, lane=s1.lane, last=s1.last, term=saturated(s1.r - s1.n, term_bits),
                    lane_sh=Mux(s1.start, (1 << sum_bits) - 1, saturated(s1.r - s1[f"r{lanes_n}"], sum_bits)),
                    **ends, **{f"in{k}": s1[f"in{k}"] for k in range(1, lanes_n)})
    # 3., 4. the term and the lane's sum, each shifted by its amount's high bits, then its low bits;
    # 5. the add.  A lane's loop is these three stages (read in 3, written in 5), and the lanes take
    # turns, so an element a cycle updates each lane at most every third cycle (a row's first
    # positions may follow the row before's last in the same lane, but start it at 0)
    lanes = [Signal(sum_width, name=f"on_lane{k}") for k in range(lanes_n)]
    pipe.carry(on_r=s2.r, on_lane=s2.lane, on_last=s2.last, **{f"on_end{k}": s2[f"end{k}"] for k in range(1, lanes_n)},
               **{f"on_in{k}": s2[f"in{k}"] for k in range(1, lanes_n)})
    t, x = right_shift_stages(pipe, [(s2.p, s2.term, cfg.e_width), (Array(lanes)[s2.lane], s2.lane_sh, sum_width)])
    c = {k[3:]: pipe.carried.pop(k) for k in [k for k in pipe.carried if k.startswith("on_")]}
    s4 = Stage(pipe.valid, {"t": t, "x": x, **c})      # the shifts' second stage, registered
    total = (s4.x + s4.t)[:sum_width]
    with m.If(s4.valid):
        m.d.sync += Array(lanes)[s4.lane].eq(total)
    # the other lanes as they are now: each has taken its last element of the row (k positions back)
    others = {}
    for k in range(1, lanes_n):
        idx = Mux(s4.lane >= k, s4.lane - k, s4.lane + lanes_n - k)
        others[f"o{k}"] = Mux(s4[f"in{k}"], Array(lanes)[idx], 0)
    s5 = pipe.stage(mine=total, r=s4.r, last=s4.last, **others, **{f"end{k}": s4[f"end{k}"] for k in range(1, lanes_n)})
    # 6., 7. the other lanes shifted to the row's reference; 8. the row's sum
    pipe.carry(on_mine=s5.mine, on_r=s5.r, on_last=s5.last)
    shifted = right_shift_stages(pipe, [(s5[f"o{k}"], s5[f"end{k}"], sum_width) for k in range(1, lanes_n)])
    mine, r, last = (pipe.carried.pop(k) for k in ("on_mine", "on_r", "on_last"))
    return pipe.stage(total=sum(shifted, mine)[:sum_width], r=r, last=last)
