"""The emitted Verilog is right as written, on every simulator (issue: amaranth-lang/amaranth#594).

``spikeops verilog`` writes, per operator, one Verilog file with no ``always @*`` block (so nothing
waits for a simulator to evaluate combinational logic at time 0 by itself) and a plain-Verilog,
self-checking testbench (``verif/plain_tb.py``: random idle cycles and backpressure, resets between
rows, the stream rule checked on the output).  Here every operator's emitted file passes that bench
on Icarus (``iverilog -g2005``) and Verilator, exactly as written; the bench fails on one wrong word
and on Amaranth's own ``always @*`` Verilog under Icarus; the FuseSoC core's ``sim_icarus`` target
runs it; and the new emission is the same logic as Amaranth's (a Yosys equivalence proof).
"""

import shutil
import subprocess
import sys

import amaranth
import pytest
from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.back import verilog as amaranth_verilog

from spikeops.gen.cli import main
from spikeops.gen.synth import yosys_command
from spikeops.golden import registry
from spikeops.hdl import registry as hdl_registry
from spikeops.hdl import verilog
from spikeops.hdl.emit import emit
from spikeops.verif import env
from spikeops.verif.plain_tb import run_testbench, bench_top, write_testbench

OPS = list(registry.OPERATORS)


@pytest.fixture(scope="module")
def emitted(tmp_path_factory):
    out = tmp_path_factory.mktemp("emitted")
    assert main(["verilog", "--op", "all", "-o", str(out)]) == 0
    return out


def _manifest(emitted, op):
    import json
    return json.loads((emitted / f"spikeops_{op}.json").read_text())


def _need(sim):
    reason = env.unavailable_reason(sim)
    if reason:
        pytest.skip(f"{sim}: {reason}")


@pytest.mark.parametrize("op", OPS)
def test_the_emitted_file_has_no_always_star_and_says_who_wrote_it(emitted, op):
    m = _manifest(emitted, op)
    text = (emitted / f"spikeops_{op}.v").read_text()
    code = "\n".join(line.split("//")[0] for line in text.splitlines())
    assert "always @*" not in code and "always @(*)" not in code and "always @(posedge clk)" in code
    head = text.splitlines()[:10]
    assert head[0].startswith(f"// spikeops_{op}: {op} at configuration {m['config_hash']}")
    assert any(f"Amaranth {amaranth.__version__}" in line for line in head)
    assert any("no always @*" in line for line in head)
    assert m["tools"]["amaranth"] == amaranth.__version__ and m["tools"]["yosys"] == verilog.yosys_version()


RUNS = [("verilator", "-"), ("icarus", "2005"), ("icarus", "2012")]


@pytest.mark.parametrize("sim, std", RUNS, ids=["verilator", "icarus-g2005", "icarus-g2012"])
@pytest.mark.parametrize("op", OPS)
def test_every_emitted_file_passes_the_plain_testbench(emitted, op, sim, std, tmp_path):
    _need(sim)
    m = _manifest(emitted, op)
    r = run_testbench(m, emitted, sim, build_dir=tmp_path, **({"icarus_std": std} if sim == "icarus" else {}))
    assert r.passed, r.line + "\n" + r.log[-3000:]
    expected = (emitted / f"{bench_top(m)}_expected.hex").read_text().split()
    assert r.outputs == len(expected) > 100 and r.resets >= 2


def test_the_plain_testbench_catches_one_wrong_word(emitted, tmp_path):
    _need("icarus")
    m = _manifest(emitted, "silu")
    rtl = tmp_path / "rtl"
    shutil.copytree(emitted, rtl, ignore=shutil.ignore_patterns("plain-*"))
    exp = rtl / f"{bench_top(m)}_expected.hex"
    words = exp.read_text().split()
    words[37] = f"{int(words[37], 16) ^ 1:x}"
    exp.write_text("\n".join(words) + "\n")
    r = run_testbench(m, rtl, "icarus", build_dir=tmp_path / "b")
    assert not r.passed and "FAIL silu: 1 of" in r.line
    assert "output 37 " in r.log


