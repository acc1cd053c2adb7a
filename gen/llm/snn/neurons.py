"""The bipolar multi-level integrate-and-fire neuron that replaces an activation quantiser.

Integer state, threshold ``theta = 2**G`` (the quantiser's scale ``s`` in current units, see
:class:`.quantizers.Requant`), levels ``[lo, hi] = [-N/2, N/2 - 1]``, at most ``L`` spikes a step:

    V_0 = theta / 2,  C_0 = 0                              (half a threshold: round half up)
    V  <- V + I_t                                          (integrate the step's input current)
    s_t = clamp(floor(V / theta), -L, L)                   (signed spike count; floor = V >> G)
    s_t = clamp(s_t, lo - C, hi - C)                       (the running count stays in the levels)
    C  <- C + s_t,   V <- V - s_t * theta                  (subtract s_t thresholds)

With ``L = 1`` this is SpikeZIP-TF's ST-BIF+ neuron; with larger L SpikeLLM's multi-level spikes.
The input arrives at step 0 (later steps carry what upstream layers emit).  **Settling**: once the
input stops, the neuron is quiet when ``0 <= V < theta`` or its count sits at the level it is
pushed against; then ``C = clamp(floor(Z / theta + 1/2), lo, hi)`` with ``Z = sum_t I_t``, which is
exactly the quantiser ``clamp(floor(x/s + 1/2), -N/2, N/2 - 1)`` of ``x = Z * s / theta``: the QANN.
(``V = theta/2 + Z - C theta``; ``0 <= V < theta`` is ``C = floor(Z/theta + 1/2)``; a count held
at ``hi`` with ``V >= theta`` means that floor is above ``hi``, and likewise at ``lo``.)

``L = None`` (unbounded) evaluates the quantiser in one step: the QANN's single pass.

:func:`if_reference` is the plain numpy model of these equations (Python integers, one neuron
array, any threshold); :class:`IFNeurons` the torch population the network runs (int64), tested
against it.
"""

from __future__ import annotations

import torch

from spikeops.golden.neurons import multilevel_if

__all__ = ["if_reference", "IFNeurons"]


#: the plain numpy model of the equations (the specification, in golden)
if_reference = multilevel_if


class IFNeurons:
    """A population of the neurons (module docstring) over ``shape``, threshold ``2**G``.

    ``step(I)`` integrates the current ``I`` (int64, or None for no input) and returns the spikes
    ``s_t`` (int64, or None when no neuron fires); ``count`` is the running total ``C`` (the spike
    train's sum, what downstream products use; updated in place, so read it after a step rather
    than keep it across steps), ``pending`` whether some neuron would still fire without further
    input.
    """

    def __init__(self, shape, G: int, L: int | None, lo: int, hi: int, name: str = ""):
        if G < 1:
            raise ValueError(f"IFNeurons {name}: G={G} is out of range; allowed: >= 1 (the membrane "
                             "starts at half a threshold, 2**(G-1))")
        self.G, self.L, self.lo, self.hi, self.name = int(G), L, int(lo), int(hi), name
        self.v = torch.full(tuple(shape), 1 << (G - 1), dtype=torch.int64)
        self.count = torch.zeros(tuple(shape), dtype=torch.int64)
        self._pending = False  # None: not known yet (computed when asked)
        self.steps = 0

    @property
    def pending(self) -> bool:
        """Would some neuron fire at the next step without input?  (``V >= theta`` below ``hi``, or
        ``V < 0`` above ``lo``.)"""
        if self._pending is None:
            self._pending = bool(((self.v >> self.G > 0) & (self.count < self.hi)).any()
                                 or ((self.v < 0) & (self.count > self.lo)).any())
        return self._pending

    def step(self, current: torch.Tensor | None) -> torch.Tensor | None:
        self.steps += 1
        if current is None and not self.pending:
            return None
        v = self.v
        if current is not None:
            v += current
        # in place on one new tensor (the spikes): each pass over a population the size of the
        # attention probabilities costs, and a fresh tensor per operation costs more
        s = torch.bitwise_right_shift(v, self.G)
        if self.L is not None:
            s.clamp_(-self.L, self.L)
        s += self.count
        s.clamp_(self.lo, self.hi)  # clamp(s, lo - C, hi - C), as C + s in the levels
        s -= self.count
        fired = bool(s.any())
        if fired:
            self.count += s
            v.sub_(s, alpha=1 << self.G)
        self._pending = None if fired or current is not None else False
        return s if fired else None
