"""Sweep grids: which configurations of which operators a sweep visits.

A sweep is a list of entries, one operator each::

    {"op": "softmax", "base": {"d_max": 512}, "grid": {"out_frac": [8, 12, 16], "K": [64, 256]},
     "points": [{"H": 5, "K": 64}]}

``base`` changes the operator's default configuration for every point of the entry; ``grid`` axes
are crossed (in the order given, the last axis fastest); ``points`` are explicit change sets added
after the crossing.  The base configuration itself is always the entry's first point (the
"default" point, marked in the report).  An operator may appear in several entries (one grid each,
e.g. one axis at a time); points equal to an earlier one are dropped.

Files are JSON or TOML (by extension): either a list of entries or ``{"ops": [entries]}``::

    [[ops]]
    op = "silu"
    grid = {out_frac = [8, 12, 16], K = [64, 256]}

On the command line: ``--op softmax --grid out_frac=8,12,16 --grid K=64,256 --point H=5,K=64
--set d_max=512``; each value is read as JSON (numbers, true/false) or else kept as a string.

``out_frac`` without ``out_width`` keeps the output's integer bits (``spikeops.golden.changes.apply_changes``),
so an output-grid axis moves the LSB, not the range; give ``out_width`` too to set both.

Keys ``steps.<name>`` set the time-stepped wrapper's parameters (:class:`spikeops.golden.steps.StepConfig`:
``steps.steps``, ``steps.inc_width``, ``steps.encoding``, ...): a point with any of them is the operator
on spike increments, and its hardware stages synthesise and place the wrapper
(``--grid steps.steps=4,16 --grid steps.encoding=difference,spikes``); its error stage is the
operator's own (the wrapper's outputs sum to the operator on the final totals).
"""

from __future__ import annotations

import itertools
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from spikeops.golden import registry
from spikeops.golden.changes import apply_changes

__all__ = ["Point", "Entry", "parse_values", "parse_grid_args", "parse_point_arg", "load_spec", "entries_from_args",
           "entries_from_data", "expand", "make_config"]

ENTRY_KEYS = ("op", "base", "grid", "points")


@dataclass(frozen=True)
class Entry:
    """One operator's grid: base changes, crossed axes, explicit change sets."""

    op: str
    base: dict = field(default_factory=dict)
    grid: dict = field(default_factory=dict)
    points: tuple = ()


@dataclass
class Point:
    """One configuration of a sweep.  ``changes`` are relative to the registry default (base
    included); ``cfg`` is None and ``invalid`` holds the message when they do not validate."""

    op: str
    id: str
    changes: dict
    is_default: bool
    cfg: object = None
    invalid: str | None = None
    #: the time-stepped wrapper's parameters (``steps.*`` keys, prefix dropped), or None
    steps: dict | None = None

    @property
    def hash(self) -> str | None:
        return self.hardware_config.stable_hash() if self.cfg is not None else None

    @property
    def hardware_config(self):
        """What the hardware stages build: the operator, or its wrapper for a point with ``steps``."""
        return step_config(self.op, self.cfg, self.steps)


def parse_values(raw: str) -> object:
    """One command-line value: JSON (numbers, true/false, null) or else the plain string."""
    raw = raw.strip()
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _split_pair(text: str, option: str) -> tuple[str, str]:
    if "=" not in text:
        raise ValueError(f"{option} {text!r}: expected KEY=VALUE[,VALUE...]")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ValueError(f"{option} {text!r}: the parameter name is empty")
    return key, raw


def parse_grid_args(args) -> dict:
    """``["out_frac=8,12,16", "K=64,256"]`` -> ``{"out_frac": [8, 12, 16], "K": [64, 256]}``."""
    grid = {}
    for text in args or ():
        key, raw = _split_pair(text, "--grid")
        items = [s for s in raw.split(",")]
        if any(not s.strip() for s in items):
            raise ValueError(f"--grid {text!r}: empty value in the list; expected KEY=V1,V2,...")
        if key in grid:
            raise ValueError(f"--grid {key!r} is given twice; give each axis once")
        grid[key] = [parse_values(s) for s in items]
    return grid


