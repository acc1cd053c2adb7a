# amaranth: UnusedElaboratable=no
"""The ECP5 primitives an ``ecp5`` emission instantiates, checked against what Yosys itself does: the
block RAM's contents and address wiring equal those of the block Yosys infers for the same table;
the add-or-subtract chain of ``CCU2C`` cells is proven equal (SAT) to the generic adder with Yosys'
own cell models, and so is the simulators' model of the cell; and what the registered multiplier
and table refuse.  (Their behaviour, through the simulation
models, is checked against golden by ``tests/test_cosim.py::test_ecp5_primitives``.)"""

import json
import subprocess

import numpy as np
import pytest
from amaranth.back import rtlil
from amaranth.hdl import Elaboratable, Module, Signal

from spikeops.gen.synth import yowasp_command
from spikeops.hdl.carry import AddSub
from spikeops.hdl.dsp import ECP5_SIMULATION_MODELS, PrimitivePlatform
from spikeops.hdl.rom import TableRom, dp16kd_initvals
from spikeops.hdl.rowbuffer import RowBuffer


class _Table(Elaboratable):
    def __init__(self, rows, width):
        self.rom = TableRom(rows, width)
        self.port = self.rom.read_port()
        self.addr = Signal(len(self.port.addr))
        self.data = Signal(width)

    def elaborate(self, platform):
        m = Module()
        m.submodules.rom = self.rom
        m.d.comb += [self.port.addr.eq(self.addr), self.data.eq(self.port.data)]
        return m


class _Ring(Elaboratable):
    """A registered :class:`RowBuffer` with its ports brought out."""

    def __init__(self, depth, width):
        self.depth, self.width = depth, width
        self.waddr, self.raddr = Signal(range(depth), name="waddr"), Signal(range(depth), name="raddr")
        self.wdata, self.data = Signal(width, name="wdata"), Signal(width, name="data")
        self.wen, self.ren = Signal(name="wen"), Signal(name="ren")
        self.ports = [self.waddr, self.raddr, self.wdata, self.data, self.wen, self.ren]

    def elaborate(self, platform):
        m = Module()
        buf = RowBuffer(m, "buf", self.width, self.depth, registered=True)
        buf.write(m, self.waddr, self.wdata, self.wen)
        buf.read(m, self.raddr, self.ren)
        m.d.comb += self.data.eq(buf.data)
        return m


def _netlist(top, tmp_path, platform=None):
    ports = getattr(top, "ports", None) or [top.addr, top.data]
    (tmp_path / "t.il").write_text(rtlil.convert(top, name="t", platform=platform, ports=ports))
    cmd = yowasp_command("yosys", RuntimeError) + ["-q", "-p", "read_rtlil t.il; synth_ecp5 -nowidelut -top t; "
                                                   "write_json n.json"]
    subprocess.run(cmd, cwd=tmp_path, check=True, capture_output=True)
    return json.loads((tmp_path / "n.json").read_text())["modules"]["t"]


def test_block_ram_contents_and_address_match_yosys_inference(tmp_path):
    rows = np.random.default_rng(1).integers(0, 1 << 18, 258).tolist()
    inferred = _netlist(_Table(rows, 18), tmp_path)
    (cell,) = [c for c in inferred["cells"].values() if c["type"] == "DP16KD"]
    assert int(cell["parameters"]["DATA_WIDTH_A"], 2) == 18
    assert {k: int(cell["parameters"][k], 2) for k in dp16kd_initvals(rows)} == dp16kd_initvals(rows)
    addr = inferred["ports"]["addr"]["bits"]
    assert [cell["connections"][f"ADA{4 + k}"][0] for k in range(len(addr))] == addr
    assert all(cell["connections"][f"ADA{k}"] == ["0"] for k in range(4))
    # the instantiated block: the same contents, the output register on, the same address bits
    (tmp_path / "e").mkdir()
    inst = _netlist(_Table(rows, 18), tmp_path / "e", PrimitivePlatform("ecp5"))
    (cell,) = [c for c in inst["cells"].values() if c["type"] == "DP16KD"]
    assert {k: int(cell["parameters"][k], 2) for k in dp16kd_initvals(rows)} == dp16kd_initvals(rows)
    assert cell["parameters"]["REGMODE_A"] == "OUTREG"
    addr = inst["ports"]["addr"]["bits"]
    assert [cell["connections"][f"ADA{4 + k}"][0] for k in range(len(addr))] == addr
    # the fabric register of the generic table is the block's own here
    assert not [c for c in inst["cells"].values() if c["type"] == "TRELLIS_FF"]


