"""Operator name -> RTL component class (the golden registry's twin)."""

from __future__ import annotations

from golden import registry as golden_registry

from .ops.norms import LayerNorm, RMSNorm
from .ops.sigmoid import GELU, Sigmoid, SiLU
from .ops.softmax import Softmax

__all__ = ["COMPONENTS", "component_class", "build"]

COMPONENTS = {"softmax": Softmax, "sigmoid": Sigmoid, "silu": SiLU, "gelu": GELU,
              "rmsnorm": RMSNorm, "layernorm": LayerNorm}


def component_class(name: str):
    golden_registry.get(name)  # the same error for an unknown name
    return COMPONENTS[name]


def build(name: str, config, **weights):
    """The component of operator ``name`` for ``config`` (norms take ``gamma=``/``beta=`` codes)."""
    return component_class(name)(config, **weights)
