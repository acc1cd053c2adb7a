"""PolarNorm in hardware (twin of ``golden/norm.py``): the streaming CORDIC tree on block-floating
nodes, and the exact square root of an integer sum of squares.

:class:`PolarNorm` (``method="cordic"``): ``i`` streams the leaf nodes ``{m, e}`` of each vector in
index order (``length`` per vector, or ``length - 1`` when a constant ``first_leaf`` is given: it is
leaf 0 of every vector); ``o_valid`` pulses with the root node on ``o``, bit-identical to
:func:`spikeops.golden.norm.cordic_root`.  The tree merges while the leaves arrive: each level keeps
one left node waiting for its partner, and the merges run in pipelined CORDIC units
(:mod:`spikeops.hdl.cordic`: the pair's fields, the alignment shifts, then the ``iterations``
vectoring steps, the last one normalising).  ``units="shared"``: one unit serves every level; a
pair formed from the unit's own results (levels >= 1) is issued the cycle it forms, pairs of leaves
wait in a four-pair queue for cycles the upper levels leave free, and the leaf stream stalls while
that queue is full.  The upper levels never wait, so a node reaches the next level
``iterations + 2`` cycles after its pair formed, and the leaf pairs wait a bounded number of cycles.
That unit does one merge a cycle, and a vector needs :attr:`NormConfig.merges` of them (65 leaves:
70), so it holds the leaves when that exceeds the leaves streamed.  ``units="split"``: the leaf
level's own unit (every leaf pair issued the cycle it forms) and one shared by the levels above,
whose queue of :data:`SPLIT_PAIRS` holds the pairs of the leaf unit's results (reserved as the
leaves that complete them are accepted, since the leaf unit cannot wait): two units, a leaf every
cycle at any length.  ``units="per_level"``: a unit per level, every pair issued the cycle it forms,
the leaf stream never stalled; ``levels`` units for the queue's wait saved (:func:`tree_latency`
gives the three bounds).

:class:`SqrtNode` (``method="exact"``): ``i`` streams integer sums of squares ``Q``; for each it
shifts ``Q`` by an even amount to ``2 width`` bits and takes a digit-by-digit integer square root,
one bit per cycle (:meth:`SqrtNode.latency` cycles, one ``Q`` at a time); ``o_valid`` pulses with the
root node, bit-identical to :func:`spikeops.golden.norm.sqrt_node`.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, memory, stream
from amaranth.lib.wiring import In, Out

from spikeops.golden.choices import NormMethod, NormUnits
from spikeops.golden.norm import NormConfig, level_sizes

from .claims import Claims
from .cordic import (UNIT_EXTRA, cordic_unit, difference_shapes, field_shapes, fields_of_differences, merge_fields,
                     pair_differences, zero_pair_fields)
from .component import ConfigComponent, ConfigSignature
from .shift import SHIFT_STAGES, bit_length, leading_one, right_shift_stages

__all__ = ["PolarNorm", "SqrtNode", "queues_leaf_pairs", "node_layout", "node_stages", "NODE_STAGES", "tree_latency",
           "LEAF_PAIRS", "SPLIT_PAIRS"]


def node_layout(cfg: NormConfig) -> data.StructLayout:
    """A node: ``width``-bit mantissa, signed exponent."""
    return data.StructLayout({"m": unsigned(cfg.width), "e": signed(cfg.exp_width)})


#: pipeline stages of :func:`node_stages`: the leading one, then the two half-shifts
NODE_STAGES = 1 + SHIFT_STAGES


def node_stages(pipe, value, cfg: NormConfig):
    """Add the stages of :func:`spikeops.golden.norm.node_of` to ``pipe`` (a
    :class:`spikeops.hdl.pipeline.Pipeline`): the leading ``width`` bits of the unsigned ``value``
    (floor) at exponent ``bit_length - width``.  First the leading one's position ``p``, then the
    mantissa as a right shift only, ``(value << (width - 1)) >> p`` (no adder before the shifter),
    in two stages, beside the exponent ``p + 1 - width``; zero gives the zero node.  Returns ``(m,
    e)`` after :data:`NODE_STAGES` stages."""
    w = cfg.width
    p, nz = leading_one(value)
    s = pipe.stage(v=value, p=p, nz=nz)
    pipe.carry(node_e=Mux(s.nz, s.p + 1 - w, cfg.zero_exp)[:cfg.exp_width].as_signed(), node_nz=s.nz)
    mant, = right_shift_stages(pipe, [(Cat(Const(0, w - 1), s.v), s.p, w)])
    return Mux(pipe.carried.pop("node_nz"), mant, 0), pipe.carried.pop("node_e")


#: pairs of leaves that may wait for the shared unit (the leaf stream stalls beyond them; a power of two)
LEAF_PAIRS = 4
#: entries of the ``split`` layout's queue of level-1 pairs (a power of two): reserved as the leaves
#: that will complete them are accepted, since the leaf unit in between cannot wait
SPLIT_PAIRS = 8


def built_units(cfg: NormConfig) -> NormUnits:
    """The layout :class:`PolarNorm` builds for ``cfg``: its ``units``, but with one level ``split``
    is a unit per level (the leaf level's unit is the root's)."""
    return NormUnits.PER_LEVEL if cfg.units == NormUnits.SPLIT and cfg.levels == 1 else NormUnits(cfg.units)


def queues_leaf_pairs(cfg: NormConfig) -> bool:
    """Whether :class:`PolarNorm` at ``cfg`` queues its leaf pairs for a shared unit (the CORDIC
    tree with at least one level, built ``shared``): where its ``pair_register`` may go."""
    return cfg.method == NormMethod.CORDIC and cfg.levels > 0 and built_units(cfg) == NormUnits.SHARED


def tree_latency(cfg: NormConfig, pair_register: bool = False) -> int:
    """Cycles from accepting a vector's last leaf to the root's ``o_valid``, at most (the bound the
    operators schedule by): ``iterations + 2`` per level (:data:`spikeops.hdl.cordic.UNIT_EXTRA`:
    the pair's issue, the alignment, the steps, the last one into the result's register), the
    root's ``o_valid`` registered with the last.  With one unit per level a pair issues the cycle it
    forms, so that is all, and it is the latency; the shared unit adds the last leaf pair's queue: a
    cycle through it, and a wait of at most ``2 (LEAF_PAIRS + levels) + 3`` cycles (the pairs ahead
    of it each need a cycle the upper levels leave free, and the upper levels take at most one cycle
    in two beyond the ``levels`` left nodes already waiting, each of their pairs needing two
    results).  The ``split`` layout has the same bound one level up: the leaf unit's result enters
    a queue of at most :data:`SPLIT_PAIRS` entries served by a unit with ``levels - 1`` levels, so
    ``2 (SPLIT_PAIRS + levels - 1) + 4`` cycles beyond the levels' own (none with one level).
    ``pair_register`` (the shared layout's leaf pairs registered before the queue,
    :class:`PolarNorm`) adds one cycle to the shared bound."""
    if cfg.levels == 0:
        return 1
    merges = cfg.levels * (cfg.iterations + UNIT_EXTRA)
    units = built_units(cfg)
    if units == NormUnits.PER_LEVEL:
        return merges
    if units == NormUnits.SPLIT:
        return merges + 2 * (SPLIT_PAIRS + cfg.levels - 1) + 4
    return merges + 2 * (LEAF_PAIRS + cfg.levels) + 4 + int(pair_register)


class PolarNorm(ConfigComponent):
    """The streaming CORDIC tree of one :class:`spikeops.golden.norm.NormConfig` (``method="cordic"``),
    with one CORDIC unit for every level (``units="shared"``), the leaf level's own and one for the
    rest (``"split"``), or one per level (``"per_level"``).

    ``pair_register`` (``units="shared"`` only; hardware only, no result depends on it): each leaf
    pair passes a register before the queue's write, so that the leaf stream's last stage, the
    pairing and the exponents' differences are not one path into the queue (the norms' critical
    path at 6.6-7.1 ns on ECP5), for one cycle more of :func:`tree_latency`."""

    class Signature(ConfigSignature):
        config_type = NormConfig
        owner = "PolarNorm"

        @classmethod
        def build_members(cls, config):
            if config.method != "cordic":
                raise ValueError(f"PolarNorm: method={str(config.method)!r} is not allowed; allowed: 'cordic' "
                                 "(the exact norm is SqrtNode)")
            return {"i": In(stream.Signature(node_layout(config))),
                    "o": Out(node_layout(config)), "o_valid": Out(1)}

    def __init__(self, config, *, first_leaf: tuple[int, int] | None = None, pair_register: bool = False):
        self.first_leaf = first_leaf
        super().__init__(config)
        if not isinstance(pair_register, bool):
            raise ValueError(f"PolarNorm: pair_register={pair_register!r} is not allowed; allowed: False or True")
        if pair_register and not queues_leaf_pairs(config):
            raise ValueError(f"PolarNorm: pair_register=True is not allowed with units={str(config.units)!r} and "
                             f"{config.levels} levels; allowed: units='shared' with at least one level (the leaf "
                             "pairs' queue)")
        self.pair_register = pair_register
        if first_leaf is not None:
            if config.length < 2:
                raise ValueError("PolarNorm: a first_leaf needs length >= 2")
            fm, fe = first_leaf
            lo, hi = config.exp_range
            if not (1 << (config.width - 1) <= fm < 1 << config.width and lo < fe <= hi):
                raise ValueError(f"PolarNorm: first_leaf={first_leaf!r} is not a normalised node; allowed: "
                                 f"mantissa in [{1 << (config.width - 1)}, {(1 << config.width) - 1}], "
                                 f"exponent in ({lo}, {hi}]")

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        if cfg.levels == 0:  # one leaf: it is the root
            m.d.comb += self.i.ready.eq(1)
            m.d.sync += self.o_valid.eq(self.i.valid)
            with m.If(self.i.valid):
                m.d.sync += self.o.eq(self.i.payload)
            return m
        units = built_units(cfg)
        if units == NormUnits.PER_LEVEL:
            self._per_level(m, cfg)
        elif units == NormUnits.SPLIT:
            self._split(m, cfg)
        else:
            self._shared_leaves(m, cfg)
        return m

    def _leaf_level(self, m, cfg, accept):
        """Level 0: the leaves pair in arrival order (the constant ``first_leaf`` as leaf 0 of every
        vector when given).  Returns ``(formed, forms, count0, last0, next_forms)``: the pair the
        leaf on ``i`` forms (``(left, leaf)``, or ``(leaf, zero)`` for an odd count's last leaf),
        whether it forms one (a function of two registers), the leaf's number in its vector,
        ``last0`` (a register: the leaf is the vector's last) and what ``forms`` will be next cycle;
        the left node and the count are updated when ``accept``."""
        layout = node_layout(cfg)
        zero = {"m": 0, "e": cfg.zero_exp}
        size = level_sizes(cfg)[0]
        preload = self.first_leaf is not None
        first = zero if not preload else {"m": self.first_leaf[0], "e": self.first_leaf[1]}
        left0 = Signal(layout, init=first)
        left0_v = Signal(init=int(preload))
        count0 = Signal(range(size), init=int(preload))
        last0 = Signal(name="count0_last", init=int(int(preload) == size - 1))
        formed = Signal(data.ArrayLayout(layout, 2))
        leaf = self.i.payload
        with m.If(left0_v):
            m.d.comb += [formed[0].eq(left0), formed[1].eq(leaf)]
        with m.Else():
            m.d.comb += [formed[0].eq(leaf), formed[1].eq(layout.const(zero))]
        next_left_v = Mux(accept, Mux(last0, int(preload), ~left0_v), left0_v)
        next_last = Mux(accept, Mux(last0, int(preload) == size - 1, count0 == size - 2), last0)
        m.d.sync += [left0_v.eq(next_left_v), last0.eq(next_last)]
        with m.If(accept):
            m.d.sync += count0.eq(Mux(last0, int(preload), count0 + 1))
            with m.If(~(left0_v | last0)):
                m.d.sync += left0.eq(leaf)
            with m.If(last0):
                m.d.sync += left0.eq(layout.const(first))
        return formed, left0_v | last0, count0, last0, next_left_v | next_last

    def _per_level(self, m, cfg):
        """One unit per level: level 0's pairs enter unit 0 the cycle they form, and each unit's
        results pair (in order, a level's odd last node with the zero node) into the next level's
        unit; the last unit's result is the root.  The leaf stream never waits."""
        shapes = field_shapes(cfg)
        m.d.comb += self.i.ready.eq(1)
        accept = self.i.valid
        formed, forms, *_ = self._leaf_level(m, cfg, accept)
        pair_fields, pair_valid = merge_fields(m, formed[0], formed[1], cfg, prefix="level0_"), accept & forms
        for l in range(cfg.levels):
            out = self._unit_at(m, cfg, l, pair_fields, pair_valid)
            if l == cfg.levels - 1:
                m.d.sync += self.o_valid.eq(out.valid)
                with m.If(out.valid):
                    m.d.sync += self.o.eq(out.res)
                break
            left, left_v, last = self._level_pairing(m, cfg, l + 1, out.res, out.valid)
            with_left = merge_fields(m, left, out.res, cfg, prefix=f"level{l + 1}_")
            with_zero = zero_pair_fields(out.res, out.zero)
            pair_fields = {k: Mux(left_v, with_left[k], Value.cast(with_zero[k])) for k in shapes}
            pair_valid = out.valid & (left_v | last)

    @staticmethod
    def _level_pairing(m, cfg, l, node, valid):
        """Level ``l >= 1`` fed by one unit's results (``node`` when ``valid``), in order: returns the
        left node waiting for its partner, its valid bit and ``last`` (a register: the next node is
        the level's last, so it pairs with the zero node when no left node waits); the result on
        ``node`` forms a pair when ``left_v | last``."""
        layout = node_layout(cfg)
        size = level_sizes(cfg)[l]
        left = Signal(layout, name=f"left{l}")
        left_v = Signal(name=f"left{l}_valid")
        count = Signal(range(size), name=f"count{l}")
        last = Signal(name=f"count{l}_last", init=int(size == 1))
        with m.If(valid):
            m.d.sync += [count.eq(Mux(last, 0, count + 1)),
                         last.eq(Mux(last, size == 1, count == size - 2))]
            with m.If(~(left_v | last)):
                m.d.sync += left.eq(node)
            with m.If(last):
                m.d.sync += left_v.eq(0)
            with m.Else():
                m.d.sync += left_v.eq(~left_v)
        return left, left_v, last

    def _shared(self, m, cfg, base: int = 0):
        """One unit for every level from ``base`` up: a pair formed from the unit's own results
        (levels above ``base``) is issued the cycle it forms; the pairs of level ``base`` (leaf
        pairs, or with ``base = 1`` the pairs of the leaf unit's results, :meth:`_split`) wait in a
        queue for cycles the upper levels leave free.  Which pair issues is decided the cycle before,
        from registers (the result's level is known a stage ahead, and each level's state and the
        queue's occupancy are flags), so the issue only picks fields.  Returns the queue's
        ``(write, data, read, held)``: the caller enters a pair's differences (``data``, packed by
        :meth:`_queued`: the exponents' differences are worked out before the queue, the shift
        amounts after it, so that neither side holds both) with ``write``, sees ``read`` (the head
        issues) and ``held`` (a thermometer code of the occupancy), and holds its source while the
        queue may overflow."""
        levels = cfg.levels - base                 # the levels this unit serves
        layout = node_layout(cfg)
        sizes = level_sizes(cfg)
        # A pair's level (above ``base``) travels with it one-hot (``levels`` bits); the issue
        # decision is registered: which pair enters the unit this cycle was decided the cycle
        # before, so this cycle only computes the fields of the pairs that may issue and picks one
        # (an AND-OR multiplexer): the result with its level's left node (``partner``, fetched the
        # cycle before), the result with the zero node (a level's odd last node), or the pair at
        # the queue's head; ``candidates`` is filled below
        issue_pair = Signal(name="issue_pair")     # the result with ``partner``
        issue_zero = Signal(name="issue_zero")     # the result with the zero node
        issue_leaf = Signal(name="issue_leaf")     # the pair at the queue's head
        partner = Signal(layout, name="partner")
        fields = {k: Signal(shape, name=f"align_{k}") for k, shape in field_shapes(cfg).items()}
        lvl = Signal(levels, name="align_lvl")
        valid = Signal(name="align_valid")
        m.d.sync += valid.eq(issue_pair | issue_zero | issue_leaf)
        candidates = []                            # (select, fields with "lvl")
        out = cordic_unit(m, cfg, fields, valid, lvl, Signal(layout, name="result"))
        res, res_zero, res_valid, res_lvl = out.res, out.zero, out.valid, out.tag
        pre_valid, pre_lvl = out.stages[-2]        # next cycle's result: its valid and level
        pp_lvl = out.stages[-3][1]                 # the level of the result due in two cycles

        # the root
        m.d.sync += self.o_valid.eq(res_valid & res_lvl[levels - 1])
        with m.If(res_valid & res_lvl[levels - 1]):
            m.d.sync += self.o.eq(res)

        # levels above ``base``: a result pairs with the waiting left node of the next level.  Per
        # level, registers: the left node and its valid bit, the count of nodes, ``lastf`` (the
        # next node is the level's last) and ``prelast`` (the one after it is), so that the next
        # cycle's state is a function of flags, with no adder or comparison on the way to the decision
        pick_pair, pick_zero, pick_left, pick_res = [], [], [], []
        for j in range(1, levels):
            l = base + j                           # the tree's level; tag bit j - 1 brings its nodes
            left = Signal(layout, name=f"left{l}")
            left_v = Signal(name=f"left{l}_valid")
            count = Signal(range(sizes[l]), name=f"count{l}")
            lastf = Signal(name=f"count{l}_last", init=int(sizes[l] == 1))
            prelast = Signal(name=f"count{l}_prelast", init=int(sizes[l] == 2))
            at = res_valid & res_lvl[j - 1]
            store = at & ~left_v & ~lastf          # the result waits as the left node
            next_v = Mux(at, ~left_v & ~lastf, left_v)
            next_last = Mux(at, Mux(lastf, sizes[l] == 1, prelast), lastf)
            next_prelast = Mux(at, Mux(lastf, sizes[l] == 2, count == sizes[l] - 3 if sizes[l] >= 3 else 0),
                               prelast)
            m.d.sync += [left_v.eq(next_v), lastf.eq(next_last), prelast.eq(next_prelast)]
            with m.If(at):
                m.d.sync += count.eq(Mux(lastf, 0, count + 1))
            with m.If(store):
                m.d.sync += left.eq(res)
            # next cycle's result is of level l - 1: it pairs with the left node (then waiting), or
            # with the zero node when it is its level's last and no left node waits
            comes = pre_valid & pre_lvl[j - 1]
            pick_pair.append(comes & next_v)
            pick_zero.append(comes & ~next_v & next_last)
            pick_left.append(Mux(pre_lvl[j - 1], left.as_value(), 0))
            # next cycle's ``store`` with the result after it of the same level (so that it pairs
            # with the stored one), decided now
            pick_res.append(pp_lvl[j - 1] & comes & ~next_v & ~next_last)
        up_next = Cat(*pick_pair, *pick_zero).any()
        if levels > 1:
            # the partner: the result being stored as its level's left node this cycle (``use_res``,
            # a register decided the cycle before), else the left node of the coming result's level
            use_res = Signal(name="partner_is_result")
            lefts = 0
            for p in pick_left:
                lefts = lefts | p
            partner_next = Mux(use_res, res.as_value(), lefts)
            m.d.sync += [issue_pair.eq(Cat(*pick_pair).any()), issue_zero.eq(Cat(*pick_zero).any()),
                         partner.eq(partner_next), use_res.eq(Cat(*pick_res).any())]
            level_up = Cat(Const(0, 1), res_lvl[:-1])  # the level above the result's, one-hot
            candidates.append((issue_pair, {**merge_fields(m, partner, res, cfg), "lvl": level_up}))
            candidates.append((issue_zero, {**zero_pair_fields(res, res_zero), "lvl": level_up}))

        # level ``base``: its pairs' fields wait in a queue (distributed RAM, read asynchronously at
        # a registered address) for cycles the upper levels leave free.  ``held`` (a thermometer
        # code: held[k] = more than k pairs wait) is a register, so the next cycle's issue from the
        # queue only waits for this cycle's write.  The exponents' differences, not the exponents:
        # with the differences after it, the read was the norms' critical path (6.6-7.2 ns, 9-10
        # levels); with the shift amounts before it too, the write was (6.6-7.4 ns)
        depth = SPLIT_PAIRS if base else LEAF_PAIRS
        pair_layout = self._queue_layout(cfg)
        m.submodules.pairs = pairs = memory.Memory(shape=unsigned(pair_layout.size), depth=depth, init=[])
        wr, rd = pairs.write_port(), pairs.read_port(domain="comb")
        produce = Signal(range(depth), name="pairs_produce")
        consume = Signal(range(depth), name="pairs_consume")
        held = Signal(depth, name="pairs_held")
        head = data.View(pair_layout, rd.data)
        write = Signal(name="pairs_write")
        m.d.comb += [wr.addr.eq(produce), wr.en.eq(write), rd.addr.eq(consume)]
        with m.If(write):
            m.d.sync += produce.eq(produce + 1)    # the depth is a power of two: the pointers wrap
        with m.If(issue_leaf):
            m.d.sync += consume.eq(consume + 1)
        next_held = Mux(write & ~issue_leaf, Cat(Const(1, 1), held[:-1]),
                        Mux(issue_leaf & ~write, held[1:], held))
        m.d.sync += [held.eq(next_held), issue_leaf.eq(next_held[0] & ~up_next)]
        queued = fields_of_differences({k: head[k] for k in difference_shapes(cfg)}, cfg)
        candidates.append((issue_leaf, {**queued, "lvl": Const(1, levels)}))
        for k, reg in {**fields, "lvl": lvl}.items():   # at most one select is high
            picked = 0
            for sel, f in candidates:
                picked = picked | Mux(sel, Value.cast(f[k]).as_unsigned(), 0)
            m.d.sync += reg.eq(picked)
        return write, wr.data, issue_leaf, held, next_held

    def _shared_leaves(self, m, cfg):
        """``units="shared"``: the queue holds pairs of leaves, and the leaf stream stalls while it
        is full.  The stream's ready is a register, loaded with its next value (``~(forms & full)``
        of the next state), so that a source may stall on it with one LUT.  With
        ``pair_register`` a pair is written the cycle after it forms, so the stream also stalls when
        a registered pair would fill the queue (it never overflows, and a pair has as many ahead of
        it as without the register)."""
        write, data_in, _, held, next_held = self._shared(m, cfg)
        accept = Signal(name="leaf_accept")
        formed, forms, _, _, next_forms = self._leaf_level(m, cfg, accept)
        ready = Signal(init=1, name="leaf_ready")   # ~(forms & full); at reset the queue is empty
        pairs_now = accept & forms                  # a pair forms this cycle
        if self.pair_register:
            pair = Signal(data.ArrayLayout(node_layout(cfg), 2), name="leaf_pair")
            pair_v = Signal(name="leaf_pair_valid")
            m.d.sync += [pair.eq(formed), pair_v.eq(pairs_now)]   # loaded every cycle: no enable
            next_full = next_held[-1] | (pairs_now & next_held[-2])   # next cycle's pair_v & held[-2]
            write_now, a, b = pair_v, pair[0], pair[1]
        else:
            next_full = next_held[-1]
            write_now, a, b = pairs_now, formed[0], formed[1]
        m.d.sync += ready.eq(~(next_forms & next_full))
        m.d.comb += [self.i.ready.eq(ready), accept.eq(self.i.valid & ready), write.eq(write_now),
                     data_in.eq(self._queued(m, cfg, pair_differences(m, a, b, cfg, prefix="queued_")))]

    def _split(self, m, cfg):
        """``units="split"``: the leaf level's own unit (each leaf pair issued the cycle it forms,
        as with a unit per level) and one unit shared by the levels above (:meth:`_shared` with
        ``base = 1``), whose queue holds the pairs of the leaf unit's results.  Each unit has at
        most about one merge in two to do, so neither limits the rate at any length.  The leaf unit
        cannot wait, so a leaf that forms a pair whose result completes a level-1 pair reserves its
        queue entry when it is accepted (``used``: entries reserved or held), and the leaf stream
        stalls while fewer than two entries are free: the queue never overflows."""
        write, data_in, read, *_ = self._shared(m, cfg, base=1)
        accept = Signal(name="leaf_accept")
        formed, forms, count0, last0, _ = self._leaf_level(m, cfg, accept)
        out = self._unit_at(m, cfg, 0, merge_fields(m, formed[0], formed[1], cfg, prefix="level0_"), accept & forms)
        left, left_v, last = self._level_pairing(m, cfg, 1, out.res, out.valid)
        zero = node_layout(cfg).const({"m": 0, "e": cfg.zero_exp})
        pa, pb = Signal(node_layout(cfg), name="queued_a"), Signal(node_layout(cfg), name="queued_b")
        m.d.comb += [pa.eq(Mux(left_v, left.as_value(), out.res.as_value())),
                     pb.eq(Mux(left_v, out.res.as_value(), zero.as_value())),
                     write.eq(out.valid & (left_v | last)),
                     data_in.eq(self._queued(m, cfg, pair_differences(m, pa, pb, cfg, prefix="queued_")))]
        # the level-1 node a leaf pair makes is number count0 // 2 of its vector: it completes a
        # level-1 pair when that is odd, or when it is the last (the leaf is the vector's last)
        bit1 = count0[1] if len(count0) > 1 else Const(0, 1)
        reserve = accept & forms & (bit1 | last0)
        used = Signal(range(SPLIT_PAIRS + 1), name="pairs_used")
        room = Signal(name="pairs_room", init=1)
        used_next = Signal(range(SPLIT_PAIRS + 2), name="pairs_used_next")
        m.d.comb += used_next.eq(used + reserve - read)
        m.d.sync += [used.eq(used_next), room.eq(used_next <= SPLIT_PAIRS - 2)]
        m.d.comb += [self.i.ready.eq(room), accept.eq(self.i.valid & room)]

    @staticmethod
    def _queue_layout(cfg):
        """The layout of a pair in the queue (:func:`~spikeops.hdl.cordic.difference_shapes`)."""
        return data.StructLayout(difference_shapes(cfg))

    def _queued(self, m, cfg, differences: dict):
        """A pair's ``differences`` (:func:`~spikeops.hdl.cordic.pair_differences`) packed for the
        queue's write."""
        packed = Signal(self._queue_layout(cfg), name="queued_pair")
        m.d.comb += [packed[k].eq(v) for k, v in differences.items()]
        return packed.as_value()

    @staticmethod
    def _unit_at(m, cfg, l, pair_fields, pair_valid):
        """Level ``l``'s own unit (``per_level`` and ``split``): the pair's fields registered the
        cycle it forms, then the unit."""
        fields = {k: Signal(shape, name=f"level{l}_issue_{k}") for k, shape in field_shapes(cfg).items()}
        valid = Signal(name=f"level{l}_issue_valid")
        m.d.sync += [valid.eq(pair_valid)] + [fields[k].eq(pair_fields[k]) for k in fields]
        return cordic_unit(m, cfg, fields, valid, Const(1, 1), Signal(node_layout(cfg), name=f"level{l}_result"),
                           prefix=f"level{l}_")


class SqrtNode(ConfigComponent):
    """The exact norm's root of one :class:`spikeops.golden.norm.NormConfig` (``method="exact"``):
    ``i`` streams sums of squares (``q_width`` bits), ``o`` the root node (``o_valid``)."""

    class Signature(ConfigSignature):
        config_type = NormConfig
        owner = "SqrtNode"

        @classmethod
        def build_members(cls, config):
            return {"i": In(stream.Signature(unsigned(SqrtNode.q_width(config)))),
                    "o": Out(node_layout(config)), "o_valid": Out(1)}

    @staticmethod
    def q_width(cfg: NormConfig) -> int:
        """Bits of a sum of squares: ``length`` leaves below ``2**leaf_bits``."""
        return 2 * cfg.leaf_bits + cfg.length.bit_length()

    #: cycles from taking a ``Q`` to its first root digit: the leading one, the shift amounts, the
    #: shift in two halves (coarse, then the low three bits)
    PREPARE = 4

    #: set by a parent whose every ``Q`` is not 0 (and whose facts say so): :meth:`_root_claims`
    nonzero_input = False

    @classmethod
    def latency(cls, cfg: NormConfig) -> int:
        """Cycles from taking a ``Q`` to ``o_valid`` (the next ``Q`` is taken one cycle later):
        :data:`PREPARE`, ``width`` root digits, the result register."""
        return cfg.width + cls.PREPARE + 1

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        w, qw = cfg.width, self.q_width(cfg)
        # preparing a Q, a stage a cycle (``pipe``: which stages hold one): its bit length; then
        # ``e = floor((bits - 2w + 1) / 2)`` and the shift ``2e`` that brings Q to 2w or 2w - 1 bits
        # as a left or a right amount; then the shift by the amount's high bits, then by its low three
        pipe = Signal(self.PREPARE - 1, name="sqrt_prepare")
        busy = Signal(name="sqrt_busy")
        m.d.comb += self.i.ready.eq(~busy & ~pipe.any())
        take = self.i.valid & self.i.ready
        q1, q2 = Signal(unsigned(qw), name="sqrt_q1"), Signal(unsigned(qw), name="sqrt_q2")
        bits = Signal(range(qw + 1), name="sqrt_q_bits")
        m.d.sync += pipe.eq(Cat(take, pipe[:-1]))
        with m.If(take):
            m.d.sync += [q1.eq(self.i.payload), bits.eq(bit_length(m, self.i.payload, name="q_bits"))]
        lmax, rmax = 2 * w - 1, max(qw - 2 * w + 1, 0)          # the shifts' ranges
        left, right = Signal(range(lmax + 1), name="sqrt_left"), Signal(range(rmax + 1), name="sqrt_right")
        e1, e2 = Signal(signed(cfg.exp_width), name="sqrt_e1"), Signal(signed(cfg.exp_width), name="sqrt_e2")
        with m.If(pipe[0]):
            m.d.sync += q2.eq(q1)
            # e and the amounts are functions of the bit length alone: a table of constants (a LUT
            # level or two) rather than the subtraction and the clamps
            with m.Switch(bits):
                for n in range(qw + 1):
                    half = (n - 2 * w + 1) >> 1
                    with m.Case(n):
                        m.d.sync += [e1.eq(half), left.eq(min(max(-2 * half, 0), lmax)),
                                     right.eq(min(max(2 * half, 0), rmax))]
        coarse = Signal(unsigned(max(qw, 2 * w)), name="sqrt_coarse")
        fine_l, fine_r = Signal(3, name="sqrt_fine_left"), Signal(3, name="sqrt_fine_right")
        with m.If(pipe[1]):
            m.d.sync += [coarse.eq(Mux(left.any(), q2 << Cat(Const(0, 3), left[3:]), q2 >> Cat(Const(0, 3), right[3:]))),
                         fine_l.eq(left[:3]), fine_r.eq(right[:3]), e2.eq(e1)]
        # the digits, one a cycle: ``res + bit`` is ``res | bit`` (res's bits all lie above bit's),
        # and one subtraction's borrow is the compare ``num >= res + bit``
        num = Signal(unsigned(2 * w), name="sqrt_num")
        res = Signal(unsigned(2 * w), name="sqrt_res")
        bit = Signal(unsigned(2 * w), name="sqrt_bit")
        step = Signal(range(w + 1), name="sqrt_step")
        e = Signal(signed(cfg.exp_width), name="sqrt_e")
        trial = Signal(unsigned(2 * w + 1), name="sqrt_trial")   # top bit: the borrow
        m.d.comb += trial.eq(num - (res | bit))
        with m.If(pipe[2]):
            m.d.sync += [num.eq(Mux(fine_l.any(), coarse << fine_l, coarse >> fine_r)[:2 * w]),
                         e.eq(e2), res.eq(0), bit.eq(1 << (2 * w - 2)), step.eq(0), busy.eq(1)]
        m.d.sync += self.o_valid.eq(0)
        with m.If(busy):
            with m.If(step == w):
                m.d.sync += [busy.eq(0), self.o_valid.eq(1), self.o.m.eq(res), self.o.e.eq(e)]
            with m.Else():
                m.d.sync += [step.eq(step + 1), bit.eq(bit >> 2)]
                with m.If(~trial[-1]):
                    m.d.sync += [num.eq(trial[:2 * w]), res.eq((res >> 1) | bit)]
                with m.Else():
                    m.d.sync += res.eq(res >> 1)
        self.claims = Claims().add(~busy | (step <= w), f"sqrt: a busy unit's step <= {w}")
        if self.nonzero_input:
            self._root_claims(busy, step, num, res, bit)
        return m

    def _root_claims(self, busy, step, num, res, bit):
        """Value claims (a ``zero`` proof's, :mod:`spikeops.hdl.claims`) of a unit whose ``Q`` is
        never 0: the shifted ``Q`` has its leading one in its top two bits (``2w`` or ``2w - 1``
        bits), so the first digit is 1 and each later one shifts the root's leading one down a bit:
        after ``s`` digits it is bit ``2w - 1 - s``, and the root comes out with its top bit set
        (normalised).  ``bit``, the digit's weight, is ``2**(2w - 2 - 2s)``."""
        w = self.config.width
        c = self.claims
        c.add_value(~busy | (step != 0) | ((res == 0) & (num[2 * w - 2:] != 0)),
                    "sqrt: at its first digit the root is 0 and the shifted Q has its leading one in its top two bits")
        for s in range(w + 1):
            weight = 1 << (2 * w - 2 - 2 * s) if 2 * w - 2 - 2 * s >= 0 else 0
            c.add_value(~busy | (step != s) | (bit == weight), f"sqrt: after {s} digits the digit's weight is {weight}")
            if s:
                c.add_value(~busy | (step != s) | ((res >> (2 * w - 1 - s)) == 1),
                            f"sqrt: after {s} digits the root's leading one is bit {2 * w - 1 - s}")
        c.add_value(~self.o_valid | self.o.m[w - 1], "sqrt: a root out has its top bit set")
