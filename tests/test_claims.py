"""What the proofs read beside a component, in Amaranth's simulator.  The model of a library queue
(:class:`spikeops.hdl.claims.ShadowQueue`): beside a real ``amaranth.lib.fifo`` queue under random writes and reads, its count, its
entries from the head (``at``, ``values``) and their sum (``total``) are the queue's contents, and
the queue offers the shadow's head (the contract a proof assumes).  A row buffer's peek port
(:meth:`spikeops.hdl.rowbuffer.RowBuffer.peek`) reads what was written."""

import random
from collections import deque

import pytest
from amaranth.hdl import Fragment, Module, Signal, signed
from amaranth.lib import fifo
from amaranth.sim import Simulator

from spikeops.hdl.claims import Claims, ShadowQueue
from spikeops.hdl.dsp import PrimitivePlatform
from spikeops.hdl.rowbuffer import RowBuffer


@pytest.mark.parametrize("depth", [2, 3, 5])
def test_shadow_queue_follows_the_queue(depth):
    m = Module()
    m.submodules.q = q = fifo.SyncFIFOBuffered(width=4, depth=depth)
    shadow = ShadowQueue(q, lambda word: word, low=0, high=15, name="q")
    shadow.elaborate(m)
    values = shadow.values()
    seen = [Signal(4, name=f"value{k}") for k in range(depth)]
    head, total = Signal(4), Signal(8)
    m.d.comb += [s.eq(v) for s, v in zip(seen, values)] + [head.eq(shadow.at(0)), total.eq(shadow.total)]
    rng = random.Random(depth)
    model = deque()
    checked = {"cycles": 0, "full": 0, "offers": 0}

    async def bench(ctx):
        for _ in range(300):
            write, read, word = rng.random() < 0.6, rng.random() < 0.5, rng.randrange(16)
            ctx.set(q.w_en, write)
            ctx.set(q.w_data, word)
            ctx.set(q.r_en, read)
            count = ctx.get(shadow.count)
            assert count == ctx.get(q.level) == len(model)
            assert [ctx.get(s) for s in seen] == list(model) + [0] * (depth - len(model))
            assert ctx.get(total) == sum(model)
            if ctx.get(q.r_rdy):
                assert ctx.get(q.r_data) == ctx.get(head) == model[0]
                checked["offers"] += 1
            took = write and ctx.get(q.w_rdy)
            gave = read and ctx.get(q.r_rdy)
            await ctx.tick()
            if gave:
                model.popleft()
            if took:
                model.append(word)
            checked["cycles"] += 1
            checked["full"] += len(model) == depth

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    # the random traffic filled the queue and read from it: the checks above ran on both
    assert checked["cycles"] == 300 and checked["full"] > 0 and checked["offers"] > 50


@pytest.mark.parametrize("registered", [False, True])
def test_peek_reads_the_entry_in_the_same_cycle(registered):
    """:meth:`RowBuffer.peek`, the proofs' view of a ring entry: after random writes, the entry at
    any address is what was last written there, in the same cycle (plain and registered buffers)."""
    m = Module()
    buf = RowBuffer(m, "buf", signed(4), 5, registered=registered)
    w_addr, w_data, w_en = Signal(range(5)), Signal(signed(4)), Signal()
    buf.write(m, w_addr, w_data, w_en)
    buf.read(m, 0, 1)
    addr, data = buf.peek(m)
    rng = random.Random(registered)
    model = [0] * 5
    checked = []

    async def bench(ctx):
        for _ in range(200):
            a, v, en = rng.randrange(5), rng.randrange(-8, 8), rng.random() < 0.6
            ctx.set(w_addr, a)
            ctx.set(w_data, v)
            ctx.set(w_en, en)
            look = rng.randrange(5)
            ctx.set(addr, look)
            assert ctx.get(data) == model[look]
            checked.append(look)
            await ctx.tick()
            if en:
                model[a] = v

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert len(checked) == 200 and any(model)


def test_peek_is_refused_on_block_ram():
    """A proof's read port has no block-RAM counterpart: the ecp5 mapping refuses it."""
    m = Module()
    buf = RowBuffer(m, "buf", signed(4), 64, registered=True)
    buf.peek(m)
    with pytest.raises(ValueError, match="peek: a proof's read port needs the inferred memory"):
        Fragment.get(m, PrimitivePlatform("ecp5"))


def test_a_value_only_shadow_joins_the_zero_proof_alone():
    """:meth:`Claims.shadow` with ``value_only``: its facts and contract go to ``value_claims`` and
    ``value_contracts`` (the ``zero`` proof's), the plain shadow's to ``claims`` and ``contracts``;
    both survive :meth:`Claims.extend` and :meth:`Claims.resolved`."""
    m = Module()
    m.submodules.a = a = fifo.SyncFIFOBuffered(width=4, depth=3)
    m.submodules.b = b = fifo.SyncFIFOBuffered(width=4, depth=3)
    part = Claims()
    plain = part.shadow(a, lambda w: w, low=0, high=15, name="a")
    values = part.shadow(b, lambda w: w != 0, low=1, high=1, name="b", value_only=True)
    c = Claims().extend(part).resolved()
    assert not plain.value_only and values.value_only and c.shadows == [plain, values]
    texts = [t for _, t in c.claims]
    value_texts = [t for _, t in c.value_claims]
    assert any(t.startswith("a: ") for t in texts) and not any(t.startswith("b: ") for t in texts)
    assert any(t.startswith("b: ") for t in value_texts) and not any(t.startswith("a: ") for t in value_texts)
    assert [t for _, t in c.contracts] == ["a: the queue offers the shadow's head"]
    assert [t for _, t in c.value_contracts] == ["b: the queue offers the shadow's head"]
    Fragment.get(m, None)   # the queues are the module's (no warning of an unused one)


@pytest.mark.parametrize("op", ["softmax", "rmsnorm", "layernorm"])
def test_a_row_operator_states_its_facts_for_a_proof_alone(op):
    """The facts are built when the operator is elaborated for the ``formal`` platform (what the
    proofs' harness uses) and not for an emission, where nothing reads them (Softmax's grew as the
    square of its row queue's depth: 77 s of an emission at d_max 8192)."""
    from spikeops.verif.formal import small_target
    target = small_target(op)
    emitted, proved = target.make(), target.make()
    Fragment.get(emitted, None)
    Fragment.get(proved, "formal")
    assert emitted.claims is None
    facts = proved.claims.resolved()
    assert facts.claims and facts.sequence and facts.held is not None
