"""The evaluation table, in the layout of the paper's Table 1: float against converted, per
replacement set ("ablation": softmax only, activation only, norms only, all).

Decoder (SmolLM2 or any Llama-family model): the task scores of :mod:`spikeops.gen.llm.evaluate`
(zero-shot multiple choice on the five tasks, LAMBADA perplexity), with rows kept per task in a
:class:`spikeops.gen.llm.rowstore.RowStore` so that a run resumes and rows can run in separate
processes.  Encoder (MiniLM or any BERT-family model): cosine between float and converted sentence
embeddings and agreement of nearest-neighbour retrieval.

Every converted model comes from one :class:`spikeops.gen.llm.session.Session` (calibrated once)
and a conversion plan that is saved next to the results.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..files import write_atomic
from . import data
from .evaluate import embedding_agreement, evaluate_tasks, speed_probe
from .rowstore import SCORING, RowStore, plan_digest, source_id
from .scoring import Timer, embed
from .session import Session
from .sites import KINDS

__all__ = ["ABLATIONS", "TASK_LABELS", "row_labels", "row_groups", "check_rows", "evaluation_table", "format_table"]

#: ablation label -> kinds replaced (the paper's protocol: one operator type at a time, then all)
ABLATIONS = {"softmax only": ("softmax",), "activation only": ("activation",), "norms only": ("norm",),
             "all": KINDS}
TASK_LABELS = {"winogrande": "WinoGrande", "hellaswag": "HellaSwag", "arc_challenge": "ARC-c",
               "arc_easy": "ARC-e", "piqa": "PIQA"}


def _encoder_rows(session, ablations, n_sentences, progress, configs=None) -> dict:
    """Per ablation: embedding agreement of the converted encoder with the float one, and speed."""
    sents = data.sentences(n_sentences)
    t_f = Timer()
    ref = embed(session.lm, sents, timer=t_f)
    rows = {"original": {"tokens_per_second": t_f.tokens_per_second}}
    for label in ablations:
        plan = session.plan(kinds=ABLATIONS[label], configs=configs)
        t = Timer()
        emb = embed(session.converted(plan), sents, timer=t)
        rows[label] = dict(embedding_agreement(ref, emb), tokens_per_second=t.tokens_per_second,
                           slowdown=t_f.tokens_per_second / max(t.tokens_per_second, 1e-9))
    return rows


def row_labels(ablations=tuple(ABLATIONS), snn=()) -> list:
    """The table's row labels in order: ``original``, the ablations, then the quantised and spiking
    networks' rows of the ``snn`` specs (ValueError for an unknown ablation or a bad spec)."""
    from .snn.table import snn_configs

    bad = [a for a in ablations if a not in ABLATIONS]
    if bad:
        raise ValueError(f"ablations {bad} are unknown; allowed: {', '.join(ABLATIONS)}")
    return ["original", *ablations, *(c.describe() for c in snn_configs(snn))]


def row_groups(rows, snn=()) -> list:
    """``rows`` (labels) as jobs: each label alone, except the spiking rows one pass scores together
    (:func:`spikeops.gen.llm.snn.table.step_groups`), which form a tuple; in the order of ``rows``."""
    from .snn.table import snn_configs, step_groups

    of = {}
    for group in step_groups(snn_configs(snn)):
        members = tuple(c.describe() for c in group if c.describe() in rows)
        for m in members:
            of[m] = members
    out = []
    for r in rows:
        g = of.get(r, r)
        if g not in out:
            out.append(g if isinstance(g, str) or len(g) > 1 else g[0])
    return out


def check_rows(rows, labels) -> list:
    """``rows`` (``--rows``) as a list, each one of ``labels`` (ValueError naming the others)."""
    bad = [r for r in rows if r not in labels]
    if bad:
        raise ValueError(f"rows {bad} are not allowed; allowed: {', '.join(labels)} (original and the ablations)")
    return list(rows)


