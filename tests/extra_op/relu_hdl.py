"""ReLU in hardware (twin of ``relu_golden.py``; same equation): one register stage, II 1."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, signed, unsigned
from amaranth.lib import stream
from amaranth.lib.wiring import In, Out

from spikeops.golden.choices import Rounding
from spikeops.hdl.component import ConfigComponent
from spikeops.hdl.ops.base import OperatorSignature
from spikeops.hdl.pipeline import Pipeline

from .relu_golden import ReLUConfig


class ReLU(ConfigComponent):
    class Signature(OperatorSignature):
        config_type = ReLUConfig
        owner = "ReLU"

        @classmethod
        def build_members(cls, config):
            return {"i": In(stream.Signature(signed(config.in_width))),
                    "o": Out(stream.Signature(unsigned(config.out_width)))}

    @staticmethod
    def latency_for(config, n: int | None = None) -> int:
        """One register from an accepted input to its output (``n``: elementwise, not used)."""
        return 1

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        en = ~self.o.valid | self.o.ready
        m.d.comb += self.i.ready.eq(en)
        pipe = Pipeline(m, en, self.i.valid & en, name="relu")
        x = Mux(self.i.payload < 0, 0, self.i.payload)
        s = cfg.out_frac - cfg.in_frac
        if s >= 0:
            y = x << s
        else:
            r = (1 << (-s - 1)) if cfg.rounding == Rounding.NEAREST else 0
            y = (x + r) >> -s
        top = cfg.out_format.max_code
        out = pipe.stage(y=Mux(y > top, top, y)[:cfg.out_width])
        m.d.comb += [self.o.payload.eq(out.y), self.o.valid.eq(out.valid)]
        return m
