"""Real LLM activations for the co-simulation and the error report, shipped with the package.

``verif/data/smollm2.npz`` (SmolLM2-135M: Softmax, SiLU, RMSNorm with d=576) and
``verif/data/minilm.npz`` (all-MiniLM-L6-v2: Softmax, GELU, LayerNorm with d=384) are capture files
(format: :mod:`spikeops.golden.capture`) written by::

    spikeops capture --prompts 4 --max-rows 8 --calibration-texts 16 -o verif/data/smollm2.npz
    spikeops capture --model minilm --prompts 8 --max-rows 16 --calibration-texts 16 -o verif/data/minilm.npz

Each instance's codes are in its own calibrated format; :func:`rows` returns them as real values so
that a consumer re-quantises them to the configuration under test (saturating, as hardware would).
An operator whose record names ``inputs_of`` (sigmoid: SiLU's) takes that operator's inputs.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from spikeops.golden import registry
from spikeops.golden.capture import load

__all__ = ["DATA", "rows", "source"]

DATA = Path(__file__).resolve().parent / "data"
#: the shipped capture files in the order they are searched: an operator's inputs come from the
#: first one that holds an instance of it (Softmax is in both: SmolLM2's causal rows come first)
FILES = ("smollm2", "minilm")


@lru_cache(maxsize=None)
def _load(name: str):
    path = DATA / f"{name}.npz"
    return load(path) if path.exists() else None


def _file(op: str) -> str | None:
    src = registry.get(op).input_source
    for name in FILES:
        cap = _load(name)
        if cap is not None and cap.by_op(src):
            return name
    return None


def source(op: str) -> str | None:
    """The capture file (name) that holds ``op``'s activations, or None when it is missing."""
    name = _file(op)
    return f"{name}.npz" if name is not None and _load(name) is not None else None


def rows(op: str, d: int | None = None):
    """``(values, masks)``: the captured rows of ``op`` in real units (float64; masked-row
    operators' masked positions -inf, each row cut after its last valid position, with a bool mask
    per row), every instance in forward order; None when no capture holds ``op`` with row length
    ``d``."""
    name = _file(op)
    cap = None if name is None else _load(name)
    if cap is None:
        return None
    src = registry.get(registry.get(op).input_source)
    values, masks = [], []
    for c in cap.by_op(src.name):
        if d is not None and not src.masked and c.x.shape[1] != d:
            return None
        for v, m in c.rows(values=True):
            values.append(v)
            masks.append(m)
    return values, (masks if src.masked else None)
