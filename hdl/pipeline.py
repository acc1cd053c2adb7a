"""Fixed-latency pipelines for stream components with II = 1.

:class:`Pipeline` registers stages under one shared enable.  With the enable of a stalling stream,

    enable = ~o.valid | o.ready          i.ready = enable

every stage holds while the sink stalls: nothing is dropped or duplicated, but ``o.ready`` fans out
to every register of the datapath, which is what limits the clock of a wide pipeline.

:class:`CreditPipeline` never stalls its datapath (enable = 1) and puts an output queue after it:

    accepted in cycle a  ->  stage p holds it in cycle a + p  ->  queue  ->  ``o`` in cycle a + P + 2
    i.ready = (held < capacity)          held: elements accepted and not yet taken from ``o``

``held`` is a register, so neither ``i.ready`` nor ``o.valid`` depends combinationally on
``o.ready``, and ``o.ready`` reaches only the queue's read side and the output register.  The queue
(``P + 2`` entries of distributed RAM with an asynchronous read, then the output register) can take
every element the datapath holds, so a stalled sink loses nothing; with the sink always ready the
pipeline accepts an element every cycle.  A reset clears every valid bit, the queue and ``held``,
so no stale element survives it.
"""

from __future__ import annotations

from amaranth.hdl import Const, Signal, Value, unsigned
from amaranth.lib import memory

__all__ = ["Pipeline", "Stage", "CreditPipeline", "credit_latency", "multiply_stages", "MULTIPLY_STAGES",
           "DSP_WIDTH"]


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


def credit_latency(stages: int) -> int:
    """Latency of a :class:`CreditPipeline` with ``stages`` datapath stages: the queue write and the
    output register add two cycles."""
    return stages + 2


class CreditPipeline(Pipeline):
    """A :class:`Pipeline` that never stalls, between an input stream ``i`` and an output stream
    ``o`` (module docstring): build the stages with :meth:`stage`, then :meth:`finish` with the
    payload of the last one.

    ``i.ready`` and the first stage's valid bit are driven here; ``o`` by :meth:`finish`.
    """

    def __init__(self, m, i, o, *, name: str = "p"):
        self.i, self.o = i, o
        super().__init__(m, Const(1), i.valid & i.ready, name=name)

    @property
    def output_latency(self) -> int:
        """Cycles from an accepted input to its output with no stalls, once finished."""
        return credit_latency(self.latency)

    @property
    def capacity(self) -> int:
        """The most elements held at once: the queue's entries plus the output register."""
        return self.output_latency + 1

    def finish(self, payload):
        """Queue the last stage's ``payload`` (aligned with ``self.valid``) and drive ``o``."""
        m, i, o = self.m, self.i, self.o
        payload = Value.cast(payload)
        entries = self.output_latency            # held <= capacity leaves at most this many queued
        depth = 1 << max(1, (entries - 1).bit_length())
        # distributed RAM: an asynchronous read, so no block RAM's clock-to-out on the way to ``o``
        mem = memory.Memory(shape=unsigned(len(payload)), depth=depth, init=[],
                            attrs={"ram_style": "distributed"})
        m.submodules[f"{self.name}_queue"] = mem
        wr, rd = mem.write_port(), mem.read_port(domain="comb")
        produce = Signal(range(depth), name=f"{self.name}_produce")
        consume = Signal(range(depth), name=f"{self.name}_consume")
        queued = Signal(range(depth + 1), name=f"{self.name}_queued")
        load = ~o.valid | o.ready
        read = (queued != 0) & load
        m.d.comb += [wr.addr.eq(produce), wr.data.eq(payload), wr.en.eq(self.valid), rd.addr.eq(consume)]
        m.d.sync += [produce.eq(produce + self.valid), consume.eq(consume + read),
                     queued.eq(queued + self.valid - read)]
        with m.If(load):
            m.d.sync += [o.valid.eq(queued != 0), o.payload.eq(rd.data)]
        held = Signal(range(self.capacity + 1), name=f"{self.name}_held")
        accept, take = i.valid & i.ready, o.valid & o.ready
        m.d.sync += held.eq(held + accept - take)
        m.d.comb += i.ready.eq(held < self.capacity)
        return o


#: pipeline stages of :func:`multiply_stages`
MULTIPLY_STAGES = 2
#: the widest unsigned operand one multiplier block takes (ECP5 MULT18X18D: 18-bit signed)
DSP_WIDTH = 17


def multiply_stages(pipe: Pipeline, a, b):
    """``a * b`` in :data:`MULTIPLY_STAGES` registered stages, each product of at most
    ``DSP_WIDTH``-bit unsigned operands with nothing between it and its registers: stage 1 the
    partial products of the wider operand's ``DSP_WIDTH``-bit slices with the other, stage 2 their
    sum (one carry chain).  Signed or narrow operands take one product in stage 1."""
    a, b = Value.cast(a), Value.cast(b)
    if len(b) > len(a):
        a, b = b, a
    if a.shape().signed or b.shape().signed or len(a) <= DSP_WIDTH or len(b) > DSP_WIDTH:
        return pipe.stage(p=pipe.stage(p=a * b).p).p
    parts = {f"p{n}": a[lo:lo + DSP_WIDTH] * b for n, lo in enumerate(range(0, len(a), DSP_WIDTH))}
    s = pipe.stage(**parts)
    total = sum(s[f"p{n}"] << (n * DSP_WIDTH) for n in range(len(parts)))
    return pipe.stage(p=total[:len(a) + len(b)]).p
