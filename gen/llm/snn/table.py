"""The spiking rows of the evaluation table (``spikeops eval --snn SPEC``), in the paper's layout:
the float model, then each quantised or spiking network given on the command line, with float
nonlinear operators and with the spikeops operators side by side (a spec that names ``ops=`` gives
that row alone).

Each row runs the tasks of :mod:`spikeops.gen.llm.evaluate` on a
:class:`spikeops.gen.llm.snn.SpikingLlama` built from the session's calibration and the same
conversion plan as the ANN rows (``--set`` changes it), and is kept per task in
``<out>/rows/<label>.json`` (:class:`spikeops.gen.llm.rowstore.RowStore`, keyed by the network's
hash and the plan's digest): rows resume, and rows can run in separate processes into one folder.

Besides the scores, a row records its activity and energy (:mod:`.activity`) on the first
``ACTIVITY_PASSAGES`` LAMBADA passages: spikes per neuron, synaptic accumulates and the ANN's
multiply-accumulates per token, the energy against the float ANN and the nonlinear operators' share
of it, the steps run and the settle steps per layer.
"""

from __future__ import annotations

import time

__all__ = ["snn_configs", "step_groups", "snn_rows", "activity_summary", "format_activity", "ops_cost",
           "format_ops_cost", "ACTIVITY_PASSAGES", "TARGET_AVG_POINTS", "TARGET_TASK_POINTS"]

#: issue 14's target: the spikeops operators cost at most this many points of average accuracy
#: against the same network with float operators ...
TARGET_AVG_POINTS = 0.3
#: ... and no task loses more than this many
TARGET_TASK_POINTS = 1.0

#: LAMBADA passages the activity and energy account of a row runs on
ACTIVITY_PASSAGES = 4
#: tokens of each passage in that account
ACTIVITY_TOKENS = 128


def snn_configs(specs) -> list:
    """The rows of ``--snn`` specs: each spec with ``ops=float`` and with ``ops=spikeops`` (or as it
    is when it names ``ops``), in order, duplicates dropped.  Errors name the key, the value and what
    is allowed (:meth:`spikeops.gen.llm.snn.SNNConfig.parse`)."""
    from .config import SNNConfig

    out = []
    for spec in specs or ():
        cfg = spec if isinstance(spec, SNNConfig) else SNNConfig.parse(spec)
        names_ops = isinstance(spec, SNNConfig) or any(p.split("=", 1)[0].strip() == "ops"
                                                       for p in str(spec).replace(";", ",").split(","))
        for c in ([cfg] if names_ops else [cfg.replace(ops="float"), cfg.replace(ops="spikeops")]):
            if c not in out:
                out.append(c)
    return out


def activity_summary(lm, passages: int = ACTIVITY_PASSAGES, max_tokens: int = ACTIVITY_TOKENS) -> dict:
    """One activity-counting pass of the converted ``lm`` over the first ``passages`` LAMBADA
    passages (one batch, at most ``max_tokens`` tokens each): the report's totals (per token) and
    the steps, settle steps per layer and wall time."""
    import torch

    from .. import data

    texts = data.lambada_passages(passages)
    enc = lm.tokenizer(texts, padding=True, truncation=True, max_length=max_tokens, return_tensors="pt")
    t0 = time.perf_counter()
    with torch.no_grad():
        run = lm.model.run(enc["input_ids"], enc["attention_mask"], activity=True)
    total = dict(run.activity["total"])
    total.pop("final_norm", None)
    return {"passages": len(texts), "valid_tokens": int(enc["attention_mask"].sum()), **total,
            "steps_run": run.steps, "settled": run.settled, "settle_steps": run.settle_steps,
            "settle_per_layer": {str(k): v for k, v in run.settle_per_layer.items()},
            "seconds": round(time.perf_counter() - t0, 2)}


def step_groups(configs) -> list[list]:
    """``configs`` in groups that one run can score together: time-stepped networks with a fixed
    ``T`` and ``division=plan`` that differ in nothing but ``T`` (the run at the largest ``T`` gives
    every smaller one's hidden state, :meth:`.network.SpikingLlama.run`'s checkpoints); every other
    configuration alone.  Groups in the order of their first member; members in the given order."""
    from .config import Division

    groups: dict = {}
    for k, cfg in enumerate(configs):
        shares = cfg.spiking and cfg.T is not None and cfg.division == Division.PLAN
        key = cfg.replace(T=None).network_hash() if shares else ("alone", k)
        groups.setdefault(key, []).append(cfg)
    return list(groups.values())


