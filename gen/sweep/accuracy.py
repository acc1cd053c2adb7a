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
from spikeops.golden.changes import fit_in_frac
from spikeops.golden.fixed import dequantize, quantize
from spikeops.golden.metrics import ErrorStats

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
        if registry.get(self.op).shape.is_row:
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
    from spikeops.golden.capture import load as load_capture
    return load_capture(path)


def load(source: Source, op: str, cfg=None) -> Activations:
    """The activations of ``op`` from ``source`` (cached per process); the synthetic stand-in is
    made at ``cfg``'s row length when the operator's rows have a fixed one (a norm's ``d``: a sweep
    over ``d`` needs no model of that width), else at the default configuration.

    Captured instances may have different (calibrated) input formats, so each is dequantised in
    its own format (one group per instance; ``rows`` draws rows without replacement over all the
    instances' rows in forward order); masked rows lose the columns past every selected row's last
    valid position (:meth:`spikeops.golden.capture.Captured.block`), elementwise rows are flattened."""
    if source.path is None:
        rec = registry.get(op)
        d = None if cfg is None else rec.fixed_row_length(cfg)
        return _synthetic(op, None if d == rec.fixed_row_length(rec.default()) else d)
    return _captured(source, op)


@functools.lru_cache(maxsize=8)
def _captured(source: Source, op: str) -> Activations:
    rec = registry.get(op)
    cap = _capture(source.path, source.sha256)
    try:
        items = cap.instances_of(op)
    except ValueError:
        raise ValueError(f"sweep: the capture has no {op} instance; captured: {', '.join(cap.ops())}") from None
    sizes = [len(c.x) for c in items]
    picked = np.arange(sum(sizes))
    if source.rows is not None and source.rows < len(picked):
        picked = np.sort(np.random.default_rng(source.seed).choice(len(picked), size=source.rows, replace=False))
    starts = np.cumsum([0] + sizes)
    groups = []
    for j, c in enumerate(items):
        rows = picked[(picked >= starts[j]) & (picked < starts[j + 1])] - starts[j]
        if not rows.size:
            continue
        x, mask = c.block(rows, values=True)
        if not rec.shape.is_row:
            x = x.ravel()
        w = c.weight_values()
        groups.append(Group(x, mask, w.get("gamma"), w.get("beta"), c.cfg))
    return Activations(op, groups, source.label)


@functools.lru_cache(maxsize=8)
def _synthetic(op: str, d: int | None = None) -> Activations:
    """``verif.stimulus.make(op, default, "activations")`` in real units (masked rows padded), with
    rows of ``d`` elements when given (operators whose rows have a fixed length)."""
    from spikeops.verif.stimulus import make
    rec = registry.get(op)
    cfg = rec.default() if d is None else rec.default(**{rec.row_param: d})
    stim = make(op, cfg, "activations", size=SYNTHETIC_SIZE, seed=0)
    fmt = cfg.in_format
    if not rec.shape.is_row:
        return Activations(op, [Group(dequantize(np.concatenate(stim.rows), fmt))], "synthetic")
    d = max(len(r) for r in stim.rows)
    x = np.full((len(stim.rows), d), -np.inf)
    mask = np.zeros((len(stim.rows), d), dtype=bool)
    for j, r in enumerate(stim.rows):
        x[j, :len(r)] = dequantize(r, fmt)
        mask[j, :len(r)] = True if stim.masks is None else stim.masks[j]
    w = rec.dequantize_weights(cfg, stim.weights)
    return Activations(op, [Group(x, mask if rec.masked else None, w.get("gamma"), w.get("beta"))], "synthetic")


def check_point(acts: Activations, cfg) -> None:
    """Raise ValueError when ``cfg`` cannot run on these activations (row length vs d / d_max)."""
    registry.get(acts.op).check_row_length(cfg, acts.d, f"{acts.source} rows")


def _run(op: str, cfg, g: Group):
    """(golden output codes, exact float64, valid elements) of one group."""
    rec = registry.get(op)
    if g.beta is not None and g.gamma is None:
        raise ValueError(f"{op}: the activations carry beta without gamma")
    real = {k: v for k, v in (("gamma", g.gamma), ("beta", g.beta)) if v is not None}
    ours = rec.run(quantize(g.x, cfg.in_format), cfg, mask=g.mask, **rec.quantize_weights(cfg, real))
    return ours, rec.reference(g.x, cfg, mask=g.mask, **real), rec.valid(g.x, g.mask)


def calibrated_config(cfg, captured):
    """``cfg`` at a captured instance's calibrated scales: the instance's integer bits of its input
    (and gamma) format kept at ``cfg``'s widths, the norms' output keeping at least the instance's
    integer bits (``out_frac`` never above ``cfg``'s); where the configuration refuses the input
    scale (Softmax: the exp argument must hold H), the next smaller ``in_frac`` it accepts, as the
    calibration does (``spikeops.gen.llm.calibrate``)."""
    def frac(width, fmt):
        return max(0, min(width - 1, fmt.frac + width - fmt.width))

    changes = {}
    params = cfg.params()
    for w in registry.of_config(cfg).weights:  # weights with a format of their own (gamma)
        if f"{w}_frac" in params:
            changes[f"{w}_frac"] = frac(params[f"{w}_width"], getattr(captured, f"{w}_format"))
    if "out_width" in params:
        changes["out_frac"] = min(cfg.out_frac, frac(cfg.out_width, captured.out_format))
    try:
        return fit_in_frac(cfg, frac(cfg.in_width, captured.in_format), **changes)
    except ValueError as err:
        raise ValueError(f"{cfg.kind}: no in_frac fits the captured scale "
                         f"{captured.in_format.describe()}: {err}") from None


def errors(acts: Activations, cfg, scales: str = "point") -> dict:
    """The error figures of ``cfg`` on ``acts`` (see the module docstring;
    :class:`spikeops.golden.metrics.ErrorStats`); with ``scales="calibrated"`` each captured
    instance runs at :func:`calibrated_config` of ``cfg``."""
    t0 = time.perf_counter()
    check_point(acts, cfg)
    stats = ErrorStats()
    for g in acts.groups:
        gcfg = calibrated_config(cfg, g.captured) if scales == "calibrated" and g.captured is not None else cfg
        ours, exact, valid = _run(acts.op, gcfg, g)
        stats.add(ours, exact, gcfg.out_format, valid)
    if stats.elements == 0:
        raise ValueError(f"{acts.op}: the {acts.source} rows have no valid element")
    return stats.as_dict() | {"activations": acts.source, "seconds": time.perf_counter() - t0}
