"""The main job's spiking stage (``spikeops run --snn``) on a tiny saved Llama: each operator's
instance inside the spiking network becomes a stepped operator whose golden model equals what the
network computed, and whose emitted wrapper is bit-exact on the simulator (slow: about 3 minutes;
the default suite covers the same path on the tiny Llama in tests/test_llm_snn_steps.py)."""

import os

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from spikeops.gen.job import RunOptions, representatives  # noqa: E402
from spikeops.gen.job_snn import spiking_stage, summary_lines  # noqa: E402
from spikeops.verif import env  # noqa: E402


class _Clock:
    def __init__(self):
        self.lines = []

    def stage(self, text):
        self.lines.append(text)


@pytest.mark.slow
def test_spiking_stage_on_a_tiny_llama(tmp_path):
    from tiny_models import save_tiny_llama

    from spikeops.gen.llm.session import Session
    sim = os.environ.get("SPIKEOPS_SIM", "icarus")
    if env.unavailable_reason(sim):
        pytest.skip(f"{sim}: {env.unavailable_reason(sim)}")
    session = Session(str(save_tiny_llama(tmp_path / "tiny-llama")), calibration_texts=2, quiet=True)
    plan = session.plan()
    reps = representatives(plan)
    clock = _Clock()
    rep, futures = spiking_stage(session, plan, "T=3,L=4", reps, prompts=2, sim=sim, pool=None, target=None,
                                 pnr_timeout=1.0, out=tmp_path, clock=clock)
    assert futures == {} and rep["steps"] == 3 and rep["tokens"] > 0
    assert set(rep["operators"]) == set(reps) == {"softmax", "silu", "rmsnorm"}
    for op, row in rep["operators"].items():
        assert row["golden_equals_network"], op
        assert row["cosim"]["passed"] and row["cosim"]["tests"] == 10, row["cosim"]["message"]
    table = "\n".join(summary_lines(rep, {}))
    assert "| softmax | model.layers.0.self_attn | yes |" in table


@pytest.mark.parametrize("spec, message", [("mode=qann", "not the quantised ANN"), ("T=0", "T")])
def test_run_refuses_a_network_that_does_not_spike(spec, message):
    with pytest.raises(ValueError, match=message):
        RunOptions(snn=spec)
