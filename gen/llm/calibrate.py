"""Calibration: a power-of-two input scale per operator instance, from calibration text.

Rule (deterministic): run the float model on the calibration batches, record ``max |x|`` at the
input of every norm and activation instance, and give that instance the most fraction bits that
keep the maximum inside its input format: the largest ``in_frac`` in ``[0, in_width - 1]`` with
``max |x| * 2**in_frac < 2**(in_width - 1)``.  Attention scores
keep the Softmax default format (its max subtraction makes the scale irrelevant up to saturation).
"""

from __future__ import annotations

import math

__all__ = ["observe_ranges", "in_frac_for"]


def in_frac_for(max_abs: float, in_width: int) -> int:
    """The largest ``in_frac`` in ``[0, in_width - 1]`` with ``max_abs * 2**in_frac < 2**(in_width - 1)``."""
    if max_abs <= 0:
        return in_width - 1
    frac = in_width - 1 - math.floor(math.log2(max_abs)) - 1
    while frac > 0 and max_abs * 2 ** frac >= 2 ** (in_width - 1):
        frac -= 1
    while frac < in_width - 1 and max_abs * 2 ** (frac + 1) < 2 ** (in_width - 1):
        frac += 1
    return max(0, min(in_width - 1, frac))


def observe_ranges(model, batches) -> dict:
    """``{module name: max |input|}`` for the norms and MLP activations of a Llama-family model."""
    import torch

    decoder = model.model
    watched = {"model.norm": decoder.norm}
    for i, layer in enumerate(decoder.layers):
        watched[f"model.layers.{i}.input_layernorm"] = layer.input_layernorm
        watched[f"model.layers.{i}.post_attention_layernorm"] = layer.post_attention_layernorm
        watched[f"model.layers.{i}.mlp.act_fn"] = layer.mlp.act_fn
    ranges = {name: 0.0 for name in watched}
    hooks = []
    for name, module in watched.items():
        def hook(mod, args, name=name):
            ranges[name] = max(ranges[name], float(args[0].detach().abs().max()))
        hooks.append(module.register_forward_pre_hook(hook))
    try:
        with torch.no_grad():
            for batch in batches:
                model(batch)
    finally:
        for h in hooks:
            h.remove()
    return ranges
