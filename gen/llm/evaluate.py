"""Scoring a model on the evaluation tasks: zero-shot multiple choice on the five tasks (accuracy,
and length-normalised accuracy: log-likelihood per character of the continuation) and perplexity
on the LAMBADA passages, with timing; cosine and nearest-neighbour agreement of sentence
embeddings; an alternating float/converted speed probe.

The table built from these scores is :mod:`spikeops.gen.llm.table`.
"""

from __future__ import annotations

import math
import time

import numpy as np

from . import data
from .scoring import Timer, loglikelihoods, per_view, perplexity

__all__ = ["multiple_choice_task", "mcnemar", "evaluate_tasks", "summarise", "embedding_agreement", "speed_probe"]


def multiple_choice_task(lm, task, limit, batch_tokens, timer, progress, resume=None, views=None) -> dict | None:
    """Accuracy and length-normalised accuracy of ``lm`` on the first ``limit`` documents of ``task``
    (None while another shard has requests left: ``resume``, :class:`~.scoring.Resume`); with
    ``views`` (:func:`~.scoring.score_tokens`), ``{key: result}``.  ``correct`` is a string with
    one ``0``/``1`` per document, in order (whether the most likely choice is the gold one): two
    models' strings give a paired test of their difference (:func:`mcnemar`)."""
    docs = data.task_docs(task, limit)
    pairs, spans = [], []
    for d in docs:
        spans.append((len(pairs), len(d.continuations)))
        pairs += list(zip(d.contexts, d.continuations))
    lls = loglikelihoods(lm, pairs, batch_tokens=batch_tokens, desc=task, timer=timer, progress=progress,
                         resume=resume, views=views)

    def result(lls):
        right, hit_norm = [], 0
        for d, (start, n) in zip(docs, spans):
            ll = np.array(lls[start:start + n])
            chars = np.array([len(c) for c in d.continuations], dtype=np.float64)
            right.append(int(np.argmax(ll) == d.gold))
            hit_norm += int(np.argmax(ll / chars) == d.gold)
        # per document, in order: paired comparisons of two models on the same documents
        return {"acc": sum(right) / len(docs), "acc_norm": hit_norm / len(docs), "docs": len(docs),
                "requests": len(pairs), "correct": "".join(map(str, right))}

    return per_view(lls, views, result)


def mcnemar(a: str, b: str) -> dict | None:
    """The paired comparison of two models on the same documents from their ``correct`` strings:
    ``only_a`` (documents only ``a`` gets right), ``only_b``, and the exact two-sided McNemar
    p-value (binomial, ``n = only_a + only_b``, p = 1/2): the probability of a split at least this
    uneven if neither model were better.  None when the strings do not cover the same documents."""
    if not a or not b or len(a) != len(b):
        return None
    only_a = sum(x == "1" and y == "0" for x, y in zip(a, b))
    only_b = sum(x == "0" and y == "1" for x, y in zip(a, b))
    n, k = only_a + only_b, min(only_a, only_b)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2.0 ** n if n else 1.0
    return {"only_a": only_a, "only_b": only_b, "p": min(1.0, 2 * tail)}


def _timed(fn, *args, resume=None, views=None, **kwargs) -> dict | None:
    """``fn``'s result with its model time, tokens and wall time (with ``resume``: those of every
    run and process that scored it; with ``views``, per view, each charged the shared pass)."""
    timer, t0 = Timer(), time.perf_counter()
    extra = {k: v for k, v in (("resume", resume), ("views", views)) if v is not None}
    out = fn(*args, timer=timer, **kwargs, **extra)
    if out is None:
        return None
    parts = {None: (out, resume)} if views is None else {k: (out[k], (resume or {}).get(k)) for k in views}
    for res, r in parts.values():
        res.update(model_seconds=timer.seconds, tokens=timer.tokens, wall_seconds=time.perf_counter() - t0)
        if r is not None and r.totals is not None:
            res.update(r.totals)
    return out


