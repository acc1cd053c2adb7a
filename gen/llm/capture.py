"""Captured operator inputs: the integer codes each operator instance of a converted model saw.

File format (``.npz``, written by ``spikeops capture``; read with :func:`load`; NumPy only, no
pickles, ``np.load(path)`` opens it):

``__meta__``
    a 0-d string array holding JSON: ``{"format": "spikeops-capture", "version": 1, "model": ...,
    "prompts": N, "max_rows": R, "seed": S, "instances": [...]}``.  Each instance entry holds
    ``key`` (the array prefix below), ``name`` (the module path in the model, e.g.
    ``model.layers.3.mlp.act_fn``), ``op`` (``softmax`` / ``silu`` / ``gelu`` / ``rmsnorm`` /
    ``layernorm``), ``layer`` (decoder/encoder layer index, -1 for a final norm), ``config`` (the
    operator configuration as ``cfg.to_json()``, which fixes the input format
    ``s<in_width>.<in_frac>``: the scale is ``2**-in_frac``), ``shape_seen`` (the shape of the last
    tensor the instance received), ``calls``, ``rows_seen`` and ``rows_kept``.
``<key>.x``
    int64 array ``(rows_kept, d)``: input codes in the instance's input format, one row per row
    of the operator (the last axis: a hidden vector for the norms, an attention-score row for
    Softmax, an MLP vector for the activations).  Softmax rows keep the input-format mask code
    (the most negative code) at masked positions.
``<key>.mask``
    bool ``(rows_kept, d)``, Softmax only: True where the position is valid (not masked).
``<key>.gamma`` / ``<key>.beta``
    int64 ``(d,)``, norms only: the weight codes in the instance's gamma / beta format.

Row sampling: every row is a candidate; an instance keeps at most ``max_rows`` rows, chosen by a
deterministic reservoir (seeded), so the file size is bounded whatever the number of prompts.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spikeops.golden import registry

__all__ = ["Captured", "Capture", "Recorder", "load", "save", "FORMAT", "VERSION"]

FORMAT = "spikeops-capture"
VERSION = 1


@dataclass
class Captured:
    """One operator instance's captured rows."""

    name: str
    op: str
    layer: int
    cfg: object
    x: np.ndarray  # int64 (rows, d) codes in cfg.in_format
    mask: np.ndarray | None = None  # bool (rows, d), softmax only
    gamma: np.ndarray | None = None
    beta: np.ndarray | None = None
    shape_seen: tuple = ()
    calls: int = 0
    rows_seen: int = 0

    @property
    def key(self) -> str:
        return re.sub(r"[^A-Za-z0-9_]+", "_", self.name)

    def values(self) -> np.ndarray:
        """The captured inputs as real numbers (float64; masked Softmax positions are -inf)."""
        from spikeops.golden.fixed import dequantize
        return dequantize(self.x, self.cfg.in_format)

    def golden(self, cfg=None) -> np.ndarray:
        """The golden output codes for these rows at ``cfg`` (default: the captured config)."""
        cfg = cfg or self.cfg
        op = registry.get(self.op)
        if self.op == "softmax":
            return op.golden(self.x, cfg, mask=self.mask)
        args = [a for a in (self.gamma, self.beta) if a is not None]
        return op.golden(self.x, cfg, *args)


@dataclass
class Capture:
    """A capture file's contents: the instances and the run's description."""

    instances: list
    meta: dict = field(default_factory=dict)

    def by_op(self, op: str) -> list:
        return [c for c in self.instances if c.op == op]

    def ops(self) -> list:
        return sorted({c.op for c in self.instances})

    def rows(self, op: str, limit: int | None = None, seed: int = 0) -> tuple:
        """``(values, mask)`` of every instance of ``op`` stacked as real numbers (each instance
        dequantised in its own calibrated format, so rows of different scales can be mixed; Softmax
        rows padded with -inf to the longest), optionally ``limit`` rows drawn without replacement;
        ``mask`` is None except for Softmax."""
        items = self.by_op(op)
        if not items:
            raise ValueError(f"capture: no instance of op={op!r}; captured: {', '.join(self.ops())}")
        d = max(c.x.shape[1] for c in items)
        xs, ms = [], []
        for c in items:
            x = c.values()
            m = c.mask if c.mask is not None else np.ones(x.shape, dtype=bool)
            pad = ((0, 0), (0, d - x.shape[1]))
            xs.append(np.pad(x, pad, constant_values=-np.inf))
            ms.append(np.pad(m, pad, constant_values=False))
        x, m = np.concatenate(xs), np.concatenate(ms)
        if limit is not None and limit < len(x):
            pick = np.sort(np.random.default_rng(seed).choice(len(x), size=limit, replace=False))
            x, m = x[pick], m[pick]
        return x, (m if op == "softmax" else None)


