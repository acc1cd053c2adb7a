"""A read-only table in block RAM whose data leave a register: the memory's own output register on
ECP5, a fabric register elsewhere.

:class:`TableRom` holds ``rows`` (unsigned integers of ``width`` bits) and gives up to two read
ports (:meth:`TableRom.read_port`), each with :data:`ROM_LATENCY` = 2 registers under its enable:

    cycle c:      addr (with en)
    cycle c + 1:  the row read into the memory's data latch
    cycle c + 2:  data = rows[addr], from a register

Which circuit holds the second register is the emission's
:class:`~spikeops.hdl.dsp.Primitives` choice (the platform Amaranth hands to ``elaborate``):

- ``generic``: ``amaranth.lib.memory`` with a synchronous read port (Yosys infers a block RAM) and a
  register in the fabric after it.  ECP5's DP16KD, inferred, has its output register off: 5.8 ns from
  the clock to the data (speed grade 6), which caps the path into the fabric register near 150 MHz.
- ``ecp5``: Lattice ``DP16KD`` blocks instantiated in their 1,024 x 18 mode with ``REGMODE "OUTREG"``
  (0.97 ns from the clock to the data), ``ceil(width / 18)`` blocks side by side, port A for the first
  reader and port B for the second; the rows are the blocks' ``INITVAL_00`` .. ``INITVAL_3F``
  (:func:`dp16kd_initvals`, the layout Yosys writes when it infers the block; a test compares the
  two).  Tables deeper than 1,024 rows keep the generic circuit.  The simulators read
  :data:`ECP5_SIMULATION_MODELS` (``ecp5_dp16kd.v``: a behavioural model of the mode used here; Yosys
  ships only a black box).

Both give the same data in the same cycles.
"""

from __future__ import annotations

from amaranth.hdl import Elaboratable, Module, Signal, unsigned
from amaranth.lib import memory

from .dp16kd import DP16KD_MODES, DP16KD_WIDTH, DP16KDPort, dp16kd, dp16kd_initvals
from .dsp import Primitives, primitives_of

__all__ = ["TableRom", "ROM_LATENCY", "DP16KD_DEPTH", "DP16KD_WIDTH", "dp16kd_initvals"]

#: registers from a read port's address to its data
ROM_LATENCY = 2
#: rows of one DP16KD in the 18-bit mode used here
DP16KD_DEPTH = DP16KD_MODES[DP16KD_WIDTH]


class _ReadPort:
    def __init__(self, rom, index):
        self.addr = Signal(range(rom.depth), name=f"rom_addr{index}")
        self.en = Signal(name=f"rom_en{index}", init=1)
        self.data = Signal(unsigned(rom.width), name=f"rom_data{index}")


class TableRom(Elaboratable):
    """``rows`` (unsigned ints of ``width`` bits) read through up to two ports (module docstring)."""

    def __init__(self, rows, width: int):
        self.rows = [int(r) for r in rows]
        self.width = int(width)
        if not self.rows or any(not 0 <= r < 1 << self.width for r in self.rows):
            raise ValueError(f"TableRom: rows must be a non-empty list of {self.width}-bit unsigned integers")
        self.depth = len(self.rows)
        self._ports = []

    def read_port(self) -> _ReadPort:
        """A new read port (``addr``, ``en`` in; ``data`` :data:`ROM_LATENCY` cycles later)."""
        if len(self._ports) == 2:
            raise ValueError("TableRom: 3 read ports are not allowed; allowed: at most 2")
        self._ports.append(_ReadPort(self, len(self._ports)))
        return self._ports[-1]

    def elaborate(self, platform):
        m = Module()
        if primitives_of(platform) == Primitives.ECP5 and self.depth <= DP16KD_DEPTH:
            self._ecp5(m)
        else:
            mem = m.submodules.mem = memory.Memory(shape=unsigned(self.width), depth=self.depth, init=self.rows)
            for p in self._ports:
                rd = mem.read_port()
                m.d.comb += [rd.addr.eq(p.addr), rd.en.eq(p.en)]
                with m.If(p.en):
                    m.d.sync += p.data.eq(rd.data)
        return m

    def _ecp5(self, m):
        ports = self._ports
        for b in range(-(-self.width // DP16KD_WIDTH)):
            lo = b * DP16KD_WIDTH
            n = min(DP16KD_WIDTH, self.width - lo)
            words = [(r >> lo) & ((1 << DP16KD_WIDTH) - 1) for r in self.rows]
            sides = []
            for j in range(2):                 # port A for the first reader, B for the second
                if j < len(ports):
                    p = ports[j]
                    out = Signal(DP16KD_WIDTH, name=f"rom{b}_do{'ab'[j]}")
                    m.d.comb += p.data[lo:lo + n].eq(out[:n])
                    sides.append(DP16KDPort(addr=p.addr, ce=p.en, oce=p.en, do=out))
                else:
                    sides.append(None)
            m.submodules[f"bram{b}"] = dp16kd(DP16KD_WIDTH, *sides, initvals=dp16kd_initvals(words))
