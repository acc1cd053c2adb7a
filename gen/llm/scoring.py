"""Scoring primitives: log-likelihoods of continuations, perplexity, sentence embeddings.

Tokenisation follows lm-eval-harness: trailing spaces of a context move to the continuation; the
continuation's tokens are those of ``context + continuation`` after the context's tokens; an
empty context is the end-of-text token.

Requests that share a context (the choices of one multiple-choice question) are scored in one
sequence: the context once, then each continuation, with a 4-D attention mask in which a
continuation sees the context and itself but no other continuation, and position ids that restart
after the context for each continuation.  Each continuation thus sees exactly what it would see
alone, and HellaSwag costs half the tokens.  These "packs" are sorted by length and batched into at
most ``batch_tokens`` padded tokens; only the scored positions go through the language-model head.
"""

from __future__ import annotations

import math
import time

import numpy as np

__all__ = ["encode_pair", "shared_packs", "pack_limit", "score_tokens", "per_view", "loglikelihoods", "perplexity",
           "embed", "Timer", "Resume"]


class Timer:
    """Accumulates wall time and token counts of model calls (for the speed comparison)."""

    def __init__(self):
        self.seconds, self.tokens = 0.0, 0

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


class Resume:
    """The scores of one scoring call kept while it runs, so that an interrupted run resumes where
    it stopped and processes can share the work.

    The batches of a call are fixed by the requests and ``batch_tokens`` (longest first), so batch
    ``b`` holds the same requests in every process and every run.  A batch whose requests are all
    in ``kept`` is not run again; ``shard = (i, n)`` runs only the batches with ``b % n == i`` (the
    others are left to the processes with the other shards).  Every ``every`` seconds, and at the
    end, ``keep(new, seconds, tokens, wall)`` stores the newly scored requests (index ->
    ``(log-probability, is_greedy)``) with the model time, tokens and wall time spent on them, and
    returns everything stored so far by every process: ``{"scores": {...}, "model_seconds": ...,
    "tokens": ..., "wall_seconds": ...}`` (kept as :attr:`totals`).  The scores are the same numbers
    an uninterrupted run computes (the same batches; JSON keeps a float exactly)."""

    def __init__(self, kept: dict, keep, shard: tuple[int, int] = (0, 1), every: float = 60.0):
        i, n = shard
        if not (isinstance(n, int) and isinstance(i, int) and 0 <= i < n):
            raise ValueError(f"shard={shard!r} is not allowed; allowed: (i, n) with 0 <= i < n")
        self.kept, self._keep, self.shard, self.every = dict(kept), keep, (i, n), every
        self.totals: dict | None = None

    def keep(self, new: dict, seconds: float, tokens: int, wall: float) -> dict:
        entry = self._keep(new, seconds, tokens, wall)
        self.kept = dict(entry["scores"])
        self.totals = {k: entry[k] for k in ("model_seconds", "tokens", "wall_seconds")}
        return self.kept


def encode_pair(tok, context: str, continuation: str, max_len: int = 2048) -> tuple[list, int]:
    """``(input ids, number of continuation tokens)``: the model reads ``ids[:-1]`` and the last
    ``n`` targets are scored."""
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole = tok(context + continuation, add_special_tokens=False)["input_ids"]
    if context:
        ctx = tok(context, add_special_tokens=False)["input_ids"]
        cont = whole[len(ctx):]
        ids = ctx + cont
    else:
        cont = whole
        ids = [tok.eos_token_id] + cont
    if not cont:
        raise ValueError(f"scoring: the continuation {continuation!r} encodes to no token")
    ids = ids[-(max_len + 1):]
    return ids, min(len(cont), len(ids) - 1)


#: scored positions per language-model-head call (bounds the logits to 256 x vocabulary floats)
HEAD_CHUNK = 256


def _batches(lengths, batch_tokens, max_batch=64):
    order = np.argsort(-np.asarray(lengths), kind="stable")
    batch, width = [], 0
    for i in order:
        w = max(width, lengths[i])
        if batch and (w * (len(batch) + 1) > batch_tokens or len(batch) >= max_batch):
            yield batch
            batch, w = [], lengths[i]
        batch.append(int(i))
        width = w
    if batch:
        yield batch


