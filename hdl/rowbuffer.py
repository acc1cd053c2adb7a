"""Row buffers: one block-RAM buffer each, with a write port and one or more synchronous read ports
(a pass each), and the pass that reads queued rows out of a buffer used as a ring.

A :class:`RowBuffer` is either

- plain: an ``amaranth.lib.memory`` block (Yosys infers block RAM); read data appear one cycle
  after an enabled read, from the block's data latch (on ECP5, 5.8 ns from the clock, most of a
  200 MHz cycle); or
- ``registered``: the read data leave a register a cycle later.  On an ``ecp5`` emission
  (:class:`~spikeops.hdl.dsp.Primitives`) that register is the ``DP16KD`` blocks' own output
  register (:mod:`spikeops.hdl.dp16kd`, 0.97 ns from the clock): for each read port one copy of the
  buffer, its port A written and its port B read, in the mode of the fewest blocks for the depth;
  elsewhere (and for buffers deeper than 16,384 entries, or than 1,024 with initial contents) a
  fabric register after the inferred memory.  The same data in the same cycles either way:

      cycle c:      addr (with en)
      cycle c + 1:  the entry read into the data latch (held while en is low)
      cycle c + 2:  data, from the register (which loads every cycle)

so a registered buffer suits a pipeline that never stalls (a credit pipeline): under a stall the
register would move on to the latch's next entry while the stage waiting for it holds.  With
``hold`` the register loads only in a cycle with ``en`` (on ``DP16KD``, its output clock enable),
so the read is two stages that advance with ``en``: for a pipeline whose stages all share that
enable, the data of a read made at stage ``k`` leave the register while the same element is at
stage ``k + 2``, however long it stalls in between.

A write and a read of the same entry in the same cycle are never made by the passes here (the read
value would differ between the two circuits).
"""

from __future__ import annotations

from amaranth.hdl import Const, Elaboratable, Module, Mux, Shape, ShapeCastable, Signal, Value
from amaranth.lib import data, memory

from .claims import Claims
from .dp16kd import DP16KD_WIDTH, DP16KDPort, dp16kd, dp16kd_initvals, dp16kd_mode
from .dsp import Primitives, primitives_of

__all__ = ["RowBuffer", "RingPass", "ring_add"]


def ring_add(ptr, k, depth: int):
    """The entry ``k`` places after ``ptr`` in a ring of ``depth`` entries (``0 <= ptr < depth``,
    ``0 <= k <= depth``)."""
    total = ptr + k
    return Mux(total >= depth, total - depth, total)


def _raw_bits(shape, value) -> int:
    """The bits of ``value`` (an initial entry) as the memory holds them, an unsigned integer."""
    const = Const.cast(shape.const(value)) if isinstance(shape, ShapeCastable) else Const(value, Shape.cast(shape))
    return const.value & ((1 << Shape.cast(shape).width) - 1)


