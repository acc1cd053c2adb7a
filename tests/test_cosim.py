"""Co-simulation of the emitted Verilog against the golden model, on Verilator and Icarus.

Default run: every operator at its default configuration on both simulators - random rows under
full rate (latency checked against the documented formula), random idle cycles and backpressure,
the corner cases, a reset in the middle of a row, heavy-tailed activations, and every input code of
the elementwise operators; the ECP5-block emission, GELU's other forms, the range-reduced exp, the
online Softmax and Softmax at the model's context, on Icarus only (the Verilator runs of the last
two took 82 and 104 s; the default configurations run on both).  ``-m slow`` adds their Verilator
halves and further configurations (the paper's exp table and 8-bit grid, unary divisions, the exact norm, floor
rounding, a CORDIC unit per level, the split CORDIC units).  ``SPIKEOPS_SIM=icarus|verilator`` limits
the simulators (``make regress SIM=...``).
"""

import os

import numpy as np
import pytest

from spikeops.golden import registry
from spikeops.verif import env
from spikeops.verif.runner import Regression
from spikeops.verif.stimulus import make

SIMS = [s for s in env.SIMULATORS if os.environ.get("SPIKEOPS_SIM", s) == s]
#: the Verilator half of a variant's regression is ``slow`` (its build with Yosys' cell models or its
#: every-input-code pass takes minutes); the Icarus half stays in the default suite
VERILATOR_SLOW = [pytest.param(s, marks=pytest.mark.slow) if s == "verilator" else s for s in SIMS]
OPS = list(registry.OPERATORS)


def _regression(op, cfg, sim, primitives="generic"):
    reason = env.unavailable_reason(sim)
    if reason:
        pytest.skip(f"{sim}: {reason}")
    weights = make(op, cfg, "random", size=1).weights
    return Regression(op, cfg, sim, weights=weights, primitives=primitives).build()


def _check(result):
    assert result.mismatches == 0, result.report
    assert result.checked > 0
    if result.expected_latencies:  # the timing model: each row's first output and its span
        assert result.latencies == result.expected_latencies
        assert result.spans == result.expected_spans


def _suite(op, cfg, sim, *, exhaustive: bool):
    reg = _regression(op, cfg, sim)
    rows = registry.get(op).shape.is_row
    size = 3000 if rows else 2000
    _check(reg.run(make(op, cfg, "random", size=size, seed=1), name="full-rate", check_latency=True))
    _check(reg.run(make(op, cfg, "random", size=size, seed=2), name="backpressure", valid_p=0.7, ready_p=0.55, seed=7))
    _check(reg.run(make(op, cfg, "corners"), name="corners", valid_p=0.8, ready_p=0.5, seed=3))
    res = reg.run(make(op, cfg, "random", size=size, seed=4), name="reset", valid_p=0.9, ready_p=0.7,
                  reset_row=1 if rows else 200)
    _check(res)
    assert res.did_reset == 1
    _check(reg.run(make(op, cfg, "activations", size=size, seed=5), name="activations",
                   valid_p=0.9, ready_p=0.9, seed=9))
    if exhaustive and not rows:
        res = reg.run(make(op, cfg, "exhaustive"), name="exhaustive", valid_p=0.95, ready_p=0.95, seed=11)
        _check(res)
        assert res.checked == cfg.in_format.max_code - cfg.in_format.min_code + 1


@pytest.mark.parametrize("sim", SIMS)
@pytest.mark.parametrize("op", OPS)
def test_default_configuration(op, sim):
    cfg = registry.get(op).default()
    _suite(op, cfg, sim, exhaustive=(sim == "verilator"))


@pytest.mark.parametrize("sim", VERILATOR_SLOW)
@pytest.mark.parametrize("form", ["tanh", "sigmoid"])
def test_gelu_forms(form, sim):
    """GELU's other forms (the default, erf, runs above): bit-exact on both simulators, every input
    code on Verilator."""
    cfg = registry.get("gelu").default(form=form)
    reg = _regression("gelu", cfg, sim)
    _check(reg.run(make("gelu", cfg, "random", size=2000, seed=1), name="full-rate", check_latency=True))
    _check(reg.run(make("gelu", cfg, "activations", size=2000, seed=5), name="activations",
                   valid_p=0.8, ready_p=0.6, seed=9))
    if sim == "verilator":
        res = reg.run(make("gelu", cfg, "exhaustive"), name="exhaustive", valid_p=0.95, ready_p=0.95, seed=11)
        _check(res)
        assert res.checked == cfg.in_format.max_code - cfg.in_format.min_code + 1


