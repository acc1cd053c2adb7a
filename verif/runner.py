"""Build and run the stream regression of one operator configuration on one simulator.

Each (operator, configuration hash, weights, simulator, waves) gets its own build directory under
``build/sim``, so parameterised runs never collide; the Verilog is rewritten only when its text
changes, so a repeated run does not rebuild.  ``WAVES=1`` in the environment turns waveforms on.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spikeops.golden import registry
from spikeops.hdl.dsp import Primitives
from spikeops.hdl.emit import emit

from . import env
from .stimulus import Stimulus, pack
from .wrapper import MAX_ELEMENTS, WRAPPER_TOP, wrapper_verilog

__all__ = ["Regression", "RunResult", "BUILD_ROOT", "weights_key", "cocotb_runner", "build_top", "run_tests"]

BUILD_ROOT = Path(os.environ.get("SPIKEOPS_BUILD", "build")) / "sim"
BUILD_ARGS = {"icarus": [], "verilator": ["-Wno-fatal", "-O3"]}


@dataclass
class RunResult:
    name: str
    sim: str
    elements: int
    checked: int
    mismatches: int
    cycles: int
    seconds: float
    wall_seconds: float
    #: per row (``check_latency``): cycles from its last input (elementwise: its first) to its first
    #: output, measured and as the operator's timing model predicts (``spikeops.hdl.timing``)
    latencies: list = field(default_factory=list)
    expected_latencies: list = field(default_factory=list)
    #: per row of a row operator (``check_latency``): cycles from its first to its last output + 1,
    #: measured and expected (the row length: with the sink ready, a row leaves one element a cycle)
    spans: list = field(default_factory=list)
    expected_spans: list = field(default_factory=list)
    #: cycles from the first accepted input to the last output, + 1
    busy_cycles: int = 0
    did_reset: int = 0
    report: str = ""

    @property
    def elements_per_second(self) -> float:
        return self.checked / self.wall_seconds if self.wall_seconds else 0.0

    @property
    def timing_ok(self) -> bool:
        """Whether every row's first output and output span are what the timing model says."""
        return self.latencies == self.expected_latencies and self.spans == self.expected_spans

    @property
    def elements_per_cycle(self) -> float:
        """Elements through per cycle, first input to last output (start-up included)."""
        return self.elements / self.busy_cycles if self.busy_cycles else 0.0


def weights_key(weights: dict) -> str:
    """A short digest of the norms' weights: part of a build folder's name."""
    blob = json.dumps({k: [int(x) for x in v] for k, v in sorted(weights.items())})
    return hashlib.sha256(blob.encode()).hexdigest()[:8]


def cocotb_runner(sim: str, opt_fast: str | None = None):
    """cocotb's runner for ``sim``; on Verilator, its make step gets ``OPT_FAST``: the
    environment's (:func:`spikeops.verif.env.verilator_opt_fast`) when set, else ``opt_fast``
    (None: Verilator's own)."""
    from cocotb_tools.runner import Verilator, get_runner
    env.check_opt_fast(opt_fast, "cocotb_runner: opt_fast")
    opt_fast = (env.verilator_opt_fast() or opt_fast) if sim == "verilator" else None
    if opt_fast is None:
        return get_runner(sim)

    class _Verilator(Verilator):
        def _build_command(self):
            cmds = super()._build_command()
            make = cmds[-1]
            if not make or make[0] != "make":
                raise RuntimeError(f"cocotb's Verilator build ends with {make!r}, not make: "
                                   f"{env.OPT_FAST_VARIABLE} cannot be applied")
            return [*cmds[:-1], [*make, f"OPT_FAST={opt_fast}"]]

    return _Verilator()


def build_top(sim: str, source: Path, top: str, build_dir: Path):
    """Build the emitted ``source`` (top module ``top``) for cocotb on ``sim`` in ``build_dir``;
    return the cocotb runner (RuntimeError when ``sim`` is missing)."""
    reason = env.unavailable_reason(sim)
    if reason:
        raise RuntimeError(f"{sim}: {reason}")
    runner = cocotb_runner(sim)
    runner.build(sources=[source], hdl_toplevel=top, build_dir=build_dir, timescale=("1ns", "1ps"),
                 build_args=BUILD_ARGS[sim], log_file=build_dir / "build.log")
    return runner


