"""Row buffers: one ``amaranth.lib.memory`` block per buffer (infers block RAM), with a synchronous
read port and a write port, plus the sequential reader that feeds a pipeline pass."""

from __future__ import annotations

from amaranth.lib import memory

__all__ = ["RowBuffer"]


class RowBuffer:
    """A ``depth``-entry buffer of ``shape`` values added to module ``m`` as ``name``.

    ``write(m, addr, data, en)`` and ``read(m, addr, en)`` drive the ports; read data appear one
    cycle after an enabled read (``self.data``), and hold while ``en`` is low.
    """

    def __init__(self, m, name: str, shape, depth: int, init=()):
        self.memory = memory.Memory(shape=shape, depth=depth, init=list(init))
        m.submodules[name] = self.memory
        self.wr = self.memory.write_port()
        self.rd = self.memory.read_port()
        self.depth = depth

    @property
    def data(self):
        return self.rd.data

    def write(self, m, addr, data, en):
        m.d.comb += [self.wr.addr.eq(addr), self.wr.data.eq(data), self.wr.en.eq(en)]

    def read(self, m, addr, en):
        m.d.comb += [self.rd.addr.eq(addr), self.rd.en.eq(en)]
