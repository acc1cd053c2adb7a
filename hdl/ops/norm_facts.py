"""The facts of a norm operator's reachable states (:mod:`spikeops.hdl.claims`), for the proofs of
its stream contract (:mod:`spikeops.verif.formal`): the counts that tie its ring, queues and
pipelines together, the held elements in output order, and for RMSNorm's ``zero`` (a zero input
answers 0) where the tagged input's zero is and why its row's root is normalised.

``p`` holds the operator's parts by name (:meth:`~spikeops.hdl.ops.norms._Norm.elaborate`): the
send pipeline ``p3`` and pass ``send``, the ring ``xbuf`` with its write pointer ``wr`` and unread
entries ``used``, the queues ``rowq`` and ``rootq``, the register ``row_root``, the receive side
(``j``, ``at_end``, ``full``, the feed's skid ``held_v``/``held``) and, for the exact norm, the
sums' pipelines and the square-root unit (``flight``).
"""

from __future__ import annotations

from amaranth.hdl import Const, Value

from ..claims import Claims
from ..division import zero_dividend
from ..norm import SqrtNode
from ..rowbuffer import ring_add

__all__ = ["norm_claims", "norm_sequence"]


def norm_claims(d: int, p) -> Claims:
    """The facts of a reachable state: the ring's entries not yet read by the send pass are the row
    being received (``j`` of them) and the rows whose descriptors wait in the row queue or are being
    read; every accepted element is in the ring or the send pipeline.  Exact norm: each row in the
    row queue is on its way to being due (in the sums' pipelines, the Q queue, the square-root
    unit's delay line) or due; a row's last element never waits in the feed's skid (the port takes
    it only when the norm can)."""
    p3, send, rowq, used, j = p["p3"], p["send"], p["rowq"], p["used"], p["j"]
    c = Claims(held=used + p3.held, open=j)
    c.extend(p3.claims()).extend(send.claims())
    c.add(used <= p["depth"], f"ring: used <= depth {p['depth']}")
    c.add(p["full"] == (used == p["depth"]), "ring: full = (used = depth)")
    c.add(p["at_end"] == (j == d - 1), "receive: j_last = (j = d - 1)")
    c.add(used - j == d * rowq.level + send.remaining,
          "ring: used - j = d x queued rows + entries left of the row being read")
    c.assume(~rowq.r_rdy | (send.incoming.n == d), "row queue: a descriptor offered was written (n = d)")
    c.add(~send.busy | (send.row.n == d), "send: the row being read has d entries")
    flight = p.get("flight")
    if flight is not None:
        sq, ends, qq = flight["sq"], flight["ends"], flight["qq"]
        c.part(flight["unit"])
        c.add(~p["held_v"] | ~p["held"].end, "feed: a row's last element never waits in the skid")
        on_way = (sum((v & k["end"] for v, k in zip(sq.valids, sq.stage_carried)), Const(0, 1))
                  + sum(ends.valids, Const(0, 1)) + qq.level + sum(p["line"], Const(0, 1)))
        c.add(rowq.level == p["due_rows"] + on_way,
              "rows queued = rows due + rows in the sums' pipelines, the Q queue and the delay line")
    return c


def norm_sequence(m, c: Claims, d: int, p, out_width: int, zero: bool):
    """The held elements in output order (:attr:`Claims.sequence`, for a proof only: it adds read
    ports to the output queue and the ring): the output register, the queue and the stages carry
    each element's ``last``; the ring's ``used`` entries follow the send pass's row, ``d`` to a row,
    so an entry ends its row when its index from the send pass's position, plus the entries of that
    row already sent, is ``d - 1`` modulo ``d``.

    ``zero`` (RMSNorm, exact norm): a zero input's ring entry holds 0, read where the write pointer
    (the send pass's plus ``used``) says; so do its send stages (:func:`_zero_stages`), the output
    register and the queue, which needs the row's root normalised where the division reads it
    (:func:`_root_facts`)."""
    send, used, depth = p["send"], p["used"], p["depth"]
    p["p3"].row_segments(c, out_width, zero=_zero_stages(p) if zero else None)

    def place(i, tag):
        return ((((i + d - send.remaining) % d) == d - 1) == tag.end,
                "order: a ring entry's place in its row is the tagged input's")
    if not zero:
        c.segment(used, lambda m, i, tag: [place(i, tag)])
        return
    c.add_value(p["wr"] == ring_add(send.ptr, used, depth),
                "ring: the write pointer is the send pass's plus the unread entries")
    addr, entry = p["xbuf"].peek(m)

    def ring(m, i, tag):
        m.d.comb += addr.eq(ring_add(send.ptr, i, depth))
        return [place(i, tag), (~tag.zero | (entry == 0), "zero: the tagged input's ring entry holds 0")]
    c.segment(used, ring)
    _root_facts(c, d, p)


