"""Division Neuron Group: ``q = A * 2**shift / B`` as a population count of integer LIF neurons.

Number formats: ``A`` (numerator total) is unsigned ``num_width`` bits, ``B`` (denominator total)
unsigned ``den_width`` bits, optionally with a power-of-two exponent ``B * 2**b_exp``; ``q`` is
unsigned ``q_width`` bits and means ``A / B`` with ``shift`` fraction bits.

Stage 1, shift scaling (the base threshold).  Leading-one detection on ``B`` gives the shift
``e = theta_bits - bit_length(B)`` that places B's leading one at bit ``theta_bits - 1``:

    theta = B * 2**e                        (a theta_bits-wide threshold; exact when B fits)
    I     = floor(A * 2**(e + shift - b_exp))   (the input current)
    I    += theta >> 1                      (rounding="nearest": a bias current of half a threshold)

Stage 2, the population: neuron ``i`` (``i = 1 .. 2**q_width - 1``) has threshold ``i * theta`` and
fires iff ``I >= i * theta``, so the spike count is

    q = min(floor(I / theta), 2**q_width - 1)          (theta == 0: every neuron fires)

which is ``floor(A * 2**shift / B)`` (or that rounded half up) exactly whenever
``bit_length(B) <= theta_bits``, and otherwise within a relative error below ``2**(1 - theta_bits)``
(the guard bits: ``theta_bits - q_width`` of them keep theta's truncation far below one LSB of q).

Three realisations compute the same ``q`` neuron by neuron and must be bit-identical:

* ``thermometer``: ``2**q_width - 1`` neurons with thresholds ``i * theta`` in parallel, one step;
* ``temporal``: one integrate-and-fire neuron, reset by subtraction, charged with ``I`` once and
  counted over ``2**q_width - 1`` steps;
* ``binary``: ``q_width`` neurons with thresholds ``theta * 2**j`` (``j = q_width-1 .. 0``), each
  subtracting its threshold when it fires and passing its membrane on; spikes weigh ``2**j``
  (a restoring divider written as neurons).

``divide(..., realisation="fast")`` is the vectorised path the operators use.
"""

from __future__ import annotations

import functools

from dataclasses import dataclass

import numpy as np

from .choices import DivArch, Rounding
from .config import Config
from .fixed import FixedFormat
from .neurons import lif_step
from .shift import barrel_shift, bit_length

__all__ = ["DivisionConfig", "divide", "ARCHITECTURES", "REALISATIONS", "ROUNDINGS"]

ARCHITECTURES = DivArch.values()
REALISATIONS = ("fast",) + ARCHITECTURES
ROUNDINGS = Rounding.values()
#: largest population a parallel (thermometer) or serial (temporal) group may have: 2**12 - 1
MAX_UNARY_Q_WIDTH = 12


@dataclass(frozen=True)
class DivisionConfig(Config):
    """Parameters of one Division Neuron Group (see the module docstring for the equations)."""

    kind = "division"
    num_width: int = 16
    den_width: int = 16
    shift: int = 8
    q_width: int = 9
    theta_bits: int = 24
    arch: str = "binary"
    rounding: str = "nearest"

    def _validate(self):
        self._int("num_width", 1, 62)
        self._int("den_width", 1, 62)
        self._int("shift", -62, 62)
        self._int("q_width", 1, 40)
        self._int("theta_bits", 2, 60)
        self._choice("arch", DivArch)
        self._choice("rounding", Rounding)
        if self.q_width + self.theta_bits > 61:
            self._fail("theta_bits", f"with q_width={self.q_width} needs {self.q_width + self.theta_bits}-bit "
                       "comparators; allowed: q_width + theta_bits <= 61")
        if self.arch in ("thermometer", "temporal") and self.q_width > MAX_UNARY_Q_WIDTH:
            self._fail("arch", f"needs 2**{self.q_width} - 1 neurons/steps for q_width={self.q_width}; "
                       f"allowed: q_width <= {MAX_UNARY_Q_WIDTH} for 'thermometer' and 'temporal', "
                       "any q_width for 'binary'")

    @functools.cached_property
    def q_max(self) -> int:
        return (1 << self.q_width) - 1

    @functools.cached_property
    def population_size(self) -> int:
        """Neurons in the group: ``2**q_width - 1`` unary ones, or ``q_width`` binary ones."""
        return self.q_width if self.arch == "binary" else self.q_max

    @functools.cached_property
    def current_width(self) -> int:
        """Width of the input current ``I`` and the comparators: ``q_width + theta_bits`` bits."""
        return self.q_width + self.theta_bits

    @functools.cached_property
    def q_format(self) -> FixedFormat:
        return FixedFormat(self.q_width, self.shift, signed=False)

    def costs(self) -> dict:
        return {"div_arch": self.arch, "div_neurons": self.population_size, "div_q_width": self.q_width,
                "div_current_width": self.current_width}

    def derived(self) -> dict:
        return {"q_max": self.q_max, "population_size": self.population_size,
                "current_width": self.current_width, "q_format": self.q_format.to_json()}


