"""Integer LIF neurons in hardware (twin of ``golden/neurons.py``).

``lif_update`` returns the expressions of one step, ``v' = v - (v >> leak) + i``, ``spike = v' >= theta``,
reset by subtraction or to zero; the Division Neuron Group's populations are built from it, and
:class:`LIFPopulation` is the generic population unit: ``neurons`` neurons with ``membrane_width``-bit
signed membranes, one step per cycle while ``step`` is high.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib.wiring import In, Out

from spikeops.golden.neurons import LIFConfig

from .component import ConfigComponent, ConfigSignature

__all__ = ["lif_update", "LIFPopulation"]


def lif_update(v, current, theta, *, leak=None, reset="subtract"):
    """One LIF step as expressions: returns ``(v_next, spike)``."""
    if leak is not None:
        v = v - (v >> leak)
    v = v + current
    spike = v >= theta
    if reset == "subtract":
        v_next = Mux(spike, v - theta, v)
    elif reset == "zero":
        v_next = Mux(spike, 0, v)
    else:
        raise ValueError(f"lif_update: reset={reset!r} is not allowed; allowed: 'subtract', 'zero'")
    return v_next, spike


class LIFPopulation(ConfigComponent):
    """``neurons`` integer LIF neurons (one :class:`spikeops.golden.neurons.LIFConfig`).

    Ports: ``current`` and ``theta`` (one ``membrane_width``-bit signed value per neuron), ``step``
    (advance one time step), ``clear`` (membranes to 0), ``spikes`` (registered, one bit per neuron)
    and ``membranes``.  Each step matches :func:`spikeops.golden.neurons.lif_step` bit for bit.
    """

    class Signature(ConfigSignature):
        config_type = LIFConfig
        owner = "LIFPopulation"

        @classmethod
        def build_members(cls, config):
            w, n = config.membrane_width, config.neurons
            return {
                "current": In(signed(w)).array(n),
                "theta": In(signed(w)).array(n),
                "step": In(1),
                "clear": In(1),
                "spikes": Out(unsigned(n)),
                "membranes": Out(signed(w)).array(n),
            }

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        for n in range(cfg.neurons):
            v = Signal(signed(cfg.membrane_width), name=f"v{n}")
            v_next, spike = lif_update(v, self.current[n], self.theta[n], leak=cfg.leak, reset=cfg.reset)
            with m.If(self.clear):
                m.d.sync += [v.eq(0), self.spikes[n].eq(0)]
            with m.Elif(self.step):
                m.d.sync += [v.eq(v_next), self.spikes[n].eq(spike)]
            m.d.comb += self.membranes[n].eq(v)
        return m
