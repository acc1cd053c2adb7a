"""Fixed-latency pipelines for stream components with II = 1.

:class:`Pipeline` registers stages under one shared enable.  With the enable of a stalling stream,

    enable = ~o.valid | o.ready          i.ready = enable

every stage holds while the sink stalls: nothing is dropped or duplicated, but ``o.ready`` fans out
to every register of the datapath, which is what limits the clock of a wide pipeline.

:class:`CreditPipeline` never stalls its datapath (enable = 1) and puts an output queue after it:

    accepted in cycle a  ->  stage p holds it in cycle a + p  ->  ``o`` in cycle a + P + 1
    i.ready = (held < capacity)          held: elements accepted and not yet taken from ``o``

``held`` is a register and so is ``held < capacity`` (:func:`reaches` of the flags, no adder
before it), so neither ``i.ready`` nor ``o.valid`` depends combinationally on
``o.ready``, and ``o.ready`` reaches only the queue's read side and the output register.  An element goes from the
last stage straight into the output register when the queue is empty; otherwise into the queue
(``P + 1`` entries of distributed RAM with an asynchronous read), which can take every element the
datapath holds, so a stalled sink loses nothing; with the sink always ready the pipeline accepts an
element every cycle.  A reset clears every valid bit, the queue and ``held``,
so no stale element survives it.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Mux, Shape, Signal, Value, unsigned
from amaranth.lib import memory

from .claims import Claims
from .dsp import MULTIPLIER_LATENCY, MULTIPLIER_WIDTH, Multiplier

__all__ = ["Pipeline", "Stage", "CreditPipeline", "credit_latency", "multiply_stages",
           "reaches", "stepped", "multiply_latency", "product_blocks", "product_sum_stages", "MULTIPLY_STAGES", "DSP_WIDTH"]


def reaches(count, inc, dec, top):
    """Whether the counter ``count`` (never above ``top``) equals ``top`` next cycle after ``+ inc
    - dec``, from its equality flags: no adder, so a register of it is as fast as the flags, and a
    ``ready`` or ``room`` register made of it does not wait for this cycle's carry chain."""
    return Mux(inc & ~dec, count == top - 1, Mux(~inc & dec, 0, count == top))


def stepped(count, inc, dec):
    """``count + inc - dec`` (one-bit events) with the carry chains off ``count`` alone and the
    events selecting among ``count + 1``, ``count - 1`` and ``count``: a late event (a sink's ready,
    a queue's valid) reaches a multiplexer, not a chain (it would have entered the chain's LUTs)."""
    return Mux(inc & ~dec, count + 1, Mux(dec & ~inc, count - 1, count))


class Stage:
    """The registers of one stage: attribute access by name, plus ``valid``."""

    def __init__(self, valid, regs: dict):
        self.valid = valid
        self._regs = regs
        for k, v in regs.items():
            setattr(self, k, v)

    def __getitem__(self, name):
        return self._regs[name]


class Pipeline:
    """Stages registered under one enable.

    ``enable`` is the advance condition; ``valid_in`` the input valid.  ``stage(**values)``
    registers each value (an Amaranth value) and returns a :class:`Stage`; ``latency`` counts the
    stages added so far.
    """

    def __init__(self, m, enable, valid_in, *, name: str = "p"):
        self.m = m
        self.enable = enable
        self.valid = valid_in
        self.latency = 0
        self.name = name
        self.carried = {}
        self.valids = []          # each stage's valid bit, in order (:meth:`claims` counts them)
        self.stage_carried = []   # each stage's carried registers (a dict a stage), in order
        self.stage_fields = []    # each stage's own registers (the values given to :meth:`stage`)
        #: runs of stages a primitive added, by its name (a ``range`` of stage indices from 0), so
        #: that the primitive, which knows their registers, states what they hold
        self.spans = {}

    def carry(self, **values):
        """Values that travel along every later stage (re-registered at each one), aligned with the
        data; read them back from ``carried``."""
        self.carried.update({k: Value.cast(v) for k, v in values.items()})

    def stage(self, **values) -> Stage:
        self.latency += 1
        prefix = f"{self.name}{self.latency}_"
        valid = Signal(name=prefix + "valid")
        regs = {}
        with self.m.If(self.enable):
            self.m.d.sync += valid.eq(self.valid)
            for k, v in values.items():
                regs[k] = self._register(prefix + k, v)
            for k, v in self.carried.items():
                self.carried[k] = self._register(prefix + "c_" + k, v)
        self.valid = valid
        self.valids.append(valid)
        self.stage_carried.append(dict(self.carried))
        self.stage_fields.append(regs)
        return Stage(valid, regs)

    def _register(self, name, value):
        value = Value.cast(value)
        r = Signal(value.shape(), name=name)
        self.m.d.sync += r.eq(value)
        return r


