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


def tiny_bert(seed: int = 0, vocab_size: int = 97):
    """A 2-layer BERT encoder (hidden 32, 4 heads, GELU, eager attention, no pooler) in eval mode."""
    torch.manual_seed(seed)
    cfg = transformers.BertConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                  num_attention_heads=4, max_position_embeddings=64, hidden_act="gelu")
    model = transformers.BertModel(cfg, add_pooling_layer=False).eval()
    model.set_attn_implementation("eager")
    return model


def save_tiny_llama(folder, max_positions: int = 1024):
    """:func:`tiny_llama` saved as a model folder with a character tokenizer (letters, digits,
    punctuation; ``<unk>``, ``<s>``, ``</s>``), as a user's local model would be; returns the folder."""
    import string

    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    chars = string.ascii_letters + string.digits + ".,;:!?'\"-()"
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{c: i + 3 for i, c in enumerate(chars)}}
    tok = Tokenizer(models.BPE(vocab, [], unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                            pad_token="</s>").save_pretrained(folder)
    tiny_llama(max_positions=max_positions).save_pretrained(folder)
    return folder
