"""Fast unit checks in Amaranth's own simulator: drive a stream component with random idle cycles
and backpressure, collect every accepted output, and count cycles.

The cocotb testbenches (``verif/tb.py``) are the regression on real simulators; this harness runs
in-process in milliseconds, for the primitives and for quick operator checks.
"""

from __future__ import annotations

import numpy as np
from amaranth.sim import Simulator

__all__ = ["run_stream"]


def run_stream(dut, items, *, expect: int | None = None, valid_p: float = 1.0, ready_p: float = 1.0,
               seed: int = 0, payload=lambda x: x, setup=None, max_cycles: int = 2_000_000, watch=None):
    """Send ``items`` (each through ``payload``) into ``dut.i``; return ``(outputs, log)``.

    ``outputs`` are the accepted ``dut.o`` payloads (Amaranth values as Python ints or views turned
    into dicts by the caller); ``log`` holds the cycle of every accepted input and output, so
    latencies can be measured.  ``expect`` outputs are awaited (default: one per input).
    ``watch``: ``{name: stream}`` of inner streams whose handshakes are logged as well (``log[name]``).
    """
    expect = len(items) if expect is None else expect
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    watch = dict(watch or {})
    outputs, log = [], {"in": [], "out": [], **{k: [] for k in watch}}
    watched = [x for st in watch.values() for x in (st.valid, st.ready)]
    cycle = [0]
    rng_in, rng_out = np.random.default_rng(seed), np.random.default_rng(seed + 1)

    async def source(ctx):
        if setup is not None:
            await setup(ctx)
        for item in items:
            while rng_in.random() >= valid_p:
                ctx.set(dut.i.valid, 0)
                await ctx.tick()
            ctx.set(dut.i.payload, payload(item))
            ctx.set(dut.i.valid, 1)
            await ctx.tick().until(dut.i.ready)
        ctx.set(dut.i.valid, 0)

    async def sink(ctx):
        while len(outputs) < expect and cycle[0] < max_cycles:
            ctx.set(dut.o.ready, int(rng_out.random() < ready_p))
            await ctx.tick()

    async def monitor(ctx):
        # one sample per clock edge: the values the edge sees; an input accepted at edge t and its
        # output at edge t + L are L cycles apart (L = the number of pipeline registers)
        async for _, _, i_valid, i_ready, valid, ready, value, *inner in ctx.tick().sample(
                dut.i.valid, dut.i.ready, dut.o.valid, dut.o.ready, dut.o.payload, *watched):
            cycle[0] += 1
            for k, name in enumerate(watch):
                if inner[2 * k] and inner[2 * k + 1]:
                    log[name].append(cycle[0])
            if i_valid and i_ready:
                log["in"].append(cycle[0])
            if valid and ready:
                outputs.append(value)
                log["out"].append(cycle[0])
            if len(outputs) >= expect or cycle[0] >= max_cycles:
                break

    sim.add_testbench(source, background=True)
    sim.add_process(monitor)
    sim.add_testbench(sink)
    sim.run()
    if len(outputs) < expect:
        raise AssertionError(f"{type(dut).__name__}: {len(outputs)} of {expect} outputs after {cycle[0]} cycles")
    return outputs, log
