"""The numpy back end: the definition every fast path equals, and the hand-back to it.

``numpy_golden(op, cfg, x, *args, **kwargs) = dequantize(golden(quantize(x, cfg.in_format)),
cfg.out_format)`` in ``x``'s dtype and device, with golden's own numpy code
(:func:`spikeops.golden.fixed.quantize`, the operator record's golden function,
:func:`spikeops.golden.fixed.dequantize`).  It is the one numpy back end: ``run_golden``
(:mod:`spikeops.gen.llm.operators`) computes with it when the back end is ``numpy``, and the fast
paths hand every input they do not cover to it by raising :class:`Fallback`, so errors are golden's.
"""

from __future__ import annotations

import numpy as np
import torch

from spikeops.golden import registry
from spikeops.golden.fixed import dequantize, quantize

__all__ = ["Fallback", "numpy_golden", "as_input", "FLOAT_TYPES"]

#: the tensor dtypes the fast paths take (anything else goes to ``numpy_golden``)
FLOAT_TYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


class Fallback(Exception):
    """Raised inside a fast path: hand the call to ``numpy_golden`` (which raises golden's errors)."""


def numpy_golden(op: str, cfg, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    """The definition: ``dequantize(golden(quantize(x)))`` in numpy, as ``x``'s dtype and device
    (the numpy back end; ``mask`` may be a torch tensor).  ``args``/``kwargs`` go to the operator's
    golden function as given (weights as codes, ``mask=`` for a masked-row operator)."""
    if isinstance(kwargs.get("mask"), torch.Tensor):
        kwargs = dict(kwargs, mask=kwargs["mask"].cpu().numpy())
    codes = quantize(x.detach().to(torch.float64).cpu().numpy(), cfg.in_format)
    y = registry.get(op).golden(codes, cfg, *args, **kwargs)
    return torch.from_numpy(dequantize(y, cfg.out_format)).to(dtype=x.dtype, device=x.device)


def as_input(values) -> torch.Tensor:
    """A float numpy array (or anything ``np.asarray`` takes) as a CPU tensor for the back ends,
    sharing memory when it can (callers outside ``gen/llm`` never import torch themselves)."""
    return torch.from_numpy(np.ascontiguousarray(values))
