"""The online normaliser in hardware (twin of ``golden/online.py``; the same recurrence, to the bit).

:func:`online_sum_stages` adds to a pipeline that never stalls, whose current stage holds each
element's exponent ``n`` and mantissa ``p`` (``p = 0`` where the position is masked), the stages
that keep the running maximum ``R`` and the two lanes' sums, and hands out ``(R, S)`` at a row's end:

1. ``R_j = max(R_(j-1), n_j)``: a compare and a multiplexer in the loop; ``R_(j-1)``, ``R_(j-2)``
   registered beside it (the row's first position sees neither: golden's ``-inf`` is
   :func:`no_reference`, far enough below every exponent that any shift by a difference with it
   clears its word);
2. the shift amounts, each saturated at the width it shifts (a shift by all ones clears the word):
   the term's ``R_j - n_j``, the lane's ``R_j - R_(j-2)`` (all ones at the row's first two
   positions: the lane starts at 0), the end's ``R_j - R_(j-1)``;
3. and 4. the term ``p_j >> (R_j - n_j)`` (:func:`spikeops.hdl.exp.shift_stages`);
5. the lane's sum shifted by the high bits of ``R_j - R_(j-2)``, registered;
6. ``S^(j mod 2) = (X >> low bits) + term``: the loop of a lane is these two stages, and the lanes
   take turns, so an element a cycle updates each lane at most every other cycle (a row's first
   position follows the last of the row before in the same lane, but starts it at 0).  At a row's
   end the stage also registers the new sum and the other lane's;
7. the other lane's sum shifted by ``R_(n-1) - R_(n-2)`` (0 for a row of one element);
8. ``S`` = their sum.

:data:`ONLINE_STAGES` stages in all.
"""

from __future__ import annotations

from amaranth.hdl import Mux, Signal, signed

from .exp import shift_stages

__all__ = ["online_sum_stages", "no_reference", "exponent_range", "reference_shape", "saturated", "ONLINE_STAGES"]

#: stages of :func:`online_sum_stages`
ONLINE_STAGES = 8


def exponent_range(cfg) -> tuple[int, int]:
    """The exponents ``n = (x L) >> F`` of Softmax ``cfg``'s input codes: ``(lowest, highest)``."""
    ecfg, fmt = cfg.exp, cfg.in_format
    return (fmt.min_code * ecfg.log2e_code) >> ecfg.w_frac, (fmt.max_code * ecfg.log2e_code) >> ecfg.w_frac


def no_reference(cfg) -> int:
    """The RTL's reference before a row's first valid position: 64 below the lowest exponent, so a
    difference with it saturates every shift (golden's is lower still; the results are the same)."""
    return exponent_range(cfg)[0] - 64


def reference_shape(cfg):
    """The shape of the RTL's reference: from :func:`no_reference` to the highest exponent."""
    return signed(max(no_reference(cfg).bit_length(), exponent_range(cfg)[1].bit_length()) + 1)


def saturated(diff, width: int):
    """``diff`` (never negative where it matters) as a ``width``-bit shift amount: all ones from
    ``2**width - 1`` on.  Any bit above the amount's sets it to all ones (an OR of those bits, no
    compare chain after the subtraction that forms ``diff``)."""
    top = (1 << width) - 1
    if len(diff) <= width:
        return diff[:width]
    return Mux(diff[width:].any(), top, diff[:width])


def online_sum_stages(pipe, n, p, *, valid, first, last, lane, cfg):
    """Add the stages (module docstring) to ``pipe``; ``n``, ``p`` (0 where masked), ``valid`` (a
    valid position), ``first``/``last`` (the row's first/last position) and ``lane`` (the
    position's parity) are this stage's.  Return the last stage: ``r`` (the reference), ``total``
    (``S``) and ``last`` (read them where ``valid & last``); values carried on ``pipe`` ride along."""
    m = pipe.m
    none = no_reference(cfg)
    rshape = reference_shape(cfg)
    sum_width = cfg.sum_width
    term_bits = max(1, (cfg.e_width).bit_length())
    sum_bits = max(1, sum_width.bit_length())

    # 1. the running maximum and the two before it
    run = Signal(rshape, init=none, name="on_run")
    lag = Signal(rshape, init=none, name="on_lag")
    prev1, prev2 = Mux(first, none, run), Mux(first, none, lag)
    own = Mux(valid, n, none)
    new = Mux(own > prev1, own, prev1)
    with m.If(pipe.valid):
        m.d.sync += [run.eq(new), lag.eq(prev1)]
    fresh = Signal(name="on_fresh")          # the row's second position follows
    with m.If(pipe.valid):
        m.d.sync += fresh.eq(first)
    s1 = pipe.stage(r=new, r1=prev1, r2=prev2, n=n, p=p, start=first | fresh, lane=lane, first=first, last=last)
    # 2. the shift amounts
    s2 = pipe.stage(r=s1.r, p=s1.p, lane=s1.lane, single=s1.first, last=s1.last,
                    term=saturated(s1.r - s1.n, term_bits),
                    lane_sh=Mux(s1.start, (1 << sum_bits) - 1, saturated(s1.r - s1.r2, sum_bits)),
                    end_sh=saturated(s1.r - s1.r1, sum_bits))
    # 3., 4. the term
    t, s3 = shift_stages(pipe, s2.p, s2.term, r=s2.r, lane=s2.lane, single=s2.single, last=s2.last,
                         lane_sh=s2.lane_sh, end_sh=s2.end_sh)
    s4 = pipe.stage(t=t[:cfg.e_width], r=s3.r, lane=s3.lane, single=s3.single, last=s3.last,
                    lane_sh=s3.lane_sh, end_sh=s3.end_sh)
    # 5., 6. the lanes: shift, then add
    lanes = [Signal(sum_width, name=f"on_lane{k}") for k in range(2)]
    # the shift split across the loop's two stages: by the amount's high bits as the lane is read,
    # by its low bits before the add (:func:`spikeops.hdl.exp.shift_stages`)
    x, s5 = shift_stages(pipe, Mux(s4.lane, lanes[1], lanes[0]), s4.lane_sh, t=s4.t, r=s4.r, lane=s4.lane,
                         single=s4.single, last=s4.last, end_sh=s4.end_sh)
    total = (x + s5.t)[:sum_width]
    with m.If(s5.valid):
        with m.If(s5.lane):
            m.d.sync += lanes[1].eq(total)
        with m.Else():
            m.d.sync += lanes[0].eq(total)
    # the other lane as it is now: its last element of the row has been added (two positions back)
    s6 = pipe.stage(mine=total, other=Mux(s5.lane, lanes[0], lanes[1]), r=s5.r, single=s5.single,
                    last=s5.last, end_sh=s5.end_sh)
    # 7., 8. the row's sum
    s7 = pipe.stage(mine=s6.mine, other=Mux(s6.single, 0, s6.other >> s6.end_sh), r=s6.r, last=s6.last)
    return pipe.stage(total=(s7.mine + s7.other)[:sum_width], r=s7.r, last=s7.last)
