"""Stimulus for the co-simulation: rows of integer input codes (and masks) per operator.

Kinds: ``random`` (Gaussian logits / hidden states at the operator's scale), ``corners`` (extremes of
the input range, all-equal rows, masked and fully masked rows, zero vectors, rows of length 1 and of
the maximum length), ``exhaustive`` (every input code, elementwise operators) and ``activations``
(real inputs captured from the converted LLMs, ``verif/captured.py``, re-quantised to the
configuration under test; or the codes passed as ``activations=``; a synthetic heavy-tailed stand-in
with outlier channels only where no capture fits, e.g. a norm with another ``d``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from spikeops.golden import registry
from spikeops.golden.fixed import quantize
from spikeops.hdl.manifest import payload_port

from . import captured

__all__ = ["Stimulus", "make", "KINDS", "pack", "unpack"]

KINDS = ("random", "corners", "exhaustive", "activations")


@dataclass
class Stimulus:
    """Rows of input codes (one row per element for elementwise operators) and optional masks."""

    op: str
    kind: str
    rows: list
    masks: list | None = None
    weights: dict = field(default_factory=dict)

    @property
    def elements(self) -> int:
        return sum(len(r) for r in self.rows)

    def row_starts(self) -> list[int]:
        starts, k = [], 0
        for r in self.rows:
            starts.append(k)
            k += len(r)
        return starts

    def expected(self, cfg) -> np.ndarray:
        """The golden model's output codes, one per input element, in stream order."""
        op = registry.get(self.op)
        if not op.shape.is_row:
            return op.run(np.concatenate(self.rows), cfg)
        out = []
        for j, row in enumerate(self.rows):
            mask = None if self.masks is None else self.masks[j][None, :]
            out.append(op.run(row[None, :], cfg, mask=mask, **self.weights)[0])
        return np.concatenate(out)


def _field(fields, name):
    for f in fields:
        if f["name"] == name:
            return f
    return None


def pack(stim: Stimulus, manifest: dict) -> list[int]:
    """Packed ``i__payload`` words (fields at their manifest offsets; two's complement data); of an
    AXI4-Stream top, the payload its tdata/tlast/tuser carry."""
    port = payload_port(manifest, "i")
    fields = port.get("fields")
    words = []
    for j, row in enumerate(stim.rows):
        mask = None if stim.masks is None else stim.masks[j]
        for pos, v in enumerate(row):
            if fields is None:
                words.append(int(v) & ((1 << port["width"]) - 1))
                continue
            d = _field(fields, "data")
            w = (int(v) & ((1 << d["width"]) - 1)) << d["offset"]
            last = _field(fields, "last")
            if last is not None and pos == len(row) - 1:
                w |= 1 << last["offset"]
            masked = _field(fields, "masked")
            if masked is not None and mask is not None and not mask[pos]:
                w |= 1 << masked["offset"]
            words.append(w)
    return words


def unpack(words, manifest: dict):
    """``(data, last)`` arrays from packed ``o__payload`` words (data sign-extended when signed)."""
    port = payload_port(manifest, "o")
    fields = port.get("fields")
    fmt_signed = manifest["config"]["derived"]["out_format"]["signed"]
    words = np.asarray(words, dtype=object)
    if fields is None:
        width, offset, last = port["width"], 0, None
    else:
        d = _field(fields, "data")
        width, offset, last = d["width"], d["offset"], _field(fields, "last")
    data = np.array([(int(w) >> offset) & ((1 << width) - 1) for w in words], dtype=np.int64)
    if fmt_signed:
        data = np.where(data >= 1 << (width - 1), data - (1 << width), data)
    lasts = None if last is None else np.array([(int(w) >> last["offset"]) & 1 for w in words])
    return data, lasts


def _row_lengths(rec, cfg, rng, count):
    fixed = rec.fixed_row_length(cfg)
    if fixed is None:
        return [int(rng.integers(1, rec.row_length(cfg) + 1)) for _ in range(count)]
    return [fixed] * count


#: the centre of the random weights: scales around 1, offsets around 0
_WEIGHT_CENTRE = {"gamma": 1.0, "beta": 0.0}


def _weights(rec, cfg, rng):
    d = rec.row_length(cfg)
    return rec.quantize_weights(cfg, {w: rng.normal(_WEIGHT_CENTRE.get(w, 0.0), 0.4, d) for w in rec.weights})


