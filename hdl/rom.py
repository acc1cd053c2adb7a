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

from amaranth.hdl import ClockSignal, Const, Elaboratable, Instance, Module, Signal, unsigned
from amaranth.lib import memory

from .dsp import Primitives, primitives_of

__all__ = ["TableRom", "ROM_LATENCY", "DP16KD_DEPTH", "DP16KD_WIDTH", "dp16kd_initvals"]

#: registers from a read port's address to its data
ROM_LATENCY = 2
#: rows and bits of one DP16KD in the mode used here
DP16KD_DEPTH, DP16KD_WIDTH = 1024, 18


def dp16kd_initvals(words) -> dict[str, int]:
    """The ``INITVAL_00`` .. ``INITVAL_3F`` parameters of a DP16KD in its 1,024 x 18 mode holding
    ``words`` (18-bit integers, at most 1,024; the rest zero): each 320-bit value holds 16 words,
    word ``16 j + i`` in bits ``[20 i + 17 : 20 i]`` of ``INITVAL_j`` (two pad bits per word)."""
    words = list(words)
    if len(words) > DP16KD_DEPTH or any(not 0 <= w < 1 << DP16KD_WIDTH for w in words):
        raise ValueError(f"dp16kd_initvals: at most {DP16KD_DEPTH} words of {DP16KD_WIDTH} bits are allowed")
    words += [0] * (DP16KD_DEPTH - len(words))
    params = {}
    for j in range(DP16KD_DEPTH // 16):
        value = 0
        for i in range(16):
            value |= words[16 * j + i] << (20 * i)
        params[f"INITVAL_{j:02X}"] = value
    return params


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
            words = [(r >> lo) & ((1 << DP16KD_WIDTH) - 1) for r in self.rows]
            conns = {}
            for j, side in enumerate("AB"):
                p = ports[j] if j < len(ports) else None   # an unused side: every input tied low
                n = min(DP16KD_WIDTH, self.width - lo)
                if p is not None:
                    out = Signal(DP16KD_WIDTH, name=f"rom{b}_do{side.lower()}")
                    m.d.comb += p.data[lo:lo + n].eq(out[:n])
                    conns.update({f"o_DO{side}{k}": out[k] for k in range(DP16KD_WIDTH)})
                conns.update({f"i_AD{side}{k}": 0 for k in range(4)})
                conns.update({f"i_AD{side}{4 + k}": (p.addr[k] if p is not None and k < len(p.addr) else 0)
                              for k in range(10)})
                conns.update({f"i_DI{side}{k}": 0 for k in range(DP16KD_WIDTH)})
                conns.update({f"i_CLK{side}": ClockSignal() if p is not None else 0,
                              f"i_CE{side}": p.en if p is not None else 0,
                              f"i_OCE{side}": p.en if p is not None else 0,
                              f"i_WE{side}": 0, f"i_RST{side}": 0, **{f"i_CS{side}{k}": 0 for k in range(3)}})
            params = {f"p_{k}": Const(v, 320) for k, v in dp16kd_initvals(words).items()}
            modes = {f"p_{k}_{s}": v for s in "AB" for k, v in
                     (("DATA_WIDTH", DP16KD_WIDTH), ("REGMODE", "OUTREG"), ("CSDECODE", "0b000"),
                      ("WRITEMODE", "NORMAL"))}
            m.submodules[f"bram{b}"] = Instance("DP16KD", p_GSR="DISABLED", p_RESETMODE="SYNC",
                                                **modes, **params, **conns)
