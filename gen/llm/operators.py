"""The golden spiking operators as drop-in torch pieces: float in, float out, integer inside.

Each call quantises the float input to the operator's input format, runs the bit-exact golden
operator and dequantises the output, so a converted model computes exactly what the RTL computes.
Two back ends (:class:`Backend`) compute the same integers: ``numpy`` (the golden model itself,
:func:`spikeops.gen.llm.fast.numpy_golden`) and ``fast`` (:func:`spikeops.gen.llm.fast.fast_golden`,
proven bit-identical to it by tests); ``fast`` is the default (``$SPIKEOPS_BACKEND`` or
:func:`set_backend` choose).  While a :class:`spikeops.gen.llm.capture.Recorder` is active
(:func:`recording`), every call also offers its input codes to it.
"""

from __future__ import annotations

import contextlib
import contextvars
import os

import numpy as np
import torch
from torch import nn

from spikeops.golden import registry
from spikeops.golden.fixed import quantize

from .defaults import BACKENDS, Backend
from .fast import fast_golden, numpy_golden

__all__ = ["run_golden", "SpikingRMSNorm", "SpikingLayerNorm", "SpikingActivation", "spiking_attention",
           "fit_gamma", "recording", "Backend", "BACKENDS", "set_backend", "get_backend"]


_recorder = contextvars.ContextVar("spikeops_recorder", default=None)
#: the chosen back end: a Backend once set, $SPIKEOPS_BACKEND (a string) until then
_backend = [os.environ.get("SPIKEOPS_BACKEND", Backend.FAST)]


def set_backend(name):
    """Choose how the golden integers are computed inside models: ``fast`` or ``numpy`` (a
    :class:`Backend` or its string)."""
    _backend[0] = Backend.parse(name, "set_backend", "backend")


def get_backend() -> Backend:
    """The back end in use: ``fast`` when chosen, else ``numpy`` (a :class:`Backend`, equal to its string)."""
    return Backend.FAST if _backend[0] == Backend.FAST else Backend.NUMPY


@contextlib.contextmanager
def recording(recorder):
    """Offer every spiking operator's input codes to ``recorder`` inside the ``with`` block."""
    token = _recorder.set(recorder)
    try:
        yield recorder
    finally:
        _recorder.reset(token)


def run_golden(op: str, cfg, x: torch.Tensor, *args, site=None, mask=None) -> torch.Tensor:
    """``dequantize(golden(quantize(x)))`` with ``x``'s dtype and device.

    ``mask`` (Softmax only): bool tensor broadcastable to ``x``, True at valid positions.
    ``site``: ``(name, layer)`` of the calling instance, for the recorder.
    """
    rec = _recorder.get()
    if rec is not None and site is not None:
        codes = quantize(x.detach().to(torch.float64).cpu().numpy(), cfg.in_format)
        m = None if mask is None else np.broadcast_to(mask.cpu().numpy(), codes.shape)
        if m is not None:
            codes = np.where(m, codes, cfg.in_format.mask_code)
        w = dict(zip(registry.get(op).weights, args))
        rec.record(site[0], op, site[1], cfg, codes, mask=m, **w)
    kwargs = {} if mask is None else {"mask": mask}
    run = fast_golden if get_backend() is Backend.FAST else numpy_golden
    return run(op, cfg, x, *args, **kwargs)


def fit_gamma(cfg, weight) -> object:
    """``cfg`` with the most gamma fraction bits that still hold ``max |weight|``: the largest
    ``gamma_frac <= gamma_width - 1`` with ``round(max |w| * 2**gamma_frac)`` in the format (a
    deterministic rule; the conversion plan records the result)."""
    top = float(np.max(np.abs(np.asarray(weight, dtype=np.float64)))) if np.size(weight) else 0.0
    frac = cfg.gamma_width - 1
    while frac > 0 and round(top * 2 ** frac) > (1 << (cfg.gamma_width - 1)) - 1:
        frac -= 1
    return cfg.replace(gamma_frac=frac)