def snn_rows(session, configs, *, plan, tasks, limit, ppl_limit, batch_tokens, progress, out, key, rows,
             resume, log, shard: tuple[int, int] = (0, 1)) -> tuple[dict, list]:
    """Evaluate each of ``configs`` (:func:`snn_configs`) whose label is in ``rows`` (None: all) on
    ``session``'s model with ``plan``'s operators; returns ``({label: row}, [labels neither computed
    nor kept])``.  ``key`` is the ANN rows' RowStore key (model, limits, scoring, back end).  As for
    the ANN rows, a task's per-request scores are kept as they come and ``shard = (i, n)`` scores
    every ``n``-th batch from the ``i``-th; shard 0 also makes the activity pass.  The rows' key adds
    the plan's digest, the network's parameters and the SNN calibration's digest
    (:meth:`spikeops.gen.llm.snn.Calibration.digest`).

    Rows that differ only in ``T`` (:func:`step_groups`) are scored in one pass of the network at
    the largest ``T`` still to score, each row a view of it (its hidden state after its own ``T``
    steps, bit for bit what a run of its own gives): the T sweep costs its largest ``T``, not the
    sum.  Each row is still kept on its own, under its own key; each is charged the shared pass's
    time."""
    from ..evaluate import evaluate_tasks
    from ..rowstore import RowStore, plan_digest

    results, missing = {}, []
    # the quantisers' scales come from the calibration: rows of another calibration are not these rows
    key = dict(key, calibration=session.snn_calibration().digest()) if configs else key
    for group in step_groups(configs):
        entries = []
        for cfg in group:
            label = cfg.describe()
            store = (RowStore(out, label, dict(key, plan=plan_digest(plan), snn=cfg.network_hash()),
                              resume or (rows is not None and label not in rows)) if out else None)
            done = dict(store.results) if store else {}
            if store and store.stale:
                log(f"eval: {label}: kept results in {store.path} were made with other settings; not reused")
            activity = done.pop("activity", None)
            todo = [t for t in [*tasks, *(["lambada"] if ppl_limit != 0 else [])] if t not in done]
            wanted = rows is None or label in rows
            entries.append(dict(cfg=cfg, label=label, store=store, done=done, activity=activity, todo=todo,
                                wanted=wanted, row=None, scored=False))
        scoring = [e for e in entries if e["wanted"] and e["todo"]]
        for e in scoring:
            log(f"eval: {e['label']}: {', '.join(e['todo'])}" + (f" (kept: {', '.join(e['done'])})" if e["done"] else ""))
        if len(scoring) > 1:
            top = max(scoring, key=lambda e: e["cfg"].T)
            by_t = {e["cfg"].T: e for e in scoring}
            log(f"eval: {', '.join(e['label'] for e in scoring)}: one pass at T={top['cfg'].T}, "
                f"each row at its own step count")
            lm = session.spiking(top["cfg"], plan)
            got = evaluate_tasks(lm, tasks, limit, ppl_limit, batch_tokens, progress,
                                 done={t: e["done"] for t, e in by_t.items()}, views=sorted(by_t),
                                 save=(lambda t, name, res: by_t[t]["store"].save(name, res)) if out else None,
                                 resume=(lambda t, name: by_t[t]["store"].resume(name, shard)) if out else None)
            for t, e in by_t.items():
                e["row"], e["todo"] = (None, e["todo"]) if got is None else (got[t], [])
                e["scored"] = True
        for e in entries:
            cfg, label, store, done, activity = e["cfg"], e["label"], e["store"], e["done"], e["activity"]
            if not e["wanted"]:
                if e["todo"] or activity is None:
                    missing.append(label)
                    continue
            lm = session.spiking(cfg, plan) if ((e["todo"] and not e["scored"]) or activity is None) else None
            row = e["row"]
            if row is None and not e["scored"]:
                row = evaluate_tasks(lm, tasks, limit, ppl_limit, batch_tokens, progress, done=done,
                                     save=store.save if store else None,
                                     resume=(lambda name, store=store: store.resume(name, shard)) if store else None)
            if activity is None and shard[0] == 0:
                activity = activity_summary(lm)
                if store:
                    store.save("activity", activity)
            if row is None or activity is None:    # other shards have requests or the activity pass left
                log(f"eval: {label}: this shard ({shard[0]}/{shard[1]}) is done; other shards have work left")
                missing.append(label)
                continue
            row["activity"] = activity
            row["snn"] = cfg.to_json()
            results[label] = row
    order = [c.describe() for c in configs]
    return {k: results[k] for k in order if k in results}, sorted(missing, key=order.index)


