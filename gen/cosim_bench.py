"""Co-simulation throughput: verified elements per second, per simulator and operator.

A benchmark, not a test.  Each figure is the median over ``repeats`` runs of one batch of
``elements`` inputs through the file-driven testbench (the build is done once, before timing):
``wall`` counts the whole ``runner.test`` call (simulator start-up, the run, reading the files and
comparing every output with the golden model); ``sim`` counts the simulation alone.  ``el/cycle`` is
the hardware's own rate: elements through per clock cycle from the first input to the last output
(start-up included; at ``valid_p = ready_p = 1`` the sustained rate of back-to-back rows).
"""

from __future__ import annotations

import statistics

from spikeops.golden import registry
from spikeops.verif import env
from spikeops.verif.runner import Regression
from spikeops.verif.stimulus import make

__all__ = ["cosim_throughput", "format_rows"]


def cosim_throughput(ops=None, sims=None, *, elements: int = 200_000, repeats: int = 3,
                     valid_p: float = 1.0, ready_p: float = 1.0) -> list[dict]:
    """Per simulator and operator: verified elements per second (wall and simulated), medians of
    ``repeats`` runs of one random stimulus through one build."""
    rows = []
    for sim in sims or env.SIMULATORS:
        reason = env.unavailable_reason(sim)
        for op in ops or registry.OPERATORS:
            row = {"op": op, "sim": sim, "elements": elements, "valid_p": valid_p, "ready_p": ready_p}
            if reason:
                rows.append(row | {"error": reason})
                continue
            cfg = registry.get(op).default()
            stim = make(op, cfg, "random", size=elements, seed=1)
            reg = Regression(op, cfg, sim, weights=stim.weights).build()
            walls, sims_s = [], []
            for r in range(repeats):
                res = reg.run(stim, name=f"bench{r}", valid_p=valid_p, ready_p=ready_p, seed=r + 1)
                if res.mismatches:
                    raise AssertionError(res.report)
                walls.append(res.checked / res.wall_seconds)
                sims_s.append(res.checked / res.seconds)
            rows.append(row | {"checked": res.checked, "cycles": res.cycles,
                               "elements_per_cycle": round(res.elements_per_cycle, 4),
                               "elements_per_s_wall": statistics.median(walls),
                               "elements_per_s_sim": statistics.median(sims_s)})
    return rows


def format_rows(rows) -> str:
    head = (f"{'sim':10} {'op':10} {'elements':>9} {'cycles':>9} {'el/cycle':>8} {'wall el/s':>10} "
            f"{'sim el/s':>10}")
    out = [head, "-" * len(head)]
    for r in rows:
        if "error" in r:
            out.append(f"{r['sim']:10} {r['op']:10} skipped: {r['error']}")
            continue
        out.append(f"{r['sim']:10} {r['op']:10} {r['checked']:>9} {r['cycles']:>9} {r['elements_per_cycle']:>8.3f} "
                   f"{r['elements_per_s_wall']:>10.0f} {r['elements_per_s_sim']:>10.0f}")
    return "\n".join(out)
