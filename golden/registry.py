"""The operator records: everything a flow needs to know about an operator, in one place.

An :class:`Operator` says what the operator is (its :class:`Shape`: elementwise, masked row or
weighted row), which weights it takes (``gamma``, ``beta``), which configuration parameter sets its
row length, how to run its golden model (:meth:`Operator.run`) and its exact float64 reference
(:meth:`Operator.reference`), and which RTL component builds it (:meth:`Operator.component`, an
``"module:Class"`` path imported on first use, so golden never imports Amaranth).  The flows
(error report, benchmark, emission, testbench, sweep, conversion) ask the record; they never compare
operator names.

Adding an operator is one golden file (its configuration class and golden function), one hdl file
(its component, answering ``latency_for(cfg, n=None)``) and one :func:`register` call.
"""

from __future__ import annotations

import enum
import importlib
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .changes import apply_changes
from .fixed import dequantize, quantize
from .ops.norms import LayerNormConfig, RMSNormConfig, layernorm, rmsnorm
from .ops.sigmoid import GELUConfig, SigmoidConfig, SiLUConfig, gelu, sigmoid, silu
from .ops.softmax import SoftmaxConfig, softmax

__all__ = ["Shape", "Operator", "OPERATORS", "KINDS", "register", "get", "of_config", "at_grid"]

#: the roles an operator plays in a Transformer: the attention normaliser, the MLP activation, a
#: normalisation layer
KINDS = ("softmax", "activation", "norm")


class Shape(str, enum.Enum):
    """How an operator consumes its input (accepts its string value, e.g. ``Shape("elementwise")``)."""

    #: one output per input element, no row structure
    ELEMENTWISE = "elementwise"
    #: rows on the last axis of up to ``d_max`` elements, with a validity mask (Softmax)
    MASKED_ROW = "masked row"
    #: rows of exactly ``d`` elements with per-element weights (the norms)
    WEIGHTED_ROW = "weighted row"

    def __str__(self):
        return self.value

    @property
    def is_row(self) -> bool:
        return self is not Shape.ELEMENTWISE


@dataclass(frozen=True)
class Operator:
    """One operator: its name, configuration class, golden function, shape, weights and RTL.

    ``golden(codes, cfg, mask=..., gamma=..., beta=...)`` is the bit-exact model; the configuration
    class provides ``reference(x, ...)`` (float64, same keywords), ``in_format`` and ``out_format``.
    ``row_param`` names the parameter that bounds a row: ``d`` (rows of exactly d) or ``d_max``
    (rows of 1 .. d_max).  ``rtl`` is ``"module:Class"`` of the component; ``inputs_of`` names the
    operator whose captured activations stand in for this one's (sigmoid takes SiLU's inputs);
    ``kind`` is the role it plays in a Transformer (:data:`KINDS`), by which conversions select
    and ablate operators; ``variants`` are changes to the default configuration that the error
    report covers as well (GELU's other forms).
    """

    name: str
    config: type
    golden: Callable
    shape: Shape
    rtl: str
    weights: tuple = ()
    row_param: str | None = None
    inputs_of: str | None = None
    kind: str = "activation"
    variants: tuple = ()

    def __post_init__(self):
        object.__setattr__(self, "shape", Shape(self.shape))
        if self.kind not in KINDS:
            raise ValueError(f"operator {self.name!r}: kind={self.kind!r} is not allowed; allowed: "
                             + ", ".join(KINDS))
        if self.shape.is_row and self.row_param is None:
            raise ValueError(f"operator {self.name!r}: a {self.shape} operator needs row_param")

    # -- configurations ------------------------------------------------------------------------
    def default(self, **changes):
        """The default configuration with ``changes`` applied (validated)."""
        return self.config(**changes)

    def config_from_json(self, data):
        """The configuration of ``data`` (``{"params": {...}}`` as :meth:`Config.to_json` writes it, or
        the parameters themselves), every key checked: ValueError naming an unknown parameter and the
        known ones, or the value refused."""
        params = data.get("params", data) if isinstance(data, dict) else None
        if not isinstance(params, dict):
            raise ValueError(f"config={data!r} is not allowed; allowed: an object of parameters")
        known = list(self.default().params())
        unknown = [k for k in params if k not in known]
        if unknown:
            raise ValueError(f"{self.name}: unknown parameter(s) {unknown}; known: {', '.join(known)}")
        return self.config.from_json(data)

    def row_length(self, cfg) -> int | None:
        """The longest row ``cfg`` takes (``d`` or ``d_max``); None for elementwise operators."""
        return None if self.row_param is None else getattr(cfg, self.row_param)

    def fixed_row_length(self, cfg) -> int | None:
        """The length every row must have (``d``), or None when rows may be shorter."""
        return getattr(cfg, "d") if self.row_param == "d" else None

    def check_row_length(self, cfg, n: int, source: str = "rows") -> None:
        """Raise ValueError when rows of length ``n`` from ``source`` cannot run at ``cfg``."""
        fixed = self.fixed_row_length(cfg)
        if fixed is not None and n != fixed:
            raise ValueError(f"{cfg.kind}: d={fixed} does not match the {source} of length {n}; "
                             "d must match the model")
        top = self.row_length(cfg)
        if fixed is None and top is not None and n > top:
            raise ValueError(f"{cfg.kind}: {self.row_param}={top} is shorter than the {source} "
                             f"(up to {n} elements); allowed: {self.row_param} >= {n}")

    @property
    def masked(self) -> bool:
        return self.shape is Shape.MASKED_ROW

    @property
    def input_source(self) -> str:
        """The operator whose captured inputs feed this one (itself unless ``inputs_of``)."""
        return self.inputs_of or self.name

    # -- weights -------------------------------------------------------------------------------
    def weight_format(self, cfg, name: str):
        """The fixed-point format of weight ``name`` (``cfg.<name>_format``; beta: the output's)."""
        return getattr(cfg, f"{name}_format", None) or cfg.out_format

    def quantize_weights(self, cfg, real: dict) -> dict:
        """Real weights -> codes in their formats (None entries dropped)."""
        return {k: quantize(v, self.weight_format(cfg, k), name=k) for k, v in real.items()
                if v is not None and k in self.weights}

    def dequantize_weights(self, cfg, codes: dict) -> dict:
        return {k: dequantize(v, self.weight_format(cfg, k)) for k, v in codes.items()
                if v is not None and k in self.weights}

    def _weights(self, weights: dict) -> dict:
        unknown = sorted(k for k, v in weights.items() if v is not None and k not in self.weights)
        if unknown:
            raise ValueError(f"{self.name}: takes no weight(s) {', '.join(unknown)}; allowed: "
                             + (", ".join(self.weights) or "none"))
        return {k: v for k, v in weights.items() if v is not None}

    # -- the models ----------------------------------------------------------------------------
    def run(self, codes, cfg, mask=None, **weights) -> np.ndarray:
        """The golden output codes of ``codes`` (rows on the last axis) at ``cfg``; ``mask`` (bool,
        masked-row operators) marks valid positions; ``weights`` are codes (``gamma=``, ``beta=``)."""
        kw = self._weights(weights)
        if mask is not None and self.masked:
            kw["mask"] = mask
        return self.golden(codes, cfg, **kw)

    def reference(self, values, cfg, mask=None, **weights) -> np.ndarray:
        """The exact float64 operator on real ``values`` (weights in real units)."""
        kw = self._weights(weights)
        if mask is not None and self.masked:
            kw["mask"] = mask
        return cfg.reference(values, **kw)

    def valid(self, values, mask=None) -> np.ndarray:
        """Where outputs count (masked-row: valid and finite positions; else everywhere)."""
        values = np.asarray(values)
        if not self.masked:
            return np.ones(values.shape, dtype=bool)
        v = ~np.isneginf(values)
        return v if mask is None else v & np.broadcast_to(np.asarray(mask, dtype=bool), values.shape)

    # -- RTL -----------------------------------------------------------------------------------
    def component(self):
        """The RTL component class (imported now: needs Amaranth)."""
        module, _, cls = self.rtl.partition(":")
        return getattr(importlib.import_module(module), cls)


