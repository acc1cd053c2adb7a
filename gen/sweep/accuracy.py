"""The sweep's accuracy stage: golden-model error against float64 on one operator's activations.

Activations are real numbers (float64): the captured codes of a converted LLM, each instance
dequantised in its own (calibrated) input format (``spikeops.gen.llm.capture``), or, without a capture, the
synthetic heavy-tailed stand-in of ``spikeops.verif.stimulus.make(op, default, "activations")``.  For a
point, the real inputs are re-quantised (``spikeops.golden.fixed.quantize``; Softmax's masked positions are
-inf, so they become the mask code, and the mask array stays) to

* ``scales="calibrated"`` (the default with a capture): the point's widths at each instance's
  calibrated scale (:func:`calibrated_config`: the instance's integer bits kept), as the converted
  model runs the point's configuration; the point's own ``in_frac`` (norms: ``gamma_frac``) is then
  the calibration's business and takes no part;
* ``scales="point"``: the point's own input format for every instance;

the golden model runs on the codes, and its output is dequantised and compared with the exact
float64 operator ``cfg.reference`` applied to the *real* activations (so input quantisation
counts).  Norms use each instance's gamma/beta in real units, re-quantised to the weight formats.

Errors: ``err_max_real`` / ``err_mean_real`` = max / mean |y - exact| in real units over the valid
elements (Softmax: unmasked positions), ``err_max_lsb`` / ``err_mean_lsb`` the same in output LSBs
(of the instance's output format), ``saturated`` the fraction of elements whose exact value lies
outside the output format's range."""

from __future__ import annotations

import functools
import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spikeops.golden import registry
from spikeops.golden.fixed import dequantize, quantize

__all__ = ["Source", "Group", "Activations", "load", "check_point", "calibrated_config", "errors", "file_hash",
           "SYNTHETIC_SIZE", "SCALES"]

#: elements of the synthetic stand-in per operator
SYNTHETIC_SIZE = 100_000
SCALES = ("calibrated", "point")


@dataclass(frozen=True)
class Source:
    """Where a sweep's activations come from (small and picklable: each worker loads them once).

    ``path`` None means the synthetic stand-in; ``rows`` limits the captured rows per operator
    (drawn without replacement with ``seed``); ``scales`` is ``"calibrated"`` (each instance's
    calibrated scales at the point's widths, :func:`calibrated_config`) or ``"point"`` (the point's
    own formats for every instance; the synthetic stand-in has no other)."""

    path: str | None = None
    sha256: str | None = None
    rows: int | None = None
    seed: int = 0
    scales: str = "calibrated"

    def __post_init__(self):
        if self.scales not in SCALES:
            raise ValueError(f"sweep: scales={self.scales!r} is not allowed; allowed: {', '.join(SCALES)}")

    @property
    def label(self) -> str:
        if self.path is None:
            return "synthetic"
        return f"capture {Path(self.path).name} (sha256 {self.sha256[:16]})"

    def key(self) -> dict:
        """What the cached errors depend on (the content hash, not the path)."""
        return {"capture_sha256": self.sha256, "rows": self.rows, "seed": self.seed, "scales": self.scales,
                "synthetic_size": SYNTHETIC_SIZE if self.path is None else None}


@dataclass
class Group:
    """One captured instance's rows: ``x`` (rows, d) float64 (-inf at masked Softmax positions; a
    flat vector for elementwise operators), ``mask`` (Softmax: True where valid), ``gamma`` /
    ``beta`` (d,) in real units or None, ``captured`` the instance's (calibrated) configuration
    (None for the synthetic stand-in)."""

    x: np.ndarray
    mask: np.ndarray | None = None
    gamma: np.ndarray | None = None
    beta: np.ndarray | None = None
    captured: object = None


@dataclass
class Activations:
    """One operator's real inputs as groups of rows (one per captured instance: every instance has
    its own calibrated scales, the norms their own gamma) and where they came from."""

    op: str
    groups: list
    source: str

    @property
    def d(self) -> int:
        """The longest row (Softmax) or the row length (norms)."""
        return max(int(g.x.shape[-1]) for g in self.groups)

    @property
    def rows(self) -> int:
        return sum(len(g.x) for g in self.groups)

    def describe(self) -> dict:
        """Instances, rows, row length and the captured input formats (for the report)."""
        formats = sorted({g.captured.in_format.describe() for g in self.groups if g.captured is not None},
                         key=lambda f: (f[0], *map(int, f[1:].split("."))))
        out = {"instances": len(self.groups), "rows": self.rows, "in_formats": formats}
        if registry.get(self.op).shape == "row":
            out["row_length"] = self.d
        else:
            out["elements"] = self.rows
        return out


