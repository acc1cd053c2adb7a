"""The spiking attention's registration with transformers: an attention function AND a mask
function under one name (without the second, transformers silently drops the causal mask)."""

from __future__ import annotations

__all__ = ["register_attention", "ATTENTION_NAME"]

ATTENTION_NAME = "spikeops"


def register_attention():
    """Register the spiking attention and its (eager, additive) mask under one name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    from .operators import spiking_attention

    AttentionInterface.register(ATTENTION_NAME, spiking_attention)
    AttentionMaskInterface.register(ATTENTION_NAME, eager_mask)