def _stage1(a, b, cfg: DivisionConfig, b_exp):
    """Shift scaling: returns ``(current, theta, saturated)`` (int64 arrays)."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    e = cfg.theta_bits - bit_length(b)
    theta = barrel_shift(b, e)
    k = e + (cfg.shift - np.asarray(b_exp, dtype=np.int64))
    # I >= 2**(bit_length(a) - 1 + k) >= 2**(q_width + theta_bits) > q_max * theta: saturated; the
    # test also keeps the shift below from overflowing int64.  A zero numerator is never saturated
    # (0 / B = 0 however small B is).
    saturated = (a != 0) & (bit_length(a) + k > cfg.current_width)
    current = barrel_shift(np.where(saturated, 0, a), np.where(saturated | (a == 0), 0, k))
    if cfg.rounding == "nearest":
        current = current + (theta >> 1)
    return current, theta, saturated


def _count_fast(current, theta, cfg):
    q = current // np.maximum(theta, 1)
    return np.where(theta == 0, cfg.q_max, np.minimum(q, cfg.q_max))


def _count_thermometer(current, theta, cfg):
    thresholds = theta[..., None] * np.arange(1, cfg.q_max + 1, dtype=np.int64)
    _, spikes = lif_step(0, current[..., None], thresholds)
    return spikes.sum(axis=-1, dtype=np.int64)


def _count_temporal(current, theta, cfg):
    v = np.zeros_like(current)
    count = np.zeros_like(current)
    for t in range(cfg.q_max):
        v, spike = lif_step(v, current if t == 0 else 0, theta, reset="subtract")
        count += spike
    return count


def _count_binary(current, theta, cfg):
    v = current
    q = np.zeros_like(current)
    for j in range(cfg.q_width - 1, -1, -1):
        v, spike = lif_step(v, 0, theta << j, reset="subtract")
        q += spike.astype(np.int64) << j
    return q


_COUNTERS = {"fast": _count_fast, "thermometer": _count_thermometer,
             "temporal": _count_temporal, "binary": _count_binary}


def divide(a, b, cfg: DivisionConfig, *, b_exp=0, realisation: str = "fast", check: bool = True):
    """Quotient ``q`` of the Division Neuron Group for numerators ``a`` and denominators ``b``.

    ``b_exp`` (int or array) gives B's power-of-two exponent.  ``realisation`` selects the neuron-
    by-neuron simulation (``"thermometer"``, ``"temporal"``, ``"binary"``) or the vectorised
    ``"fast"`` path; all four are bit-identical.  ``check=False`` skips the input range checks (for
    operators that guarantee them).
    """
    if realisation not in _COUNTERS:
        raise ValueError(f"divide: realisation={realisation!r} is not allowed; allowed: "
                         + ", ".join(map(repr, REALISATIONS)))
    if check:
        for name, v, wname in (("a", a, "num_width"), ("b", b, "den_width")):
            w = getattr(cfg, wname)
            v = np.asarray(v)
            if v.dtype.kind not in "iu":
                raise ValueError(f"divide: {name} must hold integers, not dtype {v.dtype}")
            if v.size and (v.min() < 0 or v.max() >= (1 << w)):
                bad = v.min() if v.min() < 0 else v.max()
                raise ValueError(f"divide: {name}={int(bad)} is outside the unsigned {w}-bit range "
                                 f"({wname}={w}); allowed: [0, {(1 << w) - 1}]")
    if realisation == "fast" and np.ndim(b_exp) == 0:
        k = cfg.shift - int(b_exp)
        if cfg.den_width <= cfg.theta_bits and k >= 0 and cfg.num_width + k + 2 <= 62:
            return _divide_exact(a, b, cfg, k)
    current, theta, saturated = _stage1(a, b, cfg, b_exp)
    q = _COUNTERS[realisation](current, theta, cfg)
    return np.where(saturated, cfg.q_max, q).astype(np.int64)


def _divide_exact(a, b, cfg: DivisionConfig, k: int):
    """The fast path when B always fits theta (no truncation) and the shift is a left shift.

    Then theta = B * 2**e with e >= 0 and I = A * 2**(e + k) exactly, so with N = A * 2**k:
    floor: q = floor(N / B); nearest: floor((N + floor(theta/2)) / theta) = floor((2N + B) / 2B)
    (for e = 0 and odd B no integer lies between N/B and (N + 1/2)/B).  Saturation as in stage 1.
    """
    n = np.asarray(a, dtype=np.int64) << k
    b = np.asarray(b, dtype=np.int64)
    safe_b = np.maximum(b, 1)
    q = (2 * n + safe_b) // (2 * safe_b) if cfg.rounding == "nearest" else n // safe_b
    return np.where(b == 0, cfg.q_max, np.minimum(q, cfg.q_max))