OPERATORS: dict[str, Operator] = {}


def register(op: Operator) -> Operator:
    """Add ``op`` to the table (its name must be new); return it."""
    if op.name in OPERATORS:
        raise ValueError(f"operator {op.name!r} is registered already")
    OPERATORS[op.name] = op
    return op


#: the error report also covers the range-reduced PWL-Exp where the exp method matters most
_RANGE_EXP = {"exp_method": "range"}

for _op in (
    Operator("softmax", SoftmaxConfig, softmax, Shape.MASKED_ROW, "spikeops.hdl.ops.softmax:Softmax",
             row_param="d_max", kind="softmax", variants=(_RANGE_EXP, {**_RANGE_EXP, "normalizer": "online"})),
    Operator("sigmoid", SigmoidConfig, sigmoid, Shape.ELEMENTWISE, "spikeops.hdl.ops.sigmoid:Sigmoid",
             inputs_of="silu", variants=(_RANGE_EXP,)),
    Operator("silu", SiLUConfig, silu, Shape.ELEMENTWISE, "spikeops.hdl.ops.sigmoid:SiLU", variants=(_RANGE_EXP,)),
    Operator("gelu", GELUConfig, gelu, Shape.ELEMENTWISE, "spikeops.hdl.ops.sigmoid:GELU",
             variants=({"form": "tanh"}, {"form": "sigmoid"})),
    Operator("rmsnorm", RMSNormConfig, rmsnorm, Shape.WEIGHTED_ROW, "spikeops.hdl.ops.norms:RMSNorm",
             weights=("gamma",), row_param="d", kind="norm"),
    Operator("layernorm", LayerNormConfig, layernorm, Shape.WEIGHTED_ROW,
             "spikeops.hdl.ops.norms:LayerNorm", weights=("gamma", "beta"), row_param="d", kind="norm"),
):
    register(_op)


def get(name) -> Operator:
    """The record of operator ``name`` (a record passes through)."""
    if isinstance(name, Operator):
        return name
    try:
        return OPERATORS[name]
    except (KeyError, TypeError):
        raise ValueError(f"operator {name!r} is unknown; allowed: {', '.join(OPERATORS)}") from None


def of_config(cfg) -> Operator:
    """The record whose configuration class ``cfg`` is an instance of."""
    for op in OPERATORS.values():
        if type(cfg) is op.config:
            return op
    raise ValueError(f"no operator takes a {type(cfg).__name__}; allowed: "
                     + ", ".join(op.config.__name__ for op in OPERATORS.values()))


def at_grid(cfg, out_frac: int):
    """``cfg`` with its output on a ``2**-out_frac`` grid, keeping the output's integer bits
    (:func:`spikeops.golden.changes.apply_changes`)."""
    return apply_changes(cfg, {"out_frac": out_frac})
