"""The main job's spiking stage (``spikeops run --snn SPEC``): the embedded model as a spiking
network, and its operators as time-stepped RTL on the increments they receive inside it.

1. convert the model into the SNN at ``SPEC`` (:mod:`spikeops.gen.llm.snn`) and run it on LAMBADA
   passages with a step log on every integer operator instance (:mod:`spikeops.gen.llm.snn.stepped`);
2. per operator, the instance of the representative configuration that comes first in forward
   order becomes a stepped operator: its :class:`spikeops.golden.steps.StepConfig` (its scale, T,
   the increment width) and its per-step increments; the wrapper's golden model is checked against
   what the network computed, every sample and step;
3. the wrapper is emitted and co-simulated on some of those samples (:mod:`spikeops.verif.steps_tb`:
   equality with golden under idle cycles and backpressure, the sums over the steps, a reset in the
   middle of a step);
4. it is synthesised and placed and routed in the job's worker pool, beside the plain operator.
"""

from __future__ import annotations

import time

import numpy as np

from .job_fpga import fmax_cell, fpga_row

__all__ = ["check_snn_spec", "spiking_stage", "summary_lines"]

#: elements per co-simulated batch (samples x steps x frame), at least two samples
COSIM_ELEMENTS = 6000
#: tokens of each LAMBADA passage the spiking network runs on
MAX_TOKENS = 48


def check_snn_spec(spec: str):
    """The :class:`spikeops.gen.llm.snn.SNNConfig` of ``spec``, which must spike (T steps)."""
    from .llm.snn import SNNConfig
    snn = SNNConfig.parse(spec)
    if not snn.spiking:
        raise ValueError(f"run: --snn {spec!r} is not allowed; allowed: a spiking network (e.g. 'T=4,L=16'), "
                         "not the quantised ANN")
    return snn


def _cosim(site, sim: str, root) -> dict:
    from spikeops.verif.steps_runner import SteppedRegression
    per = site.cfg.steps * site.increments.shape[2]
    keep = max(2, min(len(site.samples), COSIM_ELEMENTS // per))
    t0 = time.perf_counter()
    res = SteppedRegression(site.cfg, sim, weights=site.weights, root=root).run(
        increments=site.samples[:keep], masks=None if site.masks is None else list(site.masks[:keep]))
    return {"sim": sim, "samples": res.samples, "elements": res.elements, "tests": res.tests, "failed": res.failed,
            "passed": res.failed == 0 and res.tests > 0, "seconds": round(time.perf_counter() - t0, 1),
            "message": "" if res.failed == 0 else res.log[-2000:]}


def spiking_stage(session, plan, spec: str, reps: dict, *, prompts: int, sim: str, pool, target, pnr_timeout: float,
                  out, clock) -> tuple[dict, dict]:
    """Steps 1-3 of the module docstring (4 submitted to ``pool``); returns the report's
    ``spiking`` entry and ``{op: future}`` of the place-and-route jobs."""
    from spikeops.golden.steps import run_steps

    from .llm import data
    from .llm.snn.stepped import run_watched, site, unwatch

    snn = check_snn_spec(spec)
    t0 = time.perf_counter()
    texts = data.lambada_passages(prompts)
    run, ops, tokens = run_watched(session.spiking(snn, plan), texts, MAX_TOKENS)
    steps = max(len(op.step_log) for op in ops)
    report = {"snn": snn.spec(), "steps": steps, "prompts": len(texts), "tokens": tokens,
              "settled": run.settled, "network_seconds": round(time.perf_counter() - t0, 1), "operators": {}}
    clock.stage(f"spiking network {snn.spec()}: {len(texts)} passages, {report['tokens']} tokens, {steps} steps "
                f"({report['network_seconds']:.0f} s)")
    futures = {}
    for op_name, (cfg, users, _) in reps.items():
        chosen = [op for op in ops if op.rec.name == op_name and op.name in users and op.cfg == cfg and op.step_log]
        if not chosen:
            report["operators"][op_name] = {"error": "no spiking instance at the representative configuration"}
            continue
        s = site(chosen[0], steps)
        mask = None if s.masks is None else s.masks[:, None, :]
        equal = bool(np.array_equal(run_steps(s.cfg, s.increments, mask=mask, **s.weights), s.outputs))
        row = {"site": s.name, "config": s.cfg.to_json(), "config_hash": s.cfg.stable_hash(),
               "samples": len(s.samples), "elements": int(s.increments.size), "golden_equals_network": equal,
               "inc_width": s.cfg.inc_width, "per_channel_scale": s.cfg.in_mults is not None}
        clock.stage(f"  {op_name} at {s.name}: golden wrapper {'equals' if equal else 'DIFFERS FROM'} the network on "
                    f"{row['samples']} samples x {steps} steps; co-simulate on {sim}")
        try:
            row["cosim"] = _cosim(s, sim, out / "sim-steps")
        except Exception as err:  # a broken simulator install must not hide the rest of the report
            row["cosim"] = {"sim": sim, "passed": False, "elements": 0, "message": str(err)}
        c = row["cosim"]
        clock.stage(f"  {op_name}: stepped RTL {'bit-exact' if c['passed'] else 'FAILED'} on {c['elements']} elements "
                    f"x {c.get('tests', 0)} tests")
        report["operators"][op_name] = row
        if pool is not None:
            futures[op_name] = pool.submit(fpga_row, op_name, s.cfg, s.weights, str(out / "rtl-steps" / op_name),
                                           target, pnr_timeout)
    unwatch(ops)
    return report, futures


def summary_lines(spiking: dict, plain: dict) -> list[str]:
    """The spiking stage's table, each stepped operator beside the plain one's cells."""
    lines = ["", f"Spiking network {spiking['snn']} ({spiking['steps']} steps, {spiking['tokens']} tokens): each operator "
             "as a time-stepped wrapper on the increments its instance receives", "",
             "| operator | site | golden = network | bit-exact elements | LUT-eq | FF | DSP | BRAM | Fmax MHz | "
             "plain LUT-eq | plain BRAM |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for op, r in spiking["operators"].items():
        if "error" in r:
            lines.append(f"| {op} | {r['error']} |" + " |" * 9)
            continue
        c, p = r.get("cosim", {}), r.get("fpga", {}).get("pnr", {})
        s = p.get("synthesis", {})
        ps = plain.get(op, {}).get("fpga", {}).get("pnr", {}).get("synthesis", {})
        ok = f"{c.get('elements', 0)} ({c.get('sim', '-')})" if c.get("passed") else "FAILED"
        fmax = fmax_cell(r.get("fpga", {}))
        lines.append(f"| {op} | {r['site']} | {'yes' if r['golden_equals_network'] else 'NO'} | {ok} | "
                     + " | ".join(str(s.get(k, "-")) for k in ("lut_equivalent", "ff", "dsp", "bram"))
                     + f" | {fmax} | {ps.get('lut_equivalent', '-')} | {ps.get('bram', '-')} |")
    return lines
