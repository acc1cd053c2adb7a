"""Real LLM activations for the co-simulation and the error report, shipped with the package.

``verif/data/smollm2.npz`` (SmolLM2-135M: Softmax, SiLU, RMSNorm with d=576) and
``verif/data/minilm.npz`` (all-MiniLM-L6-v2: Softmax, GELU, LayerNorm with d=384) are capture files
(format: :mod:`spikeops.gen.llm.capture`) written by::

    spikeops capture --prompts 4 --max-rows 8 --calibration-texts 16 -o verif/data/smollm2.npz
    spikeops capture --model minilm --prompts 8 --max-rows 16 --calibration-texts 16 -o verif/data/minilm.npz

Each instance's codes are in its own calibrated format; :func:`rows` returns them as real values so
that a consumer re-quantises them to the configuration under test (saturating, as hardware would).
Sigmoid takes SiLU's inputs.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

__all__ = ["DATA", "rows", "source"]

DATA = Path(__file__).resolve().parent / "data"
#: op -> capture file holding it (and the op whose inputs it uses)
SOURCES = {"softmax": ("smollm2", "softmax"), "silu": ("smollm2", "silu"), "sigmoid": ("smollm2", "silu"),
           "rmsnorm": ("smollm2", "rmsnorm"), "gelu": ("minilm", "gelu"), "layernorm": ("minilm", "layernorm")}


@lru_cache(maxsize=None)
def _load(name: str):
    from spikeops.gen.llm.capture import load
    path = DATA / f"{name}.npz"
    return load(path) if path.exists() else None


def source(op: str) -> str | None:
    """The capture file (name) that holds ``op``'s activations, or None when it is missing."""
    name, _ = SOURCES[op]
    return f"{name}.npz" if _load(name) is not None else None


def rows(op: str, d: int | None = None):
    """``(values, masks)``: the captured rows of ``op`` in real units (float64; Softmax's masked
    positions -inf, each row cut after its last valid position, with a bool mask per row), every
    instance in forward order; None when no capture holds ``op`` with row length ``d``."""
    name, src = SOURCES[op]
    cap = _load(name)
    if cap is None:
        return None
    values, masks = [], []
    for c in cap.by_op(src):
        v = c.values()
        if d is not None and src != "softmax" and v.shape[1] != d:
            return None
        for j in range(len(v)):
            if src == "softmax":
                valid = np.nonzero(c.mask[j])[0]
                n = int(valid[-1]) + 1 if valid.size else 1
                values.append(np.where(c.mask[j, :n], v[j, :n], -np.inf))
                masks.append(c.mask[j, :n].copy())
            else:
                values.append(v[j])
    return values, (masks if src == "softmax" else None)