def credit_latency(stages: int) -> int:
    """Latency of a :class:`CreditPipeline` with ``stages`` datapath stages: the output register
    adds a cycle (an element passes the queue by when it is empty, as it is while the sink keeps
    up)."""
    return stages + 1


class CreditPipeline(Pipeline):
    """A :class:`Pipeline` that never stalls, in front of an output stream ``o`` (module docstring):
    build the stages with :meth:`stage`, then :meth:`finish` with the payload of the last one.

    The input is a stream ``i`` (``i.ready`` is driven here) or a ``valid`` signal from a source
    that only asserts it while :attr:`room` is high (a pass over a row buffer, whose ``advance`` is
    ``room``).  ``room``: an element may enter this cycle (``held < capacity``, from registers only).
    """

    def __init__(self, m, o, *, i=None, valid=None, name: str = "p"):
        if (i is None) == (valid is None):
            raise TypeError("CreditPipeline: give exactly one of i (a stream) and valid (a signal)")
        self.i, self.o = i, o
        self.room = Signal(init=1, name=f"{name}_room")     # a register: held < capacity
        if i is not None:
            m.d.comb += i.ready.eq(self.room)
            valid = i.valid & self.room
        super().__init__(m, Const(1), valid, name=name)
        self._accept = valid

    @property
    def output_latency(self) -> int:
        """Cycles from an accepted input to its output with no stalls, once finished."""
        return credit_latency(self.latency)

    @property
    def capacity(self) -> int:
        """The most elements held at once: the queue's entries plus the output register."""
        return self.output_latency + 1

    def finish(self, payload):
        """Queue the last stage's ``payload`` (aligned with ``self.valid``) and drive ``o``: straight
        into the output register when the queue is empty and the register free, else through the
        queue, so order is kept.

        Every element is written into the queue, at ``produce``, whether or not it passes by: the
        write enable is the last stage's valid alone (a register), so the sink's ready never reaches
        the queue's memory.  One that passes by is read in the same cycle (``consume`` equals
        ``produce`` while the queue is empty), so both pointers advance and it is never read again."""
        m, o = self.m, self.o
        payload = Value.cast(payload)
        entries = self.output_latency            # held <= capacity leaves at most this many queued
        depth = 1 << max(1, (entries - 1).bit_length())
        # an asynchronous read, so no block RAM's clock-to-out on the way to ``o``: ECP5 maps it to
        # distributed RAM by itself, iCE40 (no distributed RAM) to registers.  No ``ram_style``
        # attribute: "distributed" made every iCE40 synthesis fail ("no valid mapping found")
        mem = memory.Memory(shape=unsigned(len(payload)), depth=depth, init=[])
        m.submodules[f"{self.name}_queue"] = mem
        wr, rd = mem.write_port(), mem.read_port(domain="comb")
        # the pointers and their successors are registers, so that the sink's ready only selects
        # between registers (no carry chain after it); ``empty``: produce == consume
        produce = Signal(range(depth), name=f"{self.name}_produce")
        produce_1 = Signal(range(depth), init=1, name=f"{self.name}_produce_1")
        consume = Signal(range(depth), name=f"{self.name}_consume")
        consume_1 = Signal(range(depth), init=1, name=f"{self.name}_consume_1")
        empty = Signal(init=1, name=f"{self.name}_empty")
        load = ~o.valid | o.ready
        write = self.valid
        # the output register takes the head: the queue's, or the arriving element (written at
        # ``produce == consume``) when the queue is empty
        take = load & (~empty | write)
        m.d.comb += [wr.addr.eq(produce), wr.data.eq(payload), wr.en.eq(write), rd.addr.eq(consume)]
        with m.If(write):
            m.d.sync += [produce.eq(produce_1), produce_1.eq(produce_1 + 1)]
        with m.If(take):
            m.d.sync += [consume.eq(consume_1), consume_1.eq(consume_1 + 1)]
        # one more queued (written, none taken), one fewer (taken, none written), or as many
        m.d.sync += empty.eq(Mux(write & ~take, 0, Mux(take & ~write, consume_1 == produce, empty)))
        with m.If(load):
            m.d.sync += [o.valid.eq(~empty | self.valid), o.payload.eq(Mux(empty, payload, rd.data))]
        held = Signal(range(self.capacity + 1), name=f"{self.name}_held")
        taken = o.valid & o.ready
        # ``held + accept - taken``: the sink's ready reaches a multiplexer, not a chain
        m.d.sync += [held.eq(stepped(held, self._accept, taken)),
                     self.room.eq(~reaches(held, self._accept, taken, self.capacity))]
        self.held = held
        self._queue = (produce, produce_1, consume, consume_1, empty, depth)
        self._mem = mem
        return o

    def queued(self):
        """The number of elements in the queue (an expression of its pointers)."""
        produce, _, consume, _, empty, depth = self._queue
        wrap = produce < consume
        return Mux(empty, 0, Mux(produce == consume, depth, Mux(wrap, produce + depth - consume, produce - consume)))

    def segments(self, claims: Claims, output, entry, stage):
        """Add the held elements to ``claims``' sequence in output order: the output register
        (``output(tag)``: its conditions when it holds the tagged element, a
        :class:`~spikeops.hdl.claims.Tag`), the queue (``entry(bits, tag)`` on the entry's bits,
        read through an asynchronous port added for the proof: call this only when elaborating for
        one) and the valid stages, last first (``stage(s, carried, tag)`` with the stage's carried
        registers)."""
        consume = self._queue[2]
        peek = self._mem.read_port(domain="comb")

        def at_queue(m, i, tag):      # the queue's depth is a power of 2: the index wraps
            m.d.comb += peek.addr.eq((consume + i)[:len(consume)])
            return entry(peek.data, tag)

        claims.segment(self.o.valid, lambda m, i, tag: output(tag))
        claims.segment(self.queued(), at_queue)
        for s in reversed(range(len(self.valids))):
            claims.segment(self.valids[s], lambda m, i, tag, s=s: stage(s, self.stage_carried[s], tag))

    def row_segments(self, claims: Claims, width: int, zero=None):
        """:meth:`segments` of a row operator whose elements leave as ``Cat(y[:width], last)`` and
        carry ``last`` through the stages: wherever the tagged element is, its ``last`` is
        whether it ended its row; in the output register and the queue, ``y`` is 0 when its answer
        must be (:class:`~spikeops.hdl.claims.Tag`), and in stage ``s`` (from 0) ``zero(s,
        registers)`` where that gives a condition (None: the stage states no value; ``registers``:
        the stage's own and its carried ones, by name).  The pipeline never stalls, so an element
        crosses a run of stages that state none in as many cycles, from the ring's read before the
        first stage or from a stage that states one: :attr:`~spikeops.hdl.claims.Claims.settle` is
        at least the longest such run."""
        def same(bits, tag, where):
            return [(bits[width] == tag.end, f"order: {where}'s last is the tagged input's"),
                    (~tag.zero | (bits[:width] == 0), f"zero: {where} holds 0 for the tagged input")]

        values = [zero(s, {**fields, **carried}) if zero else None
                  for s, (fields, carried) in enumerate(zip(self.stage_fields, self.stage_carried))]

        def stage(s, carried, tag):
            conds = [(carried["last"] == tag.end, f"order: stage {s + 1}'s last is the tagged input's")]
            if values[s] is not None:
                conds.append((~tag.zero | values[s], f"zero: stage {s + 1} holds the tagged input's zero"))
            return conds

        self.segments(claims, lambda tag: same(Value.cast(self.o.payload), tag, "the output register"),
                      lambda bits, tag: same(bits, tag, "a queued element"), stage)
        run = longest = 0
        for value in values:
            run = run + 1 if value is None else 0
            longest = max(longest, run)
        claims.settle = max(claims.settle, longest)

    def claims(self) -> Claims:
        """The facts of a finished pipeline (:mod:`spikeops.hdl.claims`): ``held`` counts the
        valid stages, the queued elements and the output register; it never passes
        :attr:`capacity` and ``room`` says whether it is below; the pointers' successors are their
        successors, and an empty queue has equal pointers."""
        produce, produce_1, consume, consume_1, empty, depth = self._queue
        count = self.queued()
        in_stages = sum((v.as_unsigned() for v in self.valids), Const(0, 1))
        c = Claims(held=self.held)
        n = self.name
        c.add(self.held == in_stages + count + self.o.valid, f"{n}: held = valid stages + queued + output register")
        c.add(self.held <= self.capacity, f"{n}: held <= capacity {self.capacity}")
        c.add(self.room == (self.held != self.capacity), f"{n}: room = held < capacity")
        c.add(produce_1 == (produce + 1)[:len(produce)], f"{n}: produce_1 = produce + 1")
        c.add(consume_1 == (consume + 1)[:len(consume)], f"{n}: consume_1 = consume + 1")
        c.add(~empty | (produce == consume), f"{n}: an empty queue has produce = consume")
        return c


