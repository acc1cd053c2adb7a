"""cocotb tests of an operator's AXI4-Stream top through cocotbext-axi, a client we did not write.

The runner (:mod:`spikeops.verif.axis_runner`) builds ``spikeops_<op>_axis`` and passes a job file
(``SPIKEOPS_AXIS_JOB``): the packing from the manifest and the frames with the golden model's
expected outputs.  :class:`TB` owns the clock, the reset, an ``AxiStreamSource`` on ``s_axis``, an
``AxiStreamSink`` and a passive ``AxiStreamMonitor`` on ``m_axis``, and a checker of the AXI rule
on ``m_axis`` (once ``tvalid`` is high, it, ``tdata`` and ``tlast`` hold until ``tready``).

- ``frames``: every frame sent and received, idle generators on the source crossed with
  backpressure generators on the sink (none, a fixed pattern, random); each received frame equals
  the golden rows, by value, with ``tlast`` where the row ends, and the monitor saw the same frames;
- ``reset_mid_frame``: ``aresetn`` pulled low for two cycles while a frame is half sent and outputs
  are in flight; afterwards a fresh batch comes out exactly, with nothing of the earlier frames.
"""

from __future__ import annotations

import itertools
import json
import os
import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge, with_timeout
from cocotbext.axi import AxiStreamBus, AxiStreamFrame, AxiStreamMonitor, AxiStreamSink, AxiStreamSource

from .axis_frames import decode_frame, encode_row

AXIS_PORTS = ("aclk", "aresetn", "s_axis_", "m_axis_")


def _job() -> dict:
    with open(os.environ["SPIKEOPS_AXIS_JOB"]) as f:
        return json.load(f)


def _pauses(kind: str | None, seed: int):
    """A pause generator (True = pause this cycle), as cocotbext-axi takes them."""
    if kind in (None, "none"):
        return None
    if kind == "cycle":
        return itertools.cycle([1, 1, 0, 0, 0, 1, 0])
    if kind == "random":
        rng = random.Random(seed)
        return (rng.random() < 0.4 for _ in itertools.count())
    raise ValueError(f"pause generator {kind!r} is not allowed; allowed: none, cycle, random")


class TB:
    """Clock, reset, source, sink, monitor and the hold checker of one AXI4-Stream top."""

    def __init__(self, dut, job: dict):
        self.dut, self.job = dut, job
        self.packing = job["packing"]
        cocotb.start_soon(Clock(dut.aclk, 10, unit="ns").start())
        for name in job["side_inputs"]:  # the norms' weight write ports: idle
            getattr(dut, name).value = 0
        kw = {"reset_active_level": False}
        self.source = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis"), dut.aclk, dut.aresetn, **kw)
        self.sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis"), dut.aclk, dut.aresetn, **kw)
        self.monitor = AxiStreamMonitor(AxiStreamBus.from_prefix(dut, "m_axis"), dut.aclk, dut.aresetn, **kw)
        self.violations: list[str] = []
        self.transfers = 0
        cocotb.start_soon(self._check_hold())

    async def _check_hold(self):
        dut, held = self.dut, None
        while True:
            await RisingEdge(dut.aclk)
            in_reset = not int(dut.aresetn.value)
            valid, ready = int(dut.m_axis_tvalid.value), int(dut.m_axis_tready.value)
            # tdata and tlast are don't-cares while tvalid is low (X from an X input is fine);
            # while it is high they must be known: an X is a failure here
            now = (int(dut.m_axis_tdata.value), int(dut.m_axis_tlast.value)) if valid and not in_reset else None
            if held is not None and not in_reset and (not valid or now != held):
                self.violations.append(f"m_axis changed while stalled: held {held}, now valid={valid} {now}")
            held = now if valid and not ready and not in_reset else None
            self.transfers += valid and ready and not in_reset

    def set_idle_generator(self, kind, seed=1):
        self.source.set_pause_generator(_pauses(kind, seed))

    def set_backpressure_generator(self, kind, seed=2):
        self.sink.set_pause_generator(_pauses(kind, seed))

    async def reset(self, cycles: int = 2):
        self.dut.aresetn.value = 0
        await ClockCycles(self.dut.aclk, cycles)
        self.dut.aresetn.value = 1
        await RisingEdge(self.dut.aclk)

    def frame(self, item) -> AxiStreamFrame:
        tdata, tuser = encode_row(item["data"], self.packing, item.get("mask"))
        return AxiStreamFrame(tdata, tuser=tuser)

    async def send_all(self, items):
        for item in items:
            await self.source.send(self.frame(item))

    async def expect_all(self, items, what: str):
        timeout = self.job["timeout_cycles"] * 10
        for j, item in enumerate(items):
            rx = await with_timeout(self.sink.recv(), timeout, "ns")
            got = decode_frame(bytes(rx.tdata), self.packing)
            want = np.asarray(item["expected"], dtype=np.int64)
            assert len(got) == len(want), f"{what}: frame {j} has {len(got)} transfers; expected {len(want)}"
            bad = np.flatnonzero(got != want)
            assert bad.size == 0, (f"{what}: frame {j}: {bad.size} of {len(want)} outputs differ from the golden "
                                   f"model; first at {bad[0]}: {got[bad[0]]} != {want[bad[0]]}")
            seen = await with_timeout(self.monitor.recv(), timeout, "ns")
            assert bytes(seen.tdata) == bytes(rx.tdata), f"{what}: frame {j}: the monitor saw other data"
        assert self.sink.empty(), f"{what}: {self.sink.count()} frames more than sent"
        assert not self.violations, f"{what}: {self.violations[0]} ({len(self.violations)} violations)"


@cocotb.test()
@cocotb.parametrize(idle=["none", "cycle", "random"], backpressure=["none", "cycle", "random"])
async def frames(dut, idle, backpressure):
    """All frames through, each idle pattern crossed with each backpressure pattern."""
    job = _job()
    tb = TB(dut, job)
    tb.set_idle_generator(idle, seed=job["seed"])
    tb.set_backpressure_generator(backpressure, seed=job["seed"] + 1)
    await tb.reset()
    cocotb.start_soon(tb.send_all(job["frames"]))
    await tb.expect_all(job["frames"], f"idle={idle} backpressure={backpressure}")
    assert tb.transfers == sum(len(f["expected"]) for f in job["frames"])


@cocotb.test()
async def reset_mid_frame(dut):
    """A reset while a frame is half in and results are in flight leaves nothing behind."""
    job = _job()
    tb = TB(dut, job)
    tb.set_idle_generator("random", seed=job["seed"] + 2)
    tb.set_backpressure_generator("random", seed=job["seed"] + 3)
    await tb.reset()
    first = job["frames"]
    cocotb.start_soon(tb.send_all(first))
    # wait until the second frame is half taken, with results still on their way out
    target = len(first[0]["data"]) + max(1, len(first[1]["data"]) // 2)
    taken = 0
    while taken < target:
        await RisingEdge(dut.aclk)
        taken += int(dut.s_axis_tvalid.value) & int(dut.s_axis_tready.value)
    tb.dut.aresetn.value = 0
    await ClockCycles(dut.aclk, 2)
    tb.source.clear()
    tb.sink.clear()
    while not tb.monitor.empty():
        tb.monitor.recv_nowait()
    tb.dut.aresetn.value = 1
    await RisingEdge(dut.aclk)
    again = job["reset_frames"]
    cocotb.start_soon(tb.send_all(again))
    await tb.expect_all(again, "after the reset")
