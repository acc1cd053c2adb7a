"""The golden spiking operators as drop-in torch pieces: float in, float out, integer inside.

Each call quantises the float input to the operator's input format, runs the bit-exact golden
operator and dequantises the output, so a converted model computes exactly what the RTL computes.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from golden import registry
from golden.fixed import dequantize, quantize

__all__ = ["run_golden", "SpikingRMSNorm", "SpikingActivation", "spiking_attention", "fit_gamma"]


def run_golden(op: str, cfg, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    """``dequantize(golden(quantize(x)))`` with ``x``'s dtype and device."""
    codes = quantize(x.detach().to(torch.float64).cpu().numpy(), cfg.in_format)
    y = registry.get(op).golden(codes, cfg, *args, **kwargs)
    return torch.from_numpy(dequantize(y, cfg.out_format)).to(dtype=x.dtype, device=x.device)


def fit_gamma(cfg, weight) -> object:
    """``cfg`` with the most gamma fraction bits that still hold ``max |weight|``: the largest
    ``gamma_frac <= gamma_width - 1`` with ``round(max |w| * 2**gamma_frac)`` in the format (a
    deterministic rule; the calibration plan of issue 4 records the result)."""
    top = float(np.max(np.abs(np.asarray(weight, dtype=np.float64)))) if np.size(weight) else 0.0
    frac = cfg.gamma_width - 1
    while frac > 0 and round(top * 2 ** frac) > (1 << (cfg.gamma_width - 1)) - 1:
        frac -= 1
    return cfg.replace(gamma_frac=frac)


class SpikingRMSNorm(nn.Module):
    """RMSNorm by PolarNorm and the Division Neuron Group; ``weight`` quantised to the gamma format."""

    def __init__(self, cfg, weight: torch.Tensor):
        super().__init__()
        self.cfg = fit_gamma(cfg, weight.detach().cpu().numpy())
        self.register_buffer("weight", weight.detach().clone())
        self.gamma_codes = self.cfg.quantize_gamma(self.weight.cpu().numpy())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return run_golden("rmsnorm", self.cfg, x, self.gamma_codes)

    def extra_repr(self) -> str:
        return f"{self.cfg.kind} d={self.cfg.d} {self.cfg.in_format.describe()} -> {self.cfg.out_format.describe()}"


class SpikingActivation(nn.Module):
    """SiLU or GELU (sigmoid form) by PWL-Exp and the Division Neuron Group."""

    def __init__(self, op: str, cfg):
        super().__init__()
        if op not in ("silu", "gelu", "sigmoid"):
            raise ValueError(f"SpikingActivation: op={op!r} is not allowed; allowed: 'silu', 'gelu', 'sigmoid'")
        self.op, self.cfg = op, cfg

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return run_golden(self.op, self.cfg, x)

    def extra_repr(self) -> str:
        return f"{self.op} {self.cfg.in_format.describe()} -> {self.cfg.out_format.describe()}"


def spiking_attention(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    """Eager attention whose softmax is the spiking Softmax (registered under the name "spikeops").

    The additive mask of transformers' ``eager_mask`` (0 = attend, the dtype minimum = masked)
    becomes the Softmax mask; layers not selected for conversion (``module.spikeops_softmax`` is
    None) keep the float softmax.
    """
    from transformers.models.llama.modeling_llama import repeat_kv

    groups = getattr(module, "num_key_value_groups", 1)
    key, value = repeat_kv(key, groups), repeat_kv(value, groups)
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling
    cfg = getattr(module, "spikeops_softmax", None)
    if cfg is None:
        if attention_mask is not None:
            scores = scores + attention_mask
        weights = nn.functional.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    else:
        valid = None
        if attention_mask is not None:
            valid = (attention_mask > torch.finfo(attention_mask.dtype).min / 2).expand_as(scores)
            valid = valid.cpu().numpy()
        codes = quantize(scores.detach().to(torch.float64).cpu().numpy(), cfg.in_format)
        q = registry.get("softmax").golden(codes, cfg, mask=valid)
        weights = torch.from_numpy(dequantize(q, cfg.out_format)).to(dtype=query.dtype, device=query.device)
    out = torch.matmul(weights, value).transpose(1, 2).contiguous()
    return out, weights
