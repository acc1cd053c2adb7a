"""The main job's FPGA work: emit an operator (or its time-stepped wrapper) with its FPGA files,
synthesise and place-and-route it in a worker process, and collect the rows into the report."""

from __future__ import annotations

__all__ = ["fpga_row", "collect_fpga", "fmax_cell"]


def fpga_row(op: str, cfg, weights: dict, out_dir: str, target, timeout: float) -> dict:
    """Emit ``op`` at ``cfg`` (a :class:`spikeops.golden.steps.StepConfig`: the wrapper) + FPGA
    files, then synthesis and place-and-route (runs in a worker process)."""
    from spikeops.hdl.emit import emit_config

    from .fpga import write_fpga_files
    from .pnr import PnRError, place_and_route
    m = emit_config(op, cfg, out_dir, primitives=target.primitives, **weights)
    files = [p.name for p in write_fpga_files(m, out_dir, target, testbench=not m.get("stepped"))]
    row = {"op": op, "top": m["top"], "latency": m["latency"],
           "files": [f"{m['top']}.v", f"{m['top']}.json", *m["simulation_files"]] + files}
    try:
        row["pnr"] = place_and_route(m, out_dir, target, timeout=timeout)
    except PnRError as err:
        row["error"] = str(err)
    return row


def collect_fpga(operators: dict, futures: dict, clock, label: str = ""):
    """Wait for each operator's :func:`fpga_row` and put it in ``operators[op]["fpga"]``."""
    for op, fut in futures.items():
        row = fut.result()
        operators[op]["fpga"] = row
        p = row.get("pnr", {})
        clock.stage(f"  {op}{label}: " + (f"LUT-eq {p['synthesis']['lut_equivalent']}, Fmax {p['fmax_mhz']:.1f} MHz"
                                          f"{_target_note(p)}"
                                          if p else f"place-and-route FAILED: {row.get('error')}"))


def fmax_cell(row: dict) -> str:
    """The Fmax column of an :func:`fpga_row` result: MHz, with the flow's target when
    place-and-route did not meet it; ``FAILED`` when the row has no result, ``-`` when there is no
    row."""
    p = row.get("pnr")
    if not p:
        return "FAILED" if row else "-"
    return f"{p['fmax_mhz']:.1f}{_target_note(p)}"


def _target_note(pnr: dict) -> str:
    """`` (under its T MHz target)`` when a place-and-route result did not meet its target, else ``""``."""
    return "" if pnr.get("timing_met", True) else f" (under its {pnr['target_mhz']:g} MHz target)"
