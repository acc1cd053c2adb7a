"""``fast_golden``: the fast path an operator's record calls for, or the numpy back end.

The operator record (:mod:`spikeops.golden.registry`) decides, never the operator's name: its
``shape`` says how the call's arguments bind (as :meth:`Operator.run` binds them) and which path
realises it, and the configuration class says whether that path knows the algorithm:

* elementwise (sigmoid, SiLU, GELU): no arguments besides ``x``; the table path (:mod:`.elementwise`);
* masked row with a :class:`SoftmaxConfig`: ``mask`` (keyword or the one positional argument);
  the Softmax path (:mod:`.softmax`);
* weighted row with a :class:`NormOpConfig` (RMSNorm, LayerNorm): the record's ``weights``
  (``gamma``, ``beta``) positionally in that order or by keyword; the norm path (:mod:`.norm`).

Any other call (an unknown operator, a configuration of another class, other arguments, a tensor
that is not float16/bf16/float32/float64, an empty one) and every input a path does not cover
(it raises :class:`~.reference.Fallback`) is :func:`~.reference.numpy_golden` itself.
"""

from __future__ import annotations

import torch

from spikeops.golden import registry
from spikeops.golden.ops.norms import NormOpConfig
from spikeops.golden.ops.softmax import SoftmaxConfig

from .elementwise import elementwise
from .norm import norm
from .reference import FLOAT_TYPES, Fallback, numpy_golden
from .softmax import softmax

__all__ = ["fast_golden"]


def _bind(rec, cfg, args, kwargs):
    """The fast path of record ``rec`` at ``cfg`` with the call's arguments bound (a function of
    the CPU tensor ``x``), or None when there is none."""
    if rec.config is not type(cfg):
        return None
    if rec.shape is registry.Shape.ELEMENTWISE:
        return None if args or kwargs else (lambda x: elementwise(rec, cfg, x))
    if rec.masked:
        if not isinstance(cfg, SoftmaxConfig) or len(args) + len(kwargs) > 1 or set(kwargs) - {"mask"}:
            return None
        mask = kwargs["mask"] if "mask" in kwargs else (args[0] if args else None)
        return lambda x: softmax(cfg, x, mask)
    if not isinstance(cfg, NormOpConfig) or len(args) > len(rec.weights):
        return None
    weights = dict(zip(rec.weights, args))
    if set(weights) & set(kwargs) or set(kwargs) - set(rec.weights):
        return None
    weights.update(kwargs)
    return lambda x: norm(cfg, x, **weights)


def fast_golden(op: str, cfg, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    """``numpy_golden(op, cfg, x, *args, **kwargs)`` (the numpy back end), bit for bit.

    ``op``: an operator name (or record): sigmoid, silu, gelu, softmax (``mask=``: bool tensor or
    array broadcastable to ``x``, True = valid), rmsnorm (``gamma`` codes) or layernorm (``gamma``,
    ``beta`` codes).  Anything else, and every input the fast paths do not cover, is
    ``numpy_golden`` itself (so errors are golden's)."""
    try:
        rec = registry.get(op)
    except ValueError:  # unknown: numpy_golden raises the registry's error
        rec = None
    path = None if rec is None else _bind(rec, cfg, args, kwargs)
    if path is None or x.dtype not in FLOAT_TYPES or x.numel() == 0:
        return numpy_golden(op, cfg, x, *args, **kwargs)
    try:
        with torch.no_grad():
            y = path(x.detach().cpu())
    except Fallback:
        return numpy_golden(op, cfg, x, *args, **kwargs)
    return y.to(x.device)