def evaluation_table(model: str = "smollm2", tasks=data.TASKS, limit=None, ppl_limit=None,
                     ablations=tuple(ABLATIONS), out_dir=None, batch_tokens: int = 4096, progress: bool = True,
                     n_sentences: int = 300, calibration_texts: int = 32, log=print, rows=None,
                     resume: bool = True, speed_repeats: int = 5, changes=None, snn=(),
                     shard: tuple[int, int] = (0, 1), assemble: bool = True) -> dict:
    """The evaluation table: float against converted, per ablation; writes ``eval.json``,
    ``eval.md`` and each plan (``plan-<ablation>.json``) into ``out_dir`` when given.

    Decoder rows are kept per task in ``out_dir/rows/`` as they finish: a rerun with the same
    settings (``resume``) reuses them, and ``rows`` (labels: ``original`` and ablations) restricts
    what this call computes, so rows can run in separate processes into one ``out_dir`` and a last
    call assembles the table.  Within a task the per-request scores are kept as they come
    (:meth:`RowStore.resume`): an interrupted task resumes where it stopped, and ``shard = (i, n)``
    scores only every ``n``-th batch from the ``i``-th, so ``n`` processes with the ``n`` shards share
    one task (the last to finish its shard completes the task); :mod:`spikeops.gen.llm.jobs` runs rows and
    shards as jobs on the sweep's executors.  ``assemble=False`` (a job's call) keeps its rows
    without writing ``eval.json`` and ``eval.md``.  ``speed_repeats`` > 0 adds the alternating speed probe
    (:func:`spikeops.gen.llm.evaluate.speed_probe`, on the last ablation).  ``changes``
    (``{op: {parameter: value}}``, the command line's ``--set op.key=value``) change the operators'
    base configurations, sized for the model (:func:`spikeops.gen.llm.plan.default_config`).

    ``snn`` (``--snn`` specs, e.g. ``"T=4,L=16,W=8,A=8"``) adds the quantised and spiking networks'
    rows (:mod:`spikeops.gen.llm.snn.table`: each with float and with spikeops nonlinear operators,
    with its activity and energy), on the plan of the ``all`` ablation; labels as
    :meth:`spikeops.gen.llm.snn.SNNConfig.describe` gives them (``SNN T=4 L=16 W8A8, float ops``)."""
    from spikeops.golden.changes import apply_changes

    from .plan import default_config
    from .operators import get_backend

    from .snn.table import snn_configs

    spiking = snn_configs(snn)
    labels = row_labels(ablations, snn)
    rows = labels if rows is None else check_rows(rows, labels)
    t0 = time.perf_counter()
    session = Session(model, calibration_texts=calibration_texts, quiet=not progress)
    log(f"eval: {model} ({session.lm.family}) loaded and calibrated on {session.calibration['tokens']} tokens "
        f"in {time.perf_counter() - t0:.0f} s")
    report = {"model": model, "family": session.lm.family, "source": Path(session.lm.source).name,
              "limit": limit, "ppl_limit": ppl_limit, "calibration": session.calibration, "rows": {}}
    out = Path(out_dir) if out_dir else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    configs = {op: apply_changes(default_config(op, session.lm.model.config), ch)
               for op, ch in (changes or {}).items()} or None
    if configs:
        report["changes"] = {op: dict(ch) for op, ch in changes.items()}
    if spiking and session.lm.family != "llama":
        raise ValueError(f"eval: --snn is not allowed for {model} (a {session.lm.family} model); allowed: a "
                         "Llama-family decoder such as smollm2")
    if session.lm.family == "bert":
        report["rows"] = _encoder_rows(session, ablations, n_sentences, progress, configs)
    else:
        report["tasks"] = list(tasks)
        report["scoring"] = SCORING
        key = {"model": source_id(session.lm.source), "limit": limit, "ppl_limit": ppl_limit, "scoring": SCORING,
               "batch_tokens": batch_tokens, "backend": get_backend(), "calibration_texts": calibration_texts}
        plans = {label: session.plan(kinds=ABLATIONS[label], configs=configs) for label in ablations}
        missing = []
        for label in labels[:1 + len(ablations)]:
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
            row = evaluate_tasks(lm, tasks, limit, ppl_limit, batch_tokens, progress, done=done,
                                 save=store.save if store else None,
                                 resume=(lambda name, store=store: store.resume(name, shard)) if store else None)
            if row is None:
                log(f"eval: {label}: this shard ({shard[0]}/{shard[1]}) is done; other shards have requests left")
                missing.append(label)
                continue
            report["rows"][label] = row
        if spiking:
            from .snn.table import snn_rows
            plan = plans.get("all") or session.plan(configs=configs)
            if out and any(c.describe() in rows for c in spiking):
                plan.save(out / "plan-snn.json")
            done, more = snn_rows(session, spiking, plan=plan, tasks=tasks, limit=limit, ppl_limit=ppl_limit,
                                  batch_tokens=batch_tokens, progress=progress, out=out, key=key, rows=rows,
                                  resume=resume, log=log, shard=shard)
            report["rows"].update(done)
            missing += more
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
    if out and assemble:
        write_atomic(out / "eval.json", json.dumps(report, indent=1) + "\n")
        write_atomic(out / "eval.md", format_table(report) + "\n")
        if spiking:
            _plot(report, out / "accuracy-vs-T.png", log)
    return report


def _plot(report: dict, path: Path, log):
    """The spiking rows' accuracy against T (:mod:`spikeops.gen.llm.snn.plot`), when matplotlib is
    installed (the ``dev`` extra)."""
    try:
        from .snn.plot import accuracy_plot
        if accuracy_plot(report, path):
            log(f"eval: accuracy against T in {path}")
    except ImportError as err:
        log(f"eval: no plot ({err}); pip install matplotlib for {path.name}")


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
    if any("activity" in r for r in rows.values()):
        from .snn.table import format_activity, format_ops_cost
        cost = format_ops_cost(rows, TASK_LABELS)
        lines += ["", format_activity(rows)] + (["", cost] if cost else [])
    sp = report.get("speed")
    if sp:
        lines.append(f"Speed probe ({sp['requests']} HellaSwag requests, {sp['tokens']} tokens, float and "
                     f"{sp['ablation']!r} alternating, median of {sp['repeats']}): float "
                     f"{sp['float_tokens_per_second']:.0f} tokens/s, converted {sp['converted_tokens_per_second']:.0f} "
                     f"tokens/s, slowdown {sp['slowdown']:.2f}x.")
    return "\n".join(lines)