def _zero_stages(p):
    """Where the tagged zero input is in the send pipeline, what its stage holds (``zero(s,
    registers)`` of :meth:`~spikeops.hdl.pipeline.CreditPipeline.row_segments`): the buffer's
    output register 0, then ``|v| = 0``, the product 0; in the division's stages what a zero
    dividend holds (:func:`~spikeops.hdl.division.zero_dividend`), the row's root ``b`` with its
    leading one in its top two bits, where ``b_lead`` / ``p_b`` say; ``y`` 0.  The stages inside
    the multiplier blocks and the shifts state nothing (at most three in a row: :attr:`Claims.settle`, so
    the induction is 5 long)."""
    xbuf, top = p["xbuf"], _root_top(p)

    def normalised(r):
        lead = r.get("b_lead", r.get("p_b"))
        return (r["b"][top:] != 0) & (lead == top + r["b"][top + 1])
    division = zero_dividend(p["p3"], normalised)

    def zero(s, r):
        if s == xbuf.latency - 1:
            return xbuf.port_data(0) == 0      # the send pass reads port 0
        if s in p["p3"].spans["division"]:
            return division(s, r)
        for name in ("y", "p", "av"):
            if name in r:
                return r[name] == 0
        return None
    return zero


def _root_top(p) -> int:
    """A normalised root's leading one is bit ``top`` or ``top + 1`` of ``row_root.rms`` (the
    division's ``b_leading_one``, :meth:`~spikeops.hdl.ops.norms._Norm.elaborate`)."""
    return len(p["row_root"].rms) - 2


def _root_facts(c: Claims, d: int, p):
    """Why the root a row's elements meet in the division is normalised, its leading one in its top
    two bits, where the division takes it to be (``b_leading_one``; a zero root answers the largest
    quotient whatever the dividend, a smaller one may too), as value claims: the register
    ``row_root`` (its initial value is, and it loads only a root the queue offers), every root in
    ``rootq`` (a shadow of that test), every ``Q`` in the Q queue not 0 (so its root is
    normalised: a shadow of its zero test), and the sum of squares so far, ``acc2``, at
    most ``max_sq`` for each element of its row already in it, so that ``Q = sum + eps**2`` does not
    wrap to 0 in its ``q_width`` bits.  That count is ``(j - in flight) mod d``, the elements in
    flight being those in the squares' stages and the feed's skid, oldest first, each ending its row
    where its place in it says.  The square-root unit states its own (given a ``Q`` that is never
    0); the squares' and the sums' stages, the unit's preparation and the read-out state nothing, so
    they set :attr:`Claims.settle`."""
    flight, rootq, row_root = p["flight"], p["rootq"], p["row_root"]
    top = _root_top(p)
    c.add_value(row_root.rms[top:] != 0, "root: the row's root (row_root) has its leading one in its top two bits")
    c.shadow(rootq, lambda w: Value.cast(w)[top:top + 2] != 0, low=1, high=1, name="rootq", value_only=True)
    qq, sq = flight["qq"], flight["sq"]
    c.shadow(qq, lambda w: Value.cast(w) != 0, low=1, high=1, name="qq", value_only=True)
    flight["unit"].nonzero_input = True       # its roots are normalised: its own value claims
    # the stages that state nothing on a root's way: the squares (x to x**2), the sums (to Q), the
    # unit's preparation (Q to its first digit) and the read-out (the root to the queue)
    c.settle = max(c.settle, sq.latency, flight["ends"].latency, SqrtNode.PREPARE - 1, p["readout"].latency)
    # in flight, oldest first: the squares' stages (the last is the oldest), then the skid
    places = [(v, k["end"]) for v, k in zip(reversed(sq.valids), reversed(sq.stage_carried))]
    places.append((p["held_v"], p["held"].end))
    in_flight = sum((v for v, _ in places), Const(0, 1))
    n_acc = (p["j"] + d * len(places) - in_flight) % d
    older = Const(0, 1)
    for s, (v, end) in enumerate(places):
        c.add_value(~v | (end == ((n_acc + older) % d == d - 1)),
                    f"sums: the element in flight at place {s} ends its row where its place in it says")
        older = older + v
    c.add_value(flight["acc2"] <= flight["max_sq"] * n_acc,
                "sums: the sum of squares is at most max_sq for each element of its row already in it")