@pytest.mark.parametrize("depth,width,mode,blocks", [(2048, 16, 9, 2), (1000, 20, 18, 2), (4096, 8, 4, 2)])
def test_row_buffer_blocks_match_yosys_inference(tmp_path, depth, width, mode, blocks):
    """A registered row buffer on ``ecp5`` primitives: the blocks Yosys infers for the generic
    circuit (same mode, same count; Yosys registers the inferred block's write address, so its nets
    differ), the address bits where Yosys puts them, written on side A and read on side B, with the
    output register on and no fabric register after them."""
    def sides(cells, n):
        out = []
        for c in cells:
            conns = c["connections"]
            w = "A" if conns["WEA"] != ["0"] else "B"
            r = "B" if w == "A" else "A"
            out.append(([conns[f"AD{w}{k}"][0] for k in range(14 - n, 14)],
                        [conns[f"AD{r}{k}"][0] for k in range(14 - n, 14)]))
        return out

    inferred = _netlist(_Ring(depth, width), tmp_path)
    icells = [c for c in inferred["cells"].values() if c["type"] == "DP16KD"]
    assert len(icells) == blocks and all(int(c["parameters"]["DATA_WIDTH_A"], 2) == mode for c in icells)
    (tmp_path / "e").mkdir()
    inst = _netlist(_Ring(depth, width), tmp_path / "e", PrimitivePlatform("ecp5"))
    cells = [c for c in inst["cells"].values() if c["type"] == "DP16KD"]
    assert len(cells) == blocks
    assert all(int(c["parameters"][f"DATA_WIDTH_{s}"], 2) == mode and c["parameters"][f"REGMODE_{s}"] == "OUTREG"
               for c in cells for s in "AB")
    n = len(inst["ports"]["waddr"]["bits"])
    assert all(f == (inst["ports"]["waddr"]["bits"], inst["ports"]["raddr"]["bits"]) for f in sides(cells, n))
    low = range(2, 4) if mode == 18 else range(14 - n)      # at 18 bits AD[1:0] are byte enables
    assert all(c["connections"][f"AD{s}{k}"] == ["0"] for c in icells + cells for s in "AB" for k in low)
    if mode == 18:
        assert all(c["connections"][f"ADA{k}"] == ["1"] for c in cells for k in range(2))
    assert not [c for c in inst["cells"].values() if c["type"] == "TRELLIS_FF"]


def test_table_rom_refuses_what_it_cannot_hold():
    with pytest.raises(ValueError, match="rows must be a non-empty list of 4-bit unsigned integers"):
        TableRom([3, 16], 4)
    rom = TableRom([1, 2], 2)
    rom.read_port(), rom.read_port()
    with pytest.raises(ValueError, match="3 read ports are not allowed; allowed: at most 2"):
        rom.read_port()
    with pytest.raises(ValueError, match="at most 1024 words of 18 bits are allowed"):
        dp16kd_initvals([0] * 1025)


def test_multiplier_refuses_operands_wider_than_a_block():
    from amaranth.hdl import signed, unsigned

    from spikeops.hdl.dsp import Multiplier
    Multiplier(Signal(signed(18)), Signal(unsigned(17)))
    with pytest.raises(ValueError, match=r"an operand of shape unsigned\(18\) is not allowed; allowed: signed of "
                                         r"at most 18 bits or unsigned of at most 17"):
        Multiplier(Signal(unsigned(18)), 3)