class Recorder:
    """Collects rows per instance during forward passes (a bounded, seeded reservoir)."""

    def __init__(self, max_rows: int = 256, seed: int = 0):
        if not isinstance(max_rows, int) or max_rows < 1:
            raise ValueError(f"capture: max_rows={max_rows!r} is not allowed; allowed: an integer >= 1")
        self.max_rows = max_rows
        self.rng = np.random.default_rng(seed)
        self.seed = seed
        self.items: dict[str, Captured] = {}

    def record(self, name: str, op: str, layer: int, cfg, codes: np.ndarray, mask=None,
               gamma=None, beta=None):
        """Offer the rows of ``codes`` (any shape; rows on the last axis) of instance ``name``."""
        d = codes.shape[-1]
        rows = np.asarray(codes, dtype=np.int64).reshape(-1, d)
        mrows = None if mask is None else np.broadcast_to(mask, codes.shape).reshape(-1, d)
        item = self.items.get(name)
        if item is None:
            item = self.items[name] = Captured(
                name=name, op=op, layer=layer, cfg=cfg, x=np.empty((0, d), np.int64),
                mask=None if mask is None else np.empty((0, d), bool), gamma=gamma, beta=beta)
        item.calls += 1
        item.shape_seen = tuple(int(s) for s in codes.shape)
        if item.x.shape[1] < d:  # attention rows grow with the sequence: keep the widest
            item.x, item.mask = _pad_rows(item.x, item.mask, d, item.cfg)
        elif item.x.shape[1] > d:
            rows, mrows = _pad_rows(rows, mrows, item.x.shape[1], cfg)
        # reservoir sampling (Algorithm R), vectorised per call
        seen = item.rows_seen
        n = len(rows)
        free = max(0, self.max_rows - len(item.x))
        take = min(free, n)
        item.x = np.concatenate([item.x, rows[:take]])
        if mrows is not None:
            item.mask = np.concatenate([item.mask, mrows[:take]])
        if take < n:
            idx = np.arange(seen + take, seen + n) + 1
            slots = (self.rng.random(len(idx)) * idx).astype(np.int64)
            hit = slots < self.max_rows
            for j, slot in zip(np.nonzero(hit)[0] + take, slots[hit]):
                item.x[slot] = rows[j]
                if mrows is not None:
                    item.mask[slot] = mrows[j]
        item.rows_seen = seen + n

    def capture(self, **meta) -> Capture:
        meta = dict(meta, max_rows=self.max_rows, seed=self.seed)
        return Capture(list(self.items.values()), meta)


def _pad_rows(rows, mrows, d, cfg):
    pad = d - rows.shape[1]
    rows = np.pad(rows, ((0, 0), (0, pad)), constant_values=cfg.in_format.mask_code)
    if mrows is None:
        mrows = np.ones(rows.shape, bool)
        mrows[:, -pad:] = False
    else:
        mrows = np.pad(mrows, ((0, 0), (0, pad)), constant_values=False)
    return rows, mrows


def save(capture: Capture, path) -> Path:
    """Write ``capture`` as a ``.npz`` in the documented format; return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays, entries = {}, []
    keys = set()
    for c in capture.instances:
        key = c.key
        if key in keys:
            raise ValueError(f"capture: two instances map to the key {key!r}")
        keys.add(key)
        arrays[f"{key}.x"] = c.x.astype(np.int64)
        if c.mask is not None:
            arrays[f"{key}.mask"] = c.mask.astype(bool)
        for w in ("gamma", "beta"):
            if getattr(c, w) is not None:
                arrays[f"{key}.{w}"] = np.asarray(getattr(c, w), dtype=np.int64)
        entries.append({"key": key, "name": c.name, "op": c.op, "layer": c.layer,
                        "config": c.cfg.to_json(), "shape_seen": list(c.shape_seen),
                        "calls": c.calls, "rows_seen": c.rows_seen, "rows_kept": int(len(c.x))})
    meta = dict(capture.meta, format=FORMAT, version=VERSION, instances=entries)
    arrays["__meta__"] = np.array(json.dumps(meta))
    np.savez_compressed(path, **arrays)
    return path


def load(path) -> Capture:
    """Read a capture ``.npz``; the configurations come back as configuration objects."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"capture: {path} does not exist (write one with `spikeops capture`)")
    with np.load(path, allow_pickle=False) as z:
        if "__meta__" not in z.files:
            raise ValueError(f"capture: {path} has no __meta__ entry; not a {FORMAT} file")
        meta = json.loads(str(z["__meta__"]))
        if meta.get("format") != FORMAT or meta.get("version") != VERSION:
            raise ValueError(f"capture: {path} is format {meta.get('format')!r} version "
                             f"{meta.get('version')!r}; allowed: {FORMAT!r} version {VERSION}")
        out = []
        for e in meta["instances"]:
            k = e["key"]
            cfg = registry.get(e["op"]).config.from_json(e["config"])
            get = (lambda s: z[f"{k}.{s}"] if f"{k}.{s}" in z.files else None)
            out.append(Captured(name=e["name"], op=e["op"], layer=e["layer"], cfg=cfg, x=z[f"{k}.x"],
                                mask=get("mask"), gamma=get("gamma"), beta=get("beta"),
                                shape_seen=tuple(e["shape_seen"]), calls=e["calls"],
                                rows_seen=e["rows_seen"]))
    meta.pop("instances")
    return Capture(out, meta)
