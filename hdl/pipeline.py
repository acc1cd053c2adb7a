"""A fixed-latency pipeline with one shared enable, for stream components with II = 1.

Every stage register advances when the output register is empty or being taken:

    enable = ~o.valid | o.ready          i.ready = enable

``o.valid`` is a register, so it never depends combinationally on ``o.ready`` (the stream rule);
``i.ready`` does, which the rule allows.  A stall holds every stage, so nothing is dropped or
duplicated, and a reset clears every valid bit, so no stale element survives it.
"""

from __future__ import annotations

from amaranth.hdl import Signal, Value

__all__ = ["Pipeline", "Stage"]


class Stage:
    """The registers of one stage: attribute access by name, plus ``valid``."""

    def __init__(self, valid, regs: dict):
        self.valid = valid
        self._regs = regs
        for k, v in regs.items():
            setattr(self, k, v)

    def __getitem__(self, name):
        return self._regs[name]


class Pipeline:
    """Stages registered under one enable.

    ``enable`` is the advance condition; ``valid_in`` the input valid.  ``stage(**values)``
    registers each value (an Amaranth value) and returns a :class:`Stage`; ``latency`` counts the
    stages added so far.
    """

    def __init__(self, m, enable, valid_in, *, name: str = "p"):
        self.m = m
        self.enable = enable
        self.valid = valid_in
        self.latency = 0
        self.name = name
        self.carried = {}

    def carry(self, **values):
        """Values that travel along every later stage (re-registered at each one), aligned with the
        data; read them back from ``carried``."""
        self.carried.update({k: Value.cast(v) for k, v in values.items()})

    def stage(self, **values) -> Stage:
        self.latency += 1
        prefix = f"{self.name}{self.latency}_"
        valid = Signal(name=prefix + "valid")
        regs = {}
        with self.m.If(self.enable):
            self.m.d.sync += valid.eq(self.valid)
            for k, v in values.items():
                regs[k] = self._register(prefix + k, v)
            for k, v in self.carried.items():
                self.carried[k] = self._register(prefix + "c_" + k, v)
        self.valid = valid
        return Stage(valid, regs)

    def _register(self, name, value):
        value = Value.cast(value)
        r = Signal(value.shape(), name=name)
        self.m.d.sync += r.eq(value)
        return r