@pytest.mark.parametrize("sim", VERILATOR_SLOW)
@pytest.mark.parametrize("op", ["softmax", "silu"])
def test_range_reduced_exp(op, sim):
    """The range-reduced PWL-Exp (table in LUTs): bit-exact on both simulators, latency checked."""
    cfg = registry.get(op).default(exp_method="range", **({"d_max": 256} if op == "softmax" else {}))
    reg = _regression(op, cfg, sim)
    _check(reg.run(make(op, cfg, "random", size=1500, seed=1), name="full-rate", check_latency=True))
    _check(reg.run(make(op, cfg, "corners"), name="corners", valid_p=0.8, ready_p=0.5, seed=3))
    _check(reg.run(make(op, cfg, "activations", size=1500, seed=5), name="activations",
                   valid_p=0.8, ready_p=0.6, seed=9))


@pytest.mark.parametrize("sim", VERILATOR_SLOW)
def test_online_softmax(sim):
    """Softmax with the online normaliser (a row's first output a fixed 53 cycles after its last
    input): full rate with every row's first output checked against the timing model, idle cycles
    and backpressure, the corners, a reset in the middle of a row and the captured activations."""
    cfg = registry.get("softmax").default(exp_method="range", normalizer="online", d_max=256)
    _suite("softmax", cfg, sim, exhaustive=False)


@pytest.mark.slow
@pytest.mark.parametrize("sim", SIMS)
@pytest.mark.parametrize("units", ["per_level", "split"])
@pytest.mark.parametrize("op, d", [("rmsnorm", 64), ("layernorm", 65)])
def test_norm_with_more_cordic_units(op, d, units, sim):
    """The CORDIC tree with one unit per level (``norm_units=per_level``) or the leaf level's own unit
    beside one shared by the rest (``split``, the default at these d, where one shared unit would
    take 64/70 and 65/70 elements a cycle): full rate with every row's first output checked against
    the timing model, idle cycles and backpressure, the corners, a reset in the middle of a row and
    the captured activations (``slow``: the default suite has both trees in Amaranth's simulator,
    ``tests/test_hdl_sim.py`` and ``tests/test_norm_stream.py``, and the split tree's Verilog where
    a small d defaults to it: the stepped RMSNorm at d 8 on Icarus, ``tests/test_steps_cosim.py``,
    and the sweep's rate stage at d 16 on Verilator, ``tests/test_sweep.py``)."""
    cfg = registry.get(op).default(d=d, norm_units=units)
    assert registry.get(op).default(d=d).norm_units == "split"
    _suite(op, cfg, sim, exhaustive=False)


@pytest.mark.parametrize("sim", VERILATOR_SLOW)
@pytest.mark.parametrize("normalizer", ["row_max", pytest.param("online", marks=pytest.mark.slow)])
def test_softmax_rows_of_the_models_context(sim, normalizer):
    """Softmax sized for SmolLM2's context (d_max=8192, as the conversion now plans it): two full
    8,192-element rows around a short one at full rate (latency checked); with idle cycles and
    backpressure, a reset in the middle of the first long row and the short row after it (a second
    long row there, 8,192 more elements at these rates, adds nothing the full-rate run has not)."""
    from spikeops.golden.fixed import quantize
    from spikeops.verif.stimulus import Stimulus
    extra = {"exp_method": "range", "normalizer": "online"} if normalizer == "online" else {}
    cfg = registry.get("softmax").default(d_max=8192, **extra)
    reg = _regression("softmax", cfg, sim)
    rng = np.random.default_rng(3)
    rows = [quantize(rng.normal(0, 7, n), cfg.in_format) for n in (8192, 300, 8192)]
    masks = [np.arange(8192) <= 6000, np.ones(300, bool), rng.random(8192) < 0.9]
    stim = Stimulus("softmax", "context", rows, masks, {})
    _check(reg.run(stim, name="context", check_latency=True))
    res = reg.run(Stimulus("softmax", "context", rows[:2], masks[:2], {}), name="context-reset",
                  valid_p=0.8, ready_p=0.6, reset_row=0)
    _check(res)
    assert res.did_reset == 1


