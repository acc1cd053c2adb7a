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
from .pareto import front_rows, latency_column

__all__ = ["Options", "run_sweep", "model_accuracy_function", "model_divergence_function", "default_cache",
           "MODEL_POINTS"]

#: which points the model-level figures run for: the error front (every valid point of an operator
#: whose sweep has no front, e.g. without synthesis), or every valid point
MODEL_POINTS = ("front", "all")


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
    rate: int = 0  # elements the rate stage streams (elements per cycle on Verilator); 0: no rate stage
    timeout: float = 1800.0
    executor: str = "local"
    jobs: int = 2
    scheduler: str | None = None
    model_accuracy: int | None = None
    model_divergence: int | None = None  # tokens of text (spikeops.gen.llm.divergence)
    model_points: str = "front"
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


def model_divergence_function():
    """The :mod:`spikeops.gen.llm.divergence` module (``model_divergence``, ``check_tokens``,
    ``describe``), or ValueError when it cannot be imported in this installation."""
    try:
        import spikeops.gen.llm.divergence as divergence
    except ImportError as err:
        raise ValueError(f"--model-divergence: spikeops.gen.llm.divergence cannot be imported ({err}); the "
                         "LLM evaluation is not available in this installation") from None
    return divergence


def _bases(entries) -> dict:
    """Each operator's base changes: one dict, or a list when its entries have different bases."""
    out = {}
    for e in entries:
        if e.base and e.base not in out.setdefault(e.op, []):
            out[e.op].append(e.base)
    return {op: b[0] if len(b) == 1 else b for op, b in out.items() if b}