def file_hash(path) -> str:
    """SHA-256 of a file's content (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@functools.lru_cache(maxsize=2)
def _capture(path: str, sha256: str):
    from spikeops.gen.llm.capture import load as load_capture
    return load_capture(path)


@functools.lru_cache(maxsize=8)
def load(source: Source, op: str) -> Activations:
    """The activations of ``op`` from ``source`` (cached per process).

    Captured instances may have different (calibrated) input formats, so each is dequantised in
    its own format before the rows are stacked (Softmax rows padded to the longest with masked
    positions, then trailing all-masked columns dropped) and ``rows`` drawn without replacement."""
    if source.path is None:
        return _synthetic(op)
    cap = _capture(source.path, source.sha256)
    items = cap.by_op(op)
    if not items:
        raise ValueError(f"sweep: the capture has no {op} instance; captured: {', '.join(cap.ops())}")
    d = max(c.x.shape[1] for c in items)
    xs, ms, owner = [], [], []
    for j, c in enumerate(items):
        v = c.values()
        m = c.mask if c.mask is not None else np.ones(v.shape, dtype=bool)
        pad = ((0, 0), (0, d - v.shape[1]))
        xs.append(np.pad(v, pad, constant_values=-np.inf))
        ms.append(np.pad(m, pad, constant_values=False))
        owner.append(np.full(len(v), j))
    x, mask, owner = np.concatenate(xs), np.concatenate(ms), np.concatenate(owner)
    if source.rows is not None and source.rows < len(x):
        pick = np.sort(np.random.default_rng(source.seed).choice(len(x), size=source.rows, replace=False))
        x, mask, owner = x[pick], mask[pick], owner[pick]
    elementwise = registry.get(op).shape == "elementwise"
    groups = []
    for j, c in enumerate(items):
        rows = owner == j
        if not rows.any():
            continue
        gx, gm = x[rows][:, :c.x.shape[1]], mask[rows][:, :c.x.shape[1]]
        if op == "softmax":
            groups.append(Group(*_trim_masked_columns(gx, gm), captured=c.cfg))
        elif elementwise:
            groups.append(Group(gx[gm], captured=c.cfg))
        else:
            gamma = None if c.gamma is None else dequantize(c.gamma, c.cfg.gamma_format)
            beta = None if c.beta is None else dequantize(c.beta, c.cfg.out_format)
            groups.append(Group(gx, None, gamma, beta, c.cfg))
    return Activations(op, groups, source.label)


def _trim_masked_columns(x, mask):
    """Drop trailing columns that are masked in every row (padding of shorter captured rows)."""
    cols = np.nonzero(mask.any(axis=0))[0]
    n = int(cols[-1]) + 1 if cols.size else 1
    return x[:, :n], mask[:, :n]


def _synthetic(op: str) -> Activations:
    """``spikeops.verif.stimulus.make(op, default, "activations")`` in real units (Softmax rows padded)."""
    from spikeops.verif.stimulus import make
    cfg = registry.get(op).default()
    stim = make(op, cfg, "activations", size=SYNTHETIC_SIZE, seed=0)
    fmt = cfg.in_format
    if registry.get(op).shape == "elementwise":
        return Activations(op, [Group(dequantize(np.concatenate(stim.rows), fmt))], "synthetic")
    d = max(len(r) for r in stim.rows)
    x = np.full((len(stim.rows), d), -np.inf)
    mask = np.zeros((len(stim.rows), d), dtype=bool)
    for j, r in enumerate(stim.rows):
        x[j, :len(r)] = dequantize(r, fmt)
        mask[j, :len(r)] = True if stim.masks is None else stim.masks[j]
    w = stim.weights
    gamma = dequantize(w["gamma"], cfg.gamma_format) if "gamma" in w else None
    beta = dequantize(w["beta"], cfg.out_format) if "beta" in w else None
    return Activations(op, [Group(x, mask if op == "softmax" else None, gamma, beta)], "synthetic")


def check_point(acts: Activations, cfg) -> None:
    """Raise ValueError when ``cfg`` cannot run on these activations (row length vs d / d_max)."""
    if hasattr(cfg, "d") and acts.d != cfg.d:
        raise ValueError(f"{cfg.kind}: d={cfg.d} does not match the {acts.source} rows of length "
                         f"{acts.d}; d must match the model")
    if hasattr(cfg, "d_max") and acts.d > cfg.d_max:
        raise ValueError(f"{cfg.kind}: d_max={cfg.d_max} is shorter than the {acts.source} rows "
                         f"(up to {acts.d} elements); allowed: d_max >= {acts.d}")


def _run(op: str, cfg, g: Group):
    """(golden output codes, exact float64, valid elements) of one group."""
    gop = registry.get(op)
    x = quantize(g.x, cfg.in_format)
    if op == "softmax":
        return (gop.golden(x, cfg, mask=g.mask), cfg.reference(g.x, g.mask), g.mask & ~np.isneginf(g.x))
    if hasattr(cfg, "gamma_format"):
        if g.beta is not None and g.gamma is None:
            raise ValueError(f"{op}: the activations carry beta without gamma")
        args = [w for w in (g.gamma, g.beta) if w is not None]
        codes = [cfg.quantize_gamma(g.gamma)] if g.gamma is not None else []
        if g.beta is not None:
            codes.append(cfg.quantize_beta(g.beta))
        ours = gop.golden(x, cfg, *codes)
        return ours, cfg.reference(g.x, *args), np.ones(ours.shape, dtype=bool)
    ours = gop.golden(x, cfg)
    return ours, cfg.reference(g.x), np.ones(ours.shape, dtype=bool)


def calibrated_config(cfg, captured):
    """``cfg`` at a captured instance's calibrated scales: the instance's integer bits of its input
    (and gamma) format kept at ``cfg``'s widths, the norms' output keeping at least the instance's
    integer bits (``out_frac`` never above ``cfg``'s); where the configuration refuses the input
    scale (Softmax: the exp argument must hold H), the next smaller ``in_frac`` it accepts, as the
    calibration does (``spikeops.gen.llm.calibrate``)."""
    def frac(width, fmt):
        return max(0, min(width - 1, fmt.frac + width - fmt.width))

    changes = {}
    if hasattr(cfg, "gamma_format"):
        changes["gamma_frac"] = frac(cfg.gamma_width, captured.gamma_format)
    if "out_width" in cfg.params():
        changes["out_frac"] = min(cfg.out_frac, frac(cfg.out_width, captured.out_format))
    first = None
    for in_frac in range(frac(cfg.in_width, captured.in_format), -1, -1):
        try:
            return cfg.replace(in_frac=in_frac, **changes)
        except ValueError as err:
            first = first or err
    raise ValueError(f"{cfg.kind}: no in_frac fits the captured scale {captured.in_format.describe()}: {first}")


def errors(acts: Activations, cfg, scales: str = "point") -> dict:
    """The error figures of ``cfg`` on ``acts`` (see the module docstring); with ``scales=
    "calibrated"`` each captured instance runs at :func:`calibrated_config` of ``cfg``."""
    t0 = time.perf_counter()
    check_point(acts, cfg)
    n, top, total, top_lsb, total_lsb, sat = 0, 0.0, 0.0, 0.0, 0.0, 0
    for g in acts.groups:
        gcfg = calibrated_config(cfg, g.captured) if scales == "calibrated" and g.captured is not None else cfg
        fmt = gcfg.out_format
        ours, exact, valid = _run(acts.op, gcfg, g)
        err = np.abs(dequantize(ours, fmt) - exact)[valid]
        if err.size:
            n += err.size
            top, total = max(top, float(err.max())), total + float(err.sum())
            top_lsb, total_lsb = max(top_lsb, float(err.max()) / fmt.lsb), total_lsb + float(err.sum()) / fmt.lsb
            sat += int(np.count_nonzero(np.abs(exact[valid]) > fmt.max_value))
    if n == 0:
        raise ValueError(f"{acts.op}: the {acts.source} rows have no valid element")
    return {"elements": n, "err_max_real": top, "err_mean_real": total / n,
            "err_max_lsb": top_lsb, "err_mean_lsb": total_lsb / n,
            "saturated": sat / n, "activations": acts.source, "seconds": time.perf_counter() - t0}
