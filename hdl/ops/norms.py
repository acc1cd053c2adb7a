"""RMSNorm and LayerNorm in hardware (twin of ``golden/ops/norms.py``; same equations).

Ports: ``i`` streams ``{data: s<in_width>.<in_frac>, last}`` rows of exactly ``d`` elements (framed by
count; a ``last`` that disagrees with the count sets the sticky ``error`` output); ``o`` streams
``{data: s<out_width>.<out_frac>, last}``.  ``gamma_we/gamma_addr/gamma_data`` (and ``beta_*`` for
LayerNorm) write the weight memories (``s<gamma_width>.<gamma_frac>``; beta in the output format),
initialised from the constructor's ``gamma``/``beta`` codes (default 1 and 0).

Two passes over a ring buffer (``ring_depth`` entries, block RAM), each at one element per cycle,
so rows stream back to back:

1. receive: store ``x`` in the ring and, as it arrives, feed the norm: the CORDIC tree's leaves
   (RMSNorm ``|x|``; LayerNorm the Helmert contrast ``|j x_j - S_j| * c_j`` from a running sum
   ``S_j`` and a table of ``c_j``), each made a ``norm_width``-bit node, with the eps leaf loaded as
   leaf 0 of every row (:class:`spikeops.hdl.norm.PolarNorm`); or, for the exact norm, the sums
   ``sum x**2`` and ``S``, and at the row's end ``Q`` into :class:`spikeops.hdl.norm.SqrtNode`;
2. read-out of the root ``(m, e)``: ``R = m * C``, ``b_exp = e - gain_frac``;
3. send, a fixed number of cycles after the row's last input (the tree's bound) or after the
   square root started: read the row again, ``A = |v_i| |gamma_i|``, the II=1 Division Neuron
   Group with ``B = R * 2**b_exp``, the sign, ``+ beta_i`` with saturation, under the output's
   backpressure; each element read frees its ring entry.

Row timing (sink always ready, :class:`spikeops.hdl.timing.FixedDelay`): a row's first output
follows its last input by ``latency_for(config)`` cycles, or the previous row's last output by one.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, fifo, stream
from amaranth.lib.wiring import In, Out

from spikeops.golden.choices import NormMethod
from spikeops.golden.norm import node_of as golden_node_of
from spikeops.golden.ops.norms import LayerNormConfig, RMSNormConfig, NormOpConfig, helmert_constants

from ..carry import add_or_subtract, negated_if
from ..division import division_latency, division_stages
from ..norm import NODE_STAGES, PolarNorm, SqrtNode, node_stages, queues_leaf_pairs, tree_latency
from ..pipeline import (MULTIPLY_STAGES, CreditPipeline, Pipeline, Stage, credit_latency, multiply_latency,
                        multiply_stages, product_sum_stages, stepped)
from ..rowbuffer import RingPass, RowBuffer
from ..timing import FixedDelay
from ..component import OperatorComponent
from .base import OperatorSignature
from .norm_facts import norm_claims, norm_sequence

__all__ = ["RMSNorm", "LayerNorm"]


class _Norm(OperatorComponent):
    #: :func:`~.norm_facts.norm_sequence`
    ORDER_FACTS = True

    class Signature(OperatorSignature):
        config_type = NormOpConfig

        @classmethod
        def build_members(cls, config):
            members = {
                "i": In(stream.Signature(data.StructLayout({"data": signed(config.in_width), "last": 1}))),
                "o": Out(stream.Signature(data.StructLayout({"data": signed(config.out_width), "last": 1}))),
                "error": Out(1),
                "gamma_we": In(1), "gamma_addr": In(range(config.d)), "gamma_data": In(signed(config.gamma_width)),
            }
            if config.centred:
                members.update({"beta_we": In(1), "beta_addr": In(range(config.d)),
                                "beta_data": In(signed(config.out_width))})
            return members

    def __init__(self, config, *, gamma=None, beta=None):
        self._gamma, self._beta = self.check_weights(config, gamma, beta)
        super().__init__(config)

    @classmethod
    def check_weights(cls, config, gamma=None, beta=None):
        """The gamma and beta codes (defaults 1, or the largest code below it when the format's
        fraction bits leave no room for 1.0, and 0), checked against ``d`` and their formats."""
        cls.Signature.check_parameters(config)
        d = config.d
        gamma = [config.gamma_one] * d if gamma is None else [int(g) for g in gamma]
        beta = [0] * d if beta is None else [int(b) for b in beta]
        for name, vals, fmt in (("gamma", gamma, config.gamma_format), ("beta", beta, config.out_format)):
            if len(vals) != d or min(vals) < fmt.min_code or max(vals) > fmt.max_code:
                raise ValueError(f"{cls.Signature.owner}: {name} must be {d} codes in "
                                 f"[{fmt.min_code}, {fmt.max_code}]")
        return gamma, beta

    @staticmethod
    def b_exp_range(config) -> tuple[int, int]:
        """Bounds of the divisor's exponent ``e - gain_frac`` (sizes the shifters)."""
        lo, hi = config.norm.exp_range
        return lo - config.gain_frac, hi - config.gain_frac

    ii = 1

    @staticmethod
    def leaf_stages(config) -> int:
        """Cycles of the leaf pipeline, from accepting an element to its leaf at the tree: RMSNorm
        ``|x|`` and the node (:data:`spikeops.hdl.norm.NODE_STAGES`); LayerNorm
        the product ``j x``, ``- S_j``, the magnitude, the node, its product with ``c_j`` (its
        partial products summed over two stages: :meth:`helmert_sum_stages`), the leaf register
        (normalising the product)."""
        if config.helmert:
            return (MULTIPLY_STAGES + 2 + NODE_STAGES + multiply_latency(_Norm.helmert_sum_stages(config))
                    + 1)
        return 1 + NODE_STAGES

    @staticmethod
    def helmert_sum_stages(config) -> int:
        """Stages of the sum of the node-times-``c_j`` product's partial products: two for the
        four blocks of 24-bit mantissas (one stage, 7.6 ns, was LayerNorm's critical path at seed
        2), :func:`spikeops.hdl.pipeline.product_sum_stages`."""
        w = unsigned(config.norm.width)
        return product_sum_stages(w, w)

    @staticmethod
    def exact_sums(config) -> int:
        """Cycles from accepting a row's last element to its ``Q`` entering the square-root unit's
        queue: ``x**2`` in the multiplier blocks' stages, the sums, for LayerNorm ``S**2`` in the
        blocks' stages too, then ``Q``."""
        return MULTIPLY_STAGES + 1 + (MULTIPLY_STAGES if config.centred else 1) + 1

    #: binary neurons per division stage without a ``target_mhz`` with the exact norm: two, so that
    #: a row's first output keeps within issue 13's 64 cycles of its last input (RMSNorm d 576,
    #: LayerNorm d 384)
    NEURONS_PER_STAGE = 2

    @classmethod
    def fixed_neurons_per_stage(cls, config) -> int:
        """One binary neuron a division stage with the CORDIC norm (two chained neurons were the
        norms' critical path, 7.0-7.4 ns; the tree's 11 vectoring steps pay for the 9 cycles more
        within the 200-cycle bound), two with the exact norm (:data:`NEURONS_PER_STAGE`)."""
        return 1 if NormMethod(config.norm_method) is NormMethod.CORDIC else cls.NEURONS_PER_STAGE

    #: issue 13's bounds on a row's first output after its last input, cycles, by norm method
    LATENCY_BOUND = {NormMethod.CORDIC: 200, NormMethod.EXACT: 64}

    @classmethod
    def latency_bound(cls, config) -> int:
        """The most cycles from a row's last input to its first output that the spare registers
        below may bring the latency to (:data:`LATENCY_BOUND`)."""
        return cls.LATENCY_BOUND[NormMethod(config.norm_method)]

    @classmethod
    def fixed_leading_one_stages(cls, config) -> int:
        """Without a ``target_mhz``: the division's leading-one detection in two stages where the
        latency bound has the cycle (LayerNorm d 384: A's priority encoder, 6.8 ns at seed 3, was
        its critical path), else in one (RMSNorm d 576 is at its bound)."""
        two = {"neurons_per_stage": cls.neurons_per_stage(config), "leading_one_stages": 2}
        return 2 if cls._timing(config, two, False).latency(config.d) <= cls.latency_bound(config) else 1

    @classmethod
    def pair_register(cls, config) -> bool:
        """Whether the CORDIC tree registers its leaf pairs before their queue
        (:class:`spikeops.hdl.norm.PolarNorm`): with the shared unit, where the latency bound has
        the cycle after :meth:`fixed_leading_one_stages` took its own (the queue's write, from the
        leaf pipeline's last stage, was the norms' critical path at 6.6-7.1 ns)."""
        if not queues_leaf_pairs(config.norm):
            return False
        return cls._timing(config, cls.division_options(config), True).latency(config.d) <= cls.latency_bound(config)

    @classmethod
    def pipelining(cls, config) -> dict:
        """The generator's choices for ``config`` (:meth:`OperatorComponent.pipelining`), with the
        tree's pair register."""
        return {**super().pipelining(config), "tree_pair_register": cls.pair_register(config)}

    @classmethod
    def timing(cls, config) -> FixedDelay:
        """The row timing model: the send pass takes a row ``to_send`` cycles after its last input
        (CORDIC: the leaf pipeline, the tree's bound :func:`spikeops.hdl.norm.tree_latency`, then
        the read-out (:meth:`readout_stages`), the root queue and the due count; exact: the sums and
        the queue of ``Q`` to the square-root unit, one row after another, each
        :meth:`SqrtNode.latency` long, then the same three), less :meth:`root_lead` (the root joins
        the row at the division; the due line keeps at least one cycle), then ``to_output`` more to
        its first output (the take, the operand stages (:meth:`operand_stages`), the division
        pipeline, :meth:`sign_stages`, the output queue)."""
        return cls._timing(config, cls.division_options(config), cls.pair_register(config))

    @classmethod
    def _timing(cls, config, division_options: dict, pair_register: bool) -> FixedDelay:
        """:meth:`timing` with the division's options and the tree's pair register given."""
        ncfg = config.norm
        to_output = 2 + cls.operand_stages(config) + credit_latency(
            division_latency(config.division, **division_options) + cls.sign_stages(config))
        if ncfg.method == "exact":
            sq = SqrtNode.latency(ncfg)
            sums = cls.exact_sums(config)
            due, start = sums + 2 + sq + cls.readout_stages(config) + 2, sums + 2
            return FixedDelay(to_send=due - min(cls.root_lead(config), due - start - 1), to_output=to_output,
                              unit_start=start, unit_period=sq)
        due = cls.leaf_stages(config) + tree_latency(ncfg, pair_register) + cls.readout_stages(config) + 2
        return FixedDelay(to_send=due - min(cls.root_lead(config), due - 1), to_output=to_output)

    @classmethod
    def root_lead(cls, config) -> int:
        """Cycles between the send pass taking a row and the row's root joining it: the root is
        first used by the division, so it is read from its queue the cycle before the row's first
        element reaches the division's input, :meth:`operand_stages` after the element's issue (the
        cycle after the take).  The row is taken that many cycles before its root is due."""
        return cls.operand_stages(config)

    @staticmethod
    def readout_stages(config) -> int:
        """Cycles of the read-out ``R = m C``: the multiplier blocks' stages, then the partial
        products' sum (:meth:`readout_sum_stages`), after either norm."""
        return multiply_latency(_Norm.readout_sum_stages(config))

    @staticmethod
    def readout_sum_stages(config) -> int:
        """Stages of the read-out's partial-product sum: with the CORDIC norm two for four blocks
        (one stage off the blocks, 6.3-6.7 ns, was both norms' critical path at seed 1 once their
        division took one neuron a stage), :func:`spikeops.hdl.pipeline.product_sum_stages`; one
        with the exact norm, whose 64-cycle bound has no cycle to spare (LayerNorm)."""
        if NormMethod(config.norm_method) is not NormMethod.CORDIC:
            return 1
        return product_sum_stages(unsigned(config.norm.width), Const(config.readout_constant).shape())

    @staticmethod
    def sign_stages(config) -> int:
        """Stages after the division: the sign (for LayerNorm ``beta -+ q`` in the sign's carry
        chain), then for LayerNorm the saturation to the output format."""
        return 2 if config.centred else 1

    @staticmethod
    def operand_stages(config) -> int:
        """Send-pass stages before the division: the buffer read, its data registered, for
        LayerNorm ``d x`` (a product) and ``v = d x - S``, then ``|v|``, ``|gamma|`` and the product
        ``|v| |gamma|``."""
        centred = 1 + MULTIPLY_STAGES if config.centred else 0
        return 2 + centred + 1 + MULTIPLY_STAGES

    @classmethod
    def latency_for(cls, config, n: int | None = None) -> int:
        """Cycles from accepting a row's last element to its first output at an idle operator (sink
        always ready); every row has ``d`` elements, so ``n`` is not used."""
        return cls.timing(config).latency(config.d)

    @classmethod
    def first_outputs(cls, config, lengths, last_in) -> list[int]:
        """The cycle of each row's first output (sink always ready): :meth:`timing`'s model."""
        return cls.timing(config).first_outputs(lengths, last_in)

    @classmethod
    def ring_depth(cls, config) -> int:
        """Ring entries: ``buffer_depth``, or by default a row and the elements that arrive while it
        waits for its norm (full rate; a smaller ring makes the receive side wait for free entries)."""
        return config.buffer_depth or config.d + cls.timing(config).to_send + 4

    @classmethod
    def queue_rows(cls, config) -> int:
        """Rows between their last input and the send pass (the descriptor queues' depth)."""
        return min(64, -(-cls.ring_depth(config) // config.d) + 1)

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        d, centred = cfg.d, cfg.centred
        ncfg = cfg.norm
        timing = self.timing(cfg)
        depth = self.ring_depth(cfg)
        nq = self.queue_rows(cfg)

        # registered buffers: their data leave the blocks' output registers (on ECP5), not the
        # 5.8 ns data latches
        xbuf = RowBuffer(m, "xbuf", signed(cfg.in_width), depth, registered=True)
        gbuf = RowBuffer(m, "gamma", signed(cfg.gamma_width), d, init=self._gamma, registered=True)
        gbuf.write(m, self.gamma_addr, self.gamma_data, self.gamma_we)
        if centred:
            bbuf = RowBuffer(m, "beta", signed(cfg.out_width), d, init=self._beta, registered=True)
            bbuf.write(m, self.beta_addr, self.beta_data, self.beta_we)

        sum_w = cfg.in_width + d.bit_length()
        row_layout = data.StructLayout({"n": range(d + 1), "total": signed(sum_w)})
        root_layout = data.StructLayout({"rms": unsigned(cfg.division.den_width),
                                         "b_exp": signed(ncfg.exp_width + 1 + cfg.gain_frac.bit_length())})
        # one entry more than the descriptors it holds: its room is a register (below)
        m.submodules.rowq = rowq = fifo.SyncFIFOBuffered(width=row_layout.size, depth=nq + 2)
        # roots wait until their row's first element reaches the division: up to
        # ceil(root_lead / d) rows more than the descriptors
        lead_rows = -(-self.root_lead(cfg) // d)
        m.submodules.rootq = rootq = fifo.SyncFIFOBuffered(width=root_layout.size, depth=nq + 1 + lead_rows)

        # -- receive ---------------------------------------------------------------------------
        wr = Signal(range(depth))
        used = Signal(range(depth + 1))
        full = Signal(name="ring_full")           # used == depth, as a register (no compare before ready)
        j = Signal(range(d))                      # index of the next element in its row
        at_end = Signal(init=int(d == 1), name="j_last")  # j == d - 1, as a register
        total = Signal(signed(sum_w))             # sum of the row's elements so far
        x = self.i.payload.data
        # the port's ready is registers only (the ring, the row queue, the feed's skid, and at a
        # row's end the norm's input side): the norm's stall reaches the skid below and that one
        # LUT, not the counters and queues of the receive side
        held_v = Signal(name="feed_held")
        # ``room``: a free ring entry (~full) and room for a row's descriptor in one register,
        # loaded below with the next ~full and last cycle's ``level < nq + 1`` (at most one
        # descriptor is written a cycle, so that leaves one entry free now; the queue's w_rdy, a
        # compare on its level, was on the way to ready and every counter: 6.7-8.2 ns at three
        # seeds), so that ready is one LUT (two with ``full`` apart: ``feed_held`` -> ``ring_full``,
        # 7.14 ns, LayerNorm seed 3)
        room = Signal(init=1, name="receive_room")
        # a row's last element only when the norm's input side surely takes it at once
        # (``feed_sure``, from registers, implies ``feed_ok``): the norm then counts from the row's
        # last input, as the timing model does (a last element held in the skid made its row's
        # first output a cycle late, unless the previous row's outputs masked it)
        feed_ok = Signal()                        # the norm's input side takes an element
        feed_sure = Signal()
        m.d.comb += self.i.ready.eq(room & ~held_v & (feed_sure | ~at_end))
        accept = self.i.valid & self.i.ready
        row_end = accept & at_end
        xbuf.write(m, wr, x, accept)
        pushed = Signal(row_layout)
        m.d.comb += [pushed.n.eq(d), pushed.total.eq(total + x),
                     rowq.w_data.eq(pushed.as_value()), rowq.w_en.eq(row_end)]
        with m.If(accept):
            m.d.sync += [wr.eq(Mux(wr == depth - 1, 0, wr + 1)), j.eq(Mux(row_end, 0, j + 1)),
                         at_end.eq(Mux(at_end, d == 1, (j == d - 2) if d >= 2 else 0)),
                         total.eq(Mux(row_end, 0, total + x))]
            with m.If(self.i.payload.last != at_end):
                m.d.sync += self.error.eq(1)

        # -- the feed: each accepted element with its index and the row's sum before it, through
        # a skid register to the norm's input side (taken the cycle it is accepted while the norm
        # keeps up; held, and the port not ready, for the cycles it does not)
        feed_layout = data.StructLayout({"x": signed(cfg.in_width), "j": range(d), "total": signed(sum_w),
                                         "end": 1})
        now, held, feed = Signal(feed_layout), Signal(feed_layout, name="feed_data"), Signal(feed_layout)
        m.d.comb += [now.x.eq(x), now.j.eq(j), now.total.eq(total), now.end.eq(at_end),
                     feed.eq(Mux(held_v, held, now))]
        take = (held_v | accept) & feed_ok
        with m.If(held_v):
            with m.If(feed_ok):
                m.d.sync += held_v.eq(0)
        with m.Elif(accept & ~feed_ok):
            m.d.sync += [held.eq(now), held_v.eq(1)]

        # -- the norm --------------------------------------------------------------------------
        root, root_valid, due_in = self._norm(m, cfg, take, feed, feed_ok, feed_sure)
        # the send pass may take a row when its token leaves a delay line: to_send cycles after the
        # row's last input (the tree's bound), or after the square-root unit took it
        delay = timing.to_send - timing.unit_start
        line = Signal(delay)
        m.d.sync += line.eq(Cat(due_in, line[:-1]) if delay > 1 else due_in)
        due_rows = Signal(range(nq + 2))

        # -- read-out: R = m C, b_exp = e - gain_frac -------------------------------------------
        # (in the multiplier blocks' registers, :func:`multiply_stages`)
        ro = Signal(root_layout)
        rp = Pipeline(m, Const(1), root_valid, name="readout")
        rp.carry(b_exp=root.e - cfg.gain_frac)
        rms = multiply_stages(rp, root.m, Const(cfg.readout_constant), sum_stages=self.readout_sum_stages(cfg))
        assert rp.latency == self.readout_stages(cfg)
        m.d.comb += [ro.rms.eq(rms), ro.b_exp.eq(rp.carried["b_exp"])]
        ro_valid = rp.valid
        m.d.comb += [rootq.w_data.eq(ro.as_value()), rootq.w_en.eq(ro_valid)]

        # -- send (reads while the output queue has room; the datapath never stalls) -------------
        issue = Signal()
        p3 = CreditPipeline(m, self.o, valid=issue, name="y")
        send = RingPass(m, xbuf, 0, rowq, row_layout, advance=p3.room, allow=due_rows != 0, name="s")
        m.d.comb += issue.eq(send.issue)
        full_next = Signal(name="ring_full_next")
        m.d.comb += full_next.eq(Mux(accept & ~send.issue, used == depth - 1, Mux(send.issue & ~accept, 0, full)))
        m.d.sync += [used.eq(stepped(used, accept, send.issue)), full.eq(full_next),
                     room.eq(~full_next & (rowq.level < nq + 1)),
                     due_rows.eq(stepped(due_rows, line[-1], send.take))]
        k = Signal(range(d))
        with m.If(send.issue):
            m.d.sync += k.eq(Mux(send.last, 0, k + 1))
        gbuf.read(m, k, p3.room)
        if centred:
            bbuf.read(m, k, p3.room)

        p3.carry(last=send.last, **({"total": send.row.total} if centred else {}))
        p3.stage()                                  # the reads enter the blocks' data latches
        p3.stage()                                  # and their output registers
        p3.carry(g=gbuf.data, **({"beta": bbuf.data} if centred else {}))
        v = xbuf.data
        if centred:
            xd = multiply_stages(p3, v, d)
            v = p3.stage(v=(xd - p3.carried.pop("total"))[:cfg.v_width + 1].as_signed()).v
        g = p3.carried.pop("g")
        s = p3.stage(av=abs(v), ag=abs(g), neg=(v < 0) ^ (g < 0))
        p3.carry(neg=s.neg)
        a = multiply_stages(p3, s.av, s.ag)
        # the root joins its row here, a register loaded from the root queue the cycle before the
        # row's first element reaches the division (the pipeline never stalls, so a delay line of
        # the first elements' issues tells when): :meth:`root_lead` cycles after the send pass
        # took the row, which is taken that much before its root is due
        lead = self.root_lead(cfg)
        assert p3.latency == lead >= 2
        firsts = Signal(lead - 1, name="first_issued")
        m.d.sync += firsts.eq(Cat(send.issue & send.first, firsts[:-1]))
        join = firsts[-1]
        # normalised from the start, and loaded only with a root the queue offers: should the tree's
        # bound be wrong (never expected: ``error`` rises), the row keeps the last root rather than
        # the queue's stale output (a zero root would answer a zero input with the largest quotient)
        row_root = Signal(root_layout, init={"rms": 1 << (cfg.division.den_width - 1)})
        m.d.comb += rootq.r_en.eq(join)
        with m.If(join):
            with m.If(rootq.r_rdy):
                m.d.sync += row_root.eq(rootq.r_data)
            with m.Else():
                m.d.sync += self.error.eq(1)
        # B = m C with the root's mantissa m normalised (``norm_width`` bits, the top one set; 0 only
        # for a zero root, whose quotient is q_max whatever the shifts), so B's leading one is bit
        # den_width - 2 or den_width - 1: one LUT instead of a priority encoder on the row's root,
        # which fans out across the division (6.75 ns, LayerNorm seed 1 at ee16ff8)
        den_w = cfg.division.den_width
        b_lead = Const(den_w - 2, range(den_w)) + row_root.rms[den_w - 1]   # den_w >= norm_width >= 2
        q = division_stages(p3, a, row_root.rms, cfg.division, b_exp=row_root.b_exp,
                            b_exp_range=self.b_exp_range(cfg), b_leading_one=b_lead, **self.division_options(cfg))
        fmt = cfg.out_format
        if centred:
            # beta - q or beta + q in one carry chain (the sign folded into it), then the
            # saturation: an adder after the sign's chain held the clock near 110 MHz on ECP5
            width = max(len(Value.cast(q)) + 1, cfg.out_width) + 1
            beta = Signal(signed(width), name="beta_wide")
            m.d.comb += beta.eq(p3.carried["beta"])
            yb = p3.stage(yb=add_or_subtract(m, beta, q, p3.carried["neg"], width, "sign").as_signed()).yb
            sat = Mux(yb > fmt.max_code, fmt.max_code, Mux(yb < fmt.min_code, fmt.min_code, yb))
            y = p3.stage(y=sat).y                   # the compares' chains, then the output queue
        else:
            y = p3.stage(y=negated_if(m, q, p3.carried["neg"], "sign")).y
        p3.finish(Cat(y[:fmt.width], p3.carried["last"]))
        parts = dict(p3=p3, send=send, rowq=rowq, rootq=rootq, row_root=row_root, xbuf=xbuf, wr=wr, used=used,
                     full=full, depth=depth, j=j, at_end=at_end, held_v=held_v, held=held, line=line,
                     due_rows=due_rows, readout=rp, flight=getattr(self, "_rows_to_root", None))
        self.claims = None                      # the facts are a proof's alone: never in an emission
        if platform == "formal":
            self.claims = norm_claims(d, parts)
            norm_sequence(m, self.claims, d, parts, cfg.out_format.width,
                          zero=self.ZERO_FACTS and parts["flight"] is not None)
        return m

    def _norm(self, m, cfg, take, feed, feed_ok, feed_sure):
        """The norm's input side, taking ``feed`` (an element, its index, the row's sum before it,
        whether it ends its row) when ``take``, and driving ``feed_ok`` (it can take one) and
        ``feed_sure`` (a register, or a function of registers, that implies ``feed_ok``); returns
        the root node, its valid pulse and the event the send pass's delay counts from."""
        ncfg = cfg.norm
        if ncfg.method == "exact":
            m.d.comb += feed_sure.eq(feed_ok)
            return self._exact(m, cfg, take, feed, feed_ok)
        em, ee = golden_node_of(cfg.eps_code, ncfg.width)
        m.submodules.norm = tree = PolarNorm(ncfg, first_leaf=(int(em), int(ee)), pair_register=self.pair_register(cfg))
        # the leaf pipeline stalls while its last stage holds a leaf the tree does not take: the
        # tree's ``ready`` is a register, so the stages' enable is one LUT (a skid register in
        # between put its multiplexer on the way from the leaf to the pair queue's write, and the
        # stages' enable on every leaf bit of it: RMSNorm's critical path, 7.0 ns)
        en = Signal(name="leaf_enable")
        m.d.comb += [feed_ok.eq(en), feed_sure.eq(tree.i.ready)]
        x, j, total = feed.x, feed.j, feed.total
        pipe = Pipeline(m, en, take & (j != 0) if cfg.helmert else take, name="leaf")
        if cfg.helmert:
            cm, ce = helmert_constants(cfg)
            c_layout = data.StructLayout({"m": unsigned(ncfg.width), "e": signed(8)})
            # c_j from the blocks' output register (0.97 ns from the clock, not the data latch's
            # 5.8): the read advances with the stages' enable, so c_j appears two stages on
            crom = RowBuffer(m, "helmert", c_layout, cfg.d,
                             init=[{"m": int(a), "e": int(b)} for a, b in zip(cm, ce)], registered=True, hold=True)
            pipe.carry(total=total, j=j)
            jx = multiply_stages(pipe, j, x)
            crom.read(m, pipe.carried.pop("j"), en)
            diff = pipe.stage(v=jx - pipe.carried.pop("total"))
            c = pipe.stage(c=abs(diff.v)).c
            pipe.carry(cm=crom.data.m, ce=crom.data.e)
            nm, ne = node_stages(pipe, c, ncfg)
            pipe.carry(ne=ne, zero=nm == 0)
            p = multiply_stages(pipe, nm, pipe.carried.pop("cm"), sum_stages=self.helmert_sum_stages(cfg))
            top = p[2 * ncfg.width - 1]
            pm = Mux(top, p >> ncfg.width, p >> (ncfg.width - 1))[:ncfg.width]
            pe = pipe.carried.pop("ne") + pipe.carried.pop("ce") + Mux(top, ncfg.width, ncfg.width - 1)
            zero = pipe.carried.pop("zero")
            leaf = pipe.stage(m=Mux(zero, 0, pm), e=Mux(zero, ncfg.zero_exp, pe))
        else:
            s1 = pipe.stage(mag=abs(x))
            lm, le = node_stages(pipe, s1.mag, ncfg)      # registered but for a zero test
            leaf = Stage(pipe.valid, {"m": lm, "e": le})
        assert pipe.latency == self.leaf_stages(cfg)
        m.d.comb += [en.eq(~leaf.valid | tree.i.ready), tree.i.valid.eq(leaf.valid),
                     tree.i.payload.eq(Cat(leaf.m, leaf.e))]
        return tree.o, tree.o_valid, take & feed.end

    def _exact(self, m, cfg, take, feed, feed_ok):
        """Sums of the exact norm as the row arrives; ``Q`` into the square-root unit at its end."""
        ncfg, d = cfg.norm, cfg.d
        m.submodules.norm = unit = SqrtNode(ncfg)
        qw = SqrtNode.q_width(ncfg)
        m.submodules.qq = qq = fifo.SyncFIFOBuffered(width=qw, depth=self.queue_rows(cfg) + 1)
        m.d.comb += feed_ok.eq(qq.w_rdy)
        sq_w = 2 * cfg.in_width + d.bit_length()
        sum_w = cfg.in_width + d.bit_length()
        # the products in the multiplier blocks' registers (:func:`multiply_stages`)
        pipe = Pipeline(m, Const(1), take, name="sq")
        pipe.carry(x=feed.x, end=feed.end)
        x2 = multiply_stages(pipe, feed.x, feed.x)[:2 * cfg.in_width].as_unsigned()   # a square: no sign
        xs, end = pipe.carried["x"], pipe.carried["end"]
        acc2, acc1 = Signal(unsigned(sq_w)), Signal(signed(sum_w))
        new2, new1 = (acc2 + x2)[:sq_w], (acc1 + xs)[:sum_w].as_signed()
        with m.If(pipe.valid):
            m.d.sync += [acc2.eq(Mux(end, 0, new2)), acc1.eq(Mux(end, 0, new1))]
        ends = Pipeline(m, Const(1), pipe.valid & end, name="q")
        t1 = ends.stage(sq=new2, s=new1)
        eps2 = cfg.eps_code ** 2
        if cfg.centred:
            # Q = d (d sq - S**2) + eps**2 = (d**2 sq + eps**2) - d S**2: the first term beside the
            # product's stages, so that Q's stage is d S**2 (a constant multiply) and one subtraction
            ends.carry(a=t1.sq * (d * d) + eps2)
            b = multiply_stages(ends, t1.s, t1.s)
            q = ends.stage(q=(ends.carried["a"] - _times_constant(b, d))[:qw])
        else:
            t2 = ends.stage(a=t1.sq)
            q = ends.stage(q=(t2.a + eps2)[:qw])
        assert pipe.latency + ends.latency == self.exact_sums(cfg)
        self._rows_to_root = dict(sq=pipe, ends=ends, qq=qq, unit=unit, acc2=acc2,   # for norm_facts
                                  max_sq=4 ** (cfg.in_width - 1))
        m.d.comb += [qq.w_data.eq(q.q), qq.w_en.eq(q.valid),
                     unit.i.valid.eq(qq.r_rdy), unit.i.payload.eq(qq.r_data), qq.r_en.eq(unit.i.ready)]
        return unit.o, unit.o_valid, qq.r_rdy & unit.i.ready


def _csd(c: int) -> list[tuple[int, int]]:
    """The canonical signed digits of ``c >= 0``: ``[(sign, k)]`` with ``c = sum sign 2**k``."""
    digits, k = [], 0
    while c:
        if c & 1:
            digit = 2 - (c & 3)            # +1 when c = 1 mod 4, -1 when c = 3 mod 4
            digits.append((digit, k))
            c -= digit
        c >>= 1
        k += 1
    return digits


def _times_constant(value, c: int):
    """``value * c`` as the shifted adds of ``c``'s signed digits when it has at most three (so a
    constant such as d = 384 = 2**8 + 2**7 costs one adder, not an unregistered multiplier block),
    else the product."""
    digits = _csd(c)
    if not 0 < len(digits) <= 3:
        return value * c
    total = 0
    for sign, k in digits:
        total = total + (value << k) if sign > 0 else total - (value << k)
    return total


class RMSNorm(_Norm):
    """Stream RMSNorm over rows of ``d`` elements (one :class:`RMSNormConfig`)."""

    #: a zero input answers 0 where its row's root is normalised (:func:`~.norm_facts.norm_sequence`;
    #: stated for the exact norm, the proofs' configuration)
    ZERO_FACTS = True

    class Signature(_Norm.Signature):
        config_type = RMSNormConfig
        owner = "RMSNorm"


class LayerNorm(_Norm):
    """Stream LayerNorm over rows of ``d`` elements (one :class:`LayerNormConfig`)."""

    class Signature(_Norm.Signature):
        config_type = LayerNormConfig
        owner = "LayerNorm"
