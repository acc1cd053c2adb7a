"""The capture file format: the integer codes each operator instance of a converted model saw.

Captured operator inputs: the integer codes each operator instance of a converted model saw.

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

:func:`save` writes the file under a temporary name and renames it into place; :func:`load` refuses,
with a ValueError naming the file (and the instance), a file that is not a whole capture (empty,
truncated, another format) or whose arrays do not fit their configurations (rows of another length
than ``d`` or longer than ``d_max``, weights of another length, codes outside the input format).

Written by the recorder of ``spikeops.gen.llm.capture`` (row sampling: every row is a candidate; an instance keeps at most ``max_rows`` rows, chosen by a
deterministic reservoir (seeded), so the file size is bounded whatever the number of prompts); this module needs only numpy and golden, so every layer reads
the format from here.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import registry
from .fixed import check_codes, dequantize

__all__ = ["Captured", "Capture", "load", "save", "pad_rows", "FORMAT", "VERSION"]

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

    @property
    def record(self):
        return registry.get(self.op)

    def values(self) -> np.ndarray:
        """The captured inputs as real numbers (float64; masked Softmax positions are -inf)."""
        return dequantize(self.x, self.cfg.in_format)

    def weights(self) -> dict:
        """The weight codes (``gamma``, ``beta``) the instance carries, by name."""
        return {k: getattr(self, k) for k in ("gamma", "beta") if getattr(self, k) is not None}

    def weight_values(self) -> dict:
        """The weights in real units (each in its format of the captured configuration)."""
        return self.record.dequantize_weights(self.cfg, self.weights())

    def golden(self, cfg=None) -> np.ndarray:
        """The golden output codes for these rows at ``cfg`` (default: the captured config)."""
        return self.record.run(self.x, cfg or self.cfg, mask=self.mask, **self.weights())

    def block(self, rows=None, *, values: bool = False):
        """``(x, mask)`` of the captured rows (all, or the indices ``rows``) as one 2-D block:
        codes (or real values with ``values=True``), with the columns past the last valid position
        of every row dropped (the padding of shorter attention rows); ``mask`` is None unless the
        operator is a masked row."""
        x = self.values() if values else self.x
        m = self.mask
        if rows is not None:
            x, m = x[rows], (None if m is None else m[rows])
        if m is None or not self.record.masked:
            return x, None
        cols = np.nonzero(m.any(axis=0))[0]
        n = int(cols[-1]) + 1 if cols.size else 1
        return x[:, :n], m[:, :n]

    def rows(self, *, values: bool = False) -> list:
        """Each captured row as ``(x, mask)``: masked rows cut after their last valid position
        (at least one element; masked positions keep the mask code, or -inf as real values), other
        operators' rows whole with mask None."""
        x = self.values() if values else self.x
        if self.mask is None or not self.record.masked:
            return [(x[j], None) for j in range(len(x))]
        out = []
        for j in range(len(x)):
            valid = np.nonzero(self.mask[j])[0]
            n = int(valid[-1]) + 1 if valid.size else 1
            out.append((x[j, :n], self.mask[j, :n].copy()))
        return out


@dataclass
class Capture:
    """A capture file's contents: the instances and the run's description."""

    instances: list
    meta: dict = field(default_factory=dict)

    def by_op(self, op: str) -> list:
        """The instances of ``op`` in forward order (maybe none)."""
        return [c for c in self.instances if c.op == op]

    def instances_of(self, op: str) -> list:
        """The instances of ``op``; ValueError naming what was captured when there is none."""
        items = self.by_op(op)
        if not items:
            raise ValueError(f"capture: no instance of op={op!r}; captured: {', '.join(self.ops())}")
        return items

    def ops(self) -> list:
        return sorted({c.op for c in self.instances})


def pad_rows(rows, mrows, d, cfg):
    """Pad code rows (and their masks) to ``d`` columns with masked positions."""
    pad = d - rows.shape[1]
    rows = np.pad(rows, ((0, 0), (0, pad)), constant_values=cfg.in_format.mask_code)
    if mrows is None:
        mrows = np.ones(rows.shape, bool)
        mrows[:, -pad:] = False
    else:
        mrows = np.pad(mrows, ((0, 0), (0, pad)), constant_values=False)
    return rows, mrows


def save(capture: Capture, path) -> Path:
    """Write ``capture`` as a ``.npz`` in the documented format; return the path (``.npz`` is
    appended to a name without it, as NumPy does).  The file is written under a temporary name in
    its folder and renamed into place, so a reader never sees half of one."""
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
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
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        mask = os.umask(0)
        os.umask(mask)
        os.fchmod(fd, 0o666 & ~mask)  # as open() would make it, not mkstemp's 0600
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


#: what reading a file that is not a whole ``.npz`` raises (truncated, empty, another format)
_UNREADABLE = (zipfile.BadZipFile, EOFError, zlib.error, json.JSONDecodeError, UnicodeDecodeError, KeyError,
               ValueError, OSError)


