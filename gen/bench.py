"""Golden-model throughput: elements per second per operator at its default configuration.

A benchmark, not a test: the machine is shared and noisy, so each figure is the median of
``repeats`` timed runs on the same inputs, measured in one process.  Targets (issue #2):
elementwise operators 20M elements/s, row operators 5M elements/s, on the 2-core machine.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from spikeops.golden import registry
from spikeops.golden.fixed import quantize

__all__ = ["TARGETS", "golden_throughput", "format_bench"]

#: elements per second the golden model should reach: elementwise, and row operators
TARGETS = {"elementwise": 20e6, "row": 5e6}

#: the centre and spread of the random inputs: attention logits N(0, 7^2), hidden states N(0, 1)
_SIGMA = {True: 7.0, False: 1.0}
_WEIGHT_CENTRE = {"gamma": 1.0, "beta": 0.0}


def _inputs(op, cfg, elements: int, rng):
    """``(codes, weight codes)`` for one timed call."""
    if not op.shape.is_row:
        return quantize(np.clip(2.0 * rng.standard_t(3, elements), -60, 60), cfg.in_format), {}
    d = op.fixed_row_length(cfg) or min(256, op.row_length(cfg))
    rows = max(1, elements // d)
    x = quantize(rng.normal(0, _SIGMA[op.masked], (rows, d)), cfg.in_format)
    weights = {w: rng.normal(_WEIGHT_CENTRE.get(w, 0.0), 0.3, d) for w in op.weights}
    return x, op.quantize_weights(cfg, weights)


def golden_throughput(ops=None, *, elements: int = 2_000_000, repeats: int = 5, seed: int = 0) -> list[dict]:
    """Per operator at its default configuration: the median time of ``repeats`` golden calls
    on the same inputs, and elements per second against :data:`TARGETS`."""
    rows = []
    rng = np.random.default_rng(seed)
    for name in ops or registry.OPERATORS:
        op = registry.get(name)
        cfg = op.default()
        x, weights = _inputs(op, cfg, elements, rng)
        n = x.size
        op.run(x, cfg, **weights)  # warm up (tables, caches)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            op.run(x, cfg, **weights)
            times.append(time.perf_counter() - t0)
        med = statistics.median(times)
        target = TARGETS["row" if op.shape.is_row else "elementwise"]
        rows.append({"op": name, "shape": op.shape.value, "elements": int(n), "repeats": repeats,
                     "median_s": med, "elements_per_s": n / med, "target_per_s": target,
                     "meets_target": n / med >= target})
    return rows


def format_bench(rows) -> str:
    head = f"{'op':10} {'shape':12} {'elements':>10} {'median s':>9} {'Melem/s':>8} {'target':>7}  met"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['op']:10} {r['shape']:12} {r['elements']:>10} {r['median_s']:>9.4f} "
                     f"{r['elements_per_s'] / 1e6:>8.1f} {r['target_per_s'] / 1e6:>7.0f}  "
                     f"{'yes' if r['meets_target'] else 'NO'}")
    return "\n".join(lines)
