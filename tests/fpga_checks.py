"""Checks shared by the FPGA-flow tests: the registered-I/O timing harness of an emitted top, as
Yosys sees it."""

import json
import shutil
import subprocess

from spikeops.gen.synth import yowasp_command
from spikeops.hdl.manifest import interface_info


def regio_netlist(folder, m, tmp_path):
    """The timing harness that ``spikeops verilog`` wrote beside the top of manifest ``m`` (into
    ``folder``) after ``proc``, the operator a black box, as Yosys JSON."""
    for name in (f"{m['top']}.v", f"{m['top']}_regio.v"):
        shutil.copy(folder / name, tmp_path)
    script = (f"read_verilog -lib {m['top']}.v; read_verilog {m['top']}_regio.v; "
              f"hierarchy -top {m['top']}_regio; proc; opt_clean; write_json net.json")
    subprocess.run(yowasp_command("yosys") + ["-q", "-p", script], cwd=tmp_path, check=True, timeout=300)
    return json.loads((tmp_path / "net.json").read_text())["modules"][f"{m['top']}_regio"]


def check_registered_io(m, mod):
    """Every port of ``m`` but its clock and reset goes through one register on the clock; the
    clock and the reset pass straight through."""
    info = interface_info(m)
    clock, reset = info["clock"], info["reset"]
    ports = {name: p["bits"] for name, p in mod["ports"].items()}
    assert set(ports) == {p["name"] for p in m["ports"]}
    dffs = [c["connections"] for c in mod["cells"].values() if c["type"] == "$dff"]
    assert all(c["CLK"] == ports[clock] for c in dffs)
    d_bits = {b for c in dffs for b in c["D"]}
    q_bits = {b for c in dffs for b in c["Q"]}
    (dut,) = [c["connections"] for c in mod["cells"].values() if c["type"] == m["top"]]
    assert dut[clock] == ports[clock] and dut[reset] == ports[reset]
    for p in m["ports"]:
        name = p["name"]
        if name in (clock, reset):
            continue
        assert len(ports[name]) == p["width"]
        if p["direction"] == "input":   # pin -> register -> operator
            assert set(ports[name]) <= d_bits and set(dut[name]) <= q_bits, name
        else:                           # operator -> register -> pin
            assert set(dut[name]) <= d_bits and set(ports[name]) <= q_bits, name
    assert sum(len(c["Q"]) for c in dffs) == sum(p["width"] for p in m["ports"]) - 2
