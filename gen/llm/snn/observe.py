"""What calibration sees at every activation quantiser: the float model on the calibration text.

The quantiser sites of a Llama-family decoder layer ``i`` (``model.layers.i.<site>``):

| site | the float tensor it quantises | feeds |
|---|---|---|
| ``attn_in`` | the input of q/k/v_proj (the input RMSNorm's output) | q, k, v projections |
| ``q``, ``k`` | the queries and keys after RoPE | the scores ``Q K^T`` |
| ``v`` | the output of v_proj | the context ``P V`` |
| ``p`` | the attention probabilities (valid positions) | the context ``P V`` |
| ``attn_out`` | the input of o_proj | o projection |
| ``mlp_in`` | the input of gate/up_proj (the post-attention RMSNorm's output) | gate, up projections |
| ``mlp_mid`` | the input of down_proj (``SiLU(gate) * up``) | down projection |

:func:`observe_sites` runs the float model (eager attention, through a registered attention
function and its mask function of the same name) on the calibration batches and keeps per site
``max |x|`` over every valid token and a deterministic sample (every k-th valid element of each
call, at most :data:`SAMPLE_PER_CALL`), the input of the scale rule
(:func:`.quantizers.activation_scale`).  Padding tokens are left out.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .config import SITES

__all__ = ["SITES", "observe_sites", "Observations", "SAMPLE_PER_CALL", "OBSERVE_ATTENTION"]

SAMPLE_PER_CALL = 4096
OBSERVE_ATTENTION = "spikeops_snn_observe"


class Observations(dict):
    """``{site name: {"max": float, "sample": float64 array}}``; sites observed per token also have
    ``"chmax"`` (per-channel maxima of ``|x|``) and ``"ch"`` (the channel of each sampled element),
    which smoothing (:mod:`.smooth`) reads."""

    def add(self, name: str, values: torch.Tensor, channels: bool = False):
        x = values.detach().to(torch.float64)
        v = x.reshape(-1)
        if v.numel() == 0:
            return
        item = self.setdefault(name, {"max": 0.0, "parts": [], "chparts": []})
        item["max"] = max(item["max"], float(v.abs().max()))
        step = max(1, math.ceil(v.numel() / SAMPLE_PER_CALL))
        item["parts"].append(v[::step].numpy().copy())
        if channels:
            F = x.shape[-1]
            cm = x.reshape(-1, F).abs().amax(dim=0).numpy()
            item["chmax"] = cm if "chmax" not in item else np.maximum(item["chmax"], cm)
            item["chparts"].append(np.arange(0, v.numel(), step) % F)

    def finish(self) -> "Observations":
        for item in self.values():
            parts = item.pop("parts", None)
            if parts is not None:
                item["sample"] = np.concatenate(parts) if parts else np.zeros(0)
            ch = item.pop("chparts", None)
            if ch:
                item["ch"] = np.concatenate(ch)
        return self


def _attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """Eager attention that shows q, k, v and p to ``module.spikeops_snn_observe``."""
    from transformers.models.llama.modeling_llama import repeat_kv

    if scaling is None:
        scaling = query.size(-1) ** -0.5
    groups = getattr(module, "num_key_value_groups", 1)
    k2, v2 = repeat_kv(key, groups), repeat_kv(value, groups)
    scores = torch.matmul(query, k2.transpose(2, 3)) * scaling
    if attention_mask is not None:
        scores = scores + attention_mask
    weights = torch.nn.functional.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    seen = getattr(module, "spikeops_snn_observe", None)
    if seen is not None:
        seen(query, key, weights, attention_mask)
    out = torch.matmul(weights, v2).transpose(1, 2).contiguous()
    return out, weights


def _register():
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    AttentionInterface.register(OBSERVE_ATTENTION, _attention)
    AttentionMaskInterface.register(OBSERVE_ATTENTION, eager_mask)


def observe_sites(model, batches) -> Observations:
    """Observations of every quantiser site of a Llama-family ``model`` over ``batches`` (dicts
    of model inputs with ``input_ids`` and optionally ``attention_mask``, or id tensors)."""
    obs = Observations()
    tokens = {"valid": None}  # (B, S) bool of the batch being run

    def on_tokens(name, x):  # x (B, S, F)
        valid = tokens["valid"]
        obs.add(name, x if valid is None else x[valid], channels=True)

    def heads(name, x):  # x (B, H, S, D)
        valid = tokens["valid"]
        obs.add(name, x if valid is None else x.transpose(1, 2)[valid])

    hooks, attn = [], []
    for i, layer in enumerate(model.model.layers):
        p = f"model.layers.{i}."
        sa, mlp = layer.self_attn, layer.mlp
        for mod, site in ((sa.q_proj, "attn_in"), (sa.o_proj, "attn_out"), (mlp.gate_proj, "mlp_in"),
                          (mlp.down_proj, "mlp_mid")):
            hooks.append(mod.register_forward_pre_hook(lambda m, a, n=p + site: on_tokens(n, a[0])))
        hooks.append(sa.v_proj.register_forward_hook(lambda m, a, y, n=p + "v": on_tokens(n, y)))

        def seen(q, k, w, mask, p=p):
            heads(p + "q", q)
            heads(p + "k", k)
            valid = torch.ones(w.shape, dtype=torch.bool) if mask is None else \
                (mask > torch.finfo(mask.dtype).min / 2).expand(w.shape)
            if tokens["valid"] is not None:
                valid = valid & tokens["valid"][:, None, :, None]
            obs.add(p + "p", w[valid])
        sa.spikeops_snn_observe = seen
        attn.append(sa)
    previous = model.config._attn_implementation
    _register()
    model.set_attn_implementation(OBSERVE_ATTENTION)
    try:
        with torch.no_grad():
            for batch in batches:
                if not isinstance(batch, dict):
                    batch = {"input_ids": batch}
                m = batch.get("attention_mask")
                tokens["valid"] = None if m is None or m.dim() != 2 else m.bool()
                model(**batch)
    finally:
        for h in hooks:
            h.remove()
        for sa in attn:
            del sa.spikeops_snn_observe
        model.set_attn_implementation(previous)
    return obs.finish()
