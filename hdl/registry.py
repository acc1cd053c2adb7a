"""Building an operator's RTL component from its record (``golden.registry``): no second table.

``build(op, cfg, **weights)`` checks everything before the component exists, so a bad argument
leaves no half-built (and never elaborated) component behind.
"""

from __future__ import annotations

from spikeops.golden import registry as golden_registry

__all__ = ["component_class", "build"]


def component_class(op):
    """The component class of operator ``op`` (a name or a record)."""
    return golden_registry.get(op).component()


def build(op, config, **weights):
    """The component of operator ``op`` for ``config`` (weighted rows take ``gamma=``/``beta=`` codes)."""
    rec = golden_registry.get(op)
    cls = rec.component()
    cls.Signature.check_parameters(config)
    weights = {k: v for k, v in weights.items() if v is not None}
    if hasattr(cls, "check_weights"):
        cls.check_weights(config, **weights)
    elif weights:
        raise ValueError(f"{rec.name}: takes no weights; got {', '.join(sorted(weights))}")
    return cls(config, **weights)