def evaluate_tasks(lm, tasks=data.TASKS, limit=None, ppl_limit=None, batch_tokens=4096,
                   progress=True, done=None, save=None, resume=None, views=None) -> dict | None:
    """Multiple-choice accuracies and LAMBADA perplexity of a decoder, with timing.

    ``done`` maps a task (or ``"lambada"``) to a result kept from an earlier run, which is reused;
    ``save(name, result)`` is called as each result is ready (so an interrupted run keeps them).
    ``resume(name)`` gives the :class:`~.scoring.Resume` of a task (its per-request scores kept as
    they come, and the shard of its batches this call scores): a task another shard has not
    finished is left out, and the row is then None (not complete yet).

    ``views`` (keys; :func:`~.scoring.score_tokens`) scores several outputs of ``lm`` in one pass,
    one row per key: ``done`` is then ``{key: {task: result}}``, ``save(key, name, result)``,
    ``resume(key, name)``, and the result ``{key: row}`` (None until every view's row is complete).
    A task runs for the views that have not kept it."""
    keys = [None] if views is None else list(views)
    done = {None: dict(done or {})} if views is None else {k: dict((done or {}).get(k, {})) for k in keys}
    results, left = {k: {} for k in keys}, []
    jobs = [(t, lambda r, v, t=t: _timed(multiple_choice_task, lm, t, limit, batch_tokens, progress=progress,
                                         resume=r, views=v))
            for t in tasks]
    if ppl_limit != 0:
        jobs.append(("lambada", lambda r, v: _timed(perplexity, lm, data.lambada_passages(ppl_limit),
                                                    batch_tokens=batch_tokens, progress=progress, resume=r,
                                                    views=v)))
    for name, run in jobs:
        for k in keys:
            if name in done[k]:
                results[k][name] = done[k][name]
        need = [k for k in keys if name not in done[k]]
        if not need:
            continue
        if views is None:
            result = run(None if resume is None else resume(name), None)
            got = None if result is None else {None: result}
        else:
            got = run(None if resume is None else {k: resume(k, name) for k in need}, need)
        if got is None:
            left.append(name)
            continue
        for k in need:
            if save is not None:
                save(name, got[k]) if views is None else save(k, name, got[k])
            results[k][name] = got[k]
    if left:
        return None
    rows = {k: summarise(results[k], tasks) for k in keys}
    return rows[None] if views is None else rows


def summarise(results: dict, tasks) -> dict:
    """A row of the table from per-task results: accuracies, their average, LAMBADA, timing."""
    out = {"tasks": {t: results[t] for t in tasks}}
    if "lambada" in results:
        out["lambada"] = results["lambada"]
    accs = [v["acc"] for v in out["tasks"].values()]
    norms = [v["acc_norm"] for v in out["tasks"].values()]
    out["avg"] = {"acc": float(np.mean(accs)) if accs else None, "acc_norm": float(np.mean(norms)) if norms else None}
    parts = list(results.values())
    out["model_seconds"] = sum(r.get("model_seconds", 0.0) for r in parts)
    out["tokens"] = sum(r.get("tokens", 0) for r in parts)
    out["tokens_per_second"] = out["tokens"] / out["model_seconds"] if out["model_seconds"] else 0.0
    out["wall_seconds"] = sum(r.get("wall_seconds", 0.0) for r in parts)
    return out


def embedding_agreement(float_emb: np.ndarray, conv_emb: np.ndarray, k: int = 5) -> dict:
    """Cosine between paired embeddings; nearest-neighbour (cosine, self excluded) agreement."""
    cos = np.sum(float_emb * conv_emb, axis=1) / (
        np.linalg.norm(float_emb, axis=1) * np.linalg.norm(conv_emb, axis=1))

    def neighbours(e):
        e = e / np.linalg.norm(e, axis=1, keepdims=True)
        s = e @ e.T
        np.fill_diagonal(s, -np.inf)
        return np.argsort(-s, axis=1, kind="stable")[:, :k]

    a, b = neighbours(float_emb), neighbours(conv_emb)
    overlap = np.mean([len(set(x) & set(y)) / k for x, y in zip(a, b)])
    return {"cosine_mean": float(cos.mean()), "cosine_min": float(cos.min()),
            "top1_agreement": float(np.mean(a[:, 0] == b[:, 0])), f"top{k}_overlap": float(overlap),
            "sentences": int(len(cos))}


def speed_probe(float_lm, conv_lm, requests: int = 48, repeats: int = 5, batch_tokens: int = 4096) -> dict:
    """Time float and converted on the same HellaSwag requests, alternately, ``repeats`` times each;
    the medians and their ratio (alternation makes the ratio robust to the load of a shared machine)."""
    from .scoring import encode_pair, score_tokens

    docs = data.task_docs("hellaswag", max(1, requests // 4))
    enc = [encode_pair(float_lm.tokenizer, c, x) for d in docs for c, x in zip(d.contexts, d.continuations)]
    times = {"float": [], "converted": []}
    tokens = 0
    for _ in range(repeats):
        for name, lm in (("float", float_lm), ("converted", conv_lm)):
            t = Timer()
            score_tokens(lm, enc, batch_tokens=batch_tokens, timer=t, progress=False)
            times[name].append(t.seconds)
            tokens = t.tokens
    med = {k: float(np.median(v)) for k, v in times.items()}
    return {"requests": len(enc), "tokens": tokens, "repeats": repeats, "float_seconds": med["float"],
            "converted_seconds": med["converted"], "slowdown": med["converted"] / med["float"],
            "float_tokens_per_second": tokens / med["float"], "converted_tokens_per_second": tokens / med["converted"]}
