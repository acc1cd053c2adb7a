"""Replace the nonlinear operators of a Hugging Face model (Llama or BERT family) by the spiking ones.

Selective, as the paper's protocol: by operator kind (``softmax``, ``activation``, ``norm``) and by
layer (indices of decoder/encoder layers; the final norm of a Llama model and the embedding
LayerNorm of BERT belong to no layer and are converted only when every layer is).  The attention
softmax runs through a registered attention function AND a registered mask function of the same
name: without the second, transformers silently drops the causal mask.
"""

from __future__ import annotations

from .sites import KINDS

__all__ = ["convert", "KINDS"]

def convert(model, kinds=KINDS, layers=None, configs=None, ranges=None, family: str | None = None,
            stats=None) -> dict:
    """Convert ``model`` in place; return what was replaced (``{kind: [module names]}``).

    ``configs`` maps an operator name to the base configuration (default: the operator's default
    sized for the model).  ``stats`` (from :func:`spikeops.gen.llm.calibrate.observe`) or ``ranges``
    (``{name: max |x|}``) calibrate each instance's scales.  For a saved, reloadable plan use
    :func:`spikeops.gen.llm.plan.make_plan` and :func:`spikeops.gen.llm.plan.apply_plan`.
    """
    from .models import family_of
    from .plan import apply_plan, make_plan

    family = family or family_of(model.config)
    stats = dict(stats or {})
    for name, top in (ranges or {}).items():
        stats.setdefault(name, {"in": top, "out": None})
    plan = make_plan(model, family, kinds=kinds, layers=layers, configs=configs, stats=stats)
    return apply_plan(model, plan)
