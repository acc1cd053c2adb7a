"""Softmax with a mask in hardware (twin of ``golden/ops/softmax.py``; same equations).

Ports: ``i`` streams ``{data: s<in_width>.<in_frac>, masked: 1, last: 1}`` (a position is masked by
``masked`` or by the mask code ``-2**(in_width-1)``); ``o`` streams ``{data: u<out_frac+1>.<out_frac>,
last: 1}``, one output per input, in order.  ``overflow`` (sticky until reset) reports a row longer
than ``d_max``: its first ``d_max`` elements form a row of their own.

Three passes over two row buffers (``d_max`` entries each, block RAM), run by two state machines:

1. receive: store the row, track the maximum of the valid positions (one element per cycle);
2. exponentiate: ``e_i = PWL-Exp(x_i - m + H)`` (0 where masked) into the second buffer with the
   mask flag, summing ``S = sum e_i`` (``n + 5`` cycles for a row of ``n``);
3. divide and send: ``q_i = Division(e_i, S)`` through the II=1 division pipeline, with backpressure.

The next row is received while the previous one is sent (pass 1 of row r+1 overlaps pass 3 of row
r), so a stream of rows takes about ``2n`` cycles per row.  Latency (sink always ready): the first
output follows the later of the row's ``last`` input and the previous row's last output by
``n + 9 + division latency`` cycles (``Softmax.latency_for``).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream
from amaranth.lib.wiring import In, Out

from spikeops.golden.ops.softmax import SoftmaxConfig

from ..division import division_latency, division_stages
from ..exp import exp_latency, exp_stages
from ..pipeline import Pipeline
from ..rowbuffer import RowBuffer
from ..component import ConfigComponent
from .base import OperatorSignature

__all__ = ["Softmax"]


class Softmax(ConfigComponent):
    """Stream softmax over rows of up to ``d_max`` elements (one :class:`SoftmaxConfig`)."""

    class Signature(OperatorSignature):
        config_type = SoftmaxConfig
        owner = "Softmax"

        @classmethod
        def build_members(cls, config):
            return {
                "i": In(stream.Signature(data.StructLayout(
                    {"data": signed(config.in_width), "masked": 1, "last": 1}))),
                "o": Out(stream.Signature(data.StructLayout(
                    {"data": unsigned(config.out_format.width), "last": 1}))),
                "overflow": Out(1),
            }

    @staticmethod
    def latency_for(config, n: int | None = None) -> int:
        """Cycles from accepting a row's last element to its first output (sink always ready):
        the exponentiate pass (``n`` reads, a 4-stage pipeline, its drain) and the send pipeline.
        ``n`` is the row length (default: ``d_max``)."""
        n = config.d_max if n is None else n
        return n + exp_latency(config.exp) + 7 + division_latency(config.division)

    ii = 1

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        ecfg = cfg.exp
        fmt = cfg.in_format
        d_max = cfg.d_max
        idx = range(d_max + 1)

        xbuf = RowBuffer(m, "xbuf", signed(cfg.in_width), d_max)
        # e with the masked flag on top: the send pass needs nothing else, so the next row may
        # overwrite xbuf while this one is sent
        ebuf = RowBuffer(m, "ebuf", unsigned(ecfg.out_width + 1), d_max)

        # receive side
        wr = Signal(idx)           # receive counter
        mx = Signal(signed(cfg.in_width), init=fmt.min_code)  # max over valid positions
        n_rx = Signal(idx)         # length of the received row
        rx_full = Signal()         # a complete row waits in xbuf
        take = Signal()            # the process side takes it
        exp_busy = Signal()        # the process side still reads xbuf
        # process side
        n = Signal(idx)            # length of the row in process
        mx_p = Signal(signed(cfg.in_width))
        total = Signal(unsigned(cfg.sum_width))
        rd = Signal(idx)           # read counter of passes 2 and 3

        # pass 2 pipeline: buffer read (1) + argument register (1) + PWL-Exp (2); never stalls
        exp_go = Signal()
        p2 = Pipeline(m, Const(1), exp_go, name="e")
        s_rd = p2.stage(i=rd)      # data of xbuf appear with this stage
        x = xbuf.data
        masked = x == fmt.mask_code
        s_z = p2.stage(z=(x - mx_p + ecfg.H_codes)[:ecfg.in_width].as_signed(), masked=masked, i=s_rd.i)
        p2.carry(masked=s_z.masked, i=s_z.i)
        e = exp_stages(p2, s_z.z, ecfg)
        e_val = Mux(p2.carried["masked"], 0, e)

        # pass 3 pipeline: ebuf read + division, under the output stream's backpressure
        en3 = ~self.o.valid | self.o.ready
        send_go = Signal()
        p3 = Pipeline(m, en3, send_go & en3, name="q")
        s_e = p3.stage(i=rd, last=rd == n - 1)
        e_word = ebuf.data
        p3.carry(masked=e_word[ecfg.out_width], last=s_e.last)
        q = division_stages(p3, e_word[:ecfg.out_width], total, cfg.division)
        out = p3.stage(q=Mux(p3.carried["masked"], 0, q), last=p3.carried["last"])
        m.d.comb += [self.o.valid.eq(out.valid), self.o.payload.data.eq(out.q),
                     self.o.payload.last.eq(out.last)]

        with m.FSM(name="receive"):
            with m.State("RECEIVE"):
                m.d.comb += self.i.ready.eq(1)
                xin = Mux(self.i.payload.masked, fmt.mask_code, self.i.payload.data)
                xbuf.write(m, wr, xin, self.i.valid)
                with m.If(self.i.valid):
                    valid_pos = ~self.i.payload.masked & (self.i.payload.data != fmt.mask_code)
                    with m.If(valid_pos & (self.i.payload.data > mx)):
                        m.d.sync += mx.eq(self.i.payload.data)
                    m.d.sync += wr.eq(wr + 1)
                    with m.If((wr == d_max - 1) & ~self.i.payload.last):
                        m.d.sync += self.overflow.eq(1)
                    with m.If(self.i.payload.last | (wr == d_max - 1)):
                        m.d.sync += n_rx.eq(wr + 1)
                        m.next = "FULL"
            with m.State("FULL"):
                m.d.comb += rx_full.eq(1)
                with m.If(take):
                    m.next = "HANDED"
            with m.State("HANDED"):  # wait until the exponentiate pass has read xbuf
                with m.If(~exp_busy):
                    m.d.sync += [wr.eq(0), mx.eq(fmt.min_code)]
                    m.next = "RECEIVE"

        drain = Signal(range(8))
        with m.FSM(name="process"):
            with m.State("IDLE"):
                with m.If(rx_full):
                    m.d.comb += take.eq(1)
                    m.d.sync += [n.eq(n_rx), mx_p.eq(mx), rd.eq(0), total.eq(0), drain.eq(0)]
                    m.next = "EXPONENTIATE"
            with m.State("EXPONENTIATE"):
                m.d.comb += exp_busy.eq(1)
                issuing = rd < n
                m.d.comb += exp_go.eq(issuing)
                xbuf.read(m, rd, 1)
                with m.If(issuing):
                    m.d.sync += rd.eq(rd + 1)
                ebuf.write(m, p2.carried["i"], Cat(e_val[:ecfg.out_width], p2.carried["masked"]), p2.valid)
                with m.If(p2.valid):
                    m.d.sync += total.eq(total + e_val)
                with m.If(~issuing):
                    m.d.sync += drain.eq(drain + 1)
                    with m.If(drain == p2.latency):
                        m.d.sync += rd.eq(0)
                        m.next = "SEND"
            with m.State("SEND"):
                issuing = rd < n
                m.d.comb += send_go.eq(issuing)
                ebuf.read(m, rd, en3)
                with m.If(issuing & en3):
                    m.d.sync += rd.eq(rd + 1)
                with m.If(self.o.valid & self.o.ready & self.o.payload.last):
                    m.next = "IDLE"
        return m
