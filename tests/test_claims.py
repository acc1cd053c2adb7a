"""The proofs' model of a library queue (:class:`spikeops.hdl.claims.ShadowQueue`), in Amaranth's
simulator: beside a real ``amaranth.lib.fifo`` queue under random writes and reads, its count, its
entries from the head (``at``, ``values``) and their sum (``total``) are the queue's contents, and
the queue offers the shadow's head (the contract a proof assumes)."""

import random
from collections import deque

import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import fifo
from amaranth.sim import Simulator

from spikeops.hdl.claims import ShadowQueue


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
