"""Tiny, randomly initialised Hugging Face models for the LLM tests (no download, no hub)."""

import torch
import transformers


def tiny_llama(seed: int = 0, max_positions: int = 64, eager: bool = False):
    """A 2-layer Llama (hidden 64, 4 heads, 2 key-value heads, vocabulary 97) in eval mode."""
    torch.manual_seed(seed)
    cfg = transformers.LlamaConfig(vocab_size=97, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2,
                                   max_position_embeddings=max_positions, rms_norm_eps=1e-5)
    model = transformers.LlamaForCausalLM(cfg).eval()
    if eager:
        model.set_attn_implementation("eager")
    return model
