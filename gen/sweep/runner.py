"""The sweep itself: plan the points' stages, take what the cache has, run the rest on an executor,
then write the rows (CSV, JSON), the plots (PNG) and the Markdown report."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from ..files import CACHE_VARIABLE, cache_root
from ..target import FpgaTarget
from . import accuracy, grid, report, stages
from .cache import StageCache
from .executors import make_executor
from .pareto import front_rows

__all__ = ["Options", "run_sweep", "model_accuracy_function", "default_cache"]


@dataclass
class Options:
    """How a sweep runs (the command line's options)."""

    out: str = "out/sweep"
    cache: str | None = None  # default: $SPIKEOPS_CACHE/sweep or <out>/cache
    capture: str | None = None
    rows: int | None = None
    seed: int = 0
    scales: str = "calibrated"  # captured instances' scales at the point's widths, or "point"
    error: bool = True
    families: tuple = ("ecp5", "ice40")
    pnr: bool = True
    pnr_target: FpgaTarget = FpgaTarget()
    timeout: float = 1800.0
    executor: str = "local"
    jobs: int = 2
    scheduler: str | None = None
    model_accuracy: int | None = None
    pareto_error: str = "err_max_real"
    progress: bool = True
    command: str = "spikeops sweep"


def default_cache(out) -> Path:
    """``$SPIKEOPS_CACHE/sweep`` when the variable is set (it moves every spikeops cache), else
    ``<out>/cache``."""
    return cache_root() / "sweep" if os.environ.get(CACHE_VARIABLE) else Path(out) / "cache"


def model_accuracy_function():
    """:func:`spikeops.gen.llm.model_accuracy.model_accuracy`, or ValueError when the LLM
    evaluation cannot be imported in this installation."""
    try:
        from ..llm.model_accuracy import model_accuracy
    except ImportError as err:
        raise ValueError(f"--model-accuracy: spikeops.gen.llm.model_accuracy cannot be imported ({err}); the "
                         "LLM evaluation is not available in this installation") from None
    return model_accuracy


def _check(opts: Options):
    for f in opts.families:
        if f not in ("ecp5", "ice40"):
            raise ValueError(f"sweep: family={f!r} is not allowed; allowed: ecp5, ice40")
    if not opts.timeout > 0:
        raise ValueError(f"sweep: timeout={opts.timeout!r} is not allowed; allowed: seconds > 0")
    if opts.rows is not None and opts.rows < 1:
        raise ValueError(f"sweep: rows={opts.rows!r} is not allowed; allowed: an integer >= 1")
    if opts.pareto_error not in ("err_max_real", "err_mean_real"):
        raise ValueError(f"sweep: pareto_error={opts.pareto_error!r} is not allowed; allowed: "
                         "err_max_real, err_mean_real")
    if opts.model_accuracy is not None:
        if opts.model_accuracy < 1:
            raise ValueError(f"--model-accuracy {opts.model_accuracy}: allowed: an integer >= 1")
        model_accuracy_function()


def _source(opts: Options) -> accuracy.Source:
    if opts.capture is None:  # the synthetic stand-in has no calibrated scales
        return accuracy.Source(rows=opts.rows, seed=opts.seed, scales="point")
    path = Path(opts.capture)
    if not path.is_file():
        raise ValueError(f"sweep: capture file {path.name!r} does not exist (write one with the LLM capture)")
    return accuracy.Source(str(path.resolve()), accuracy.file_hash(path), opts.rows, opts.seed, opts.scales)


def _swept(points) -> dict:
    out = {}
    for p in points:
        keys = out.setdefault(p.op, [])
        keys += [k for k in p.changes if k not in keys]
    return out


def run_sweep(entries, opts: Options, *, run_stage=None) -> dict:
    """Run the sweep of ``entries`` (:mod:`spikeops.gen.sweep.grid`) with ``opts``; write the files into
    ``opts.out`` and return the report (``{"meta", "rows"}``).  ``run_stage`` replaces
    :func:`spikeops.gen.sweep.stages.run` (tests count calls with it)."""
    _check(opts)
    t0 = time.perf_counter()
    run_stage = run_stage or stages.run
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    cache = StageCache(opts.cache if opts.cache is not None else default_cache(out))
    source = _source(opts)
    points = grid.expand(entries)
    ops = list(dict.fromkeys(p.op for p in points))
    names = stages.stage_names(error=opts.error, families=opts.families, pnr=opts.pnr)

    # points the activations rule out (row length against d / d_max) are invalid, like bad values
    described = {}
    if opts.error:
        for op in ops:
            acts = accuracy.load(source, op)
            described[op] = acts.describe()
            for p in points:
                if p.op == op and p.cfg is not None:
                    try:
                        accuracy.check_point(acts, p.cfg)
                    except ValueError as err:
                        p.cfg, p.invalid = None, str(err)

    results = {p.id: {} for p in points}
    cached = {p.id: 0 for p in points}
    todo = []
    hardware = any(s != "error" for s in names)
    for p in points:
        if p.cfg is None:
            continue
        design = stages.design_digest(p.op, p.cfg) if hardware else None
        for s in names:
            t = stages.Task(p.op, p.id, p.cfg.params(), s, source, opts.timeout, opts.pnr_target.to_json(),
                            design if s != "error" else None)
            hit = cache.get(t)
            if hit is not None:
                results[p.id][s] = hit
                cached[p.id] += 1
            else:
                todo.append(t)

    executor = make_executor(opts.executor, jobs=opts.jobs, scheduler=opts.scheduler) if todo else None
    bar = _progress(len(todo), opts.progress)
    try:
        for t, r in (executor.results(run_stage, todo) if executor else ()):
            results[t.point][t.stage] = r
            cache.put(t, r)
            bar.set_postfix_str(f"{t.point} {t.stage} {r['status']}", refresh=False)
            bar.update(1)
    finally:
        bar.close()
        if executor is not None:
            executor.close()

    rows = _rows(points, results, cached, _swept(points))
    _mark_fronts(rows, opts.pareto_error)
    if opts.model_accuracy is not None:
        _model_accuracy(rows, points, opts, cache)
    meta = {"ops": ops, "command": opts.command, "activations": source.label,
            "capture": None if source.path is None else {"name": Path(source.path).name, "sha256": source.sha256},
            "rows_limit": opts.rows, "seed": opts.seed, "scales": source.scales, "activations_by_op": described, "stages": names, "families": list(opts.families),
            "pnr": opts.pnr_target.to_json() if opts.pnr else None, "timeout": opts.timeout,
            "executor": executor.name if executor else "none (everything cached)", "jobs": opts.jobs,
            "pareto_error": opts.pareto_error, "model_accuracy": opts.model_accuracy,
            "tool_versions": stages.tool_versions(), "swept": _swept(points),
            "base": {e.op: e.base for e in entries if e.base},
            "cache": {"stages": sum(len(v) for v in results.values()), "cached": sum(cached.values())},
            "wall_seconds": round(time.perf_counter() - t0, 1)}
    rep = {"meta": meta, "rows": rows}
    plots = {}
    if opts.families and "ecp5" in opts.families:
        from .plots import plot_op
        for op in ops:
            plots[op] = plot_op(op, [r for r in rows if r["op"] == op], out / f"{op}.png",
                                error_column=opts.pareto_error)
    meta["plots"] = {op: p.name for op, p in plots.items()}
    meta["wall_seconds"] = round(time.perf_counter() - t0, 1)
    report.write_csv(rows, out / "sweep.csv")
    report.write_json(rep, out / "sweep.json")
    report.write_markdown(rep, out / "report.md", plots)
    return rep


def _progress(total: int, enabled: bool, desc: str = "sweep"):
    from tqdm import tqdm
    return tqdm(total=total, disable=not enabled or total == 0, unit="stage" if desc == "sweep" else "point",
                desc=desc, dynamic_ncols=True)


def _rows(points, results, cached, swept) -> list[dict]:
    from spikeops.hdl.emit import latency_info
    rows = []
    for p in points:
        fallback = None
        if p.cfg is not None and not any("latency" in r for r in results[p.id].values()):
            try:
                fallback = latency_info(p.op, p.cfg)
            except Exception:  # noqa: BLE001 - the row still stands without a latency
                fallback = None
        rows.append(report.flat_row(p, swept[p.op], results[p.id], cached[p.id], fallback))
    return rows


def _mark_fronts(rows, error_column: str):
    for op in dict.fromkeys(r["op"] for r in rows):
        mine = [r for r in rows if r["op"] == op]
        err = {id(r) for r in front_rows(mine, "ecp5_lut_equivalent", error_column)}
        fmax = {id(r) for r in front_rows(mine, "ecp5_lut_equivalent", "fmax_mhz", maximise_y=True)}
        for r in mine:
            r["pareto_error"] = id(r) in err
            r["pareto_fmax"] = id(r) in fmax


def _model_accuracy(rows, points, opts: Options, cache: StageCache):
    """``model_<metric>`` on the rows of the error front (cached like a stage)."""
    fn = model_accuracy_function()
    by_id = {p.id: p for p in points}
    front = [r for r in rows if r.get("pareto_error")]
    bar = _progress(len(front), opts.progress, desc="model accuracy")
    for r in front:
        p = by_id[r["point"]]
        t = stages.Task(p.op, p.id, p.cfg.params(), f"model-{opts.model_accuracy}")
        res = cache.get(t)
        if res is None:
            t0 = time.perf_counter()
            try:
                res = {"status": "ok", "metrics": fn(p.op, p.cfg, limit=opts.model_accuracy)}
            except Exception as err:  # noqa: BLE001 - recorded on the row
                res = {"status": "failed", "failure": "error", "message": str(err)}
            res["seconds"] = time.perf_counter() - t0
            cache.put(t, res)
        if res["status"] == "ok":
            r.update({f"model_{k}": v for k, v in res["metrics"].items()})
        else:
            r["model_error"] = report.scrub(res["message"])
        r["seconds_model"] = round(res["seconds"], 1)
        bar.set_postfix_str(f"{p.id} {res['status']}", refresh=False)
        bar.update(1)
    bar.close()