class _AddSub(Elaboratable):
    def __init__(self, wa, wb, width, subtract_when):
        self.a, self.b, self.c = Signal(wa, name="a"), Signal(wb, name="b"), Signal(name="c")
        self.s = Signal(width, name="s")
        self.args = (width, subtract_when)
        self.ports = [self.a, self.b, self.c, self.s]

    def elaborate(self, platform):
        m = Module()
        m.submodules.u = u = AddSub(self.a, self.b, self.c, *self.args)
        m.d.comb += self.s.eq(u.s)
        return m


def _prove_equal(tmp_path, gold_il: str, gate_il: str, gate_cells: str, gold_cells: str | None = None):
    """Yosys: ``gold`` and ``gate`` (each flattened with its cell models) agree for every input (SAT)."""
    (tmp_path / "gold.il").write_text(gold_il)
    (tmp_path / "gate.il").write_text(gate_il)
    gold_read = f"read_rtlil gold.il; {gold_cells + '; ' if gold_cells else ''}hierarchy -top gold; flatten -wb"
    script = (f"{gold_read}; design -stash g; read_rtlil gate.il; {gate_cells}; hierarchy -top gate; flatten -wb; "
              "design -copy-from g -as gold gold; opt_clean; miter -equiv -flatten -make_assert gold gate miter; "
              "sat -verify -prove-asserts miter")
    r = subprocess.run(yowasp_command("yosys", RuntimeError) + ["-p", script], cwd=tmp_path, capture_output=True,
                       text=True)
    assert r.returncode == 0 and "SAT proof finished - no model found: SUCCESS!" in r.stdout, r.stdout[-3000:]


# Yosys' ECP5 cell models (its cells_sim.v includes one file twice: -overwrite)
_YOSYS_CELLS = "read_verilog -overwrite +/ecp5/cells_sim.v"


@pytest.mark.parametrize("wa, wb, width", [(5, 4, 7), (28, 26, 28), (1, 1, 2), (8, 8, 9), (3, 3, 1)])
@pytest.mark.parametrize("subtract_when", [0, 1])
def test_add_or_subtract_cells_equal_the_adder(tmp_path, wa, wb, width, subtract_when):
    """The ``CCU2C`` chain of an ``ecp5`` emission (the inversion and the carry in folded into the
    cells' LUTs) computes, for every input, what the generic ``a + (b ^ sub) + sub`` computes: proven
    with Yosys' own ``CCU2C`` model, and the simulators' model (``ecp5_ccu2c.v``) proven equal to it."""
    dut = lambda: _AddSub(wa, wb, width, subtract_when)  # noqa: E731
    generic = rtlil.convert(d := dut(), name="gold", ports=d.ports)
    ecp5 = rtlil.convert(d := dut(), name="gate", platform=PrimitivePlatform("ecp5"), ports=d.ports)
    assert ecp5.count("cell \\CCU2C") == (width + 2) // 2
    _prove_equal(tmp_path, generic, ecp5, _YOSYS_CELLS)
    model = next(p for p in ECP5_SIMULATION_MODELS if p.name == "ecp5_ccu2c.v")
    (tmp_path / model.name).write_text(model.read_text())
    _prove_equal(tmp_path, ecp5.replace("\\gate", "\\gold"), ecp5, _YOSYS_CELLS, gold_cells=f"read_verilog {model.name}")


def test_add_or_subtract_refuses_bad_arguments():
    with pytest.raises(ValueError, match=r"AddSub: width=0 is not allowed; allowed: an integer >= 1"):
        AddSub(Signal(3), Signal(3), Signal(), 0)
    with pytest.raises(ValueError, match=r"AddSub: subtract_when=2 is not allowed; allowed: 0 or 1"):
        AddSub(Signal(3), Signal(3), Signal(), 3, subtract_when=2)
    with pytest.raises(ValueError, match=r"AddSub: ctl has 2 bits; allowed: one bit"):
        AddSub(Signal(3), Signal(3), Signal(2), 3)
