"""Row buffers: one ``amaranth.lib.memory`` block per buffer (infers block RAM), with a write port
and one or more synchronous read ports (a pass each), and the pass that reads queued rows out of a
buffer used as a ring."""

from __future__ import annotations

from amaranth.hdl import Mux, Signal
from amaranth.lib import data, memory

__all__ = ["RowBuffer", "RingPass"]


class RowBuffer:
    """A ``depth``-entry buffer of ``shape`` values added to module ``m`` as ``name``, with
    ``read_ports`` read ports (a block-RAM mapping duplicates the memory for each port beyond one).

    ``write(m, addr, data, en)`` and ``read(m, addr, en, port=0)`` drive the ports; read data appear
    one cycle after an enabled read (``self.data`` for port 0, ``self.port_data(k)``), and hold while
    ``en`` is low.
    """

    def __init__(self, m, name: str, shape, depth: int, init=(), read_ports: int = 1):
        self.memory = memory.Memory(shape=shape, depth=depth, init=list(init))
        m.submodules[name] = self.memory
        self.wr = self.memory.write_port()
        self.rds = [self.memory.read_port() for _ in range(read_ports)]
        self.depth = depth

    @property
    def data(self):
        return self.rds[0].data

    def port_data(self, port: int):
        return self.rds[port].data

    def write(self, m, addr, data, en):
        m.d.comb += [self.wr.addr.eq(addr), self.wr.data.eq(data), self.wr.en.eq(en)]

    def read(self, m, addr, en, port: int = 0):
        m.d.comb += [self.rds[port].addr.eq(addr), self.rds[port].en.eq(en)]


class RingPass:
    """One pass over rows held in a ring of ``buf.depth`` entries: it takes a row's descriptor from
    ``queue`` (an ``amaranth.lib.fifo`` queue of ``layout``, which has a field ``n``, the row length)
    when idle or on the row's last read, then reads the row's ``n`` entries in order, one per cycle
    where ``advance`` is high, through read port ``port`` of ``buf`` (data one cycle later).

    ``issue``: an entry is read this cycle; ``first``/``last``: it is the row's first/last;
    ``row``: the descriptor of the row being read; ``take``: a descriptor is taken this cycle
    (``allow`` must be high too).
    """

    def __init__(self, m, buf: RowBuffer, port: int, queue, layout, *, advance=1, allow=1, name: str):
        self.row = Signal(layout, name=f"{name}_row")
        incoming = data.View(layout, queue.r_data)
        ptr = Signal(range(buf.depth), name=f"{name}_ptr")
        busy = Signal(name=f"{name}_busy")
        left = Signal(self.row.n.shape(), name=f"{name}_left")
        self.issue = busy & advance
        self.first = left == self.row.n
        self.last = left == 1
        self.take = queue.r_rdy & (~busy | (self.issue & self.last)) & allow
        m.d.comb += queue.r_en.eq(self.take)
        buf.read(m, ptr, advance, port=port)
        with m.If(self.issue):
            m.d.sync += [ptr.eq(Mux(ptr == buf.depth - 1, 0, ptr + 1)), left.eq(left - 1)]
            with m.If(self.last):
                m.d.sync += busy.eq(0)
        with m.If(self.take):
            m.d.sync += [busy.eq(1), left.eq(incoming.n), self.row.eq(incoming)]