def make(op: str, cfg, kind: str, *, size: int = 2000, seed: int = 0, activations=None) -> Stimulus:
    """Stimulus of ``kind`` for operator ``op`` at ``cfg`` with about ``size`` elements."""
    if kind not in KINDS:
        raise ValueError(f"stimulus: kind={kind!r} is not allowed; allowed: {', '.join(KINDS)}")
    rng = np.random.default_rng(seed)
    fmt = cfg.in_format
    rec = registry.get(op)
    weights = _weights(rec, cfg, np.random.default_rng(1234))  # one set per configuration
    if not rec.shape.is_row:
        if kind == "exhaustive":
            x = np.arange(fmt.min_code, fmt.max_code + 1, dtype=np.int64)
        elif kind == "corners":
            x = np.array([fmt.min_code, fmt.min_code + 1, -1, 0, 1, fmt.max_code - 1, fmt.max_code]
                         + [s * (h << fmt.frac) for h in (1, 5, 8, 16) for s in (-1, 1)
                            if (h << fmt.frac) <= fmt.max_code], dtype=np.int64)
        elif kind == "activations" and activations is not None:
            x = np.asarray(activations, dtype=np.int64).ravel()[:size]
        elif kind == "activations" and (real := captured.rows(op)) is not None:
            values = np.concatenate(real[0])
            pick = np.sort(rng.choice(values.size, size=min(size, values.size), replace=False))
            x = quantize(values[pick], fmt)
        else:
            scale = 2.0 if kind == "random" else 4.0
            x = quantize(np.clip(scale * rng.standard_t(3 if kind == "random" else 2, size), -60, 60), fmt)
        return Stimulus(op, kind, [np.array([v]) for v in x])

    if kind == "exhaustive":
        raise ValueError(f"stimulus: kind='exhaustive' covers every input code of an elementwise "
                         f"operator; {op} takes rows: allowed here: 'random', 'corners', 'activations'")
    fixed, n_max = rec.fixed_row_length(cfg), rec.row_length(cfg)
    lengths = _row_lengths(rec, cfg, rng, max(1, size // (fixed if fixed else max(1, n_max // 2))))
    rows, masks = [], None
    if kind == "corners":
        lens = [1, n_max, min(2, n_max), n_max] if fixed is None else [fixed] * 6
        rows = [np.full(lens[0], fmt.max_code), np.full(lens[1], fmt.min_code),
                np.array([fmt.max_code, fmt.min_code] * (lens[2] // 2) + [0] * (lens[2] % 2))[:lens[2]],
                np.full(lens[3], min(123, fmt.max_code))]
        if fixed is not None:
            rows += [np.zeros(fixed, dtype=np.int64), np.where(np.arange(fixed) == 0, fmt.max_code, 0)]
        if rec.masked:
            short = min(3, n_max)
            masks = [np.ones(len(r), bool) for r in rows]
            rows += [np.clip(np.arange(n_max) - n_max // 2, fmt.min_code, fmt.max_code), np.zeros(short, dtype=np.int64)]
            masks += [np.arange(n_max) % 3 != 0, np.zeros(short, bool)]  # masked and fully masked rows
            rows.append(np.array([fmt.mask_code, 7, fmt.mask_code][:short]))  # the in-band mask code
            masks.append(np.ones(short, bool))
        return Stimulus(op, kind, [np.asarray(r, dtype=np.int64) for r in rows], masks, weights)
    real = captured.rows(op, fixed) if kind == "activations" else None
    if real is not None:
        values, vmasks = real
        limit = n_max
        masks = None if vmasks is None else []
        total = 0
        for j in rng.permutation(len(values)):
            row = values[j][:limit]
            rows.append(quantize(row, fmt))
            total += len(row)
            if vmasks is not None:
                masks.append(vmasks[j][:limit])
            if total >= size:
                break
        return Stimulus(op, kind, rows, masks, weights)
    for n in lengths:
        if rec.masked:  # attention logits
            rows.append(quantize(rng.normal(0, 7, n), fmt))
        elif kind == "activations":
            x = 1.0 * rng.standard_t(3, n)
            x[rng.choice(n, size=min(2, n), replace=False)] = rng.choice([-1, 1]) * fmt.max_value * 0.8
            rows.append(quantize(x, fmt))
        else:
            rows.append(quantize(rng.normal(0.3, 1.5, n), fmt))
    if rec.masked:
        masks = [rng.random(len(r)) < 0.85 for r in rows]
        # causal rows: a prefix valid, the rest masked
        for j in range(0, len(rows), 4):
            n = len(rows[j])
            masks[j] = np.arange(n) <= rng.integers(0, n)
    return Stimulus(op, kind, rows, masks, weights)
