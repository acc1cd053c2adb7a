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

__all__ = ["snn_configs", "snn_rows", "activity_summary", "format_activity", "ACTIVITY_PASSAGES"]

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


def snn_rows(session, configs, *, plan, tasks, limit, ppl_limit, batch_tokens, progress, out, key, rows,
             resume, log, shard: tuple[int, int] = (0, 1)) -> tuple[dict, list]:
    """Evaluate each of ``configs`` (:func:`snn_configs`) whose label is in ``rows`` (None: all) on
    ``session``'s model with ``plan``'s operators; returns ``({label: row}, [labels neither computed
    nor kept])``.  ``key`` is the ANN rows' RowStore key (model, limits, scoring, back end).  As for
    the ANN rows, a task's per-request scores are kept as they come and ``shard = (i, n)`` scores
    every ``n``-th batch from the ``i``-th; shard 0 also makes the activity pass."""
    from ..evaluate import evaluate_tasks
    from ..rowstore import RowStore, plan_digest

    results, missing = {}, []
    for cfg in configs:
        label = cfg.describe()
        store = (RowStore(out, label, dict(key, plan=plan_digest(plan), snn=cfg.network_hash()),
                          resume or (rows is not None and label not in rows)) if out else None)
        done = dict(store.results) if store else {}
        if store and store.stale:
            log(f"eval: {label}: kept results in {store.path} were made with other settings; not reused")
        activity = done.pop("activity", None)
        todo = [t for t in [*tasks, *(["lambada"] if ppl_limit != 0 else [])] if t not in done]
        if rows is not None and label not in rows:
            if todo or activity is None:
                missing.append(label)
                continue
        lm = session.spiking(cfg, plan) if (todo or activity is None) else None
        if todo:
            log(f"eval: {label}: {', '.join(todo)}" + (f" (kept: {', '.join(done)})" if done else ""))
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
    return results, missing


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