def parse_point_arg(text: str) -> dict:
    """``"H=5,K=64"`` -> ``{"H": 5, "K": 64}`` (one explicit point)."""
    point = {}
    for part in text.split(","):
        key, raw = _split_pair(part, "--point")
        if key in point:
            raise ValueError(f"--point {text!r}: {key!r} is given twice")
        point[key] = parse_values(raw)
    return point


def load_spec(path) -> list[Entry]:
    """Entries of a JSON or TOML sweep file (see the module docstring)."""
    path = Path(path)
    allowed = "allowed: a .json or .toml grid file (see spikeops.gen.sweep.grid)"
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise ValueError(f"sweep: --spec {str(path)!r}: the grid file {what}; {allowed}")
    if path.suffix.lower() not in (".toml", ".json"):
        raise ValueError(f"sweep: grid file {path.name!r}: extension {path.suffix!r} is not "
                         "allowed; allowed: .json, .toml")
    try:
        text = path.read_text()
    except UnicodeDecodeError as err:
        raise ValueError(f"sweep: grid file {path.name!r} is not UTF-8 text ({err}); {allowed}") from None
    try:
        data = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as err:
        raise ValueError(f"sweep: grid file {path.name!r} does not parse: {err}") from None
    return entries_from_data(data, source=path.name)


def entries_from_args(spec=None, op=None, grid_args=(), point_args=(), set_args=()) -> list[Entry]:
    """The entries of the command line: a ``--spec`` file, or ``--op`` with ``--grid``, ``--point``
    and ``--set`` (not both)."""
    if spec:
        if op or grid_args or point_args or set_args:
            raise ValueError("sweep: give either --spec FILE or --op with --grid/--point/--set, not both")
        return load_spec(spec)
    if not op:
        raise ValueError("sweep: nothing to sweep; give --op OP (with --grid KEY=V1,V2 ...) or --spec FILE")
    from spikeops.golden.changes import parse_sets
    return [make_entry(op, base=parse_sets(set_args), grid=parse_grid_args(grid_args),
                       points=[parse_point_arg(p) for p in point_args])]


def entries_from_data(data, source: str = "grid") -> list[Entry]:
    """Validate the parsed file contents (a list of entries or ``{"ops": [...]}``) into entries."""
    if isinstance(data, dict):
        extra = set(data) - {"ops"}
        if extra or "ops" not in data:
            raise ValueError(f"sweep: {source}: expected a list of entries or a table with the one "
                             f"key 'ops'; found keys {sorted(data)}")
        data = data["ops"]
    if not isinstance(data, list) or not data:
        raise ValueError(f"sweep: {source}: expected a non-empty list of entries, not {type(data).__name__}")
    out = []
    for j, e in enumerate(data):
        where = f"{source}: entry {j}"
        if not isinstance(e, dict) or "op" not in e:
            raise ValueError(f"sweep: {where}: expected a table with 'op' (and optionally 'base', "
                             "'grid', 'points')")
        unknown = set(e) - set(ENTRY_KEYS)
        if unknown:
            raise ValueError(f"sweep: {where}: unknown key(s) {sorted(unknown)}; allowed: {', '.join(ENTRY_KEYS)}")
        grid = e.get("grid", {})
        if not isinstance(grid, dict):
            raise ValueError(f"sweep: {where}: 'grid' must map parameter names to lists of values")
        grid = {k: (list(v) if isinstance(v, list) else [v]) for k, v in grid.items()}
        for k, v in grid.items():
            if not v:
                raise ValueError(f"sweep: {where}: grid axis {k!r} has no values")
        points = e.get("points", [])
        if not isinstance(points, list) or not all(isinstance(p, dict) for p in points):
            raise ValueError(f"sweep: {where}: 'points' must be a list of tables of parameter changes")
        base = e.get("base", {})
        if not isinstance(base, dict):
            raise ValueError(f"sweep: {where}: 'base' must be a table of parameter changes")
        out.append(make_entry(e["op"], base=base, grid=grid, points=points, where=where))
    return out