def _check(opts: Options):
    for f in opts.families:
        if f not in ("ecp5", "ice40"):
            raise ValueError(f"sweep: family={f!r} is not allowed; allowed: ecp5, ice40")
    if not opts.timeout > 0:
        raise ValueError(f"sweep: timeout={opts.timeout!r} is not allowed; allowed: seconds > 0")
    if not (isinstance(opts.rate, int) and 0 <= opts.rate <= 10_000_000):
        raise ValueError(f"sweep: rate={opts.rate!r} is not allowed; allowed: elements in [1, 10000000], or 0 "
                         "for no rate stage")
    if opts.rows is not None and opts.rows < 1:
        raise ValueError(f"sweep: rows={opts.rows!r} is not allowed; allowed: an integer >= 1")
    if opts.pareto_error not in ("err_max_real", "err_mean_real"):
        raise ValueError(f"sweep: pareto_error={opts.pareto_error!r} is not allowed; allowed: "
                         "err_max_real, err_mean_real")
    if opts.model_accuracy is not None:
        if opts.model_accuracy < 1:
            raise ValueError(f"--model-accuracy {opts.model_accuracy}: allowed: an integer >= 1")
        model_accuracy_function()
    if opts.model_divergence is not None:
        model_divergence_function().check_tokens(opts.model_divergence, "--model-divergence")
    if opts.model_points not in MODEL_POINTS:
        raise ValueError(f"--model-points {opts.model_points!r} is not allowed; allowed: {', '.join(MODEL_POINTS)}")


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
    names = stages.stage_names(error=opts.error, families=opts.families, pnr=opts.pnr, rate=opts.rate > 0)

    # points the activations rule out (row length against d / d_max) are invalid, like bad values
    described = {}
    if opts.error:
        for op in ops:
            seen = []                              # each distinct activations' description
            for p in points:
                if p.op == op and p.cfg is not None:
                    acts = accuracy.load(source, op, p.cfg)
                    desc = acts.describe()
                    if desc not in seen:
                        seen.append(desc)
                    try:
                        accuracy.check_point(acts, p.cfg)
                    except ValueError as err:
                        p.cfg, p.invalid = None, str(err)
            described[op] = seen[0] if len(seen) == 1 else seen or accuracy.load(source, op).describe()

    results = {p.id: {} for p in points}
    cached = {p.id: 0 for p in points}
    todo = []
    hardware = any(s != "error" for s in names)
    for p in points:
        if p.cfg is None:
            continue
        design = stages.design_digest(p.op, p.hardware_config) if hardware else None
        for s in names:
            t = stages.Task(p.op, p.id, p.cfg.params(), s, source, opts.timeout, opts.pnr_target.to_json(),
                            design if s != "error" else None, p.steps if s != "error" else None,
                            rate_elements=opts.rate or stages.RATE_ELEMENTS)
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
    divergence = None
    if opts.model_divergence is not None:
        divergence = _model_divergence(rows, points, opts, cache)
    meta = {"ops": ops, "command": opts.command, "activations": source.label,
            "capture": None if source.path is None else {"name": Path(source.path).name, "sha256": source.sha256},
            "rows_limit": opts.rows, "seed": opts.seed, "scales": source.scales, "activations_by_op": described, "stages": names, "families": list(opts.families),
            "pnr": opts.pnr_target.to_json() if opts.pnr else None, "timeout": opts.timeout,
            "executor": executor.name if executor else "none (everything cached)", "jobs": opts.jobs,
            "pareto_error": opts.pareto_error, "model_accuracy": opts.model_accuracy,
            "model_points": opts.model_points, "model_divergence": divergence,
            "tool_versions": stages.tool_versions(), "swept": _swept(points),
            "base": _bases(entries),
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
    if divergence is not None and opts.families and "ecp5" in opts.families:
        for op in ops:
            path = report.plot_divergence(op, [r for r in rows if r["op"] == op], out / f"{op}-divergence.png")
            if path is not None:
                meta["divergence_plots"] = {**meta.get("divergence_plots", {}), op: path.name}
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
        # the architecture trades: marked only where the operator's points differ in them
        for key, column, maximise in (("pareto_latency", latency_column(mine), False),
                                      ("pareto_throughput", "throughput_meps", True)):
            if len({r.get(column) for r in mine if r.get(column) not in (None, "")}) > 1:
                front = {id(r) for r in front_rows(mine, "ecp5_lut_equivalent", column, maximise_y=maximise)}
                for r in mine:
                    r[key] = id(r) in front


def _model_rows(rows) -> list[dict]:
    """The rows the model-level figures run for (``Options.model_points``): per operator, its points
    on the error front, or every valid point when it has no front (no synthesis, no error stage)."""
    out = []
    for op in dict.fromkeys(r["op"] for r in rows):
        valid = [r for r in rows if r["op"] == op and r["status"] != "invalid"]
        front = [r for r in valid if r.get("pareto_error")]
        out += front or valid
    return out


def _model_stage(rows, points, opts: Options, cache: StageCache, stage: str, desc: str, measure, record):
    """Run ``measure(point)`` (a dict of figures) for the model rows, cached like a stage under
    ``stage``; ``record(row, result)`` puts a result on its row.  Returns the results by point."""
    by_id = {p.id: p for p in points}
    chosen = [r for r in rows if r["status"] != "invalid"] if opts.model_points == "all" else _model_rows(rows)
    bar = _progress(len(chosen), opts.progress, desc=desc)
    results = {}
    for r in chosen:
        p = by_id[r["point"]]
        t = stages.Task(p.op, p.id, p.cfg.params(), stage)
        res = cache.get(t)
        if res is None:
            t0 = time.perf_counter()
            try:
                res = {"status": "ok", "metrics": measure(p)}
            except Exception as err:  # noqa: BLE001 - recorded on the row
                res = {"status": "failed", "failure": "error", "message": str(err)}
            res["seconds"] = time.perf_counter() - t0
            cache.put(t, res)
        record(r, res)
        results[p.id] = res
        bar.set_postfix_str(f"{p.id} {res['status']}", refresh=False)
        bar.update(1)
    bar.close()
    return results


def _model_accuracy(rows, points, opts: Options, cache: StageCache):
    """``model_<metric>`` on the model rows (cached like a stage)."""
    fn = model_accuracy_function()

    def record(r, res):
        if res["status"] == "ok":
            r.update({f"model_{k}": v for k, v in res["metrics"].items()})
        else:
            r["model_error"] = report.scrub(res["message"])
        r["seconds_model"] = round(res["seconds"], 1)

    _model_stage(rows, points, opts, cache, f"model-{opts.model_accuracy}", "model accuracy",
                 lambda p: fn(p.op, p.cfg, limit=opts.model_accuracy), record)


def _model_divergence(rows, points, opts: Options, cache: StageCache) -> dict:
    """The divergence figures (:mod:`spikeops.gen.llm.divergence`) on the model rows, cached like a
    stage (key: configuration, N, text, model digests, code); the text and windows go to the meta,
    the figures onto the rows (with their front against ECP5 LUT-eq).  Returns the meta entry."""
    mod = model_divergence_function()
    n = opts.model_divergence
    info = {}

    def record(r, res):
        if res["status"] == "ok":
            m = dict(res["metrics"])
            about = {k: m.pop(k) for k in report.DIVERGENCE_INFO if k in m}
            mine = info.setdefault(r["op"], {})
            mine.update({k: v for k, v in about.items() if k != "seconds_float"})
            mine["seconds_float"] = max(mine.get("seconds_float", 0.0), about.get("seconds_float", 0.0))
            r.update(m)
        else:
            r["divergence_error"] = report.scrub(res["message"])
        r["seconds_divergence"] = round(res["seconds"], 1)

    _model_stage(rows, points, opts, cache, f"divergence-{n}", "model divergence",
                 lambda p: mod.model_divergence(p.op, p.cfg, tokens=n), record)
    report.mark_divergence_fronts(rows)
    by_op = {op: {**i, "description": mod.describe(i["family"], n, i["window"])} for op, i in info.items()}
    return {"tokens": n, "points": opts.model_points, "by_op": by_op}
