"""Softmax with a mask in hardware (twin of ``golden/ops/softmax.py``; same equations).

Ports: ``i`` streams ``{data: s<in_width>.<in_frac>, masked: 1, last: 1}`` (a position is masked by
``masked`` or by the mask code ``-2**(in_width-1)``); ``o`` streams ``{data: u<out_frac+1>.<out_frac>,
last: 1}``, one output per input, in order.  ``overflow`` (sticky until reset) reports a row longer
than ``d_max``: its first ``d_max`` elements form a row of their own.

Three passes over one row buffer (``buffer_depth`` entries used as a ring, block RAM, two read
ports), each pass working on its own row at one element per cycle, so a stream of rows of any
lengths flows at one element per cycle once the buffer holds the lag between receive and send:

1. receive: store the row in the ring, track the maximum ``m`` of the valid positions; at the row's
   end queue ``(n, m)`` for pass 2;
2. reduce: read the row again, ``e_i = PWL-Exp(x_i - m + H)`` (0 where masked) and ``S = sum e_i``;
   at the row's end queue ``(n, m, S)`` for pass 3 (this pass never stalls);
3. send: read the row a third time, ``e_i`` again (a second PWL-Exp datapath reading the same table
   through its second port, so no buffer of ``e`` is needed) and ``q_i = Division(e_i, S)`` through
   the II=1 division pipeline, which never stalls: the pass reads while the output queue of its
   :class:`spikeops.hdl.pipeline.CreditPipeline` has room, so the sink's ``ready`` reaches only
   that queue; each element read frees its ring entry.

The receive side accepts while the ring has a free entry and the row queue has room.  Row timing
(sink always ready, :class:`spikeops.hdl.timing.ThreePasses`): ``Softmax.timing(config)`` gives the
hand-over delays; a row arriving at an idle operator answers ``n + latency_for(config, 0)`` cycles
after its last input.

With ``normalizer="online"`` pass 2 goes: the receive pass writes the ring and feeds each element to
the range-reduced exponential's mantissa and the online sum (``hdl/online.py``: a running maximum
exponent ``R``, three lanes of sums rescaled by shifts), which queues ``(n, R, S)`` a fixed number of
cycles after the row's last element; the send pass reads the row, forms ``e_i = p_i >> (R - n_i)``
from the mantissa again and divides.  A row's first output then follows its last input by
``latency_for(config)`` cycles whatever its length (:class:`spikeops.hdl.timing.FixedDelay`).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, fifo, stream
from amaranth.lib.wiring import In, Out

from spikeops.golden.ops.softmax import SoftmaxConfig

from ..claims import Claims
from ..component import OperatorComponent
from ..division import division_latency, division_stages
from ..exp import RANGE_MANTISSA_STAGES, exp_latency, exp_stages, exp_table_rom, range_mantissa_stages
from ..online import ONLINE_STAGES, biased_exponent, online_sum_stages, reference_shape, saturated
from ..pipeline import CreditPipeline, Pipeline, credit_latency, reaches, stepped
from ..rowbuffer import RingPass, RowBuffer, ring_add
from ..shift import SHIFT_STAGES, right_shift_stages
from ..timing import FixedDelay, ThreePasses
from .base import OperatorSignature

__all__ = ["Softmax"]


#: stages of the exp's argument: the buffer's output register, then ``z = x - max + H``
_ARGUMENT_STAGES = 2


def _exp_of(pipe, buf, port, mx, cfg, rom):
    """Add the stages of ``e = PWL-Exp(x - mx + H)`` to ``pipe``, whose last stage holds the read
    of ``x`` from ``buf``'s ``port`` (a registered :class:`RowBuffer`: the data leave the block's
    output register a stage later, as a block RAM's clock-to-data is most of a cycle), carrying
    ``masked`` (``x`` is the mask code) along; return ``e`` (not yet zeroed where masked)."""
    ecfg = cfg.exp
    # ``H - mx`` is formed as the row's maximum enters the carried registers, so that the block
    # RAM's data meet one adder, ``z = x + (H - mx)``, not two
    pipe.carry(arg_hm=ecfg.H_codes - mx)
    pipe.stage()                         # the buffer's output register
    x, hm = buf.port_data(port), pipe.carried.pop("arg_hm")
    pipe.carry(masked=x == cfg.in_format.mask_code)
    s = pipe.stage(z=(x + hm)[:ecfg.in_width].as_signed())
    return exp_stages(pipe, s.z, ecfg, rom)


class Softmax(OperatorComponent):
    """Stream softmax over rows of up to ``d_max`` elements (one :class:`SoftmaxConfig`)."""

    #: the division's leading ones in two stages without a target (the row sum is 40 bits wide)
    LEADING_ONE_STAGES = 2
    #: :meth:`_sequence` (``normalizer="row_max"``; the online form states no facts)
    ORDER_FACTS = ZERO_FACTS = True

    class Signature(OperatorSignature):
        config_type = SoftmaxConfig
        owner = "Softmax"

        @classmethod
        def build_members(cls, config):
            return {
                "i": In(stream.Signature(data.StructLayout(
                    {"data": signed(config.in_width), "masked": 1, "last": 1}))),
                "o": Out(stream.Signature(data.StructLayout(
                    {"data": unsigned(config.out_format.width), "last": 1}))),
                "overflow": Out(1),
            }

    @staticmethod
    def _online_to_send(config) -> int:
        """``normalizer="online"``: cycles from a row's last input to the send pass taking it: the
        registered element, the mantissa (:func:`spikeops.hdl.exp.range_mantissa_stages`), the
        online sum (:func:`spikeops.hdl.online.online_sum_stages`) and the sum queue's two cycles."""
        return 1 + RANGE_MANTISSA_STAGES + ONLINE_STAGES + 2

    @staticmethod
    def _to_send(config) -> int:
        """Cycles from the reduce pass's last read of a row to the send pass taking it: the reduce
        pipeline (buffer read, argument, PWL-Exp), the registered descriptor and the result queue's
        two cycles."""
        return 1 + _ARGUMENT_STAGES + exp_latency(config.exp) + 3

    @classmethod
    def queue_rows(cls, config) -> int:
        """Rows the reduce pass may run ahead of the send pass (and the row queue holds): a
        buffer's worth of rows of 64 elements, and enough rows of ``min(64, d_max)`` elements to
        cover a row's trip from reduce to send (``1 + (to_send + 1) / n``: with fewer, the reduce
        pass would wait for the send pass on back-to-back short rows)."""
        n = min(64, config.d_max)
        to_send = cls._online_to_send(config) if config.online else cls._to_send(config)
        return max(-(-config.buffer_depth // 64) + 1, 1 + -(-(to_send + 1) // n))

    @classmethod
    def timing(cls, config) -> ThreePasses | FixedDelay:
        """The row timing model (:class:`spikeops.hdl.timing.ThreePasses`) of this realisation:
        the receive pass's three stages, the registered row descriptor and the row queue's two cycles
        to the reduce pass; the reduce pipeline (buffer read, argument, PWL-Exp), the registered
        descriptor and the result queue's two cycles to the send pass; then the send pipeline (buffer read, argument, PWL-Exp,
        division, output queue) after the first read.  ``normalizer="online"``:
        :class:`spikeops.hdl.timing.FixedDelay`, the row's sum known a fixed time after its last
        input (:meth:`_online_to_send`), then the send pipeline (the pass taking the row, buffer
        read, its output register, the mantissa, the shift amount, the shift's two stages, the
        division, the output queue)."""
        division = credit_latency(division_latency(config.division, **cls.division_options(config)))
        if config.online:
            return FixedDelay(to_send=cls._online_to_send(config),
                              to_output=2 + 1 + RANGE_MANTISSA_STAGES + 1 + SHIFT_STAGES + division,
                              reduction="the reference and the sum")
        lat = exp_latency(config.exp)
        return ThreePasses(to_reduce=6, to_send=cls._to_send(config),
                           to_output=2 + _ARGUMENT_STAGES + lat + credit_latency(
                               division_latency(config.division, **cls.division_options(config))),
                           queue=cls.queue_rows(config))

    @classmethod
    def latency_for(cls, config, n: int | None = None) -> int:
        """Cycles from accepting a row's last element to its first output at an idle operator (sink
        always ready): the row queue, the reduce pass over ``n`` elements, the result queue and the
        send pipeline.  ``n`` is the row length (default: ``d_max``)."""
        return cls.timing(config).latency(config.d_max if n is None else n)

    @classmethod
    def first_outputs(cls, config, lengths, last_in) -> list[int]:
        """The cycle of each row's first output (sink always ready) given the cycle each row's last
        input was accepted: :meth:`timing`'s model."""
        return cls.timing(config).first_outputs(lengths, last_in)

    ii = 1

    @staticmethod
    def _reference_shape(cfg):
        """The row's reference in its descriptor: the maximum code (``row_max``) or the biased
        exponent (online, :func:`spikeops.hdl.online.biased_exponent`)."""
        return reference_shape(cfg) if cfg.online else signed(cfg.in_width)

    def _online_reduce(self, m, a, a_v, xbuf, sumq, sum_layout):
        """``normalizer="online"``: stage A's element goes to the ring and to the online sum
        (:func:`spikeops.hdl.online.online_sum_stages`, after the mantissa), whose row ends write
        ``sumq``; the send pass's take releases the row."""
        cfg = self.config
        xbuf.write(m, a.addr, a.x, a_v)
        po = Pipeline(m, Const(1), a_v, name="on")
        po.carry(vp=a.vp, first=a.first, last=a.end, cnt=a.n)
        # the exponent biased and 0 where masked, formed beside the mantissa's table
        p, n = range_mantissa_stages(po, a.x, cfg.exp,
                                     exponent=lambda n: biased_exponent(n, cfg, valid=po.carried["vp"]))
        c = {k: po.carried.pop(k) for k in ("vp", "first", "last")}
        out = online_sum_stages(po, n, Mux(c["vp"], p, 0), first=c["first"], last=c["last"], cfg=cfg)
        done = Signal(sum_layout)
        m.d.comb += [done.n.eq(po.carried["cnt"]), done.ref.eq(out.r), done.total.eq(out.total),
                     sumq.w_data.eq(done.as_value()), sumq.w_en.eq(out.valid & out.last)]

    def _online_exp(self, pipe, xbuf, cfg):
        """The send pass's ``e_i = p_i >> (R - n_i)`` from the ring's ``x_i`` (``normalizer="online"``):
        the buffer's output register, the mantissa, the shift amount, the shift's two stages
        (:func:`spikeops.hdl.shift.right_shift_stages`).  Return ``e``; ``masked`` rides along, carried."""
        pipe.stage()                                        # the buffer's output register
        x = xbuf.port_data(1)
        pipe.carry(masked=x == cfg.in_format.mask_code)
        p, n = range_mantissa_stages(pipe, x, cfg.exp, exponent=lambda n: biased_exponent(n, cfg))
        s = pipe.stage(p=p, sh=saturated(pipe.carried.pop("ref") - n, max(1, cfg.e_width.bit_length())))
        e, = right_shift_stages(pipe, [(s.p, s.sh, cfg.e_width)])
        return e

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        fmt = cfg.in_format
        depth = cfg.buffer_depth
        nq = self.queue_rows(cfg)
        n_shape = range(cfg.d_max + 1)

        xbuf = RowBuffer(m, "xbuf", signed(cfg.in_width), depth, read_ports=2, registered=True)
        rom = exp_table_rom(cfg.exp)      # the uniform exp's table, a read port for each pass (else None)
        if rom is not None:
            m.submodules.exp_rom = rom
        sum_layout = data.StructLayout({"n": n_shape, "ref": self._reference_shape(cfg),
                                        "total": unsigned(cfg.sum_width)})
        m.submodules.sumq = sumq = fifo.SyncFIFOBuffered(width=sum_layout.size, depth=nq + 1)

        # -- pass 1: receive -------------------------------------------------------------------
        # an accepted element is counted and registered (stage A); the row-max form then passes it
        # through stages B and C (:meth:`_row_max_reduce`), the online form to the ring and the
        # online sum (:meth:`_online_reduce`).  ``held`` counts the descriptors of rows accepted to
        # their end and not yet released (taken by pass 2, or online by the send pass; those in
        # flight included), so the queue they go to (one entry deeper than it may hold) has room.
        wr = Signal(range(depth))
        used = Signal(range(depth + 1))     # ring entries accepted and not yet read by the send pass
        held = Signal(range(nq + 2))
        row_n = Signal(range(cfg.d_max))   # elements of the row being received so far
        # ``ready`` is a register: ``used + accept - send.issue != depth`` and ``held + ends -
        # release != nq + 1`` (``release``: pass 2 or, online, the send pass takes a row), from
        # flags of the counters that do not wait for this cycle's accept
        ready = Signal(init=1, name="rx_ready")
        m.d.comb += self.i.ready.eq(ready)
        accept = self.i.valid & ready
        ends = accept & (self.i.payload.last | (row_n == cfg.d_max - 1))
        with m.If(accept):
            m.d.sync += row_n.eq(Mux(ends, 0, row_n + 1))
            with m.If((row_n == cfg.d_max - 1) & ~self.i.payload.last):
                m.d.sync += self.overflow.eq(1)
        el = data.StructLayout({"x": signed(cfg.in_width), "vp": 1, "end": 1, "first": 1, "n": n_shape,
                                "addr": range(depth)})
        a, a_v = Signal(el, name="rx_a"), Signal(name="rx_a_valid")
        x_in = self.i.payload.data
        m.d.sync += a_v.eq(accept)
        with m.If(accept):
            m.d.sync += [a.x.eq(Mux(self.i.payload.masked, fmt.mask_code, x_in)),
                         a.vp.eq(~self.i.payload.masked & (x_in != fmt.mask_code)),
                         a.end.eq(ends), a.first.eq(row_n == 0), a.n.eq(row_n + 1), a.addr.eq(wr),
                         wr.eq(Mux(wr == depth - 1, 0, wr + 1))]

        if cfg.online:
            self._online_reduce(m, a, a_v, xbuf, sumq, sum_layout)
        else:
            parts = {}
            release, ahead_count = self._row_max_reduce(m, a, a_v, xbuf, sumq, sum_layout, el, rom, parts)

        # -- pass 3: send (reads while the output queue has room; the datapath never stalls) -----
        issue = Signal()
        p3 = CreditPipeline(m, self.o, valid=issue, name="q")
        send = RingPass(m, xbuf, 1, sumq, sum_layout, advance=p3.room, name="s")
        m.d.comb += issue.eq(send.issue)
        if cfg.online:
            release = send.take
        # the counts stepped by their events (:func:`stepped`: the events select, no event enters a chain)
        m.d.sync += [used.eq(stepped(used, accept, send.issue)), held.eq(stepped(held, ends, release))]
        if not cfg.online:
            ahead_count(send.take)
        m.d.sync += ready.eq(~reaches(used, accept, send.issue, depth) & ~reaches(held, ends, release, nq + 1))

        if cfg.online:
            p3.carry(last=send.last, ref=send.row.ref, total=send.row.total)
            p3.stage()                         # the buffer's read enters its data latch
            e3 = self._online_exp(p3, xbuf, cfg)
        else:
            p3.carry(last=send.last, mx=send.row.ref, total=send.row.total)
            p3.stage()
            e3 = _exp_of(p3, xbuf, 1, p3.carried.pop("mx"), cfg, rom)  # mx: needed by one stage only
        q = division_stages(p3, e3, p3.carried.pop("total"), cfg.division,  # S enters stage 1 only
                            **self.division_options(cfg))
        p3.finish(Cat(Mux(p3.carried["masked"], 0, q)[:cfg.out_format.width], p3.carried["last"]))
        # the facts are a proof's alone (they never reach an emission): their shadow queues' models
        # grow as the square of the row queue's depth (an emission at d_max 8192 took 77 s with
        # them, 4 s without)
        self.claims = None if cfg.online or platform != "formal" else self._claims(
            dict(parts, p3=p3, send=send, sumq=sumq, used=used, held=held, row_n=row_n, ready=ready, a=a,
                 a_v=a_v, depth=depth, nq=nq, xbuf=xbuf, wr=wr), m)
        return m

    def _claims(self, p, module) -> Claims:
        """The facts of a reachable state (``normalizer="row_max"``, :mod:`spikeops.hdl.claims`).
        Every accepted element is in the ring (``used``: not yet read by the send pass) or the send
        pipeline.  The ring's entries not yet read by the send pass are the open row's (``row_n``)
        and those of the rows on their way: ended in stages A to C, the registered descriptor, the
        row queue, the row pass 2 reads, their ends in pass 2's pipeline, the registered sum, the
        result queue and the row the send pass reads.  ``held`` and ``ahead`` count those rows
        before and after pass 2 takes them.  ``module``: the component's module, elaborated for a
        proof, where the held elements are stated in output order too (:meth:`_sequence`: it adds
        read ports to the output queue and the ring)."""
        cfg = self.config
        d_max = cfg.d_max
        c = Claims(held=p["used"] + p["p3"].held, open=p["row_n"])
        red, send, p2 = p["red"], p["send"], p["p2"]
        c.extend(p["p3"].claims()).extend(send.claims()).extend(red.claims())
        rowq = c.shadow(p["rowq"], lambda w: data.View(p["row_layout"], w).n, low=1, high=d_max, name="rowq")
        sumq = c.shadow(p["sumq"], lambda w: data.View(p["sum_layout"], w).n, low=1, high=d_max, name="sumq")
        ends = [(v & e.end, e.n) for v, e in ((p["a_v"], p["a"]), (p["b_v"], p["b"]), (p["c_v"], p["c"]))]
        lasts = [(v & k["last"], k["n"]) for v, k in zip(p2.valids, p2.stage_carried)]
        used, depth, nq, held, ahead = p["used"], p["depth"], p["nq"], p["held"], p["ahead"]

        def count(terms):
            return sum((f.as_unsigned() for f, _ in terms), Const(0, 1))

        def length(valid, n):
            return Mux(valid, n, 0)

        # the rows on their way, oldest first: the send pass's, the result queue's from its head, the
        # registered sum, pass 2's pipeline from its last stage, pass 2's row, the row queue's, the
        # registered descriptor, stages C to A (the open row follows them)
        rows = ([send.remaining] + sumq.values() + [length(p["ended_v"], p["ended"].n)]
                + [length(f, n) for f, n in reversed(lasts)] + [length(red.busy, red.row.n)]
                + rowq.values() + [length(p["pending"], p["pushed"].n)] + [length(f, n) for f, n in reversed(ends)])
        c.add(used <= depth, f"ring: used <= depth {depth}")
        c.add(held <= nq + 1, f"rows before pass 2: held <= {nq + 1}")
        c.add(p["ready"] == ((used != depth) & (held != nq + 1)), "receive: ready = room in the ring and the row queue")
        c.add(p["row_n"] <= d_max - 1, f"receive: row_n <= {d_max - 1}")
        c.add(held == count(ends) + p["pending"] + p["rowq"].level,
              "rows before pass 2 = ends in stages A to C + the registered descriptor + the row queue's")
        c.add(ahead == red.busy + count(lasts) + p["ended_v"] + p["sumq"].level,
              "rows between the passes = pass 2's row + its ends in pass 2's pipeline + the registered sum + the result queue's")
        c.add(ahead <= nq, f"rows between the passes: ahead <= {nq}")
        c.add(p["ahead_full"] == (ahead == nq), "pass 2: ahead_full = (ahead = nq)")
        for (f, n) in ends + lasts + [(p["pending"], p["pushed"].n), (p["ended_v"], p["ended"].n)]:
            c.add(~f | ((n >= 1) & (n <= d_max)), f"a row on its way has 1 to {d_max} elements")
        c.add(used - p["row_n"] == sum(rows, Const(0, 1)),
              "ring: used - row_n = the elements of the rows on their way not yet read by the send pass")
        self._sequence(module, c, p, rows)
        return c

    def _sequence(self, m, c: Claims, p, rows):
        """The held elements in output order (:attr:`Claims.sequence`): the output register, the
        queue and the stages carry each element's ``last``; the ring's ``used`` entries are those
        of the rows on their way (``rows``: their lengths, oldest first), then the open row's.  An
        entry ends its row when the entries up to it are exactly those of the rows up to one of
        them: its index plus one is a running sum of their lengths (the open row has none).

        For the ``zero`` proof (:meth:`Claims.add_value`): the ring's write pointer is the send
        pass's plus ``used``; the newest of the ``used`` entries are still in stages A to C (oldest
        C), each with the address it will write, and of the rows that end there or of the open row,
        so an entry a pass reads is written and an unread entry is never written.  Where the tagged
        input's answer must be 0 (it was masked), the place that holds it says so: a written ring
        entry or a stage A to C holds the mask code, so does the buffer's output register at the
        send pipeline's second stage, the later stages carry ``masked`` (the first, the ring's read
        in the buffer's data latch, states nothing: :attr:`Claims.settle`)."""
        sums, run = [], Const(0, 1)
        for n in rows:
            run = run + n
            sums.append(run)
        xbuf, send, used, depth, wr = p["xbuf"], p["send"], p["used"], p["depth"], p["wr"]
        c.add_value(wr == ring_add(send.ptr, used, depth),
                    "ring: the write pointer is the send pass's plus the unread entries")
        receive = [(p["a_v"], p["a"], "A"), (p["b_v"], p["b"], "B"), (p["c_v"], p["c"], "C")]  # newest first
        newer = Const(0, 1)      # the valid stages after this one
        tail = p["row_n"]        # the elements of the open row and of the rows ending in those stages
        for v, s, name in receive:
            c.add_value(~v | (s.addr == ring_add(wr, depth - 1 - newer, depth)),
                        f"receive: stage {name}'s address is the write pointer less its place from the newest")
            newer, tail = newer + v, tail + Mux(v & s.end, s.n, 0)
            c.add_value(newer <= tail, f"receive: the elements in stages A to {name} are of the open row or of "
                        "rows ending there")
        written = used - newer
        addr, entry = xbuf.peek(m)
        mask = self.config.in_format.mask_code

        def ring(m, i, tag):
            ends_row = Const(0)
            for total in sums:
                ends_row = ends_row | (i + 1 == total)
            m.d.comb += addr.eq(ring_add(send.ptr, i, depth))
            conds = [(ends_row == tag.end, "order: a ring entry's place among the rows' ends is the tagged input's"),
                     (~tag.zero | (i >= written) | (entry == mask), "zero: the tagged input's ring entry holds the mask code")]
            older = Const(0, 1)
            for v, s, name in reversed(receive):
                conds.append((~tag.zero | ~v | (i != written + older) | (s.x == mask),
                              f"zero: receive stage {name} holds the tagged input's mask code"))
                older = older + v
            return conds

        # the ring's read leaves the buffer's output register in stage ``xbuf.latency`` (from 1), and
        # the stages after it carry its mask test
        out_reg = xbuf.port_data(1) == mask
        p["p3"].row_segments(c, self.config.out_format.width, zero=lambda s, carried: carried.get(
            "masked", out_reg if s == xbuf.latency - 1 else None))
        c.segment(used, ring)

    def _row_max_reduce(self, m, a, a_v, xbuf, sumq, sum_layout, el, rom, parts):
        """``normalizer="row_max"``: stages B and C after A, the running maximum, the ring's write,
        the row queue and pass 2 (the exponentials and their sum), which writes ``sumq``.  Return
        the event that releases a row (pass 2 takes it) and a function that adds the count of rows
        pass 2 runs ahead of the send pass, given the send pass's take."""
        cfg = self.config
        fmt = cfg.in_format
        nq = self.queue_rows(cfg)
        n_shape = range(cfg.d_max + 1)
        row_layout = data.StructLayout({"n": n_shape, "mx": signed(cfg.in_width)})
        m.submodules.rowq = rowq = fifo.SyncFIFOBuffered(width=row_layout.size, depth=nq + 2)
        # the running maximum ``mx`` takes an element in stage C; whether it beats the row's
        # maximum so far is decided in stage B from compares made in stage A (on the registered
        # element, not the input port), against ``mx`` and against the elements in stages B and C
        # (which ``mx`` has not taken yet), each qualified by whether it belongs to the element's
        # row.  The compares are unsigned, on the codes with their sign bit flipped (a carry chain's
        # carry out, no sign logic after it); no compare feeds another's result in one cycle, and
        # ``mx``'s own loop is a multiplexer.
        b, b_v = Signal(el, name="rx_b"), Signal(name="rx_b_valid")
        c, c_v = Signal(el, name="rx_c"), Signal(name="rx_c_valid")
        flags = data.StructLayout({"mx": 1, "b": 1, "c": 1})
        gt, use = Signal(flags, name="rx_gt"), Signal(flags, name="rx_use")    # with stage B
        beats = Signal(name="rx_beats")                                       # with stage C
        mx = Signal(signed(cfg.in_width), init=fmt.min_code)
        m.d.sync += [b_v.eq(a_v), c_v.eq(b_v)]

        def key(v):
            return v.as_unsigned() ^ (1 << (cfg.in_width - 1))

        # the compares and their qualifiers load every cycle (no enable after the compare's chain);
        # they matter only where stage A holds an element.  Past a row's first element the element
        # accepted before it ended no row, so B, if valid, holds the row's previous element; mx is
        # of this row unless C holds an end (about to reset mx), and B's and C's elements count
        # where valid positions (C's not an end)
        m.d.sync += [gt.mx.eq(key(a.x) > key(mx)), gt.b.eq(key(a.x) > key(b.x)), gt.c.eq(key(a.x) > key(c.x)),
                     use.mx.eq(~a.first & ~(c_v & c.end)),
                     use.b.eq(~a.first & b_v & b.vp),
                     use.c.eq(~a.first & c_v & c.vp & ~c.end)]
        m.d.sync += [b.eq(a), c.eq(b), beats.eq(b.vp & (~use.mx | gt.mx) & (~use.b | gt.b) & (~use.c | gt.c))]
        xbuf.write(m, c.addr, c.x, c_v)
        mx_new = Mux(beats, c.x, mx)
        pending = Signal()
        pushed = Signal(row_layout)
        after_end = c_v & c.end
        m.d.sync += pending.eq(after_end)
        with m.If(c_v):
            m.d.sync += mx.eq(Mux(c.end, fmt.min_code, mx_new))
        with m.If(after_end):
            m.d.sync += [pushed.n.eq(c.n), pushed.mx.eq(mx_new)]
        m.d.comb += [rowq.w_data.eq(pushed.as_value()), rowq.w_en.eq(pending)]

        # -- pass 2: reduce (never stalls) -----------------------------------------------------
        ahead = Signal(range(nq + 1))     # rows taken by pass 2 and not yet by pass 3
        ahead_full = Signal(name="ahead_full")   # ahead == nq, a register (reaches: no adder before it)
        red = RingPass(m, xbuf, 0, rowq, row_layout, allow=~ahead_full, name="e")
        p2 = Pipeline(m, Const(1), red.issue, name="e")
        p2.carry(first=red.first, last=red.last, n=red.row.n, mx=red.row.mx)
        p2.stage()                             # the buffer's read enters its data latch
        e = _exp_of(p2, xbuf, 0, p2.carried["mx"], cfg, rom)
        e_val = Mux(p2.carried["masked"], 0, e)
        acc = Signal(unsigned(cfg.sum_width))
        total = (Mux(p2.carried["first"], 0, acc) + e_val)[:cfg.sum_width]
        with m.If(p2.valid):
            m.d.sync += acc.eq(total)
        # the row's descriptor goes to the result queue a cycle after its last element, its sum
        # from ``acc`` (no adder before the queue's write)
        ended = Signal(row_layout, name="done_row")
        ended_v = Signal(name="done_valid")
        m.d.sync += ended_v.eq(p2.valid & p2.carried["last"])
        with m.If(p2.valid & p2.carried["last"]):
            m.d.sync += [ended.n.eq(p2.carried["n"]), ended.mx.eq(p2.carried["mx"])]
        done = Signal(sum_layout)
        m.d.comb += [done.n.eq(ended.n), done.ref.eq(ended.mx), done.total.eq(acc),
                     sumq.w_data.eq(done.as_value()), sumq.w_en.eq(ended_v)]

        parts.update(b=b, b_v=b_v, c=c, c_v=c_v, pending=pending, pushed=pushed, rowq=rowq, row_layout=row_layout,
                     sum_layout=sum_layout, red=red, p2=p2, ended=ended, ended_v=ended_v, ahead=ahead,
                     ahead_full=ahead_full)

        def ahead_count(send_take):
            m.d.sync += [ahead.eq(stepped(ahead, red.take, send_take)),
                         ahead_full.eq(reaches(ahead, red.take, send_take, nq))]
        return red.take, ahead_count
