"""``spikeops sweep``: its options (added to the CLI's parser) and the command itself."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from .stages import RATE_ELEMENTS

__all__ = ["add_arguments", "run_command", "command_line"]


def add_arguments(p: argparse.ArgumentParser):
    from spikeops.golden import registry

    from ..llm.divergence import MAX_TOKENS, MIN_TOKENS  # no torch: it loads when a model runs
    g = p.add_argument_group("what to sweep (one operator here, or several in a --spec file)")
    g.add_argument("--op", choices=list(registry.OPERATORS), help="the operator of --grid/--point/--set")
    g.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...",
                   help="an axis; several --grid axes are crossed")
    g.add_argument("--point", action="append", default=[], metavar="KEY=V[,KEY=V...]",
                   help="an explicit point besides the grid")
    g.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a change to the default for every point (the base)")
    g.add_argument("--spec", metavar="FILE", help="grid file, JSON or TOML (see gen/sweep/grid.py)")
    a = p.add_argument_group("accuracy")
    a.add_argument("--capture", metavar="FILE",
                   help="captured LLM activations (.npz); without it a synthetic stand-in, said so in the report")
    a.add_argument("--rows", type=int, metavar="N", help="at most N captured rows per operator (default: all)")
    a.add_argument("--seed", type=int, default=0, help="seed of the row draw (default 0)")
    a.add_argument("--scales", choices=["calibrated", "point"], default="calibrated",
                   help="input scales: each captured instance's calibrated integer bits at the point's widths "
                        "(default; as the converted model runs), or the point's own in_frac for every instance")
    a.add_argument("--pareto-error", choices=["max", "mean"], default="max",
                   help="error column of the accuracy/area front: err_max_real or err_mean_real (default max)")
    a.add_argument("--model-accuracy", type=int, metavar="N",
                   help="model-level accuracy (spikeops.gen.llm.model_accuracy, --limit N) of the --model-points")
    a.add_argument("--model-divergence", type=int, metavar="N",
                   help="model-level divergence of the --model-points on N tokens of held-out prose "
                        "(spikeops.gen.llm.divergence: mean KL, top-1 agreement and perplexity against the float "
                        f"model on SmolLM2; 1 - cos of hidden states on MiniLM); N in [{MIN_TOKENS}, {MAX_TOKENS}], "
                        "e.g. 2048")
    a.add_argument("--model-points", choices=["front", "all"], default="front",
                   help="points of the model-level figures: the error front (default; every valid point of an "
                        "operator without a front, e.g. with --no-synth) or all valid points")
    h = p.add_argument_group("hardware")
    h.add_argument("--families", default="ecp5,ice40", help="synthesis families (default: ecp5,ice40)")
    h.add_argument("--no-synth", action="store_true",
                   help="no synthesis (LUT-eq, FF, DSP, BRAM); place-and-route is a stage of its own: --no-pnr")
    h.add_argument("--no-pnr", action="store_true", help="no place-and-route")
    h.add_argument("--rate", type=int, nargs="?", const=RATE_ELEMENTS, default=0, metavar="N",
                   help=f"measure elements per cycle on Verilator (N random elements back to back, default "
                        f"{RATE_ELEMENTS:,}, every output checked against the golden model); gives the Melem/s "
                        "and Melem/s per kLUT-eq of the row operators")
    h.add_argument("--freq", type=float, default=100.0, help="place-and-route target in MHz (default 100)")
    h.add_argument("--timeout", type=float, default=1800.0, metavar="SECONDS", help="per tool run (default 1800)")
    r = p.add_argument_group("running")
    r.add_argument("-o", "--out", default="out/sweep", metavar="DIR",
                   help="report folder: report.md, sweep.csv, sweep.json, <op>.png (default out/sweep)")
    r.add_argument("--cache", metavar="DIR", help="result cache (default: $SPIKEOPS_CACHE/sweep or <out>/cache)")
    r.add_argument("--jobs", type=int, default=2, help="parallel stages (default 2; 1 runs in this process)")
    r.add_argument("--executor", choices=["local", "dask"], default="local",
                   help="local processes (default) or a Dask cluster")
    r.add_argument("--scheduler", metavar="ADDRESS",
                   help="Dask scheduler address (default with --executor dask: a local cluster of --jobs workers)")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")


def _portable(path: str) -> str:
    """A path for the report: as given when relative, else its file name only."""
    return path if not Path(path).is_absolute() else Path(path).name


def command_line(args) -> str:
    """The command that reproduces ``args`` (absolute paths shortened to their file names)."""
    parts = ["spikeops", "sweep"]
    if args.spec:
        parts += ["--spec", _portable(args.spec)]
    if args.op:
        parts += ["--op", args.op]
    for opt in ("set", "grid", "point"):
        for v in getattr(args, opt):
            parts += [f"--{opt}", v]
    for opt, default in (("capture", None), ("rows", None), ("seed", 0), ("scales", "calibrated"),
                         ("pareto_error", "max"),
                         ("model_accuracy", None), ("model_divergence", None), ("model_points", "front"),
                         ("families", "ecp5,ice40"), ("freq", 100.0),
                         ("timeout", 1800.0), ("out", "out/sweep"), ("cache", None), ("jobs", 2),
                         ("executor", "local"), ("scheduler", None)):
        v = getattr(args, opt)
        if v != default:
            parts += [f"--{opt.replace('_', '-')}", _portable(str(v)) if opt in ("capture", "out", "cache") else
                      (f"{v:g}" if isinstance(v, float) else str(v))]
    parts += [flag for flag, on in (("--no-synth", args.no_synth), ("--no-pnr", args.no_pnr)) if on]
    if args.rate:
        parts += ["--rate"] + ([str(args.rate)] if args.rate != RATE_ELEMENTS else [])
    return shlex.join(parts)


def _entries(args):
    from . import grid
    if args.spec:
        if args.op or args.grid or args.point or args.set:
            raise ValueError("sweep: give either --spec FILE or --op with --grid/--point/--set, not both")
        return grid.load_spec(args.spec)
    if not args.op:
        raise ValueError("sweep: nothing to sweep; give --op OP (with --grid KEY=V1,V2 ...) or --spec FILE")
    from spikeops.golden.changes import parse_sets
    return [grid.make_entry(args.op, base=parse_sets(args.set), grid=grid.parse_grid_args(args.grid),
                            points=[grid.parse_point_arg(p) for p in args.point])]


def run_command(args) -> int:
    from .runner import Options, run_sweep
    from ..target import FpgaTarget
    entries = _entries(args)
    families = tuple(f.strip() for f in args.families.split(",") if f.strip()) if not args.no_synth else ()
    opts = Options(out=args.out, cache=args.cache, capture=args.capture, rows=args.rows, seed=args.seed,
                   scales=args.scales,
                   families=families, pnr=not args.no_pnr, pnr_target=FpgaTarget(freq_mhz=args.freq), rate=args.rate,
                   timeout=args.timeout, executor=args.executor, jobs=args.jobs, scheduler=args.scheduler,
                   model_accuracy=args.model_accuracy, model_divergence=args.model_divergence,
                   model_points=args.model_points, pareto_error=f"err_{args.pareto_error}_real",
                   progress=not args.no_progress, command=command_line(args))
    if args.capture is None:
        print("spikeops sweep: no --capture: errors are measured on SYNTHETIC activations "
              "(spikeops.verif.stimulus), not on captured LLM activations")
    rep = run_sweep(entries, opts)
    rows = rep["rows"]
    bad = [r for r in rows if r["status"] != "ok"]
    meta = rep["meta"]
    print(f"spikeops sweep: {len(rows)} points ({len(bad)} failed), {meta['cache']['cached']} of "
          f"{meta['cache']['stages']} stages from the cache, {meta['wall_seconds']:.0f} s -> {args.out}/report.md")
    for r in bad:
        print(f"  {r['point']} {r['status']}: {r['message']}")
    return 0