class _RegisteredRam(Elaboratable):
    """A ``depth``-entry RAM of ``shape`` with one write port and ``read_ports`` read ports whose
    data leave a register two cycles after the address (module docstring)."""

    def __init__(self, shape, depth: int, init, read_ports: int, name: str, hold: bool = False):
        self.shape, self.depth, self.init, self.hold = shape, depth, list(init), hold
        self.width = Shape.cast(shape).width
        self.w_addr = Signal(range(depth), name=f"{name}_waddr")
        self.w_data = Signal(shape, name=f"{name}_wdata")
        self.w_en = Signal(name=f"{name}_wen")
        self.r_addr = [Signal(range(depth), name=f"{name}_raddr{k}") for k in range(read_ports)]
        self.r_en = [Signal(name=f"{name}_ren{k}") for k in range(read_ports)]
        self.r_data = [Signal(shape, name=f"{name}_rdata{k}", reset_less=True) for k in range(read_ports)]
        self.peeks = []     # (addr, data) of asynchronous read ports for a proof (:meth:`RowBuffer.peek`)

    def elaborate(self, platform):
        mode = dp16kd_mode(self.depth)
        # contents are laid out for the 18-bit mode only (:func:`dp16kd_initvals`)
        blocks = mode is not None and (not self.init or mode == DP16KD_WIDTH)
        if primitives_of(platform) == Primitives.ECP5 and blocks and self.peeks:
            raise ValueError("RowBuffer.peek: a proof's read port needs the inferred memory, not DP16KD blocks")
        m = Module()
        if primitives_of(platform) == Primitives.ECP5 and blocks:
            raw_w = Value.cast(self.w_data)
            words = [_raw_bits(self.shape, v) for v in self.init]
            for k, (addr, en, out) in enumerate(zip(self.r_addr, self.r_en, self.r_data)):
                raw_r = Signal(self.width, name=f"rdata{k}")
                m.d.comb += Value.cast(out).eq(raw_r)
                for b, lo in enumerate(range(0, self.width, mode)):
                    n = min(mode, self.width - lo)
                    do = Signal(mode, name=f"bram{k}_{b}_do")
                    m.d.comb += raw_r[lo:lo + n].eq(do[:n])
                    init = dp16kd_initvals([(w >> lo) & ((1 << n) - 1) for w in words]) if words else None
                    m.submodules[f"bram{k}_{b}"] = dp16kd(
                        mode, DP16KDPort(addr=self.w_addr, ce=self.w_en, we=self.w_en, di=raw_w[lo:lo + n]),
                        DP16KDPort(addr=addr, ce=en, oce=en if self.hold else 1, do=do), initvals=init)
        else:
            mem = m.submodules.mem = memory.Memory(shape=self.shape, depth=self.depth, init=self.init)
            wr = mem.write_port()
            m.d.comb += [wr.addr.eq(self.w_addr), wr.data.eq(self.w_data), wr.en.eq(self.w_en)]
            for addr, en, out in zip(self.r_addr, self.r_en, self.r_data):
                rd = mem.read_port()
                m.d.comb += [rd.addr.eq(addr), rd.en.eq(en)]
                with m.If(en if self.hold else 1):
                    m.d.sync += out.eq(rd.data)
            for addr, out in self.peeks:
                rd = mem.read_port(domain="comb")
                m.d.comb += [rd.addr.eq(addr), out.eq(rd.data)]
        return m


class RowBuffer:
    """A ``depth``-entry buffer of ``shape`` values added to module ``m`` as ``name``, with
    ``read_ports`` read ports (a block-RAM mapping duplicates the memory for each port beyond one),
    plain or ``registered`` (module docstring).

    ``write(m, addr, data, en)`` and ``read(m, addr, en, port=0)`` drive the ports; read data
    (``self.data`` for port 0, ``self.port_data(k)``) appear :attr:`latency` cycles after an enabled
    read: 1 plain (holding while ``en`` is low), 2 registered (with ``hold``, two reads with ``en``:
    module docstring).
    """

    def __init__(self, m, name: str, shape, depth: int, init=(), read_ports: int = 1,
                 registered: bool = False, hold: bool = False):
        if hold and not registered:
            raise ValueError(f"RowBuffer {name}: hold=True needs registered=True (a plain buffer's latch holds)")
        self.depth = depth
        self.latency = 2 if registered else 1
        self.shape, self.name, self._peeks = shape, name, 0
        if registered:
            ram = m.submodules[name] = _RegisteredRam(shape, depth, init, read_ports, name, hold)
            self._w = (ram.w_addr, ram.w_data, ram.w_en)
            self._r = list(zip(ram.r_addr, ram.r_en, ram.r_data))
            self._ram, self._mem = ram, None
        else:
            mem = m.submodules[name] = memory.Memory(shape=shape, depth=depth, init=list(init))
            self._ram, self._mem = None, mem
            wr = mem.write_port()
            self._w = (wr.addr, wr.data, wr.en)
            self._r = [(rd.addr, rd.en, rd.data) for rd in (mem.read_port() for _ in range(read_ports))]

    @property
    def data(self):
        return self._r[0][2]

    def port_data(self, port: int):
        return self._r[port][2]

    def write(self, m, addr, data, en):
        m.d.comb += [self._w[0].eq(addr), self._w[1].eq(data), self._w[2].eq(en)]

    def read(self, m, addr, en, port: int = 0):
        m.d.comb += [self._r[port][0].eq(addr), self._r[port][1].eq(en)]

    def peek(self, m):
        """An asynchronous read port of its own, ``(addr, data)``: ``data`` is the entry at ``addr``
        in the same cycle (``addr`` is driven by the caller, which may be a proof's harness).  For a
        proof's facts about what the buffer holds (:mod:`spikeops.hdl.claims`), never for an
        emission: block RAM has no such port, and the ``ecp5`` mapping refuses it.  Ask for it while
        elaborating the component that holds the buffer (``m``), before the buffer is."""
        k = self._peeks
        addr = Signal(range(self.depth), name=f"{self.name}_peek{k}_addr")
        data = Signal(self.shape, name=f"{self.name}_peek{k}")
        if self._ram is not None:
            self._ram.peeks.append((addr, data))
        else:
            rd = self._mem.read_port(domain="comb")
            m.d.comb += [rd.addr.eq(addr), data.eq(rd.data)]
        self._peeks += 1
        return addr, data


