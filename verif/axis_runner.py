"""Build and run the cocotbext-axi tests (:mod:`spikeops.verif.axis_tb`) of one operator
configuration's AXI4-Stream top on one simulator.

One build directory per (simulator, operator, configuration hash, weights) under
``build/sim-axis``.  The frames: rows of the golden stimulus (elementwise operators: their elements
cut into frames of random lengths, so that ``tlast`` is carried), the golden model's outputs as the
expected frames, and a second batch for the test of a reset in the middle of a frame.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spikeops.golden import registry
from spikeops.hdl.emit import emit
from spikeops.hdl.manifest import side_port_names

from .runner import build_top, run_tests, weights_key
from .stimulus import Stimulus, make

__all__ = ["AxisRegression", "AxisResult", "frames_of"]

BUILD_ROOT = Path(os.environ.get("SPIKEOPS_BUILD", "build")) / "sim-axis"


@dataclass
class AxisResult:
    sim: str
    tests: int
    failed: int
    frames: int
    elements: int
    seconds: float
    log: str


def frames_of(stim: Stimulus, cfg, *, row_op: bool, seed: int) -> list[dict]:
    """The frames of ``stim``: one per row (elementwise operators: the elements cut into frames of
    1 to 40), each with its mask and the golden model's expected outputs."""
    expected = stim.expected(cfg)
    data = np.concatenate(stim.rows)
    masks = np.concatenate(stim.masks) if stim.masks is not None else None
    if row_op:
        lengths = [len(r) for r in stim.rows]
    else:
        rng = np.random.default_rng(seed)
        lengths, left = [], len(data)
        while left:
            lengths.append(min(left, int(rng.integers(1, 41))))
            left -= lengths[-1]
    frames, at = [], 0
    for n in lengths:
        item = {"data": data[at:at + n].tolist(), "expected": expected[at:at + n].tolist()}
        if masks is not None:
            item["mask"] = masks[at:at + n].tolist()
        frames.append(item)
        at += n
    return frames


class AxisRegression:
    """The cocotbext-axi tests of ``op`` at ``cfg`` on ``sim`` (``weights``: the norms' gamma/beta)."""

    def __init__(self, op: str, cfg, sim: str, *, weights=None, root: Path | None = None):
        self.op, self.cfg, self.sim = op, cfg, sim
        self.rec = registry.get(op)
        # the norms' weights are baked into the RTL; the stimulus carries the same set
        self.weights = dict(weights if weights is not None else make(op, cfg, "random", size=1).weights)
        key = f"{sim}-{op}-{cfg.stable_hash()}-{weights_key(self.weights)}"
        self.dir = Path(root or BUILD_ROOT).resolve() / key
        self.manifest = None

    def build(self):
        self.dir.mkdir(parents=True, exist_ok=True)
        manifest = emit(self.op, self.cfg, self.dir / "rtl", interface="axis", **self.weights)
        self._runner = build_top(self.sim, self.dir / "rtl" / f"{manifest['top']}.v", manifest["top"], self.dir)
        self.manifest = manifest
        return self

    def run(self, *, size: int = 200, seed: int = 1) -> AxisResult:
        """Every test of :mod:`spikeops.verif.axis_tb` on random rows of about ``size`` elements."""
        if self.manifest is None:
            self.build()
        row_op = self.rec.shape.is_row
        first = make(self.op, self.cfg, "random", size=size, seed=seed)
        second = make(self.op, self.cfg, "corners", seed=seed + 1)
        for stim in (first, second):
            stim.weights = self.weights
        frames = frames_of(first, self.cfg, row_op=row_op, seed=seed)
        if len(frames) < 2:
            raise ValueError(f"run: size={size} gives {len(frames)} frame(s); the reset test needs at least 2")
        inputs = {p["name"] for p in self.manifest["ports"] if p["direction"] == "input"}
        side = [n for n in side_port_names(self.manifest) if n in inputs]
        job = {"op": self.op, "config_hash": self.cfg.stable_hash(), "packing": self.manifest["interface"]["packing"],
               "side_inputs": side, "seed": seed, "frames": frames,
               "reset_frames": frames_of(second, self.cfg, row_op=row_op, seed=seed + 1),
               "timeout_cycles": 50 * sum(len(f["data"]) for f in frames) + 20_000}
        tag = f"run-{seed}-{os.getpid()}"
        job_file = self.dir / f"{tag}.job.json"
        job_file.write_text(json.dumps(job))
        tests, failed, log, seconds = run_tests(self._runner, "spikeops.verif.axis_tb", self.manifest["top"], self.dir,
                                                {"SPIKEOPS_AXIS_JOB": str(job_file)}, tag,
                                                f"{self.op} {self.sim}: the cocotbext-axi tests")
        return AxisResult(self.sim, tests, failed, len(frames), sum(len(f["data"]) for f in frames), seconds, log)
