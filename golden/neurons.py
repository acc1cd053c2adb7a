"""Integer leaky integrate-and-fire (LIF) neurons and populations (twin of ``hdl/neurons.py``).

One step of a neuron with membrane ``v``, input current ``i``, threshold ``theta``:

    v <- v - (v >> leak) + i          (leak=None: no leak, a plain integrate-and-fire neuron)
    spike = v >= theta
    v <- v - theta  if spike and reset == "subtract"
    v <- 0          if spike and reset == "zero"

All quantities are int64 integers; ``>>`` is an arithmetic (floor) shift.  Arrays broadcast, so a
*population* is simply a neuron whose ``theta`` (and state) has a neuron axis.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import Config

__all__ = ["LIFConfig", "lif_step", "lif_run", "multilevel_if"]

RESETS = ("subtract", "zero")


@dataclass(frozen=True)
class LIFConfig(Config):
    """A population of ``neurons`` integer LIF neurons with ``membrane_width``-bit signed membranes.

    ``leak`` is the leak shift (``None``: integrate-and-fire), ``reset`` is ``"subtract"`` or
    ``"zero"``.  Thresholds are inputs (each neuron may have its own), not parameters, so the same
    population serves the Division Neuron Group with data-dependent thresholds.
    """

    kind = "lif"
    neurons: int = 1
    membrane_width: int = 32
    leak: int | None = None
    reset: str = "subtract"

    def _validate(self):
        self._int("neurons", 1, 1 << 16)
        self._int("membrane_width", 2, 62)
        if self.leak is not None:
            self._int("leak", 1, self.membrane_width)
        self._choice("reset", RESETS)


def lif_step(v, i, theta, *, leak: int | None = None, reset: str = "subtract"):
    """One LIF step; returns ``(v_next, spike)`` (``spike`` boolean)."""
    v = np.asarray(v, dtype=np.int64)
    if leak is not None:
        v = v - (v >> leak)
    v = v + np.asarray(i, dtype=np.int64)
    theta = np.asarray(theta, dtype=np.int64)
    spike = v >= theta
    if reset == "subtract":
        v = np.where(spike, v - theta, v)
    elif reset == "zero":
        v = np.where(spike, 0, v)
    else:
        raise ValueError(f"lif_step: reset={reset!r} is not allowed; allowed: {', '.join(map(repr, RESETS))}")
    return v, spike


def lif_run(currents, theta, *, v0=0, leak: int | None = None, reset: str = "subtract",
            membrane_width: int | None = None):
    """Run ``len(currents)`` steps (``currents[t]`` broadcasts against ``theta``).

    Returns ``(spikes, v)``: spikes stacked on a new leading time axis, and the final membrane.
    With ``membrane_width`` the membrane is checked never to leave its signed range (an overflow is a
    configuration error the RTL would silently wrap, so the model refuses it).
    """
    v = np.asarray(v0, dtype=np.int64)
    spikes = []
    for i in currents:
        v, s = lif_step(v, i, theta, leak=leak, reset=reset)
        if membrane_width is not None:
            lim = 1 << (membrane_width - 1)
            if (v >= lim).any() or (v < -lim).any():
                raise OverflowError(f"lif_run: membrane leaves the s{membrane_width} range")
        spikes.append(s)
    return np.stack(spikes), v


def multilevel_if(currents, theta: int, L: int | None, lo: int, hi: int):
    """The bipolar multi-level integrate-and-fire neuron of the spiking conversion
    (``spikeops.gen.llm.snn.neurons``) and of the stepped operators' spike output
    (``spikeops.golden.steps``), on ``currents`` ``(T, ...)`` (integers)::

        V_0 = theta // 2, C_0 = 0;   V += I_t;   s = clamp(floor(V / theta), -L, L)   (L None: no bound)
        s = clamp(s, lo - C, hi - C);   C += s;   V -= s * theta

    Python integers inside (an exact floor for any ``theta`` >= 1).  Returns ``(spikes (T, ...),
    counts, V)`` as int64."""
    cur = np.asarray(currents, dtype=object)
    v = np.full(cur.shape[1:], theta // 2, dtype=object)
    c = np.zeros(cur.shape[1:], dtype=object)
    spikes = []
    for i_t in cur:
        v = v + i_t
        s = v // theta
        if L is not None:
            s = np.minimum(np.maximum(s, -L), L)
        s = np.minimum(np.maximum(s, lo - c), hi - c)
        c = c + s
        v = v - s * theta
        spikes.append(s)
    return (np.asarray(spikes, dtype=np.int64).reshape(cur.shape), np.asarray(c, dtype=np.int64),
            np.asarray(v, dtype=np.int64))
