"""Where the sweep's stages run: in this process, in local worker processes, or on a Dask cluster.

Every executor has ``results(fn, tasks)``: it yields ``(task, result)`` as the tasks finish (in any
order).  ``fn`` never raises for a failing stage (:func:`spikeops.gen.sweep.stages.run`); a worker that
dies is reported as a failed result of kind ``error`` and the other tasks go on.

* ``inline`` (``--jobs 1``): one at a time in this process;
* ``local`` (``--jobs N``): ``concurrent.futures.ProcessPoolExecutor`` with N spawned processes;
* ``dask`` (``--executor dask --scheduler ADDRESS``): ``distributed.Client`` on a running cluster
  (without an address: a ``LocalCluster`` of ``--jobs`` worker processes).  Workers need spikeops
  installed at the same version and must read the capture file at the same path (a shared file
  system); the cache stays with the process that runs the sweep.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

__all__ = ["InlineExecutor", "LocalExecutor", "DaskExecutor", "make_executor", "EXECUTORS"]

EXECUTORS = ("local", "dask")


def _worker_died(err: BaseException) -> dict:
    return {"status": "failed", "failure": "error", "message": f"the worker died: {type(err).__name__}: {err}",
            "seconds": 0.0}


class InlineExecutor:
    """Runs the tasks one after the other in this process."""

    name = "inline"

    def results(self, fn, tasks):
        for t in tasks:
            yield t, fn(t)

    def close(self):
        pass


class LocalExecutor:
    """``jobs`` spawned worker processes (spawn: no inherited threads or locks)."""

    name = "local"

    def __init__(self, jobs: int):
        self.jobs = jobs
        self.pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"))

    def results(self, fn, tasks):
        pending = {self.pool.submit(fn, t): t for t in tasks}
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    t = pending.pop(fut)
                    try:
                        yield t, fut.result()
                    except Exception as err:  # noqa: BLE001 - e.g. BrokenProcessPool
                        yield t, _worker_died(err)
        finally:
            for fut in pending:
                fut.cancel()

    def close(self):
        self.pool.shutdown(wait=True, cancel_futures=True)


class DaskExecutor:
    """Tasks submitted to a Dask ``distributed`` scheduler (``address``), or to a local cluster."""

    name = "dask"

    def __init__(self, address: str | None = None, *, jobs: int = 2):
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise ValueError("--executor dask needs dask and distributed: pip install 'spikeops[cluster]'") from None
        self.cluster = None
        if address is None:
            self.cluster = LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True)
            address = self.cluster.scheduler_address
        try:
            self.client = Client(address, timeout="30s")
        except OSError as err:
            if self.cluster is not None:
                self.cluster.close()
            raise ValueError(f"--scheduler {address!r}: cannot connect to a Dask scheduler there ({err})") from None

    def results(self, fn, tasks):
        from distributed import as_completed
        futures = {self.client.submit(fn, t, pure=False): t for t in tasks}
        try:
            for fut in as_completed(list(futures)):
                t = futures.pop(fut)
                try:
                    yield t, fut.result()
                except Exception as err:  # noqa: BLE001 - a lost worker
                    yield t, _worker_died(err)
        finally:
            for fut in futures:
                fut.cancel()

    def close(self):
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def make_executor(kind: str = "local", *, jobs: int = 2, scheduler: str | None = None, cmd: str = "sweep"):
    """The executor for ``--executor kind --jobs N --scheduler ADDRESS`` (``cmd`` names the command
    in the errors)."""
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"{cmd}: jobs={jobs!r} is not allowed; allowed: an integer >= 1")
    if kind == "dask":
        return DaskExecutor(scheduler, jobs=jobs)
    if kind != "local":
        raise ValueError(f"{cmd}: executor={kind!r} is not allowed; allowed: {', '.join(EXECUTORS)}")
    if scheduler is not None:
        raise ValueError(f"{cmd}: --scheduler is for --executor dask")
    return InlineExecutor() if jobs == 1 else LocalExecutor(jobs)
