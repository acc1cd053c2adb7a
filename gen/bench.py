"""Benchmarks: golden-model throughput, and the fast back end's speed against the numpy back end.

A benchmark, not a test: the machine is shared and noisy, so each figure is the median of
``repeats`` timed runs on the same inputs, measured in one process.

* :func:`golden_throughput` (``spikeops bench``): elements per second per operator at its default
  configuration.  Targets (issue #2): elementwise operators 20M elements/s, row operators 5M
  elements/s, on the 2-core machine.
* :func:`fast_backend_speed` (``spikeops bench --fast-backend``): the two back ends of converted
  models (:mod:`spikeops.gen.llm.fast`: ``numpy_golden``, the golden model, against ``fast_golden``)
  on SmolLM2-135M shapes, with the check that every result is bit-identical.  Needs torch (the
  ``llm`` extra); torch itself is imported in ``gen/llm`` only.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from spikeops.golden import registry
from spikeops.golden.fixed import quantize

__all__ = ["TARGETS", "golden_throughput", "format_bench", "SMOLLM2_OPS", "fast_backend_speed",
           "format_fast_backend"]

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


# -- the fast back end against the numpy back end ---------------------------------------------------
#: the spiking operators of SmolLM2-135M: attention Softmax, the MLP's SiLU, RMSNorm
SMOLLM2_OPS = ("softmax", "silu", "rmsnorm")
#: one batch of 16 x 100 tokens at SmolLM2-135M's sizes (9 heads, MLP 1536, hidden 576)
_SMOLLM2 = {"batch": 16, "tokens": 100, "heads": 9, "mlp": 1536, "hidden": 576}
#: outlier channels of the hidden states (x2000), like real LLM activations
_OUTLIERS = [5, 77, 300]


def _smollm2_case(op, rng):
    """``(cfg, x, kwargs)`` of one call of ``op`` (a record) on SmolLM2-135M shapes, chosen by its shape:
    masked row: attention scores (batch, heads, tokens, tokens) ~ N(0, 3^2) with a causal mask;
    weighted row: hidden states (batch, tokens, hidden) ~ N(0, 1) with outlier channels, weights
    as golden_throughput's;
    elementwise: MLP activations (batch, tokens, mlp) ~ N(0, 2^2)."""
    b, t = _SMOLLM2["batch"], _SMOLLM2["tokens"]
    cfg = op.default()
    if op.masked:
        x = rng.standard_normal((b, _SMOLLM2["heads"], t, t), dtype=np.float32) * 3
        return cfg, x, {"mask": np.tril(np.ones((t, t), dtype=bool))}
    if op.shape.is_row:
        d = _SMOLLM2["hidden"]
        if op.fixed_row_length(cfg) is not None:
            cfg = op.default(**{op.row_param: d})
        x = rng.standard_normal((b, t, d), dtype=np.float32)
        x[..., _OUTLIERS] *= 2000.0
        weights = {w: rng.normal(_WEIGHT_CENTRE.get(w, 0.0), 0.3, d) for w in op.weights}
        return cfg, x, op.quantize_weights(cfg, weights)
    return cfg, rng.standard_normal((b, t, _SMOLLM2["mlp"]), dtype=np.float32) * 2, {}


def fast_backend_speed(ops=None, *, repeats: int = 5, seed: int = 0, threads: int | None = None) -> list[dict]:
    """Median seconds of the numpy back end (``numpy_golden``) and the fast back end
    (``fast_golden``) per operator on SmolLM2-135M shapes (default: :data:`SMOLLM2_OPS`), and
    whether the two results are bit-identical.  ``threads``: torch's intra-op threads (default:
    torch's own).  Needs torch."""
    from .llm import fast

    n_threads = fast.threads(threads)
    kernel = fast.kernel_available()
    backends = (("golden", fast.numpy_golden), ("fast", fast.fast_golden))
    rng = np.random.default_rng(seed)
    rows = []
    for name in ops or SMOLLM2_OPS:
        op = registry.get(name)
        cfg, values, kw = _smollm2_case(op, rng)
        x = fast.as_input(values)
        got = fast.fast_golden(name, cfg, x, **kw).numpy()  # warms the tables and the kernels
        want = fast.numpy_golden(name, cfg, x, **kw).numpy()
        same = got.dtype == want.dtype and got.shape == want.shape and got.tobytes() == want.tobytes()
        times = {}
        for label, fn in backends:
            ts = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                fn(name, cfg, x, **kw)
                ts.append(time.perf_counter() - t0)
            times[label] = statistics.median(ts)
        n = x.numel()
        rows.append({"op": name, "shape": tuple(x.shape), "elements": n, "repeats": repeats,
                     "threads": n_threads, "kernel": kernel, "golden_s": times["golden"],
                     "fast_s": times["fast"], "golden_eps": n / times["golden"], "fast_eps": n / times["fast"],
                     "speedup": times["golden"] / times["fast"], "bit_exact": same})
    return rows


def format_fast_backend(rows) -> str:
    if not rows:
        return "no operators"
    r0 = rows[0]
    lines = [f"torch threads {r0['threads']}, CORDIC kernel: "
             f"{'compiled' if r0['kernel'] else 'none (golden norm_root)'}, median of {r0['repeats']}",
             f"{'op':10} {'shape':18} {'golden ms':>10} {'fast ms':>9} {'golden Mel/s':>13} "
             f"{'fast Mel/s':>11} {'speed-up':>9} {'exact':>6}"]
    for r in rows:
        lines.append(f"{r['op']:10} {'x'.join(map(str, r['shape'])):18} {r['golden_s'] * 1e3:10.1f} "
                     f"{r['fast_s'] * 1e3:9.1f} {r['golden_eps'] / 1e6:13.1f} {r['fast_eps'] / 1e6:11.1f} "
                     f"{r['speedup']:8.1f}x {r['bit_exact']!s:>6}")
    return "\n".join(lines)
