"""The time-stepped wrapper in hardware (twin of ``golden/steps.py``; same equations): any operator
fed spike increments frame by frame, emitting the change of its output or output spikes.

Dataflow, one element per cycle (II 1), the operator in the middle unchanged::

    increments -> [accumulate] -> [requantise] -> operator -> [difference / output neuron] -> out
                      |  ^                                        |  ^
                      v  |  totals memory (frame entries)         v  |  previous outputs (and
                                                                       membranes, counts)

**Accumulate** (input pipeline, 3 stages under one enable, :class:`spikeops.hdl.pipeline.Pipeline`):
an accepted element at frame position ``p`` reads ``X[p]`` (the read is issued as it is accepted;
the memory's read port is transparent to its write port, so a frame of one element still reads the
total its predecessor just wrote); the next stage adds the increment (step 0: the increment alone)
and writes ``X[p]`` back; the last stage requantises ``clamp((M X + 2**(in_shift-1)) >>
in_shift)`` into the operator's input format (``M``: ``in_mult``, or the position's ``in_mults``
entry from a table read alongside).  Frame and step counters follow the accepted elements:
a frame ends at ``last`` (row operators) or after ``lanes`` elements (elementwise), and after
``steps`` frames the next sample starts at step 0.

**Difference / output neuron** (output pipeline, 2 stages): the operator's outputs arrive in the
same order, so a second pair of counters tells each one's position and step; the first stage reads
``Y[p]`` (and the neuron's ``V[p]``, ``C[p]``), the second forms ``D = y - Y[p]`` (step 0: ``y``),
writes ``Y[p] = y``, and either emits ``D`` or runs the neuron on ``D`` and emits its spike count.

A reset clears the counters and every valid bit; the memories need no clearing, since step 0 never
reads them.  Nothing waits on a combinational ``ready``: both pipelines stall as a whole, ``o.valid``
is a register.  The operator's other ports (status flags, weight writes) are the wrapper's own.

Latency: the operator's plus ``INPUT_STAGES`` before it and ``OUTPUT_STAGES`` after it.
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, signed
from amaranth.lib import data, memory, stream
from amaranth.lib.wiring import In, Out

from spikeops.golden.steps import Encoding, StepConfig

from . import registry as hdl_registry
from .component import ConfigComponent, ConfigSignature
from .pipeline import Pipeline

__all__ = ["SteppedOperator", "INPUT_STAGES", "OUTPUT_STAGES"]

#: stages before the operator: read issued, accumulate and write back, requantise
INPUT_STAGES = 3
#: stages after the operator: read issued, difference (and neuron)
OUTPUT_STAGES = 2


def _with_data(shape, data_shape):
    """``shape`` (an operator's stream payload: a plain value or a layout with a ``data`` field)
    with its data replaced by ``data_shape``."""
    if isinstance(shape, data.StructLayout):
        return data.StructLayout({name: data_shape if name == "data" else f.shape for name, f in shape})
    return data_shape


def _payload(member):
    """The payload shape of a stream member of a signature."""
    return member.signature.members["payload"].shape


class SteppedOperator(ConfigComponent):
    """The wrapper of ``config.op`` at ``config.inner`` (one :class:`StepConfig`); ``gamma=`` and
    ``beta=`` (the norms' weights, codes) go to the operator."""

    class Signature(ConfigSignature):
        config_type = StepConfig
        owner = "SteppedOperator"

        @classmethod
        def check_parameters(cls, config):
            super().check_parameters(config)
            config.record.component().Signature.check_parameters(config.inner)

        @classmethod
        def build_members(cls, config):
            inner = config.record.component().Signature(config.inner).members
            members = {"i": In(stream.Signature(_with_data(_payload(inner["i"]), signed(config.inc_width)))),
                       "o": Out(stream.Signature(_with_data(_payload(inner["o"]), signed(config.out_format.width))))}
            for name, member in inner.items():
                if name not in ("i", "o"):
                    members[name] = member
            return members

    def __init__(self, config, **weights):
        super().__init__(config)
        #: the wrapped operator's component
        self.operator = hdl_registry.build(config.record, config.inner, **weights)

    @classmethod
    def check_weights(cls, config, **weights):
        comp = config.record.component()
        if hasattr(comp, "check_weights"):
            comp.check_weights(config.inner, **weights)
        elif any(v is not None for v in weights.values()):
            raise ValueError(f"{config.op}: takes no weights; got {', '.join(sorted(weights))}")

    # -- timing ----------------------------------------------------------------------------------
    @classmethod
    def latency_for(cls, config, n: int | None = None) -> int:
        """The operator's latency (``n``: row length) plus the wrapper's stages."""
        comp = config.record.component()
        inner = comp.latency_for(config.inner) if n is None else comp.latency_for(config.inner, n)
        return INPUT_STAGES + inner + OUTPUT_STAGES

    @classmethod
    def first_outputs(cls, config, lengths, last_in) -> list[int]:
        """Row operators: the operator's timing model, shifted by the wrapper's stages.  Exact
        while the operator keeps up with its input (it takes each element ``INPUT_STAGES`` cycles
        after the wrapper does); an operator that holds its input back (a norm's shared CORDIC unit
        on short rows) delays the rows behind by as much."""
        inner = config.record.component().first_outputs(config.inner, lengths,
                                                        [c + INPUT_STAGES for c in last_in])
        return [c + OUTPUT_STAGES for c in inner]

    # -- the circuit -----------------------------------------------------------------------------
    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        op = m.submodules.op = self.operator
        for name, member in self.signature.members.items():
            if name in ("i", "o"):
                continue
            if member.flow == In:
                m.d.comb += getattr(op, name).eq(getattr(self, name))
            else:
                m.d.comb += getattr(self, name).eq(getattr(op, name))
        self._accumulate(m, op.i)
        self._difference(m, op.o)
        return m

    def _frame_counter(self, m, accept, end_of_row, name):
        """Position in the frame and step of the element accepted now (``end_of_row``: its ``last``
        bit, or None for lanes); they advance on ``accept``."""
        cfg = self.config
        pos = Signal(range(cfg.frame), name=f"{name}_pos")
        step = Signal(range(cfg.steps), name=f"{name}_step")
        end = end_of_row if end_of_row is not None else pos == cfg.frame - 1
        with m.If(accept):
            with m.If(end):
                m.d.sync += [pos.eq(0), step.eq(Mux(step == cfg.steps - 1, 0, step + 1))]
            with m.Else():
                m.d.sync += pos.eq(pos + 1)
        return pos, step

    @staticmethod
    def _fields(payload):
        """The payload's fields besides ``data`` (``last``, ``masked``), by name."""
        if isinstance(payload, data.View):
            return {name: payload[name] for name, _ in data.Layout.cast(payload.shape()) if name != "data"}
        return {}

    @staticmethod
    def _data(payload):
        return payload.data if isinstance(payload, data.View) else payload

    def _accumulate(self, m, dst):
        cfg = self.config
        fmt = cfg.inner.in_format
        enable = ~dst.valid | dst.ready
        m.d.comb += self.i.ready.eq(enable)
        accept = self.i.valid & enable
        fields = self._fields(self.i.payload)
        pos, step = self._frame_counter(m, accept, fields.get("last"), "in")
        totals = m.submodules.totals = memory.Memory(shape=signed(cfg.total_width), depth=cfg.frame, init=[])
        wr = totals.write_port()
        rd = totals.read_port(transparent_for=(wr,))
        m.d.comb += [rd.addr.eq(pos), rd.en.eq(accept)]

        p = Pipeline(m, enable, self.i.valid, name="acc")
        p.carry(**fields)
        s1 = p.stage(inc=self._data(self.i.payload), pos=pos, first=step == 0)
        total = Mux(s1.first, s1.inc, rd.data + s1.inc)
        m.d.comb += [wr.addr.eq(s1.pos), wr.data.eq(total), wr.en.eq(enable & s1.valid)]
        s2 = p.stage(total=total)
        if cfg.in_mults is None:
            mult = Const(cfg.in_mult, cfg.in_mult.bit_length() + 1)
        else:  # each position's multiplier from a table, read as the element enters stage 2
            table = m.submodules.mults = memory.Memory(shape=signed(cfg.max_mult.bit_length() + 1), depth=cfg.frame,
                                                       init=list(cfg.in_mults))
            mrd = table.read_port()
            m.d.comb += [mrd.addr.eq(s1.pos), mrd.en.eq(enable)]
            mult = mrd.data
        v = s2.total * mult
        if cfg.in_shift:
            v = (v + (1 << (cfg.in_shift - 1))) >> cfg.in_shift
        code = Mux(v < fmt.min_code, fmt.min_code, Mux(v > fmt.max_code, fmt.max_code, v))
        s3 = p.stage(code=code)
        m.d.comb += dst.valid.eq(s3.valid)
        if isinstance(dst.payload, data.View):
            m.d.comb += dst.payload.data.eq(s3.code)
            for name, value in p.carried.items():
                m.d.comb += dst.payload[name].eq(value)
        else:
            m.d.comb += dst.payload.eq(s3.code)

    def _difference(self, m, src):
        cfg = self.config
        enable = ~self.o.valid | self.o.ready
        m.d.comb += src.ready.eq(enable)
        accept = src.valid & enable
        fields = self._fields(src.payload)
        pos, step = self._frame_counter(m, accept, fields.get("last"), "out")
        y_in = self._data(src.payload)
        prev = m.submodules.outputs = memory.Memory(shape=y_in.shape(), depth=cfg.frame, init=[])
        wr = prev.write_port()
        rd = prev.read_port(transparent_for=(wr,))
        m.d.comb += [rd.addr.eq(pos), rd.en.eq(accept)]

        p = Pipeline(m, enable, src.valid, name="dif")
        p.carry(**fields)
        s1 = p.stage(y=y_in, pos=pos, first=step == 0)
        diff = Signal(signed(cfg.diff_width), name="diff")
        m.d.comb += diff.eq(Mux(s1.first, s1.y, s1.y - rd.data))
        write = enable & s1.valid
        m.d.comb += [wr.addr.eq(s1.pos), wr.data.eq(s1.y), wr.en.eq(write)]
        out = diff if cfg.encoding is Encoding.DIFFERENCE else self._neuron(m, diff, s1, accept, pos, write)
        s2 = p.stage(out=out)
        m.d.comb += self.o.valid.eq(s2.valid)
        if isinstance(self.o.payload, data.View):
            m.d.comb += self.o.payload.data.eq(s2.out)
            for name, value in p.carried.items():
                m.d.comb += self.o.payload[name].eq(value)
        else:
            m.d.comb += self.o.payload.eq(s2.out)

    def _neuron(self, m, current, s1, accept, pos, write):
        """The output neuron of ``golden.steps.output_neurons`` on ``current``, its membrane and
        count in two memories read and written like the previous outputs."""
        cfg = self.config
        lo, hi = cfg.levels
        G, L = cfg.out_shift, cfg.out_spikes
        mem_v = m.submodules.membranes = memory.Memory(shape=signed(cfg.membrane_width), depth=cfg.frame, init=[])
        mem_c = m.submodules.counts = memory.Memory(shape=signed(cfg.count_width), depth=cfg.frame, init=[])
        ports = []
        for mem in (mem_v, mem_c):
            wr = mem.write_port()
            rd = mem.read_port(transparent_for=(wr,))
            m.d.comb += [rd.addr.eq(pos), rd.en.eq(accept), wr.addr.eq(s1.pos), wr.en.eq(write)]
            ports.append((rd, wr))
        (rd_v, wr_v), (rd_c, wr_c) = ports
        v = Signal(signed(cfg.membrane_width), name="membrane")
        c = Signal(signed(cfg.count_width), name="count")
        m.d.comb += [v.eq(Mux(s1.first, 1 << (G - 1), rd_v.data) + current),
                     c.eq(Mux(s1.first, 0, rd_c.data))]
        fire = v >> G
        s_l = Mux(fire < -L, -L, Mux(fire > L, L, fire))
        spikes = Signal(signed(cfg.count_width + 1), name="spikes")
        m.d.comb += spikes.eq(Mux(s_l < lo - c, lo - c, Mux(s_l > hi - c, hi - c, s_l)))
        m.d.comb += [wr_v.data.eq(v - (spikes << G)), wr_c.data.eq(c + spikes)]
        return spikes