VARIANTS = {
    "softmax": [dict(H=5, K=64, out_frac=8, d_max=64), dict(out_frac=8, d_max=16, div_arch="thermometer"),
                dict(rounding="floor", d_max=128, out_frac=12)],
    "sigmoid": [dict(H=5, K=64, out_frac=8), dict(in_width=10, in_frac=6, out_frac=6, div_arch="thermometer")],
    "silu": [dict(H=5, K=64, out_frac=8), dict(rounding="floor", out_frac=16)],
    "gelu": [dict(H=5, K=64, out_frac=8), dict(in_width=12, in_frac=6, out_frac=10)],
    "rmsnorm": [dict(d=64, norm_method="exact"), dict(d=64, out_frac=8, out_width=16, cordic_iterations=8),
                dict(d=7, rounding="floor")],
    "layernorm": [dict(d=64, norm_method="exact"), dict(d=96, out_frac=8, out_width=16)],
}


@pytest.mark.slow
@pytest.mark.parametrize("sim", SIMS)
@pytest.mark.parametrize("op, variant", [(op, v) for op in OPS for v in range(len(VARIANTS[op]))])
def test_configuration_variants(op, variant, sim):
    cfg = registry.get(op).default(**VARIANTS[op][variant])
    _suite(op, cfg, sim, exhaustive=True)


def test_regression_refuses_a_missing_simulator(monkeypatch):
    monkeypatch.setattr(env.shutil, "which", lambda name: None)
    assert "iverilog is not installed" in env.unavailable_reason("icarus")
    with pytest.raises(ValueError, match="simulator 'questa' is unknown; allowed: verilator, icarus"):
        env.unavailable_reason("questa")


def test_every_testbench_module_keeps_its_assertions_rewritten(monkeypatch):
    """cocotb rewrites the assertions of the modules ``simulator_env`` names, and only those (every
    module, numpy's included, would be parsed from source in every run): each verif module with a
    cocotb test is named, and each name is such a module; a user's own setting reaches the
    simulator instead (cocotb's runner puts the process environment over ``extra_env``)."""
    import re
    from pathlib import Path

    import spikeops.verif as verif
    with_tests = {p.name for p in Path(verif.__file__).parent.glob("*.py")
                  if re.search(r"^@cocotb\.test\(", p.read_text(), re.M)}
    assert with_tests == set(env.TESTBENCH_FILES)
    sim_env = env.simulator_env(SPIKEOPS_TB_JOB="job.json")
    assert sim_env["COCOTB_REWRITE_ASSERTION_FILES"].split() == list(env.TESTBENCH_FILES)
    assert sim_env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] == "1" and sim_env["SPIKEOPS_TB_JOB"] == "job.json"
    from cocotb_tools.runner import get_runner
    monkeypatch.setenv("COCOTB_REWRITE_ASSERTION_FILES", "*.py")
    runner = get_runner("icarus")
    runner.env = dict(sim_env)
    runner._set_env_common()                        # what runner.test does before starting the simulator
    assert runner.env["COCOTB_REWRITE_ASSERTION_FILES"] == "*.py"
    assert runner.env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] == "1" and runner.env["SPIKEOPS_TB_JOB"] == "job.json"


def test_verilator_compiles_the_design_at_the_chosen_level(monkeypatch, tmp_path):
    """``SPIKEOPS_VERILATOR_OPT_FAST`` reaches the compile of the design's own C++ (the tests set
    -O0; here -O1, which nothing else sets) over a caller's ``opt_fast`` (the sweep's rate stage
    asks for -O0), which applies when the variable is unset; a level the compiler does not take is
    refused naming the variable or the argument, the value and the levels."""
    from spikeops.verif.runner import cocotb_runner
    if env.unavailable_reason("verilator"):
        pytest.skip(env.unavailable_reason("verilator"))
    monkeypatch.setenv(env.OPT_FAST_VARIABLE, "-O9")
    with pytest.raises(ValueError, match=r"SPIKEOPS_VERILATOR_OPT_FAST='-O9' is not allowed; allowed: -O0, -Og, "
                                         r"-O1, -O2, -O3, -Os"):
        cocotb_runner("verilator")
    cocotb_runner("icarus")                          # Icarus has no such step: the variable is not read
    with pytest.raises(ValueError, match=r"cocotb_runner: opt_fast='O2' is not allowed; allowed: -O0, "):
        cocotb_runner("verilator", "O2")
    with pytest.raises(ValueError, match=r"Regression: opt_fast='fast' is not allowed; allowed: -O0, .*-Os "
                                         r"\(or None for Verilator's -Os\)"):
        Regression("sigmoid", registry.get("sigmoid").default(), "verilator", opt_fast="fast")
    src = tmp_path / "count.v"
    src.write_text("module count(input wire clk, output reg [7:0] q);\n"
                   "  initial q = 0;\n  always @(posedge clk) q <= q + 1;\nendmodule\n")

    def design_compiles(runner, name):
        runner.build(sources=[src], hdl_toplevel="count", build_dir=tmp_path / name, timescale=("1ns", "1ps"),
                     build_args=["-Wno-fatal"], log_file=tmp_path / name / "build.log")
        lines = (tmp_path / name / "build.log").read_text().splitlines()
        out = [ln for ln in lines if " -c " in ln and ln.split()[-1].startswith("Vtop")]   # the design's own files
        assert out, lines
        return out

    monkeypatch.setenv(env.OPT_FAST_VARIABLE, "-O1")
    assert all(" -O1 " in ln and " -O2 " not in ln and " -Os " not in ln
               for ln in design_compiles(cocotb_runner("verilator", "-O2"), "env"))
    monkeypatch.delenv(env.OPT_FAST_VARIABLE)
    assert env.verilator_opt_fast() is None
    assert all(" -O2 " in ln and " -Os " not in ln for ln in design_compiles(cocotb_runner("verilator", "-O2"), "arg"))
    assert all(" -Os " in ln for ln in design_compiles(cocotb_runner("verilator"), "own"))