class _SpikingModule(nn.Module):
    """Common part: the operator, its configuration and the site it replaces."""

    op = ""

    def __init__(self, cfg, name: str = "", layer: int = 0):
        super().__init__()
        self.cfg, self.site = cfg, (name, layer)

    def extra_repr(self) -> str:
        return f"{self.op} {self.cfg.in_format.describe()} -> {self.cfg.out_format.describe()}"


class SpikingRMSNorm(_SpikingModule):
    """RMSNorm by PolarNorm and the Division Neuron Group; ``weight`` quantised to the gamma format
    (``cfg.gamma_frac`` is fitted to the weight unless ``fit=False``)."""

    op = "rmsnorm"

    def __init__(self, cfg, weight: torch.Tensor, name: str = "", layer: int = 0, fit: bool = True):
        w = weight.detach().cpu().to(torch.float64).numpy()
        super().__init__(fit_gamma(cfg, w) if fit else cfg, name, layer)
        self.register_buffer("weight", weight.detach().clone())
        self.gamma_codes = self.cfg.quantize_gamma(w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return run_golden(self.op, self.cfg, x, self.gamma_codes, site=self.site)


class SpikingLayerNorm(_SpikingModule):
    """LayerNorm (exact centring) by PolarNorm and the Division Neuron Group; gamma in the gamma
    format, beta in the output format."""

    op = "layernorm"

    def __init__(self, cfg, weight: torch.Tensor, bias: torch.Tensor | None, name: str = "", layer: int = 0,
                 fit: bool = True):
        w = weight.detach().cpu().to(torch.float64).numpy()
        super().__init__(fit_gamma(cfg, w) if fit else cfg, name, layer)
        self.register_buffer("weight", weight.detach().clone())
        self.gamma_codes = self.cfg.quantize_gamma(w)
        b = np.zeros_like(w) if bias is None else bias.detach().cpu().to(torch.float64).numpy()
        self.beta_codes = self.cfg.quantize_beta(b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return run_golden(self.op, self.cfg, x, self.gamma_codes, self.beta_codes, site=self.site)


class SpikingActivation(_SpikingModule):
    """SiLU or GELU (sigmoid form) by PWL-Exp and the Division Neuron Group."""

    def __init__(self, op: str, cfg, name: str = "", layer: int = 0):
        rec = registry.OPERATORS.get(op) if isinstance(op, str) else None
        if rec is None or rec.kind != "activation":  # an activation: elementwise, no weights
            allowed = [n for n, r in registry.OPERATORS.items() if r.kind == "activation"]
            raise ValueError(f"SpikingActivation: op={op!r} is not allowed; allowed: "
                             + ", ".join(map(repr, allowed)))
        super().__init__(cfg, name, layer)
        self.op = op

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return run_golden(self.op, self.cfg, x, site=self.site)


def spiking_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """Eager attention whose softmax is the spiking Softmax (registered under the name "spikeops").

    The additive mask of transformers' ``eager_mask`` (0 = attend, the dtype minimum = masked)
    becomes the Softmax mask.  Modules without a configuration (``module.spikeops_softmax`` None:
    layers not selected) keep the float softmax; ``module.spikeops_observe`` (a callable, used by
    calibration) sees the valid scores' largest magnitude.
    """
    from transformers.models.llama.modeling_llama import repeat_kv

    if scaling is None:
        scaling = query.size(-1) ** -0.5
    groups = getattr(module, "num_key_value_groups", 1)
    key, value = repeat_kv(key, groups), repeat_kv(value, groups)
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling
    cfg = getattr(module, "spikeops_softmax", None)
    valid = None
    if attention_mask is not None:
        valid = attention_mask > torch.finfo(attention_mask.dtype).min / 2
    observe = getattr(module, "spikeops_observe", None)
    if observe is not None:
        observe(scores if valid is None else scores.masked_fill(~valid, 0))
    if cfg is None:
        if attention_mask is not None:
            scores = scores + attention_mask
        weights = nn.functional.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    else:
        site = getattr(module, "spikeops_site", None)
        weights = run_golden("softmax", cfg, scores, site=site,
                             mask=None if valid is None else valid.expand_as(scores))
    out = torch.matmul(weights, value).transpose(1, 2).contiguous()
    return out, weights
