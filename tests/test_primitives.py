# amaranth: UnusedElaboratable=no
"""The ECP5 primitives an ``ecp5`` emission instantiates, checked against what Yosys itself does: the
block RAM's contents and address wiring equal those of the block Yosys infers for the same table;
and what the registered multiplier and table refuse.  (Their behaviour, through the simulation
models, is checked against golden by ``tests/test_cosim.py::test_ecp5_primitives``.)"""

import json
import subprocess

import numpy as np
import pytest
from amaranth.back import rtlil
from amaranth.hdl import Elaboratable, Module, Signal

from spikeops.gen.synth import yowasp_command
from spikeops.hdl.dsp import PrimitivePlatform
from spikeops.hdl.rom import TableRom, dp16kd_initvals


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


def _netlist(top, tmp_path, platform=None):
    (tmp_path / "t.il").write_text(rtlil.convert(top, name="t", platform=platform, ports=[top.addr, top.data]))
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

