"""Stimulus for a stepped operator (``golden/steps.py``): samples of ``T`` frames of spike
increments, the golden outputs, and the stream the wrapper takes.

A sample's increments come from a target: the operator's own stimulus (``verif/stimulus.py``: random
rows, corners, or the captured activations of the converted LLM) gives input codes ``c``; their
totals ``X ~ c * 2**in_shift / M`` (``M`` the position's multiplier) are split over the steps as a spiking layer delivers them
(a random share of the total each step, with some steps overshooting and later ones correcting),
clipped to the increment range.  Corner samples add increments pinned at both ends of the range
(totals that saturate the operator's input) and all-zero samples.  ``increments=`` takes per-step
increments recorded elsewhere (the spiking network's) as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from spikeops.golden.steps import StepConfig, requant, run_steps

from . import stimulus

__all__ = ["SteppedStimulus", "make_stepped"]


@dataclass
class SteppedStimulus:
    """Samples of increments ``(T, n)`` (n: the row length, or ``lanes``), their masks ``(n,)``
    (Softmax) and the norms' weights."""

    cfg: StepConfig
    samples: list
    masks: list | None = None
    weights: dict = field(default_factory=dict)

    @property
    def elements(self) -> int:
        return sum(s.size for s in self.samples)

    def mask(self, j):
        return None if self.masks is None else self.masks[j]

    def expected(self) -> list:
        """The golden outputs of each sample, ``(T, n)``."""
        return [run_steps(self.cfg, s, mask=self.mask(j), **self.weights) for j, s in enumerate(self.samples)]

    def final(self) -> list:
        """``f`` of each sample's final totals: what its difference outputs must sum to."""
        rec = self.cfg.record
        out = []
        for j, s in enumerate(self.samples):
            codes = requant(self.cfg, s.sum(axis=0))
            kw = dict(self.weights)
            if rec.masked and self.masks is not None:
                kw["mask"] = self.masks[j][None, :]
            y = rec.run(codes[None, :] if rec.shape.is_row else codes, self.cfg.inner, **kw)
            out.append(np.asarray(y, dtype=np.int64).reshape(-1))
        return out

    def stream(self) -> list[dict]:
        """The input elements in stream order, each ``{"data", "last", "masked"}`` (frame by frame,
        step by step)."""
        items = []
        for j, s in enumerate(self.samples):
            mask = self.mask(j)
            for frame in s:
                for k, v in enumerate(frame):
                    items.append({"data": int(v), "last": int(k == len(frame) - 1),
                                  "masked": int(mask is not None and not mask[k])})
        return items

    def expected_stream(self) -> list[dict]:
        out = []
        for y in self.expected():
            for frame in y:
                out += [{"data": int(v), "last": int(k == len(frame) - 1)} for k, v in enumerate(frame)]
        return out


def _split(rng, totals, T: int, lo: int, hi: int) -> np.ndarray:
    """``(T, n)`` increments whose sum is ``totals`` where the range allows it (the rest clipped)."""
    n = totals.shape[0]
    share = rng.dirichlet(np.ones(T), size=n).T if T > 1 else np.ones((1, n))
    inc = np.floor(share * totals[None, :]).astype(np.int64)
    if T > 2:  # an early overshoot corrected later, as a spiking layer's partial sums do
        k = rng.integers(0, T - 1)
        over = rng.integers(-(hi // 4) - 1, hi // 4 + 1, n)
        inc[k] += over
        inc[k + 1] -= over
    inc[-1] += totals - inc.sum(axis=0)
    return np.clip(inc, lo, hi)


def make_stepped(cfg: StepConfig, kind: str = "random", *, samples: int = 8, seed: int = 0,
                 increments=None, masks=None, weights=None) -> SteppedStimulus:
    """``samples`` samples of ``kind`` (a :mod:`.stimulus` kind, or ``corners``: pinned and zero
    increments besides the operator's corners); or the samples given: ``increments`` (``(T, n)``
    arrays), their ``masks`` (Softmax, ``(n,)`` each) and ``weights`` (the norms' codes)."""
    rec = cfg.record
    rng = np.random.default_rng(seed)
    lo, hi = cfg.inc_range
    inner = cfg.inner
    base = stimulus.make(rec.name, inner, "random" if kind == "corners" else kind,
                         size=samples * (rec.row_length(inner) or cfg.lanes), seed=seed)
    if weights is None:
        weights = base.weights if rec.weights else {}
    if increments is not None:
        given = [np.asarray(s, dtype=np.int64) for s in increments]
        given_masks = None if masks is None else [np.asarray(k, dtype=bool) for k in masks]
        return SteppedStimulus(cfg, given, given_masks, weights)
    if rec.shape.is_row:
        rows, masks = base.rows[:samples], (None if base.masks is None else base.masks[:samples])
    else:
        flat = np.concatenate(base.rows)
        flat = np.resize(flat, samples * cfg.lanes)
        rows, masks = [flat[j * cfg.lanes:(j + 1) * cfg.lanes] for j in range(samples)], None
    mults = np.asarray(cfg.in_mults if cfg.in_mults is not None else [cfg.in_mult] * cfg.frame, dtype=np.float64)
    out = []
    for row in rows:
        scale = 2.0 ** cfg.in_shift / mults[:len(row)]
        totals = np.round(np.asarray(row, dtype=np.float64) * scale).astype(np.int64)
        out.append(_split(rng, totals, cfg.steps, lo, hi))
    if kind == "corners":
        n = out[0].shape[1]
        out += [np.full((cfg.steps, n), hi), np.full((cfg.steps, n), lo), np.zeros((cfg.steps, n), np.int64),
                np.where(np.arange(cfg.steps)[:, None] % 2 == 0, hi, lo) * np.ones((1, n), np.int64)]
        if masks is not None:
            masks = list(masks) + [np.arange(n) % 3 != 1 for _ in range(4)]
    return SteppedStimulus(cfg, out, None if masks is None else [np.asarray(k, bool) for k in masks], weights)