def make_entry(op, *, base=None, grid=None, points=(), where: str = "command line") -> Entry:
    """An entry after checking the operator, every parameter name and the base configuration (the
    grid's and the points' values are checked per point: an invalid one is a failed row)."""
    try:
        operator = registry.get(op)
    except ValueError as err:
        raise ValueError(f"sweep: {where}: {err}") from None
    known = list(operator.default().params()) + [STEP_PREFIX + k for k in _step_keys()]
    for label, names in (("base", base or {}), ("grid", grid or {}),
                         *((f"points[{j}]", p) for j, p in enumerate(points))):
        bad = [k for k in names if k not in known]
        if bad:
            raise ValueError(f"sweep: {where}: {op} has no parameter {bad[0]!r} (in {label}); "
                             f"known: {', '.join(known)}")
    try:  # the base is every point's start and the default point itself: it must be valid
        make_config(op, base or {})
    except (ValueError, TypeError) as err:
        label = "--set" if where == "command line" else "base"
        raise ValueError(f"sweep: {where}: {label}: {err}") from None
    return Entry(op, dict(base or {}), dict(grid or {}), tuple(dict(p) for p in points))


STEP_PREFIX = "steps."


def _step_keys() -> list[str]:
    from spikeops.golden.steps import StepConfig
    return [k for k in StepConfig.__dataclass_fields__ if k not in ("op", "inner")]


def split_steps(changes: dict) -> tuple[dict, dict | None]:
    """``changes`` as (the operator's, the wrapper's without the ``steps.`` prefix or None)."""
    steps = {k[len(STEP_PREFIX):]: v for k, v in changes.items() if k.startswith(STEP_PREFIX)}
    return {k: v for k, v in changes.items() if not k.startswith(STEP_PREFIX)}, (steps or None)


def step_config(op: str, cfg, steps: dict | None):
    """``cfg`` itself, or the :class:`spikeops.golden.steps.StepConfig` of ``steps`` around it."""
    if steps is None:
        return cfg
    from spikeops.golden.steps import StepConfig
    return StepConfig(op=registry.get(op).name, inner=cfg, **steps)


def make_config(op: str, changes: dict):
    """The registry default of ``op`` with ``changes`` (validated; ValueError names the parameter),
    by the one rule of :func:`spikeops.golden.changes.apply_changes` (``out_frac`` without
    ``out_width`` keeps the output's integer bits); ``steps.*`` keys are checked on the wrapper
    and left out (:func:`split_steps`)."""
    own, steps = split_steps(changes)
    cfg = apply_changes(registry.get(op).default(), own)
    step_config(op, cfg, steps)
    return cfg


def _canonical(changes: dict) -> str:
    return json.dumps(changes, sort_keys=True, default=repr)


def expand(entries) -> list[Point]:
    """Every point of ``entries`` in order, numbered per operator (``softmax-00`` is the first
    entry's base); duplicates (equal configurations, or equal change sets when invalid) dropped."""
    points, seen, count = [], set(), {}
    for e in entries:
        axes = list(e.grid.items())
        combos = [dict(zip([k for k, _ in axes], vals)) for vals in itertools.product(*[v for _, v in axes])]
        for j, change in enumerate([{}] + combos + list(e.points)):
            changes = {**e.base, **change}
            steps = split_steps(changes)[1]
            try:
                cfg, invalid = make_config(e.op, changes), None
                ident = (e.op, step_config(e.op, cfg, steps).stable_hash())
            except (ValueError, TypeError) as err:
                cfg, invalid = None, str(err)
                ident = (e.op, _canonical(changes))
            if ident in seen:
                continue
            seen.add(ident)
            n = count.get(e.op, 0)
            count[e.op] = n + 1
            points.append(Point(e.op, f"{e.op}-{n:02d}", changes, is_default=(j == 0), cfg=cfg,
                                invalid=invalid, steps=steps))
    return points
