"""Where the nonlinear operators sit in a Hugging Face model (Llama family and BERT family).

A :class:`Site` names one operator instance: its module path, the spiking operator that replaces
it, its kind (``softmax`` / ``activation`` / ``norm``), its layer (``-1`` for the embedding
LayerNorm of BERT, ``n_layers`` for Llama's final norm) and how to reach it (parent module and
attribute).  Softmax sites are attention modules: their softmax runs inside the registered
attention function.
"""

from __future__ import annotations

from dataclasses import dataclass

from spikeops.golden import registry

__all__ = ["Site", "discover", "KINDS", "activation_op"]

KINDS = registry.KINDS


@dataclass(frozen=True)
class Site:
    name: str
    op: str
    layer: int
    parent: object
    attr: str

    @property
    def kind(self) -> str:
        """The operator's role (``softmax`` / ``activation`` / ``norm``), from its record."""
        return registry.get(self.op).kind

    @property
    def module(self):
        return getattr(self.parent, self.attr)

    @property
    def attention(self) -> bool:
        """True for an attention module, whose (masked-row) operator runs inside the registered
        attention function rather than replacing a submodule."""
        return registry.get(self.op).masked


#: the model's ``hidden_act`` -> the spiking operator: exact names, then name prefixes
HIDDEN_ACTS = {"silu": "silu", "swish": "silu"}
HIDDEN_ACT_PREFIXES = {"gelu": "gelu"}


def activation_op(config) -> str:
    """The spiking operator for the model's MLP activation (``hidden_act``)."""
    act = getattr(config, "hidden_act", "silu")
    if isinstance(act, str):
        if act in HIDDEN_ACTS:
            return HIDDEN_ACTS[act]
        for prefix, op in HIDDEN_ACT_PREFIXES.items():
            if act.startswith(prefix):
                return op
    raise ValueError(f"convert: hidden_act={act!r} has no spiking operator; allowed: "
                     + ", ".join([*HIDDEN_ACTS, *(f"{p}*" for p in HIDDEN_ACT_PREFIXES)]))


def _llama(model) -> list[Site]:
    dec = model.model
    act = activation_op(model.config)
    out = []
    for i, layer in enumerate(dec.layers):
        p = f"model.layers.{i}"
        out += [Site(f"{p}.self_attn", "softmax", i, layer, "self_attn"),
                Site(f"{p}.input_layernorm", "rmsnorm", i, layer, "input_layernorm"),
                Site(f"{p}.post_attention_layernorm", "rmsnorm", i, layer, "post_attention_layernorm"),
                Site(f"{p}.mlp.act_fn", act, i, layer.mlp, "act_fn")]
    out.append(Site("model.norm", "rmsnorm", len(dec.layers), dec, "norm"))
    return out


def _bert(model) -> list[Site]:
    act = activation_op(model.config)
    base = model.bert if hasattr(model, "bert") else model
    prefix = "bert." if base is not model else ""
    out = [Site(f"{prefix}embeddings.LayerNorm", "layernorm", -1, base.embeddings, "LayerNorm")]
    for i, layer in enumerate(base.encoder.layer):
        p = f"{prefix}encoder.layer.{i}"
        out += [Site(f"{p}.attention.self", "softmax", i, layer.attention, "self"),
                Site(f"{p}.attention.output.LayerNorm", "layernorm", i, layer.attention.output, "LayerNorm"),
                Site(f"{p}.intermediate.intermediate_act_fn", act, i, layer.intermediate,
                     "intermediate_act_fn"),
                Site(f"{p}.output.LayerNorm", "layernorm", i, layer.output, "LayerNorm")]
    return out


def n_layers(model, family: str) -> int:
    if family == "llama":
        return len(model.model.layers)
    base = model.bert if hasattr(model, "bert") else model
    return len(base.encoder.layer)


def discover(model, family: str) -> list[Site]:
    """Every operator site of ``model`` in forward order (per layer)."""
    if family == "llama":
        return _llama(model)
    if family == "bert":
        return _bert(model)
    raise ValueError(f"family={family!r} is not allowed; allowed: 'llama', 'bert'")
