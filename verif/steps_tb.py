"""cocotb tests of a time-stepped operator (``spikeops_<op>_steps``, :mod:`spikeops.hdl.steps`).

The runner (:mod:`spikeops.verif.steps_runner`) passes a job file (``SPIKEOPS_STEPS_JOB``): the
input words in stream order, the golden model's output words, where each sample starts, and what
each sample's differences must sum to.  :class:`TB` owns the clock, the reset, a source with an idle
generator, a sink with a backpressure generator, a monitor of the output handshakes and a checker of
the stream rule (once ``o.valid`` is high, it and the payload hold until ``o.ready``).

- ``steps``: every sample through, each idle pattern crossed with each backpressure pattern; every
  output equals golden, and (difference encoding) each element's outputs of a sample sum over the
  steps to the operator on the sample's final totals;
- ``reset_mid_step``: a reset while a frame of a sample's middle step is half in, with outputs in
  flight; afterwards a second batch comes out exactly: no total, output or membrane of the first
  batch survives.
"""

from __future__ import annotations

import itertools
import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from .stimulus import unpack


def _job() -> dict:
    with open(os.environ["SPIKEOPS_STEPS_JOB"]) as f:
        return json.load(f)


def _pauses(kind: str, seed: int):
    """True = pause this cycle."""
    if kind == "none":
        return itertools.repeat(False)
    if kind == "cycle":
        return itertools.cycle([True, True, False, False, False, True, False])
    rng = random.Random(seed)
    return (rng.random() < 0.4 for _ in itertools.count())


class TB:
    """Clock, reset, source, sink, monitor and stream-rule checker of one stepped top."""

    def __init__(self, dut, job: dict):
        self.dut, self.job = dut, job
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
        for name in job["side_inputs"]:  # the norms' weight write ports: idle
            getattr(dut, name).value = 0
        dut.i__valid.value = 0
        dut.o__ready.value = 0
        self.received: list[int] = []
        self.accepted = 0
        self.violations: list[str] = []
        self.idle = _pauses("none", 0)
        self.backpressure = _pauses("none", 0)
        cocotb.start_soon(self._monitor())

    async def _monitor(self):
        dut, held = self.dut, None
        while True:
            await RisingEdge(dut.clk)
            await ReadOnly()
            if int(dut.rst.value):
                held = None
                continue
            valid, ready = int(dut.o__valid.value), int(dut.o__ready.value)
            now = int(dut.o__payload.value) if valid else None
            if held is not None and now != held:
                self.violations.append(f"o changed while stalled: held {held:#x}, now valid={valid} {now}")
            held = now if valid and not ready else None
            if valid and ready:
                self.received.append(now)
            self.accepted += int(dut.i__valid.value) & int(dut.i__ready.value)

    async def reset(self, cycles: int = 2):
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, cycles)
        self.dut.rst.value = 0

    async def send(self, words, stop=None):
        """Drive ``words`` with the idle generator; ``stop()`` true ends the source early."""
        dut = self.dut
        for w in words:
            if stop is not None and stop():
                break
            while next(self.idle):
                dut.i__valid.value = 0
                await RisingEdge(dut.clk)
            dut.i__payload.value = w
            dut.i__valid.value = 1
            while True:
                await ReadOnly()  # everything settled before the edge: is the element taken there?
                taken = int(dut.i__ready.value) and not int(dut.rst.value)
                await RisingEdge(dut.clk)
                if taken or (stop is not None and stop()):
                    break
        dut.i__valid.value = 0

    async def drain(self):
        """Drive ``o.ready`` with the backpressure generator, forever."""
        while True:
            self.dut.o__ready.value = int(not next(self.backpressure))
            await RisingEdge(self.dut.clk)

    async def expect(self, count: int, what: str):
        timeout = self.job["timeout_cycles"]
        waited = 0
        while len(self.received) < count and waited < timeout:
            await RisingEdge(self.dut.clk)
            waited += 1
        await ClockCycles(self.dut.clk, 20)  # nothing more may come
        assert len(self.received) == count, f"{what}: {len(self.received)} outputs; expected {count}"
        assert not self.violations, f"{what}: {self.violations[0]} ({len(self.violations)} violations)"


def _check(job, words, what):
    manifest = job["manifest"]
    data, last = unpack(words, manifest)
    want, want_last = job["expected"], job["expected_last"]
    bad = [k for k in range(len(want)) if int(data[k]) != want[k]
           or (last is not None and int(last[k]) != want_last[k])]
    assert not bad, (f"{what}: {len(bad)} of {len(want)} outputs differ from golden; first at {bad[0]}: "
                     f"{int(data[bad[0]])} != {want[bad[0]]}")
    if job["encoding"] == "difference":  # each element's differences sum to f(final totals)
        at = 0
        for j, (n, final) in enumerate(zip(job["frame_lengths"], job["final"])):
            sums = [0] * n
            for _ in range(job["steps"]):
                for k in range(n):
                    sums[k] += int(data[at + k])
                at += n
            assert sums == final, f"{what}: sample {j}: the outputs sum to {sums[:6]}..., not f(X_T) {final[:6]}..."


@cocotb.test()
@cocotb.parametrize(idle=["none", "cycle", "random"], backpressure=["none", "cycle", "random"])
async def steps(dut, idle, backpressure):
    """All samples through, each idle pattern crossed with each backpressure pattern."""
    job = _job()
    tb = TB(dut, job)
    tb.idle = _pauses(idle, job["seed"])
    tb.backpressure = _pauses(backpressure, job["seed"] + 1)
    await tb.reset()
    cocotb.start_soon(tb.drain())
    await tb.send(job["words"])
    await tb.expect(len(job["expected"]), f"idle={idle} backpressure={backpressure}")
    _check(job, tb.received, f"idle={idle} backpressure={backpressure}")


@cocotb.test()
async def reset_mid_step(dut):
    """A reset while a middle step's frame is half in, outputs in flight, leaves nothing behind."""
    job = _job()
    tb = TB(dut, job)
    tb.idle = _pauses("random", job["seed"] + 2)
    tb.backpressure = _pauses("random", job["seed"] + 3)
    await tb.reset()
    cocotb.start_soon(tb.drain())
    target = job["reset_after"]
    await tb.send(job["words"], stop=lambda: tb.accepted >= target)
    await tb.reset(3)
    tb.received.clear()
    after = job["after_reset"]
    await tb.send(after["words"])
    await tb.expect(len(after["expected"]), "after the reset")
    _check(after | {"manifest": job["manifest"], "encoding": job["encoding"], "steps": job["steps"]},
           tb.received, "after the reset")
