"""The evaluation table's rows as independent jobs on the sweep's executors (``spikeops eval
--jobs N``, ``--executor dask --scheduler ADDRESS``).

A job is one row (``original``, an ablation, or a quantised or spiking network) or one shard of
it: :func:`run_row` calls :func:`spikeops.gen.llm.table.evaluation_table` for that row alone
(``rows=[label]``, ``shard=(i, n)``) in the worker; spiking rows that one run scores together (the
T sweep of one network, :func:`spikeops.gen.llm.snn.table.step_groups`) are one job, which keeps its results per task in
``<out>/rows/`` (:class:`spikeops.gen.llm.rowstore.RowStore`, locked, merged) and its per-request
scores as they come.  The jobs therefore share nothing but the output folder, a stopped run resumes
from what they kept, and the last call, in the process that started them, assembles ``eval.json``
and ``eval.md`` from the kept rows (and runs the speed probe there).  Every worker loads and
calibrates the model itself: a job costs one calibration (about half a minute for SmolLM2) beside
its scoring.

Executors (:mod:`spikeops.gen.sweep.executors`): ``local`` with ``--jobs 1`` runs the jobs one after
the other in this process, with ``--jobs N`` in N spawned processes; ``dask`` submits them to a
Dask scheduler (``--scheduler ADDRESS``; without one a local cluster of ``--jobs`` workers).  Dask
workers need spikeops at the same version and the output folder at the same path (a shared file
system), as the sweep's workers need its capture file.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field

__all__ = ["RowJob", "plan_jobs", "run_row", "run_jobs", "worker_threads"]


@dataclass(frozen=True)
class RowJob:
    """One row (``label``), or shard ``shard = (i, n)`` of its batches, of the table that
    ``options`` (keyword arguments of :func:`~spikeops.gen.llm.table.evaluation_table`, with
    ``out_dir``) describe; ``backend`` is the golden integers' back end and ``threads`` the torch
    threads of the worker."""

    label: str
    options: dict = field(compare=False)
    shard: tuple = (0, 1)
    backend: str = "fast"
    threads: int = 1
    #: rows scored with ``label`` in the same pass (the rest of its step group)
    also: tuple = ()

    @property
    def rows(self) -> list:
        return [self.label, *self.also]

    def describe(self) -> str:
        what = " + ".join(self.rows)
        return what if self.shard == (0, 1) else f"{what} (shard {self.shard[0]}/{self.shard[1]})"


def plan_jobs(labels, options: dict, *, jobs: int, shards: int | None = None, backend: str = "fast",
              threads: int = 1) -> list[RowJob]:
    """The jobs for rows ``labels`` (each a label, or a tuple of labels one pass scores together):
    each split into ``shards`` shards of its batches (default: enough for ``jobs`` workers,
    ``ceil(jobs / rows)``), in row order."""
    if not labels:
        return []
    n = shards if shards is not None else max(1, math.ceil(jobs / len(labels)))
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"eval: --row-shards {n!r} is not allowed; allowed: an integer >= 1")
    groups = [(g,) if isinstance(g, str) else tuple(g) for g in labels]
    return [RowJob(g[0], options, (i, n), str(backend), threads, g[1:]) for g in groups for i in range(n)]


def run_row(job: RowJob) -> dict:
    """Run one job in this process and return ``{"status": "ok" | "failed", "seconds", "log",
    "message"}``; never raises (an error is a failed result naming it), so one bad row does not
    stop the others."""
    t0 = time.perf_counter()
    lines: list[str] = []
    try:
        import torch

        from .operators import set_backend
        from .table import evaluation_table

        torch.set_num_threads(max(1, job.threads))
        set_backend(job.backend)
        evaluation_table(**job.options, rows=job.rows, shard=tuple(job.shard), speed_repeats=0, progress=False,
                         log=lines.append, assemble=False)
        return {"status": "ok", "seconds": time.perf_counter() - t0, "log": lines, "message": ""}
    except Exception as err:  # noqa: BLE001 - reported as the job's result
        return {"status": "failed", "seconds": time.perf_counter() - t0, "log": lines,
                "message": f"{type(err).__name__}: {err}"}


def run_jobs(jobs: list[RowJob], executor, log=print) -> list[tuple[RowJob, dict]]:
    """Run ``jobs`` on ``executor`` (its ``results(fn, tasks)``), logging each as it ends; returns
    the failed ones with their results."""
    failed = []
    for k, (job, res) in enumerate(executor.results(run_row, jobs), 1):
        if res.get("status") == "ok":
            log(f"eval: [{k}/{len(jobs)}] {job.describe()}: done in {res['seconds']:.0f} s")
        else:
            failed.append((job, res))
            log(f"eval: [{k}/{len(jobs)}] {job.describe()}: FAILED after {res.get('seconds', 0.0):.0f} s: "
                f"{res.get('message', '')}")
            for line in res.get("log", [])[-5:]:
                log(f"    {line}")
    return failed


def worker_threads(executor_kind: str, jobs: int) -> int:
    """Torch threads per job: the cores shared among ``jobs`` local workers; one on Dask (its
    workers' own threads are the unit there)."""
    if executor_kind == "dask":
        return 1
    return max(1, (os.cpu_count() or 1) // max(1, jobs))