#: pipeline stages of :func:`multiply_stages`: the multiplier blocks' two registers, then the sum
MULTIPLY_STAGES = MULTIPLIER_LATENCY + 1
#: the widest unsigned operand one multiplier block takes (ECP5 MULT18X18D: 18-bit signed)
DSP_WIDTH = MULTIPLIER_WIDTH - 1


def multiply_latency(sum_stages: int = 1) -> int:
    """Stages of :func:`multiply_stages` with ``sum_stages`` (:data:`MULTIPLY_STAGES` for 1)."""
    return MULTIPLIER_LATENCY + sum_stages


def _pieces(shape) -> int:
    """How many slices :func:`_slices` cuts a value of ``shape`` into."""
    shape = Shape.cast(shape)
    return 1 if shape.width <= DSP_WIDTH + shape.signed else -(-shape.width // DSP_WIDTH)


def _slices(v):
    """``(offset, slice)`` pieces of ``v`` that one multiplier block takes: ``DSP_WIDTH``-bit unsigned
    slices, the top one signed when ``v`` is (a signed value of up to 18 bits is one piece)."""
    if _pieces(v.shape()) == 1:
        return [(0, v)]
    pieces = [(lo, v[lo:lo + DSP_WIDTH]) for lo in range(0, len(v), DSP_WIDTH)]
    if v.shape().signed:
        lo = pieces[-1][0]
        pieces[-1] = (lo, v[lo:].as_signed())
    return pieces


def product_blocks(a_shape, b_shape) -> int:
    """Multiplier blocks (partial products) of ``a * b`` for operands of these shapes (:func:`_slices`)."""
    return _pieces(a_shape) * _pieces(b_shape)


def product_sum_stages(a_shape, b_shape) -> int:
    """The ``sum_stages`` of :func:`multiply_stages` that keeps one adder a cycle off the blocks:
    2 for three or more partial products, else 1."""
    return 2 if product_blocks(a_shape, b_shape) >= 3 else 1


def _add_aligned(t1, t2):
    """The sum of two ``(offset, value)`` terms (value times ``2**offset``) as one term: the lower
    term's bits below the higher term's offset pass by, and only the rest is added, so the carry
    chain is as long as the overlap."""
    (o1, v1), (o2, v2) = sorted([t1, t2], key=lambda t: t[0])
    d = o2 - o1
    high = (v1 >> d) + v2
    total = Cat(v1[:d], high) if d else high
    return o1, total.as_signed() if high.shape().signed else total


def _sum_level(terms):
    """One level of the sum tree: ``(offset, value)`` terms, sorted by offset, added in neighbouring
    pairs (:func:`_add_aligned`; an odd last term passes)."""
    return [_add_aligned(*terms[k:k + 2]) if k + 1 < len(terms) else terms[k] for k in range(0, len(terms), 2)]


def _sum_tree(terms):
    """The sum of ``(offset, value)`` terms sorted by offset, level by level (:func:`_sum_level`)."""
    while len(terms) > 1:
        terms = _sum_level(terms)
    return terms[0]


def multiply_stages(pipe: Pipeline, a, b, *, sum_stages: int = 1):
    """``a * b`` in :func:`multiply_latency` ``(sum_stages)`` registered stages: the partial products of the operands'
    slices (:func:`_slices`), each in a :class:`~spikeops.hdl.dsp.Multiplier` (operands registered,
    then the product: on ECP5 the DSP block's own registers), each cut to the bits its slices' widths
    give it, then their sum as a balanced tree of aligned adds: in one stage, or with
    ``sum_stages=2`` the first level of pairs in a stage of its own (for three or more partial
    products, whose sum off the blocks would otherwise be two adders deep)."""
    if sum_stages not in (1, 2):
        raise ValueError(f"multiply_stages: sum_stages={sum_stages} is not allowed; allowed: 1 or 2")
    a, b = Value.cast(a), Value.cast(b)
    terms = []
    for i, (la, xa) in enumerate(_slices(a)):
        for j, (lb, xb) in enumerate(_slices(b)):
            mul = Multiplier(xa, xb, en=pipe.enable)
            pipe.m.submodules[f"{pipe.name}{pipe.latency + 1}_mul{i}_{j}"] = mul
            p = mul.p[:len(xa) + len(xb)]
            terms.append((la + lb, p.as_signed() if xa.shape().signed or xb.shape().signed else p))
    terms.sort(key=lambda t: t[0])
    for _ in range(MULTIPLIER_LATENCY):   # the valid bits (and carried values) beside the registers
        pipe.stage()
    width = len(a) + len(b)
    signed = a.shape().signed or b.shape().signed
    if sum_stages == 2:
        pairs = _sum_level(terms)
        st = pipe.stage(**{f"t{k}": v for k, (_, v) in enumerate(pairs)})
        terms = [(o, st[f"t{k}"]) for k, (o, _) in enumerate(pairs)]
    _, total = _sum_tree(terms)
    return pipe.stage(p=total[:width].as_signed() if signed else total[:width]).p