class _OneSlot(wiring.Component):
    """A one-element stream buffer whose ``i.ready`` and ``o.valid`` come from a state machine's
    reset state: the structure that Amaranth's ``always @*`` Verilog leaves unknown under Icarus
    (the old RMSNorm and Softmax had it; today's operators no longer do)."""

    i: In(stream.Signature(8))
    o: Out(stream.Signature(8))

    def elaborate(self, platform):
        m = Module()
        with m.FSM():
            with m.State("EMPTY"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    m.d.sync += self.o.payload.eq(self.i.payload)
                    m.next = "FULL"
            with m.State("FULL"):
                m.d.comb += self.o.valid.eq(1)
                with m.If(self.o.ready):
                    m.next = "EMPTY"
        return m


_ONE_SLOT_TB = """`timescale 1ns/1ps
module tb;
  reg clk = 0, rst = 1;
  reg i_valid = 0, o_ready = 1;
  reg [7:0] i_payload = 8'd42;
  wire i_ready, o_valid;
  wire [7:0] o_payload;
  one_slot dut(.clk(clk), .rst(rst), .i__valid(i_valid), .i__ready(i_ready), .i__payload(i_payload),
               .o__valid(o_valid), .o__ready(o_ready), .o__payload(o_payload));
  always #5 clk = ~clk;
  initial begin
    #12 rst = 0;
    #10 if (i_ready !== 1'b1 || o_valid !== 1'b0) begin $display("FAIL ready=%b valid=%b", i_ready, o_valid); $finish; end
    $display("PASS");
    $finish;
  end
endmodule
"""


def test_amaranths_always_star_verilog_fails_under_icarus(tmp_path):
    """The bug the emission avoids: Amaranth's own Verilog of a state machine in its reset state,
    on Icarus in its IEEE 1800 mode, never drives the state's ``i.ready`` (no always @* block ran:
    it reads 0 or x); the same component through :func:`spikeops.hdl.verilog.convert` runs."""
    _need("icarus")
    results = {}
    for how, text in (("amaranth", amaranth_verilog.convert(_OneSlot(), name="one_slot", emit_src=False)),
                      ("spikeops", verilog.convert(_OneSlot(), name="one_slot"))):
        d = tmp_path / how
        d.mkdir()
        (d / "one_slot.v").write_text(text)
        (d / "tb.v").write_text(_ONE_SLOT_TB)
        subprocess.run(["iverilog", "-g2012", "-o", str(d / "sim.vvp"), str(d / "tb.v"), str(d / "one_slot.v")],
                       check=True, capture_output=True, timeout=120)
        run = subprocess.run(["vvp", "-n", str(d / "sim.vvp")], capture_output=True, text=True, timeout=120)
        results[how] = run.stdout.strip().splitlines()[-1]
    assert results["amaranth"].startswith("FAIL ready=") and "ready=1" not in results["amaranth"], results
    assert results["spikeops"] == "PASS", results


def test_fusesoc_sim_icarus_target_runs_the_plain_testbench(emitted, tmp_path):
    _need("icarus")
    cmd = [sys.executable, "-m", "fusesoc.main", "--cores-root", str(emitted), "run", "--build-root",
           str(tmp_path / "build"), "--target", "sim_icarus", "spikeops:ops:gelu"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "spikeops_tb: PASS gelu" in out, out[-3000:]
    # a wrong expected word makes the target fail
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in emitted.glob("spikeops_gelu*"):
        if f.is_file():
            shutil.copy(f, broken)
    exp = broken / "spikeops_gelu_tb_expected.hex"
    words = exp.read_text().split()
    exp.write_text("\n".join(["0" if w != "0" else "1" for w in words[:1]] + words[1:]) + "\n")
    cmd[cmd.index(str(emitted))] = str(broken)
    cmd[cmd.index(str(tmp_path / "build"))] = str(tmp_path / "build-broken")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0 and "spikeops_tb: FAIL gelu" in proc.stdout + proc.stderr


def _equivalent(op, cfg, tmp_path):
    """Prove with Yosys that spikeops' Verilog of ``op`` is the logic of Amaranth's own Verilog."""
    (tmp_path / "gold.v").write_text(amaranth_verilog.convert(hdl_registry.build(op, cfg), name="gold",
                                                              emit_src=False))
    (tmp_path / "gate.v").write_text(verilog.convert(hdl_registry.build(op, cfg), "gate"))
    # the writers' automatic wire names (_0_, ...) mean different nets on the two sides: hidden, so
    # that equiv_make pairs only the design's own names
    script = ("read_verilog gold.v; read_verilog gate.v; proc; flatten gold gate; memory; opt_clean; "
              "rename -hide gold/w:_*_ gate/w:_*_ gold/w:*._*_ gate/w:*._*_; equiv_make gold gate equiv; "
              "hierarchy -top equiv; equiv_simple; equiv_induct; equiv_status -assert")
    r = subprocess.run(yosys_command() + ["-q", "-p", script], cwd=tmp_path, capture_output=True, text=True,
                       timeout=1800)
    return r.returncode == 0, (r.stdout + r.stderr)[-2000:]


# Small configurations the SAT-based proof closes in seconds.  The operators with wide multipliers
# (SiLU and GELU's |x| * e, the norms' read-out) take the solver beyond an hour even when small:
# their emission is the same code path, and the co-simulations above check them bit for bit.
SMALL = {"sigmoid": dict(K=32, H=4, out_frac=8), "softmax": dict(d_max=8, K=64, H=4, out_frac=8)}


def test_the_emission_is_amaranths_logic(tmp_path):
    ok, log = _equivalent("sigmoid", registry.get("sigmoid").default(**SMALL["sigmoid"]), tmp_path)
    assert ok, log


@pytest.mark.slow
def test_the_emission_of_softmax_is_amaranths_logic(tmp_path):
    ok, log = _equivalent("softmax", registry.get("softmax").default(**SMALL["softmax"]), tmp_path)
    assert ok, log
