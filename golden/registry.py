"""The operator table: name -> configuration class, golden function and kind.

Every flow (error report, benchmark, RTL generator, testbench, sweep) looks operators up here, so an
operator is added in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


from .ops.norms import LayerNormConfig, RMSNormConfig, layernorm, rmsnorm
from .ops.sigmoid import GELUConfig, SigmoidConfig, SiLUConfig, gelu, sigmoid, silu
from .ops.softmax import SoftmaxConfig, softmax

__all__ = ["Operator", "OPERATORS", "get", "at_grid"]


@dataclass(frozen=True)
class Operator:
    name: str
    config: type
    golden: Callable
    #: "elementwise" (one output per input element) or "row" (rows on the last axis)
    shape: str

    def default(self, **changes):
        return self.config(**changes)


OPERATORS = {op.name: op for op in (
    Operator("softmax", SoftmaxConfig, softmax, "row"),
    Operator("sigmoid", SigmoidConfig, sigmoid, "elementwise"),
    Operator("silu", SiLUConfig, silu, "elementwise"),
    Operator("gelu", GELUConfig, gelu, "elementwise"),
    Operator("rmsnorm", RMSNormConfig, rmsnorm, "row"),
    Operator("layernorm", LayerNormConfig, layernorm, "row"),
)}


def get(name: str) -> Operator:
    try:
        return OPERATORS[name]
    except KeyError:
        raise ValueError(f"operator {name!r} is unknown; allowed: {', '.join(OPERATORS)}") from None


def at_grid(cfg, out_frac: int):
    """``cfg`` with its output on a ``2**-out_frac`` grid, keeping the output's integer bits."""
    if "out_width" in cfg.params():
        return cfg.replace(out_frac=out_frac, out_width=cfg.out_width - cfg.out_frac + out_frac)
    return cfg.replace(out_frac=out_frac)
