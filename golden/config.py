"""The base of every configuration object: frozen, validated, JSON-describable, stably hashed.

One configuration object per operator (and per primitive) drives the golden model, the RTL
generator, the testbench, the manifest and the sweep.  Subclasses are frozen dataclasses whose
``_validate`` raises ValueError naming the parameter, its value and what is allowed.
"""

from __future__ import annotations

import contextvars
import dataclasses
import enum
import hashlib
import json

from .fixed import check_int

__all__ = ["Config", "OperatorConfig"]

#: while a configuration builds a sub-configuration: (sub-config class, owner kind, parameter names)
_NAMING = contextvars.ContextVar("spikeops_config_naming", default=None)


class Config:
    """Mixin for frozen dataclass configurations."""

    #: short name of the thing configured (``"softmax"``, ``"division"``, ...)
    kind: str = "config"
    #: parameters whose default follows others: ``{name: (drivers, rule)}``; ``None`` given for
    #: ``name`` means ``rule(self)`` (e.g. the exp table's K follows the exp method), and
    #: :meth:`replace` re-derives it when a driver changes and it still holds the old default
    DEPENDENT_DEFAULTS: dict = {}

    def __post_init__(self):
        for name, (_, rule) in self.DEPENDENT_DEFAULTS.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, rule(self))
        self._validate()

    # -- validation helpers -------------------------------------------------------------------
    # Errors name the owner and the owner's parameters: a sub-configuration built by
    # :meth:`sub_config` (an operator's exp table, norm, ...) speaks in its owner's names.
    def _naming(self):
        ctx = _NAMING.get()
        return ctx if ctx is not None and type(self) is ctx[0] else None

    @property
    def _owner(self) -> str:
        ctx = self._naming()
        return self.kind if ctx is None else ctx[1]

    def _label(self, name: str) -> str:
        """``name`` as the user knows it (the owner's parameter name inside a sub-configuration)."""
        ctx = self._naming()
        return name if ctx is None else ctx[2].get(name, name)

    def sub_config(self, cls, names: dict, **params):
        """``cls(**params)`` built for this configuration: its validation errors name this
        configuration's kind and, by ``names`` (sub-config parameter -> this one's), its
        parameters, so a user reads them in the words of the options they set."""
        token = _NAMING.set((cls, self.kind, dict(names)))
        try:
            return cls(**params)
        finally:
            _NAMING.reset(token)

    def _int(self, name: str, lo: int, hi: int | None = None) -> int:
        return check_int(self._owner, self._label(name), getattr(self, name), lo, hi)

    def _choice(self, name: str, allowed):
        """Check a choice: ``allowed`` is a :class:`spikeops.golden.choices.Choice` enum (the field
        then holds its member, which equals the string) or a tuple of allowed values."""
        value = getattr(self, name)
        if isinstance(allowed, type) and issubclass(allowed, enum.Enum):
            member = allowed.parse(value, self._owner, self._label(name))
            object.__setattr__(self, name, member)
            return member
        if value not in allowed:
            raise ValueError(f"{self._owner}: {self._label(name)}={_plain(value)!r} is not allowed; allowed: "
                             + ", ".join(repr(_plain(a)) for a in allowed))
        return value

    def _number(self, name: str, lo: float, hi: float, *, lo_open: bool = False):
        value = getattr(self, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{self._owner}: {self._label(name)} must be a number, not {value!r}")
        if not (value > lo if lo_open else value >= lo) or not value <= hi:
            raise ValueError(f"{self._owner}: {self._label(name)}={value!r} is out of range; allowed: "
                             f"{'(' if lo_open else '['}{lo}, {hi}]")
        return value

    def _fail(self, name: str, message: str):
        raise ValueError(f"{self._owner}: {self._label(name)}={_plain(getattr(self, name))!r} {message}")

    def _validate(self):  # pragma: no cover - overridden
        pass

    # -- description ----------------------------------------------------------------------------
    def params(self) -> dict:
        """The parameters as a plain dict (what ``replace`` and ``from_json`` take)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def derived(self) -> dict:
        """Derived quantities (formats, widths, table sizes) for manifests; subclasses extend."""
        return {}

    def primitives(self) -> dict:
        """The primitive configurations this one is built from, by role (an operator's
        ``{"exp": ExpConfig, "division": DivisionConfig}``, ...); none by default."""
        return {}

    def costs(self) -> dict:
        """What the configuration's tables and populations cost (bits, neurons, widths), flat: a
        primitive answers its own figures (prefixed by its role), an operator the union of its
        primitives'."""
        out = {}
        for sub in self.primitives().values():
            out.update(sub.costs())
        return out

    def to_json(self) -> dict:
        return {"kind": self.kind, "params": self.params(), "derived": self.derived()}

    @classmethod
    def from_json(cls, data: dict):
        params = data["params"] if "params" in data else data
        return cls(**params)

    def replace(self, **changes):
        """A copy with ``changes`` applied (validated again)."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(f"{self.kind}: unknown parameter(s) {sorted(unknown)}; known: "
                             + ", ".join(f.name for f in dataclasses.fields(self)))
        changes = dict(changes)
        for name, (drivers, rule) in self.DEPENDENT_DEFAULTS.items():
            if name not in changes and any(d in changes for d in drivers) and getattr(self, name) == rule(self):
                changes[name] = None  # still the old default: follow the new drivers
        return dataclasses.replace(self, **changes)

    #: parameters added after configurations were first hashed, with the value that gives the
    #: behaviour from before they existed: left out of the hash while they hold it, so that the
    #: hashes of earlier configurations (result caches, plan digests, kept rows) hold
    HASH_OMITS = {"target_mhz": None, "normalizer": "row_max", "norm_units": "shared", "units": "shared"}

    def stable_hash(self) -> str:
        """SHA-256 (16 hex digits) of the canonical JSON of kind and parameters; stable across runs."""
        params = {k: v for k, v in self.params().items()
                  if not (k in self.HASH_OMITS and v == self.HASH_OMITS[k])}
        blob = json.dumps({"kind": self.kind, "params": params}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


class OperatorConfig(Config):
    """Mixin for an operator's configuration: besides the parameters, it has an input and an output
    fixed-point format (``in_format``, ``out_format``: :class:`spikeops.golden.fixed.FixedFormat`),
    a ``rounding`` rule for its output grid, and ``reference(x, ...)``, the exact float64 operator
    it approximates.  Its derived quantities start with the two formats, then its own, then each
    primitive's configuration (:meth:`Config.primitives`)."""

    def derived(self) -> dict:
        return {"in_format": self.in_format.to_json(), "out_format": self.out_format.to_json(),
                **self.own_derived(), **{k: v.to_json() for k, v in self.primitives().items()}}

    def own_derived(self) -> dict:
        """The operator's own derived quantities (widths, constants) for manifests."""
        return {}

    #: the clock the generator pipelines for (``target_mhz``, hardware only: results never depend on
    #: it), bounds in MHz; None keeps each operator's fixed pipeline
    TARGET_MHZ_RANGE = (10.0, 1000.0)

    def _validate_target(self):
        """Check ``target_mhz`` (None or a frequency in :data:`TARGET_MHZ_RANGE`)."""
        if self.target_mhz is not None:
            self._number("target_mhz", *self.TARGET_MHZ_RANGE)

    #: the exact function ``reference`` computes, by name (reports name their yardstick)
    reference_name: str = "?"

    def reference(self, x, **kwargs):  # pragma: no cover - overridden
        """The exact float64 operator on real inputs."""
        raise NotImplementedError

    def other_references(self) -> dict:
        """``{name: function}``: other exact functions the error report measures this configuration
        against, for information (never a target): e.g. the GELU the models compute, whatever form
        is configured."""
        return {}


def _plain(value):
    """A choice as its plain value (a string enum prints as its string)."""
    return value.value if isinstance(value, enum.Enum) else value