def shared_packs(requests, min_shared: int = 4, max_pack: int = 1024) -> list[list[int]]:
    """Group request indices whose context (``ids[:len(ids) - n]``) is identical into packs.

    A context shorter than ``min_shared`` tokens is not shared (an empty context, one end-of-text
    token, would pack unrelated passages into one long row and only lengthen every attention row);
    a pack grows to at most ``max_pack`` input tokens (or one request, if that is longer)."""
    groups: dict = {}
    for i, (ids, n) in enumerate(requests):
        c = len(ids) - n
        key = tuple(ids[:c]) if c >= min_shared else ("alone", i)
        groups.setdefault(key, []).append(i)
    packs = []
    for members in groups.values():
        ids0, n0 = requests[members[0]]
        c = len(ids0) - n0
        pack, length = [], c
        for i in members:
            add = requests[i][1] - 1
            if pack and length + add > max_pack:
                packs.append(pack)
                pack, length = [], c
            pack.append(i)
            length += add
        packs.append(pack)
    return packs


def _layout(requests, pack):
    """Input ids, position ids, segment of each position (0 = the shared context, k = the k-th
    continuation), and per member the scored positions and targets."""
    ids0, n0 = requests[pack[0]]
    c = len(ids0) - n0
    tokens, pos, seg = list(ids0[:c]), list(range(c)), [0] * c
    scored = []
    for k, i in enumerate(pack, 1):
        ids, n = requests[i]
        cont = ids[c:]
        cols = [c - 1] + list(range(len(tokens), len(tokens) + n - 1))
        tokens += cont[:-1]
        pos += range(c, c + n - 1)
        seg += [k] * (n - 1)
        scored.append((i, cols, cont))
    return tokens, pos, seg, scored


def pack_limit(model, max_pack: int) -> int:
    """The longest pack ``model`` may read: ``max_pack``, at most its position table and the
    shortest ``d_max`` of its spiking softmaxes; 0 (no sharing) when a layer attends through a
    sliding window or another non-full pattern, which a custom 4-D mask would override."""
    cfg = model.config
    kinds = set(getattr(cfg, "layer_types", None) or ["full_attention"])
    if getattr(cfg, "sliding_window", None) or kinds != {"full_attention"}:
        return 0
    limit = min(max_pack, int(getattr(cfg, "max_position_embeddings", max_pack) or max_pack))
    for mod in model.modules():
        sm = getattr(mod, "spikeops_softmax", None)
        if sm is not None:
            limit = min(limit, sm.d_max)
    return limit


