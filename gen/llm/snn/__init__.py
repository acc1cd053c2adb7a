"""The converted LLM as a spiking network (issue 14): a quantised ANN (QANN) of a Llama-family model
and its time-stepped spiking twin (SpikeZIP-TF's ST-BIF+ neurons, or SpikeLLM's multi-level spikes),
with the spikeops integer operators (or float ones) on spike totals, proven equal to the QANN after
settling, and its activity and energy.

* :mod:`.config`: :class:`SNNConfig` (``"T=4,L=16,W=8,A=8"``), :class:`EnergyConfig`;
* :mod:`.quantizers`: weights, activation scales, integer rescaling, exact integer products;
* :mod:`.neurons`: the integer multi-level integrate-and-fire neuron (and its numpy reference);
* :mod:`.layers`: integer linear layers, the product rule, operators on totals;
* :mod:`.observe`: the quantiser sites seen on the float model;
* :mod:`.engine`: one decoder layer as integers, step by step;
* :mod:`.network`: :func:`calibrate`, :func:`convert`, :class:`SpikingLlama`, :class:`Run`;
* :mod:`.activity`: spikes, synaptic operations, operator costs, energy.
"""

from .config import EnergyConfig, SNNConfig
from .network import Calibration, Run, SpikingLlama, calibrate, convert

__all__ = ["SNNConfig", "EnergyConfig", "Calibration", "Run", "SpikingLlama", "calibrate", "convert"]