def _read(path: Path) -> tuple[dict, dict]:
    """``(meta, arrays)`` of a capture file, every array read; ValueError naming the file when it
    is not a whole ``.npz`` with a JSON ``__meta__``."""
    allowed = "allowed: a .npz written by `spikeops capture`"
    with open(path, "rb") as f:
        magic = f.read(4)
    if not magic:
        raise ValueError(f"capture: {path} is empty; {allowed}")
    if magic[:2] != b"PK":  # every .npz is a zip archive
        raise ValueError(f"capture: {path} is not a .npz (zip) archive; {allowed}")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except _UNREADABLE as err:
        raise ValueError(f"capture: {path} is truncated or damaged ({type(err).__name__}: {err}); {allowed}") from None
    if "__meta__" not in arrays:
        raise ValueError(f"capture: {path} has no __meta__ entry; not a {FORMAT} file; {allowed}")
    try:
        meta = json.loads(str(arrays.pop("__meta__")))
    except json.JSONDecodeError as err:
        raise ValueError(f"capture: {path}: __meta__ is not JSON ({err}); {allowed}") from None
    if not isinstance(meta, dict):
        raise ValueError(f"capture: {path}: __meta__ is not a JSON object; {allowed}")
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise ValueError(f"capture: {path} is format {meta.get('format')!r} version "
                         f"{meta.get('version')!r}; allowed: {FORMAT!r} version {VERSION}")
    if not isinstance(meta.get("instances"), list):
        raise ValueError(f"capture: {path}: __meta__ has no list of instances; {allowed}")
    return meta, arrays


_ENTRY_KEYS = ("key", "name", "op", "layer", "config", "shape_seen", "calls", "rows_seen")


def _instance(path: Path, e, arrays: dict) -> Captured:
    """One instance of the file, its arrays checked against its configuration (ValueError naming
    the file, the instance and what is wrong)."""
    if not isinstance(e, dict) or any(k not in e for k in _ENTRY_KEYS):
        missing = [k for k in _ENTRY_KEYS if not isinstance(e, dict) or k not in e]
        raise ValueError(f"capture: {path}: an instance entry lacks {', '.join(missing)}; allowed: entries with "
                         f"{', '.join(_ENTRY_KEYS)}")
    k, where = e["key"], f"capture: {path}: instance {e['name']!r}"
    try:
        rec = registry.get(e["op"])
        cfg = rec.config_from_json(e["config"])
    except (ValueError, TypeError, KeyError, AttributeError) as err:
        kind = "" if isinstance(err, ValueError) else f"{type(err).__name__}: "
        raise ValueError(f"{where}: {kind}{err}") from None
    x = arrays.get(f"{k}.x")
    if x is None:
        raise ValueError(f"{where} has no array {k}.x; allowed: every instance with its rows")
    if x.ndim != 2 or x.dtype.kind not in "iu":
        raise ValueError(f"{where}: {k}.x is {x.dtype} of shape {x.shape}; allowed: integers of shape (rows, d)")
    get = (lambda s: arrays.get(f"{k}.{s}"))
    mask = get("mask")
    if mask is not None and (mask.shape != x.shape or mask.dtype != bool):
        raise ValueError(f"{where}: {k}.mask is {mask.dtype} of shape {mask.shape}; allowed: bool of the rows' "
                         f"shape {x.shape}")
    if x.shape[0]:
        try:
            rec.check_row_length(cfg, int(x.shape[1]), "captured rows")
            check_codes(x, cfg.in_format, owner=e["op"], name=f"{k}.x", allow_mask=rec.masked)
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None
    weights = {}
    for w in ("gamma", "beta"):
        v = get(w)
        if v is None:
            continue
        if v.shape != (x.shape[1],) or v.dtype.kind not in "iu":
            raise ValueError(f"{where}: {k}.{w} is {v.dtype} of shape {v.shape}; allowed: integers of shape "
                             f"({x.shape[1]},), one per row element")
        weights[w] = v
    return Captured(name=e["name"], op=e["op"], layer=e["layer"], cfg=cfg, x=x, mask=mask,
                    gamma=weights.get("gamma"), beta=weights.get("beta"), shape_seen=tuple(e["shape_seen"]),
                    calls=e["calls"], rows_seen=e["rows_seen"])


def load(path) -> Capture:
    """Read a capture ``.npz``; the configurations come back as configuration objects.

    FileNotFoundError when there is no such file; ValueError naming the file (and the instance)
    when it is not a whole capture (truncated, another format) or its arrays do not fit their
    configurations (rows of another length than ``d``, codes outside the input format)."""
    path = Path(path)
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise FileNotFoundError(f"capture: {path} {what} (write one with `spikeops capture`)")
    meta, arrays = _read(path)
    out = [_instance(path, e, arrays) for e in meta["instances"]]
    meta.pop("instances")
    return Capture(out, meta)