def score_tokens(lm, requests, *, batch_tokens: int = 4096, desc: str = "scoring", timer: Timer | None = None,
                 progress: bool = True, min_shared: int = 4, max_pack: int = 1024,
                 resume=None, views=None):
    """``(sum of log-probabilities, is_greedy)`` of each request ``(ids, n)`` (as :func:`encode_pair`
    gives: the model reads ``ids[:-1]``, the last ``n`` targets are scored); ``is_greedy`` says
    whether every scored target is the argmax of its logits (lm-eval's flag).  Requests with the
    same context of at least ``min_shared`` tokens share one pass over it (:func:`shared_packs`,
    packs of at most :func:`pack_limit` tokens; ``max_pack=0`` turns sharing off).  With ``resume``
    (:class:`Resume`) kept scores are reused and new ones kept as they come; None when requests are
    left that another shard has not scored yet.

    ``views`` (keys, e.g. time-step counts) scores several outputs of one pass: the model's body
    then has ``views(keys, input_ids, attention_mask, position_ids)`` returning ``{key:
    last_hidden_state}`` (:meth:`spikeops.gen.llm.snn.network._Body.views`: a spiking network's
    hidden state after each of several step counts), ``resume`` is ``{key: Resume}`` and the result
    ``{key: scores}``.  A batch runs unless every view has kept its requests; each view's
    :class:`Resume` is charged the whole pass's time and tokens."""
    import torch
    from tqdm.auto import tqdm

    keys = [None] if views is None else list(views)
    if views is not None and not keys:
        raise ValueError("score_tokens: views=[] is not allowed; allowed: None or at least one key")
    resumes = None if resume is None else ({None: resume} if views is None else dict(resume))
    if resumes is not None and set(resumes) != set(keys):
        raise ValueError(f"score_tokens: resume for views {sorted(resumes, key=str)} is not allowed; allowed: "
                         f"one Resume per view {keys}")
    requests = list(requests)
    for ids, n in requests:
        if not 1 <= n <= len(ids) - 1:
            raise ValueError(f"score_tokens: {n} scored tokens do not fit {len(ids)} ids")
    limit = pack_limit(lm.model, max_pack) if max_pack > 0 else 0
    packs = shared_packs(requests, min_shared, limit) if limit > 0 else [[i] for i in range(len(requests))]
    layouts = [_layout(requests, p) for p in packs]
    lengths = [len(t) for t, _, _, _ in layouts]
    ll = {k: [0.0] * len(requests) for k in keys}
    greedy = {k: [True] * len(requests) for k in keys}
    model = lm.model
    body, head = model.model, model.lm_head
    pad = lm.tokenizer.pad_token_id
    if pad is None:
        pad = lm.tokenizer.eos_token_id
    bar = tqdm(total=len(requests), desc=desc, unit="req", disable=not progress, leave=False)
    new = {k: {} for k in keys}
    mark = (time.perf_counter(), timer.seconds if timer else 0.0, timer.tokens if timer else 0)
    shard = None if resumes is None else next(iter(resumes.values())).shard

    def keep():
        nonlocal new, mark
        now = (time.perf_counter(), timer.seconds if timer else 0.0, timer.tokens if timer else 0)
        for k in keys:
            resumes[k].keep(new[k], now[1] - mark[1], now[2] - mark[2], now[0] - mark[0])
        new, mark = {k: {} for k in keys}, now

    with torch.no_grad():
        for b, idx in enumerate(_batches(lengths, batch_tokens)):
            members = [i for j in idx for i in packs[j]]
            if resumes is not None:
                if all(i in r.kept for r in resumes.values() for i in members):
                    bar.update(len(members))
                    continue
                if b % shard[1] != shard[0]:
                    continue
            width = max(lengths[j] for j in idx)
            ids = torch.full((len(idx), width), pad, dtype=torch.long)
            att = torch.zeros((len(idx), width), dtype=torch.long)
            shared = any(len(packs[j]) > 1 for j in idx)
            if shared:
                # additive 4-D mask: 0 = attend, dtype minimum = masked (what eager_mask builds)
                allowed = torch.zeros((len(idx), 1, width, width), dtype=torch.bool)
                position = torch.zeros((len(idx), width), dtype=torch.long)
            rows, cols, targets, owner = [], [], [], []
            for r, j in enumerate(idx):
                tokens, pos, seg, scored = layouts[j]
                L = len(tokens)
                ids[r, :L] = torch.tensor(tokens)
                att[r, :L] = 1
                if shared:
                    s = torch.tensor(seg)
                    causal = torch.tril(torch.ones((L, L), dtype=torch.bool))
                    allowed[r, 0, :L, :L] = causal & ((s[:, None] == s[None, :]) | (s[None, :] == 0))
                    allowed[r, 0, range(L, width), range(L, width)] = True  # padding sees itself
                    position[r, :L] = torch.tensor(pos)
                for i, c, cont in scored:
                    rows += [r] * len(c)
                    cols += c
                    targets += cont
                    owner += [i] * len(c)
            t0 = time.perf_counter()
            if shared:
                inputs = dict(input_ids=ids, attention_mask=torch.zeros(allowed.shape, dtype=torch.float32).masked_fill_(
                    ~allowed, torch.finfo(torch.float32).min), position_ids=position)
            else:
                inputs = dict(input_ids=ids, attention_mask=att)
            if views is None:
                hidden = {None: body(**inputs).last_hidden_state}
            else:
                hidden = body.views(keys, **inputs)
            tgt = torch.tensor(targets)
            for k in keys:
                lp, hit = _head_scores(head, hidden[k][rows, cols], tgt)
                for i, v, g in zip(owner, lp, hit):
                    ll[k][i] += float(v)
                    greedy[k][i] = greedy[k][i] and bool(g)
            if timer is not None:
                timer.seconds += time.perf_counter() - t0
                timer.tokens += int(att.sum())
            bar.update(len(members))
            if resumes is not None:
                for k in keys:
                    new[k].update((i, (ll[k][i], greedy[k][i])) for i in members)
                if time.perf_counter() - mark[0] >= resumes[keys[0]].every:
                    keep()
    bar.close()
    if resumes is not None:
        keep()
        if any(i not in r.kept for r in resumes.values() for i in range(len(requests))):
            return None
        out = {k: [tuple(resumes[k].kept[i]) for i in range(len(requests))] for k in keys}
    else:
        out = {k: list(zip(ll[k], greedy[k])) for k in keys}
    return out[None] if views is None else out


