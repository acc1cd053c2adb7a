"""cocotb test module of the stream regression: one TB owns the clock, the file-driven source, sink
and monitor (``verif/wrapper.py``) and the scoreboard.

The job (a JSON file named by ``SPIKEOPS_TB_JOB``) lists the runs: stimulus files, valid/ready
probabilities, an optional reset, the expected outputs and the latency to check.
"""

from __future__ import annotations

import json
import os
import time

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import First, RisingEdge, Timer

from spikeops.verif.scoreboard import compare


def _load_job():
    if "SPIKEOPS_TB_JOB" not in os.environ:
        return {}
    with open(os.environ["SPIKEOPS_TB_JOB"]) as f:
        return json.load(f)


JOB = _load_job()


def _read_hex(path, count):
    """Words of a ``$writememh`` file (its ``// 0x...`` address comments skipped; words never
    written, X or Z, read as -1)."""
    words = []
    with open(path) as f:
        for line in f:
            line = line.split("//", 1)[0]
            for t in line.split():
                try:
                    words.append(int(t, 16))
                except ValueError:
                    words.append(-1)
    return words[:count]


@cocotb.test()
async def stream_regression(dut):
    """Run the job's stimulus through the wrapper and compare with the golden model."""
    try:
        await _regression(dut)
    except Exception as err:  # leave the reason where the runner looks, then fail the test
        if not os.path.exists(JOB["run"]["result"]):
            with open(JOB["run"]["result"], "w") as f:
                json.dump({"error": f"{type(err).__name__}: {err}"}, f)
        raise


async def _regression(dut):
    Clock(dut.clk, 10, unit="ns").start()
    run = JOB["run"]
    t0 = time.perf_counter()
    await First(RisingEdge(dut.done), Timer(run["timeout_cycles"] * 10, unit="ns"))
    assert int(dut.done.value) == 1, (f"{JOB['op']} [{JOB['config_hash']}] {JOB['sim']} {JOB['name']}: "
                                      f"timeout after {int(dut.outs.value)} outputs for {run['n']} inputs")
    await Timer(1, unit="ns")  # the wrapper writes its files on done
    seconds = time.perf_counter() - t0
    from spikeops.verif.stimulus import unpack
    manifest = JOB["manifest"]
    outs = int(dut.outs.value)
    words = _read_hex(run["out"], outs)
    data, last = unpack(words, manifest)
    inputs = np.load(run["inputs"])
    expected = np.load(run["expected"])
    did_reset = int(dut.did_reset.value)
    result = compare(JOB, data, last, inputs, expected,
                     m_at_reset=int(dut.m_at_reset.value) if did_reset else None,
                     resume=run.get("resume"))
    in_cyc = _read_hex(run["incyc"], run["n"])
    out_cyc = _read_hex(run["outcyc"], outs)
    timing = []
    if run.get("check_latency"):
        # per row: the cycle of its last input, of its first output and of its last output (the
        # runner compares them with the operator's timing model); per element for elementwise
        # operators: its input and output cycles
        starts, n = JOB["row_starts"], run["n"]
        for r, s in enumerate(starts):
            end = (starts[r + 1] if r + 1 < len(starts) else n) - 1
            if JOB["shape"] != "elementwise":
                timing.append([in_cyc[end], out_cyc[s], out_cyc[end]])
            else:
                timing.append([in_cyc[s], out_cyc[s], out_cyc[s]])
    result.update(cycles=int(dut.cycles.value), seconds=seconds, flags=int(dut.flags.value),
                  timing=timing, first_in=in_cyc[0] if in_cyc else 0,
                  last_out=out_cyc[-1] if out_cyc else 0, did_reset=did_reset)
    with open(run["result"], "w") as f:
        json.dump(result, f)
    assert result["mismatches"] == 0, result["report"]
    assert result["flags"] == 0, f"status flag (overflow/error) raised: {result['flags']}"
