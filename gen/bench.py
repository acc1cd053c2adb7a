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

__all__ = ["TARGETS", "benchmark", "format_bench"]

TARGETS = {"elementwise": 20e6, "row": 5e6}


def _inputs(name: str, cfg, elements: int, rng):
    op = registry.get(name)
    if op.shape == "elementwise":
        return (quantize(np.clip(2.0 * rng.standard_t(3, elements), -60, 60), cfg.in_format),), {}
    d = cfg.d if hasattr(cfg, "d") else min(256, cfg.d_max)
    rows = max(1, elements // d)
    sigma = 7.0 if name == "softmax" else 1.0
    x = quantize(rng.normal(0, sigma, (rows, d)), cfg.in_format)
    if name == "softmax":
        return (x, cfg), {}
    extra = (cfg.quantize_gamma(rng.normal(1, 0.3, d)),)
    if name == "layernorm":
        extra += (cfg.quantize_beta(rng.normal(0, 0.3, d)),)
    return (x, cfg) + extra, {}


def benchmark(ops=None, *, elements: int = 2_000_000, repeats: int = 5, seed: int = 0) -> list[dict]:
    rows = []
    rng = np.random.default_rng(seed)
    for name in ops or registry.OPERATORS:
        op = registry.get(name)
        cfg = op.default()
        args, kwargs = _inputs(name, cfg, elements, rng)
        if op.shape == "elementwise":
            args = args + (cfg,)
        n = args[0].size
        op.golden(*args, **kwargs)  # warm up (tables, caches)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            op.golden(*args, **kwargs)
            times.append(time.perf_counter() - t0)
        med = statistics.median(times)
        rows.append({"op": name, "shape": op.shape, "elements": int(n), "repeats": repeats,
                     "median_s": med, "elements_per_s": n / med, "target_per_s": TARGETS[op.shape],
                     "meets_target": n / med >= TARGETS[op.shape]})
    return rows


def format_bench(rows) -> str:
    head = f"{'op':10} {'shape':12} {'elements':>10} {'median s':>9} {'Melem/s':>8} {'target':>7}  met"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['op']:10} {r['shape']:12} {r['elements']:>10} {r['median_s']:>9.4f} "
                     f"{r['elements_per_s'] / 1e6:>8.1f} {r['target_per_s'] / 1e6:>7.0f}  "
                     f"{'yes' if r['meets_target'] else 'NO'}")
    return "\n".join(lines)
