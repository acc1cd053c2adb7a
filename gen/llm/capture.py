"""Recording operator inputs during forward passes, into the capture format of
:mod:`spikeops.golden.capture` (which documents the ``.npz`` file and holds ``save``/``load``).

Row sampling: every row is a candidate; an instance keeps at most ``max_rows`` rows, chosen by a
deterministic reservoir (seeded), so the file size is bounded whatever the number of prompts.
"""

from __future__ import annotations

import numpy as np

from spikeops.golden.capture import Capture, Captured, load, pad_rows, save

__all__ = ["Recorder", "Captured", "Capture", "load", "save"]


class Recorder:
    """Collects rows per instance during forward passes (a bounded, seeded reservoir)."""

    def __init__(self, max_rows: int = 256, seed: int = 0):
        if not isinstance(max_rows, int) or max_rows < 1:
            raise ValueError(f"capture: max_rows={max_rows!r} is not allowed; allowed: an integer >= 1")
        self.max_rows = max_rows
        self.rng = np.random.default_rng(seed)
        self.seed = seed
        self.items: dict[str, Captured] = {}

    def record(self, name: str, op: str, layer: int, cfg, codes: np.ndarray, mask=None,
               gamma=None, beta=None):
        """Offer the rows of ``codes`` (any shape; rows on the last axis) of instance ``name``."""
        d = codes.shape[-1]
        rows = np.asarray(codes, dtype=np.int64).reshape(-1, d)
        mrows = None if mask is None else np.broadcast_to(mask, codes.shape).reshape(-1, d)
        item = self.items.get(name)
        if item is None:
            item = self.items[name] = Captured(
                name=name, op=op, layer=layer, cfg=cfg, x=np.empty((0, d), np.int64),
                mask=None if mask is None else np.empty((0, d), bool), gamma=gamma, beta=beta)
        item.calls += 1
        item.shape_seen = tuple(int(s) for s in codes.shape)
        if item.x.shape[1] < d:  # attention rows grow with the sequence: keep the widest
            item.x, item.mask = pad_rows(item.x, item.mask, d, item.cfg)
        elif item.x.shape[1] > d:
            rows, mrows = pad_rows(rows, mrows, item.x.shape[1], cfg)
        # reservoir sampling (Algorithm R), vectorised per call
        seen = item.rows_seen
        n = len(rows)
        free = max(0, self.max_rows - len(item.x))
        take = min(free, n)
        item.x = np.concatenate([item.x, rows[:take]])
        if mrows is not None:
            item.mask = np.concatenate([item.mask, mrows[:take]])
        if take < n:
            idx = np.arange(seen + take, seen + n) + 1
            slots = (self.rng.random(len(idx)) * idx).astype(np.int64)
            hit = slots < self.max_rows
            for j, slot in zip(np.nonzero(hit)[0] + take, slots[hit]):
                item.x[slot] = rows[j]
                if mrows is not None:
                    item.mask[slot] = mrows[j]
        item.rows_seen = seen + n

    def capture(self, **meta) -> Capture:
        meta = dict(meta, max_rows=self.max_rows, seed=self.seed)
        return Capture(list(self.items.values()), meta)


