"""The sweep's model-level figure of one operator configuration: only that operator's kind is
replaced in the embedded model that runs the operator (:func:`spikeops.gen.llm.models.model_for`),
at calibrated scales.  Each embedded model is loaded and calibrated once per process
(:func:`calibrated_session`), however many points the sweep asks about."""

from __future__ import annotations

import functools

from spikeops.golden import registry

from . import data
from .evaluate import embedding_agreement, evaluate_tasks
from .models import embedded_operators, model_for
from .scoring import embed
from .session import Session

__all__ = ["model_accuracy", "calibrated_session"]


@functools.lru_cache(maxsize=None)
def calibrated_session(model: str) -> Session:
    """The quiet :class:`Session` of embedded model ``model``, made on the first call and kept
    (``calibrated_session.cache_clear()`` drops them)."""
    return Session(model, quiet=True)


def model_accuracy(op: str, cfg, limit: int = 50, tasks=data.TASKS, ppl_limit: int | None = 50) -> dict:
    """Model-level effect of one operator configuration (for the sweep): only that operator's kind
    is replaced (``cfg`` as its base configuration, calibrated scales applied).  A decoder's
    operators run on SmolLM2 (task accuracies, LAMBADA perplexity), an encoder's on MiniLM
    (embedding agreement with the float model); see :data:`spikeops.gen.llm.models.EMBEDDED`."""
    model = model_for(op)
    if model is None:
        raise ValueError(f"model_accuracy: op={op!r} is not used by the embedded models; allowed: "
                         + embedded_operators())
    kind = registry.get(op).kind
    session = calibrated_session(model)
    lm = session.converted(session.plan(kinds=(kind,), configs={op: cfg}))
    if session.lm.family == "bert":
        sents = data.sentences(200)
        return embedding_agreement(embed(session.lm, sents), embed(lm, sents))
    r = evaluate_tasks(lm, tasks, limit, ppl_limit, progress=False)
    out = {f"acc_{t}": v["acc"] for t, v in r["tasks"].items()}
    out["avg_acc"], out["avg_acc_norm"] = r["avg"]["acc"], r["avg"]["acc_norm"]
    if "lambada" in r:
        out["lambada_ppl"] = r["lambada"]["perplexity"]
    return out