def test_exhaustive_stimulus_is_for_elementwise_operators():
    with pytest.raises(ValueError, match=r"kind='exhaustive' covers every input code of an elementwise operator"):
        make("softmax", registry.get("softmax").default(), "exhaustive")


@pytest.mark.parametrize("sim", VERILATOR_SLOW)
@pytest.mark.parametrize("op", OPS)
def test_ecp5_primitives(op, sim):
    """The emission with ECP5 blocks (``primitives=ecp5``, what the ECP5 flows synthesise: registered
    multipliers, tables with the block RAM's output register) on the blocks' simulation models:
    bit-exact and cycle-exact, the timing checked, under backpressure and through a reset.  A row
    operator's rows are 64 long here (five rows a run: the models cost Icarus about 10 ms a cycle);
    its default row length is ``slow`` (``test_ecp5_primitives_at_the_default_row``)."""
    rec = registry.get(op)
    _ecp5_suite(op, rec.default(**({rec.row_param: 64} if rec.row_param else {})), sim,
                size=320 if rec.shape.is_row else 600)


@pytest.mark.slow
@pytest.mark.parametrize("sim", SIMS)
@pytest.mark.parametrize("op", [op for op in OPS if registry.get(op).shape.is_row])
def test_ecp5_primitives_at_the_default_row(op, sim):
    """The same with a row operator's default configuration (rows of 384 to 1,024)."""
    _ecp5_suite(op, registry.get(op).default(), sim, size=3000)


def _ecp5_suite(op, cfg, sim, *, size):
    reg = _regression(op, cfg, sim, primitives="ecp5")
    assert reg.manifest["primitives"] == "ecp5" and reg.manifest["simulation_files"]
    assert "MULT18X18D" in (reg.dir / "rtl_new" / reg.manifest["files"][0]).read_text()
    rows = registry.get(op).shape.is_row
    _check(reg.run(make(op, cfg, "random", size=size, seed=1), name="full-rate", check_latency=True))
    _check(reg.run(make(op, cfg, "activations", size=size, seed=2), name="backpressure",
                   valid_p=0.7, ready_p=0.55, seed=7))
    res = reg.run(make(op, cfg, "random", size=size, seed=4), name="reset", valid_p=0.9, ready_p=0.7,
                  reset_row=1 if rows else 200)
    _check(res)
    assert res.did_reset == 1


@pytest.mark.parametrize("sim", [pytest.param(s, marks=pytest.mark.slow) if s == "verilator" else s for s in SIMS])
@pytest.mark.parametrize("op", OPS)
def test_target_frequency(op, sim):
    """A ``target_mhz`` of 60 puts five division neurons in a stage (the last stage holds the
    rest): bit-exact, the shorter latency checked cycle by cycle, under backpressure and a
    mid-row reset."""
    rec = registry.get(op)
    cfg = rec.default(target_mhz=60, **({rec.row_param: 64} if rec.row_param else {}))
    reg = _regression(op, cfg, sim)
    rows = rec.shape.is_row
    _check(reg.run(make(op, cfg, "random", size=600, seed=1), name="full-rate", check_latency=True))
    res = reg.run(make(op, cfg, "random", size=600, seed=4), name="reset", valid_p=0.8, ready_p=0.6,
                  reset_row=1 if rows else 100, seed=5)
    _check(res)
    assert res.did_reset == 1