def run_tests(runner, module: str, top: str, build_dir: Path, job_env: dict, tag: str, what: str):
    """Run every cocotb test of ``module`` on a built ``top``; return ``(tests, failed, log text,
    seconds)`` (AssertionError naming ``what`` when the tests wrote no results)."""
    from cocotb_tools.runner import get_results
    xml, log = build_dir / f"{tag}.results.xml", build_dir / f"{tag}.log"
    t0 = time.perf_counter()
    try:
        runner.test(test_module=module, hdl_toplevel=top, build_dir=build_dir, test_dir=build_dir,
                    extra_env=env.simulator_env(**job_env), results_xml=str(xml), log_file=log)
    except SystemExit:  # inside pytest the runner exits on a failed cocotb test: report below
        pass
    seconds = time.perf_counter() - t0
    if not xml.exists():
        raise AssertionError(f"{what}: the tests wrote no results; log {log}")
    tests, failed = get_results(xml)
    return tests, failed, log.read_text() if log.exists() else "", seconds


class Regression:
    """The regression of ``op`` at ``cfg`` on ``sim`` (``weights``: gamma/beta codes of the norms)."""

    def __init__(self, op: str, cfg, sim: str, *, weights=None, waves: bool | None = None,
                 root: Path | None = None, primitives=Primitives.GENERIC, opt_fast: str | None = None):
        self.op, self.cfg, self.sim = op, cfg, sim
        #: Verilator's ``OPT_FAST`` when the environment sets none (:func:`cocotb_runner`)
        self.opt_fast = env.check_opt_fast(opt_fast, "Regression: opt_fast")
        self.weights = dict(weights or {})
        self.primitives = Primitives.parse(primitives, "Regression", "primitives")
        self.waves = bool(int(os.environ.get("WAVES", "0"))) if waves is None else waves
        key = f"{sim}-{op}-{cfg.stable_hash()}-{weights_key(self.weights)}" + ("-waves" if self.waves else "")
        if self.primitives != Primitives.GENERIC:
            key += f"-{self.primitives}"
        self.dir = Path(root or BUILD_ROOT).resolve() / key
        self.manifest = None
        self._runner = None
        self._runs = 0

    def build(self):
        reason = env.unavailable_reason(self.sim)
        if reason:
            raise RuntimeError(f"{self.sim}: {reason}")
        self.dir.mkdir(parents=True, exist_ok=True)
        manifest = emit(self.op, self.cfg, self.dir / "rtl_new", primitives=self.primitives, **self.weights)
        self.manifest = manifest
        # the vendor primitives' simulation models (none for generic primitives)
        sources = [self.dir / "rtl_new" / f for f in manifest["simulation_files"]]
        # the very file `spikeops verilog` writes, on every simulator
        rtl = (self.dir / "rtl_new" / f"{manifest['top']}.v").read_text()
        for name, text in ((f"{manifest['top']}.v", rtl),
                           (f"{WRAPPER_TOP}.v", wrapper_verilog(manifest))):
            path = self.dir / name
            if not path.exists() or path.read_text() != text:
                path.write_text(text)
            sources.append(path)
        (self.dir / "manifest.json").write_text(json.dumps(manifest, indent=1))
        runner = cocotb_runner(self.sim, self.opt_fast)
        runner.build(sources=sources, hdl_toplevel=WRAPPER_TOP, build_dir=self.dir,
                     timescale=("1ns", "1ps"), build_args=BUILD_ARGS[self.sim], waves=self.waves,
                     log_file=self.dir / "build.log")
        self._runner = runner
        return self

    def run(self, stim: Stimulus, *, name: str | None = None, valid_p: float = 1.0, ready_p: float = 1.0,
            seed: int = 1, reset_row: int | None = None, check_latency: bool = False) -> RunResult:
        """Drive ``stim`` through the RTL; compare with the golden model; return the figures.

        ``reset_row``: inject a reset halfway through that row (the source resumes at the next row).
        ``check_latency`` (with ``valid_p = ready_p = 1``): record each row's latency.
        """
        if self._runner is None:
            self.build()
        if stim.weights != {} and weights_key(stim.weights) != weights_key(self.weights):
            raise ValueError("run: the stimulus carries other weights than this build")
        self._runs += 1
        name = name or f"{stim.kind}-{self._runs}"
        tag = f"{name}-{os.getpid()}"
        words = pack(stim, self.manifest)
        n = len(words)
        if n > MAX_ELEMENTS:
            raise ValueError(f"run: {n} elements; at most {MAX_ELEMENTS} per run")
        inputs = np.concatenate(stim.rows)
        expected = stim.expected(self.cfg)
        starts = stim.row_starts()
        resume = None
        rst_k = None
        if reset_row is not None:
            r = reset_row % len(stim.rows)
            rst_k = starts[r] + max(1, len(stim.rows[r]) // 2) if len(stim.rows[r]) > 1 else starts[r] + 1
            rst_k = min(rst_k, n - 1)
            resume = starts[r + 1] if r + 1 < len(starts) else n
            if resume >= n:
                raise ValueError("run: reset_row must leave at least one row after the reset")
        files = {k: self.dir / f"{tag}.{k}" for k in ("stim", "out", "incyc", "outcyc", "result", "log")}
        files["inputs"] = self.dir / f"{tag}.inputs.npy"
        files["expected"] = self.dir / f"{tag}.expected.npy"
        files["stim"].write_text("\n".join(f"{w:x}" for w in words) + "\n")
        np.save(files["inputs"], inputs)
        np.save(files["expected"], expected)
        files["result"].unlink(missing_ok=True)
        plusargs = [f"+stim={files['stim']}", f"+out={files['out']}", f"+incyc={files['incyc']}",
                    f"+outcyc={files['outcyc']}", f"+n={n}", f"+pv={round(valid_p * 256)}",
                    f"+pr={round(ready_p * 256)}", f"+lfsr_seed={seed}"]
        if reset_row is not None:
            # the wrapper counts what leaves before the reset, then waits for the resumed rows
            plusargs += [f"+rst_k={rst_k}", f"+resume={resume}", f"+n_after={n - resume}"]
        job = {
            "op": self.op, "config_hash": self.cfg.stable_hash(), "config": self.cfg.params(),
            "sim": self.sim, "name": name, "manifest": self.manifest, "row_starts": starts,
            "shape": registry.get(self.op).shape.value,
            "run": {k: str(v) for k, v in files.items()} | {
                "n": n, "n_out": n, "resume": resume,
                "timeout_cycles": 400 * n + 200_000, "check_latency": check_latency},
        }
        job_file = self.dir / f"{tag}.job.json"
        job_file.write_text(json.dumps(job))
        t0 = time.perf_counter()
        try:
            self._runner.test(test_module="spikeops.verif.tb", hdl_toplevel=WRAPPER_TOP, build_dir=self.dir,
                              test_dir=self.dir, extra_env=env.simulator_env(SPIKEOPS_TB_JOB=str(job_file)),
                              plusargs=plusargs + [f"+n_out={n}"], waves=self.waves,
                              results_xml=str(self.dir / f"{tag}.results.xml"), log_file=files["log"])
        except SystemExit:  # inside pytest the runner exits on a failed cocotb test: report below
            pass
        wall = time.perf_counter() - t0
        where = f"{self.op} [{self.cfg.stable_hash()}] {self.sim} {name}"
        if not files["result"].exists():
            tail = files["log"].read_text().splitlines()[-15:] if files["log"].exists() else []
            raise AssertionError(f"{where}: the testbench wrote no result; log {files['log']}:\n"
                                 + "\n".join(tail))
        res = json.loads(files["result"].read_text())
        if "error" in res:
            raise AssertionError(f"{where}: {res['error']} (log: {files['log']})")
        lat, expected_lat, spans, expected_spans = [], [], [], []
        if check_latency:
            rec = registry.get(self.op)
            timing = res["timing"]
            lat = [first - last_in for last_in, first, _ in timing]
            if rec.shape.is_row:
                lengths = [len(row) for row in stim.rows]
                last_in = [t[0] for t in timing]
                predicted = rec.component().first_outputs(self.cfg, lengths, last_in)
                expected_lat = [p - li for p, li in zip(predicted, last_in)]
                spans = [last - first + 1 for _, first, last in timing]
                expected_spans = lengths
            else:
                expected_lat = [rec.component().latency_for(self.cfg)] * len(timing)
        if not os.environ.get("SPIKEOPS_KEEP"):
            for k in ("stim", "out", "incyc", "outcyc", "inputs", "expected", "log"):
                files[k].unlink(missing_ok=True)
            job_file.unlink(missing_ok=True)
            (self.dir / f"{tag}.results.xml").unlink(missing_ok=True)
        return RunResult(name=name, sim=self.sim, elements=n, checked=res["checked"],
                         mismatches=res["mismatches"], cycles=res["cycles"], seconds=res["seconds"],
                         wall_seconds=wall, latencies=lat, expected_latencies=expected_lat,
                         spans=spans, expected_spans=expected_spans,
                         busy_cycles=res["last_out"] - res["first_in"] + 1 if res["checked"] else 0,
                         did_reset=res["did_reset"], report=res["report"])