class RingPass:
    """One pass over rows held in a ring of ``buf.depth`` entries: it takes a row's descriptor from
    ``queue`` (an ``amaranth.lib.fifo`` queue of ``layout``, which has a field ``n``, the row length)
    when idle or on the row's last read, then reads the row's ``n`` entries in order, one per cycle
    where ``advance`` is high, through read port ``port`` of ``buf`` (data one cycle later).

    ``issue``: an entry is read this cycle; ``ptr``: the entry read at the next issue;
    ``first``/``last``: it is the row's first/last;
    ``row``: the descriptor of the row being read; ``take``: a descriptor is taken this cycle
    (``allow`` must be high too).  ``first`` and ``last`` are registers (``last`` is whether one
    entry is left, decided when the count changes), so ``take`` is one LUT off registers.
    """

    def __init__(self, m, buf: RowBuffer, port: int, queue, layout, *, advance=1, allow=1, name: str):
        self.row = Signal(layout, name=f"{name}_row")
        incoming = data.View(layout, queue.r_data)
        ptr = Signal(range(buf.depth), name=f"{name}_ptr")
        busy = Signal(name=f"{name}_busy")
        left = Signal(self.row.n.shape(), name=f"{name}_left")
        self.first = Signal(name=f"{name}_first")
        self.last = Signal(name=f"{name}_last")
        self.issue = busy & advance
        self.take = queue.r_rdy & (~busy | (self.issue & self.last)) & allow
        m.d.comb += queue.r_en.eq(self.take)
        buf.read(m, ptr, advance, port=port)
        with m.If(self.issue):
            m.d.sync += [ptr.eq(Mux(ptr == buf.depth - 1, 0, ptr + 1)), left.eq(left - 1),
                         self.first.eq(0), self.last.eq(left == 2)]
            with m.If(self.last):
                m.d.sync += busy.eq(0)
        with m.If(self.take):
            m.d.sync += [busy.eq(1), left.eq(incoming.n), self.row.eq(incoming),
                         self.first.eq(1), self.last.eq(incoming.n == 1)]
        self.busy, self.left, self.ptr, self._name = busy, left, ptr, name
        self.incoming = incoming     # the descriptor the queue offers

    @property
    def remaining(self):
        """Entries of the row being read still to read (0 when idle)."""
        return Mux(self.busy, self.left, 0)

    def claims(self) -> Claims:
        """The facts of the pass (:mod:`spikeops.hdl.claims`): while busy, between one entry and
        the row's length are left (so the row has one), and ``last`` says whether one is.  (That a
        descriptor the queue offers has an entry is its owner's fact: it knows what it writes.)"""
        n = self._name
        c = Claims()
        c.add(~self.busy | ((self.left >= 1) & (self.left <= self.row.n) & (self.last == (self.left == 1))),
              f"{n}: a busy pass has 1 <= left <= n entries left and last = (left = 1)")
        return c
