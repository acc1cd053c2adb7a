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

__all__ = ["Site", "discover", "KINDS", "activation", "activation_op", "HIDDEN_ACTS"]

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


#: the model's ``hidden_act`` (transformers' ACT2FN names) -> the spiking operator and the
#: configuration changes that make it compute that very function (GELU's form)
HIDDEN_ACTS = {
    "silu": ("silu", {}), "swish": ("silu", {}),
    "gelu": ("gelu", {"form": "erf"}), "gelu_python": ("gelu", {"form": "erf"}),
    "gelu_new": ("gelu", {"form": "tanh"}), "gelu_pytorch_tanh": ("gelu", {"form": "tanh"}),
    "gelu_fast": ("gelu", {"form": "tanh"}), "gelu_accurate": ("gelu", {"form": "tanh"}),
    "quick_gelu": ("gelu", {"form": "sigmoid"}),
}


def activation(config) -> tuple[str, dict]:
    """``(operator, changes)`` for the model's MLP activation (``hidden_act``): the spiking
    operator and the changes to its configuration that match the function the model computes;
    ValueError for an activation no spiking operator computes (``gelu_10``, ``relu``, ...)."""
    act = getattr(config, "hidden_act", "silu")
    if isinstance(act, str) and act in HIDDEN_ACTS:
        op, changes = HIDDEN_ACTS[act]
        return op, dict(changes)
    raise ValueError(f"convert: hidden_act={act!r} has no spiking operator that computes it; allowed: "
                     + ", ".join(HIDDEN_ACTS))


def activation_op(config) -> str:
    """The spiking operator for the model's MLP activation (:func:`activation`)."""
    return activation(config)[0]


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