def _head_scores(head, hs, tgt):
    """Log-probabilities (float64) of targets ``tgt`` and whether each is the argmax, for hidden
    states ``hs`` ``(positions, hidden)``.  The head runs in row chunks: a (positions x vocabulary)
    logit matrix of a whole batch is gigabytes; log_softmax is per row, so the values do not depend
    on the chunking."""
    import torch

    lp, hit = [], []
    for k in range(0, len(tgt), HEAD_CHUNK):
        logits = head(hs[k:k + HEAD_CHUNK]).float()
        t = tgt[k:k + HEAD_CHUNK]
        lp.append(torch.log_softmax(logits, dim=-1)[torch.arange(len(t)), t].double())
        hit.append(logits.argmax(dim=-1) == t)
    return torch.cat(lp).numpy(), torch.cat(hit).numpy()


def per_view(result, views, fn):
    """``fn`` applied to a scoring result: to the result itself when ``views`` is None, else to
    each view's (``{key: fn(result[key])}``); None stays None (another shard has work left)."""
    if result is None:
        return None
    return fn(result) if views is None else {k: fn(result[k]) for k in views}


def loglikelihoods(lm, pairs, *, batch_tokens: int = 4096, desc: str = "scoring", timer: Timer | None = None,
                   progress: bool = True, resume=None, views=None):
    """Sum of log-probabilities of each continuation given its context (``pairs`` of strings);
    None when another shard has requests left (``resume``, :func:`score_tokens`); with ``views``,
    ``{key: sums}``."""
    enc = [encode_pair(lm.tokenizer, c, x) for c, x in pairs]
    scores = score_tokens(lm, enc, batch_tokens=batch_tokens, desc=desc, timer=timer, progress=progress,
                          resume=resume, views=views)
    return per_view(scores, views, lambda sc: [ll for ll, _ in sc])


def perplexity(lm, texts, *, batch_tokens: int = 4096, timer: Timer | None = None, progress: bool = True,
               resume=None, views=None) -> dict | None:
    """Token perplexity over ``texts`` (each passage scored on its own after an end-of-text token);
    None when another shard has passages left (``resume``); with ``views``, ``{key: result}``."""
    lls = loglikelihoods(lm, [("", t) for t in texts], batch_tokens=batch_tokens, desc="perplexity",
                         timer=timer, progress=progress, resume=resume, views=views)
    tokens = sum(encode_pair(lm.tokenizer, "", t)[1] for t in texts)

    def result(ls):
        nll = -sum(ls)
        return {"perplexity": math.exp(nll / tokens), "nll": nll, "tokens": tokens, "passages": len(texts)}

    return per_view(lls, views, result)


def embed(lm, sentences, *, batch: int = 64, timer: Timer | None = None) -> np.ndarray:
    """Sentence embeddings of an encoder (sentence-transformers recipe: mean pooling over the
    attention mask, then L2 normalisation); float64 ``(n, hidden)``."""
    import torch

    out = []
    with torch.no_grad():
        for k in range(0, len(sentences), batch):
            enc = lm.tokenizer(list(sentences[k:k + batch]), padding=True, truncation=True, max_length=256,
                               return_tensors="pt")
            t0 = time.perf_counter()
            h = lm.model(**enc).last_hidden_state
            if timer is not None:
                timer.seconds += time.perf_counter() - t0
                timer.tokens += int(enc["attention_mask"].sum())
            m = enc["attention_mask"].unsqueeze(-1).to(h.dtype)
            v = (h * m).sum(1) / m.sum(1).clamp(min=1)
            out.append(torch.nn.functional.normalize(v, dim=-1).double().numpy())
    return np.concatenate(out)
