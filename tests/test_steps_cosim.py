"""The time-stepped wrapper's emitted Verilog on both simulators (:mod:`spikeops.verif.steps_tb`):
every sample equal to golden under each idle pattern crossed with each backpressure pattern, the
differences summing to the operator on the final totals, and a reset in the middle of a step.

Default run: every operator on Icarus and the spike encoding of SiLU and the Softmax on Verilator,
at small configurations; ``-m slow`` adds every operator, both encodings, on both simulators.
"""

import json
import os

import pytest

from spikeops.gen.cli import main
from spikeops.golden import registry
from spikeops.golden.steps import StepConfig
from spikeops.verif import env
from spikeops.verif.steps_runner import SteppedRegression

SIMS = [s for s in env.SIMULATORS if os.environ.get("SPIKEOPS_SIM", s) == s]
SMALL = {"softmax": {"d_max": 8, "out_frac": 10}, "rmsnorm": {"d": 8}, "layernorm": {"d": 6}}
FAST = {("icarus", op, "difference") for op in registry.OPERATORS} | {("verilator", "softmax", "spikes")}
CASES = [pytest.param(sim, op, enc, marks=() if (sim, op, enc) in FAST else pytest.mark.slow, id=f"{sim}-{op}-{enc}")
         for sim in SIMS for op in registry.OPERATORS for enc in ("difference", "spikes")]


def _cfg(op, encoding):
    rec = registry.get(op)
    return StepConfig(op=op, inner=SMALL.get(op), steps=3, inc_width=10, in_shift=1, encoding=encoding,
                      lanes=None if rec.shape.is_row else 3, out_shift=9, out_spikes=3, out_levels=32)


@pytest.mark.parametrize("sim, op, encoding", CASES)
def test_stepped_operator_on_the_simulator(sim, op, encoding, tmp_path):
    reason = env.unavailable_reason(sim)
    if reason:
        pytest.skip(f"{sim}: {reason}")
    res = SteppedRegression(_cfg(op, encoding), sim, root=tmp_path).run(samples=4, kind="activations")
    assert res.tests == 10 and res.failed == 0, res.log[-3000:]


def test_verilog_steps_writes_the_wrapper_and_its_flow(tmp_path):
    assert main(["verilog", "--op", "silu", "--steps", "steps=4,lanes=8,encoding=spikes,out_shift=10",
                 "-o", str(tmp_path)]) == 0
    m = json.loads((tmp_path / "spikeops_silu_steps.json").read_text())
    assert m["stepped"] and m["frames"]["steps"] == 4 and m["frames"]["frame"] == 8
    cfg = StepConfig.from_json(m["config"])
    assert cfg.encoding == "spikes" and cfg.out_shift == 10 and m["config_hash"] == cfg.stable_hash()
    assert m["latency"]["cycles"] == m["latency"]["operator"]["cycles"] + 5
    names = {p.name for p in tmp_path.iterdir()}
    assert {"spikeops_silu_steps.v", "spikeops_silu_steps.core", "spikeops_silu_steps_pnr.sh"} <= names


@pytest.mark.parametrize("args, message", [
    (["--op", "silu", "--steps", "step=4"], "--steps: unknown parameter(s) ['step']"),
    (["--op", "silu", "--steps", "steps=0"], "steps=0 is out of range"),
    (["--op", "rmsnorm", "--steps", "lanes=4"], "lanes=4 is not allowed for the row operator rmsnorm"),
    (["--op", "silu", "--steps", "steps=4", "--interface", "axis"], "--steps is not allowed with --plan or --interface axis"),
])
def test_verilog_steps_refuses_bad_input(args, message, tmp_path, capsys):
    assert main(["verilog", *args, "-o", str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