def format_activity(rows: dict) -> str:
    """Markdown: per spiking row, activity and energy per token against the float ANN."""
    lines = ["### Activity and energy per token (45 nm constants; first LAMBADA passages)", "",
             "| network | steps run | settle steps | spikes / neuron | AC / token | ANN MAC / token | "
             "energy vs ANN | operators' share |", "|---|---|---|---|---|---|---|---|"]
    for label, r in rows.items():
        a = r.get("activity")
        if not a:
            continue
        settle = a["settle_steps"] if a["settle_steps"] is not None else f"> {a['steps_run']}"
        lines.append(f"| {label} | {a['steps_run']} | {settle} | {a['spikes_per_neuron']:.3f} | "
                     f"{a.get('ac_per_token', 0):.3g} | {a.get('ann_mac_per_token', 0):.3g} | "
                     f"{a['energy_ratio']:.3f} | {a['operators_share_of_energy']:.4f} |")
    return "\n".join(lines) if len(lines) > 4 else ""


def ops_cost(rows: dict) -> list[dict]:
    """Per network with both rows (``X`` and ``X, float ops``): what the spikeops operators cost
    against the float operators, in points (positive: spikeops lower): the average accuracy, the
    worst task, LAMBADA perplexity (relative), and whether the target holds (at most
    :data:`TARGET_AVG_POINTS` on the average, :data:`TARGET_TASK_POINTS` on any task).  Where both
    rows kept which documents they got right, the paired comparison (:func:`~..evaluate.mcnemar`;
    ``a`` the float operators) of the worst task and of all documents together says whether the
    difference is more than the documents two near-equal networks split by chance."""
    from ..evaluate import mcnemar

    out = []
    for label, r in rows.items():
        f = rows.get(f"{label}, float ops")
        if "snn" not in r or f is None:
            continue
        tasks = [t for t in r["tasks"] if t in f["tasks"]]
        drops = {t: (f["tasks"][t]["acc"] - r["tasks"][t]["acc"]) * 100 for t in tasks}
        worst = max(drops, key=drops.get) if drops else None
        avg = (f["avg"]["acc"] - r["avg"]["acc"]) * 100
        ppl = (r["lambada"]["perplexity"] / f["lambada"]["perplexity"] - 1) * 100 \
            if "lambada" in r and "lambada" in f else None
        paired = {t: mcnemar(f["tasks"][t].get("correct", ""), r["tasks"][t].get("correct", "")) for t in tasks}
        whole = None
        if tasks and all(paired.values()):
            whole = mcnemar("".join(f["tasks"][t]["correct"] for t in tasks),
                            "".join(r["tasks"][t]["correct"] for t in tasks))
        out.append({"network": label, "avg_drop": avg, "worst_task": worst,
                    "worst_drop": drops[worst] if worst else 0.0, "ppl_change_percent": ppl,
                    "worst_paired": paired.get(worst), "paired": whole,
                    "meets_target": avg <= TARGET_AVG_POINTS and all(d <= TARGET_TASK_POINTS for d in drops.values())})
    return out


def format_ops_cost(rows: dict, names: dict | None = None) -> str:
    """Markdown: :func:`ops_cost` per network ("" when no network has both rows); ``names`` gives
    the tasks' display names."""
    cost = ops_cost(rows)
    if not cost:
        return ""
    lines = [f"### What the spikeops operators cost against float operators, same network (target: at most "
             f"{TARGET_AVG_POINTS} points on the average, {TARGET_TASK_POINTS} on any task)", "",
             "| network | average drop (points) | worst task (drop) | documents only float / only spikeops "
             "right (paired p) | LAMBADA ppl change | target |",
             "|---|---|---|---|---|---|"]
    names = names or {}

    def split(m):
        return f"{m['only_a']} / {m['only_b']} (p {m['p']:.2f})" if m else "-"

    for c in cost:
        worst = f"{names.get(c['worst_task'], c['worst_task'])} ({c['worst_drop']:+.1f})" if c["worst_task"] else "-"
        if c["worst_paired"]:
            worst = worst[:-1] + f"; {split(c['worst_paired'])})"
        ppl = f"{c['ppl_change_percent']:+.2f} %" if c["ppl_change_percent"] is not None else "-"
        lines.append(f"| {c['network']} | {c['avg_drop']:+.2f} | {worst} | {split(c['paired'])} | {ppl} | "
                     f"{'met' if c['meets_target'] else 'missed'} |")
    lines += ["", "A paired p above about 0.05 says the two networks' difference on those documents is within "
              "what chance splits between two near-equal networks give; the drop alone cannot say so."]
    return "\n".join(lines)
