"""Build and run the cocotb tests (:mod:`spikeops.verif.steps_tb`) of one time-stepped operator
configuration on one simulator.

One build directory per (simulator, configuration hash, weights) under ``build/sim-steps``; the
Verilog is the file :func:`spikeops.hdl.emit.emit_stepped` writes.  The job: the samples of a
:class:`spikeops.verif.steps_stimulus.SteppedStimulus` packed into input words, the golden outputs,
each sample's final ``f(X_T)``, and a second batch (corner samples) for the reset test, whose reset
falls in the middle of the first batch's second sample, halfway through its middle step.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from spikeops.hdl.emit import emit_stepped
from spikeops.hdl.manifest import side_port_names

from .runner import build_top, run_tests, weights_key
from .steps_stimulus import SteppedStimulus, make_stepped
from .stimulus import Stimulus, pack

__all__ = ["SteppedRegression", "SteppedResult"]

BUILD_ROOT = Path(os.environ.get("SPIKEOPS_BUILD", "build")) / "sim-steps"


@dataclass
class SteppedResult:
    sim: str
    tests: int
    failed: int
    samples: int
    elements: int
    seconds: float
    log: str


def _batch(st: SteppedStimulus, manifest: dict) -> dict:
    """Words in, golden words out, frame lengths and final sums of ``st``."""
    frames, masks = [], []
    for j, s in enumerate(st.samples):
        frames += list(s)
        masks += [st.mask(j) if st.mask(j) is not None else None] * s.shape[0]
    stim = Stimulus(st.cfg.op, "steps", frames, None if st.masks is None else masks)
    want = st.expected_stream()
    return {"words": pack(stim, manifest), "expected": [w["data"] for w in want],
            "expected_last": [w["last"] for w in want], "frame_lengths": [s.shape[1] for s in st.samples],
            "final": [[int(v) for v in f] for f in st.final()]}


class SteppedRegression:
    """The cocotb tests of the stepped wrapper at ``cfg`` on ``sim``."""

    def __init__(self, cfg, sim: str, *, weights=None, root: Path | None = None):
        self.cfg, self.sim = cfg, sim
        self.weights = dict(weights) if weights is not None else make_stepped(cfg, "random", samples=1).weights
        self.dir = Path(root or BUILD_ROOT).resolve() / f"{sim}-{cfg.op}-{cfg.stable_hash()}-{weights_key(self.weights)}"
        self.manifest = None

    def build(self):
        self.dir.mkdir(parents=True, exist_ok=True)
        manifest = emit_stepped(self.cfg, self.dir / "rtl", **self.weights)
        self._runner = build_top(self.sim, self.dir / "rtl" / f"{manifest['top']}.v", manifest["top"], self.dir)
        self.manifest = manifest
        return self

    def run(self, *, samples: int = 4, kind: str = "random", seed: int = 1, increments=None,
            masks=None) -> SteppedResult:
        """Every test of :mod:`spikeops.verif.steps_tb` on ``samples`` samples of ``kind`` (or the
        per-step ``increments`` given: a list of ``(T, n)`` arrays, with their Softmax ``masks``)."""
        if self.manifest is None:
            self.build()
        first = make_stepped(self.cfg, kind, samples=samples, seed=seed, increments=increments, masks=masks,
                             weights=self.weights)
        if len(first.samples) < 2:
            raise ValueError(f"run: {len(first.samples)} sample(s); the reset test needs at least 2")
        second = make_stepped(self.cfg, "corners", samples=2, seed=seed + 1, weights=self.weights)
        inputs = {p["name"] for p in self.manifest["ports"] if p["direction"] == "input"}
        s0 = first.samples[0]
        middle = first.samples[1].shape[1] * (self.cfg.steps // 2) + max(1, first.samples[1].shape[1] // 2)
        job = {"op": self.cfg.op, "config_hash": self.cfg.stable_hash(), "manifest": self.manifest,
               "encoding": self.cfg.encoding.value, "steps": self.cfg.steps, "seed": seed,
               "side_inputs": [n for n in side_port_names(self.manifest) if n in inputs],
               **_batch(first, self.manifest), "reset_after": s0.size + middle,
               "after_reset": _batch(second, self.manifest)}
        job["timeout_cycles"] = 60 * len(job["words"]) + 20_000
        tag = f"run-{seed}-{os.getpid()}"
        job_file = self.dir / f"{tag}.job.json"
        job_file.write_text(json.dumps(job))
        tests, failed, log, seconds = run_tests(self._runner, "spikeops.verif.steps_tb", self.manifest["top"], self.dir,
                                                {"SPIKEOPS_STEPS_JOB": str(job_file)}, tag,
                                                f"{self.cfg.op} steps {self.sim}")
        return SteppedResult(self.sim, tests, failed, len(first.samples), first.elements, seconds, log)
