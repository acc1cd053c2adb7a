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
    """The component of operator ``name`` for ``config`` (norms take ``gamma=``/``beta=`` codes).

    Everything is checked before the component exists, so a bad argument leaves no half-built
    (and never elaborated) component behind."""
    cls = component_class(name)
    cls.Signature.check_parameters(config)
    if hasattr(cls, "check_weights"):
        cls.check_weights(config, **weights)
    elif weights:
        raise ValueError(f"{name}: takes no weights; got {', '.join(sorted(weights))}")
    return cls(config, **weights)
