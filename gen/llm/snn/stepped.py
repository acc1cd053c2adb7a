"""The spiking network's operator instances as time-stepped operators (:mod:`spikeops.golden.steps`):
the per-step increments an instance receives inside the SNN, and the configuration that reproduces it.

:func:`watch` gives every integer operator instance of a :class:`.network.SpikingLlama` a step log;
after ``network.run(...)``, :func:`site` turns one instance's log into a :class:`SteppedSite`:

- ``cfg``: a :class:`~spikeops.golden.steps.StepConfig` with the instance's operator configuration,
  ``steps = T``, the increment width its increments need, and its rescaling ``M / 2**G``
  (:class:`.quantizers.Requant`) as ``in_mult`` or, per channel, ``in_mults``, and ``in_shift = G``;
- ``increments`` ``(samples, T, n)``: a sample is a row (Softmax: a query's scores; a norm: a
  token's hidden state) or, for an elementwise operator, a token's channels (``lanes = n``); steps
  after the instance's layer went quiet carry zeros;
- ``masks`` (Softmax), ``weights`` (the norms' codes), and ``outputs`` ``(samples, T, n)``: the
  differences the network computed, which :func:`spikeops.golden.steps.run_steps` reproduces bit
  for bit (``tests/test_llm_snn_steps.py``), and which the RTL wrapper is co-simulated against.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spikeops.golden.steps import StepConfig

__all__ = ["SteppedSite", "watch", "unwatch", "site", "run_watched"]


@dataclass
class SteppedSite:
    name: str
    layer: int
    cfg: StepConfig
    increments: np.ndarray
    masks: np.ndarray | None
    weights: dict
    outputs: np.ndarray

    @property
    def samples(self) -> list:
        return list(self.increments)


def watch(network) -> list:
    """Give every integer operator instance of ``network`` an empty step log; return them."""
    ops = [op for layer in network.layers for op in layer.ops.values()] + [network.final.op]
    ops = [op for op in ops if not op.float_ops]
    for op in ops:
        op.step_log = []
    return ops


def unwatch(ops):
    for op in ops:
        op.step_log = None


def run_watched(lm, texts, max_tokens: int):
    """Run the spiking network of ``lm`` (a loaded model whose ``model`` is a
    :class:`.network.SpikingLlama`) on ``texts`` (truncated to ``max_tokens``) with every integer
    operator watched; return ``(run, the watched instances, tokens)``.  Call :func:`unwatch` after."""
    import torch

    ops = watch(lm.model)
    enc = lm.tokenizer(list(texts), padding=True, truncation=True, max_length=max_tokens, return_tensors="pt")
    with torch.no_grad():
        run = lm.model.run(enc["input_ids"], enc["attention_mask"])
    return run, ops, int(enc["attention_mask"].sum())


def _width(a: np.ndarray) -> int:
    lo, hi = (int(a.min()), int(a.max())) if a.size else (0, 0)
    return max(2, (-lo - 1).bit_length() + 1 if lo < 0 else 1, hi.bit_length() + 1)


def site(op, steps: int, *, max_samples: int | None = None) -> SteppedSite:
    """The instance ``op`` (watched, after a run) as a stepped operator over ``steps`` steps;
    ``max_samples``: keep the first samples whose increments are not all zero."""
    log = op.step_log
    if not log:
        raise ValueError(f"snn: {op.name} has no step log; watch() the network and run it first")
    if len(log) > steps:
        raise ValueError(f"snn: {op.name} ran {len(log)} steps; allowed: steps >= {len(log)}")
    seen = [x for dX, _, dY in log for x in (dX, dY) if x is not None]
    if not seen:
        raise ValueError(f"snn: {op.name} received no increment in the run")
    shape = tuple(seen[0].shape)
    n = shape[-1]
    inc = np.zeros((steps,) + shape, dtype=np.int64)
    out = np.zeros_like(inc)
    mask = None
    for t, (dX, m, dY) in enumerate(log):
        if dX is not None:
            inc[t] = dX.numpy()
        if dY is not None:
            out[t] = dY.numpy()
        if m is not None:
            mask = np.broadcast_to(m.numpy(), shape).reshape(-1, n)
    inc = inc.reshape(steps, -1, n).transpose(1, 0, 2)
    out = out.reshape(steps, -1, n).transpose(1, 0, 2)
    keep = np.flatnonzero(inc.any(axis=(1, 2)))
    if max_samples is not None:
        keep = keep[:max_samples]
    inc, out = inc[keep], out[keep]
    mask = None if mask is None else mask[keep]
    M = op.requant.M.reshape(-1).numpy().astype(np.int64)
    row = op.rec.shape.is_row
    kw = {"lanes": None if row else n, "in_shift": op.requant.G}
    if M.size == 1:
        kw["in_mult"] = int(M[0])
    else:
        frame = op.rec.row_length(op.cfg) if row else n
        kw["in_mults"] = tuple(int(v) for v in np.resize(M, frame))
    cfg = StepConfig(op=op.rec.name, inner=op.cfg, steps=steps, inc_width=_width(inc), **kw)
    weights = {k: np.asarray(v, dtype=np.int64) for k, v in op.weights.items()}
    return SteppedSite(op.name, op.layer, cfg, inc, mask, weights, out)
