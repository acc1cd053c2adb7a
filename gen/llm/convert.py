"""Replace the nonlinear operators of a Hugging Face Llama-family model by the spiking ones.

Selective, as the paper's protocol: by operator kind (``softmax``, ``activation``, ``norm``) and by
layer (``layers``: indices of decoder layers; the final norm counts as part of ``norm`` when every
layer is selected).  The attention softmax runs through a registered attention function AND a
registered mask function of the same name: without the second, transformers silently drops the
causal mask.
"""

from __future__ import annotations

from golden import registry

from .operators import SpikingActivation, SpikingRMSNorm, spiking_attention

__all__ = ["convert", "register_attention", "KINDS", "ATTENTION_NAME"]

KINDS = ("softmax", "activation", "norm")
ATTENTION_NAME = "spikeops"


def register_attention():
    """Register the spiking attention and its (eager, additive) causal mask under one name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    AttentionInterface.register(ATTENTION_NAME, spiking_attention)
    AttentionMaskInterface.register(ATTENTION_NAME, eager_mask)


def _activation_op(config) -> str:
    act = getattr(config, "hidden_act", "silu")
    if act in ("silu", "swish"):
        return "silu"
    if act.startswith("gelu"):
        return "gelu"
    raise ValueError(f"convert: hidden_act={act!r} has no spiking operator; allowed: silu, gelu*")


def convert(model, kinds=KINDS, layers=None, configs=None, ranges=None) -> dict:
    """Convert ``model`` in place; return what was replaced (a dict of lists of module names).

    ``configs`` maps an operator name to the configuration to use (defaults: each operator's
    default, with ``d`` / ``d_max`` set from the model).  ``ranges`` (from
    :func:`gen.llm.calibrate.observe_ranges`) gives each instance its power-of-two input scale.
    """
    from .calibrate import in_frac_for

    ranges = dict(ranges or {})

    def scaled(cfg, name):
        if name not in ranges:
            return cfg
        return cfg.replace(in_frac=in_frac_for(ranges[name], cfg.in_width))

    bad = set(kinds) - set(KINDS)
    if bad:
        raise ValueError(f"convert: kinds {sorted(bad)} are unknown; allowed: {', '.join(KINDS)}")
    configs = dict(configs or {})
    hf = model.config
    decoder = model.model
    n_layers = len(decoder.layers)
    chosen = list(range(n_layers)) if layers is None else sorted(set(layers))
    for i in chosen:
        if not 0 <= i < n_layers:
            raise ValueError(f"convert: layer {i} does not exist; allowed: 0 .. {n_layers - 1}")
    replaced = {k: [] for k in KINDS}

    if "norm" in kinds:
        norm_cfg = configs.get("rmsnorm") or registry.get("rmsnorm").default(
            d=hf.hidden_size, eps=float(hf.rms_norm_eps))
        targets = [(f"model.layers.{i}.{n}", decoder.layers[i], n)
                   for i in chosen for n in ("input_layernorm", "post_attention_layernorm")]
        if layers is None:
            targets.append(("model.norm", decoder, "norm"))
        for name, parent, attr in targets:
            old = getattr(parent, attr)
            setattr(parent, attr, SpikingRMSNorm(scaled(norm_cfg, name), old.weight))
            replaced["norm"].append(name)

    if "activation" in kinds:
        op = _activation_op(hf)
        act_cfg = configs.get(op) or registry.get(op).default()
        for i in chosen:
            name = f"model.layers.{i}.mlp.act_fn"
            decoder.layers[i].mlp.act_fn = SpikingActivation(op, scaled(act_cfg, name))
            replaced["activation"].append(name)

    if "softmax" in kinds:
        sm_cfg = configs.get("softmax") or registry.get("softmax").default(
            d_max=int(getattr(hf, "max_position_embeddings", 8192)))
        register_attention()
        for i, layer in enumerate(decoder.layers):
            layer.self_attn.spikeops_softmax = sm_cfg if i in chosen else None
        model.set_attn_implementation(ATTENTION_NAME)
        replaced["softmax"] = [f"model.layers.{i}.self_attn" for i in chosen]
    return replaced
