"""The main job's pieces: representative configurations, captured stimulus, error on captured rows."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from spikeops.gen.job import capture_errors, captured_stimulus, format_summary, representatives  # noqa: E402
from spikeops.gen.llm import capture as cap  # noqa: E402
from spikeops.gen.llm.calibrate import observe  # noqa: E402
from spikeops.gen.llm.operators import recording, set_backend  # noqa: E402
from spikeops.gen.llm.plan import apply_plan, make_plan  # noqa: E402
from spikeops.gen.llm.sites import discover  # noqa: E402
from spikeops.golden.fixed import dequantize  # noqa: E402
from spikeops.verif import env  # noqa: E402


@pytest.fixture(scope="module")
def tiny():
    set_backend("numpy")
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=97, hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    model = transformers.LlamaForCausalLM(cfg).eval()
    ids = torch.randint(0, 97, (2, 12), generator=torch.Generator().manual_seed(1))
    plan = make_plan(model, "llama", stats=observe(model, discover(model, "llama"), [ids]))
    apply_plan(model, plan)
    rec = cap.Recorder(max_rows=16)
    with recording(rec), torch.no_grad():
        model(ids)
    yield plan, rec.capture(model="tiny")
    set_backend("fast")


def test_representative_is_the_most_used_configuration(tiny):
    plan, _ = tiny
    reps = representatives(plan)
    assert set(reps) == {"softmax", "silu", "rmsnorm"}
    for op, (cfg, users, names) in reps.items():
        same = [i["name"] for i in plan.instances if i["op"] == op and i["config"] == cfg]
        assert users == same and len(names) == sum(i["op"] == op for i in plan.instances)
        counts = {}
        for i in plan.instances:
            if i["op"] == op:
                counts[i["config"].stable_hash()] = counts.get(i["config"].stable_hash(), 0) + 1
        assert len(users) == max(counts.values())


def test_captured_stimulus_keeps_the_causal_rows_and_the_weights(tiny):
    plan, capture = tiny
    cfg, users, _ = representatives(plan)["softmax"]
    stim = captured_stimulus(capture, "softmax", cfg, users)
    assert stim.masks is not None and all(m[-1] for m in stim.masks)  # cut after the last valid position
    assert all(1 <= len(r) <= 12 for r in stim.rows)
    cfg, users, _ = representatives(plan)["rmsnorm"]
    stim = captured_stimulus(capture, "rmsnorm", cfg, users)
    assert all(len(r) == 64 for r in stim.rows) and stim.weights["gamma"].shape == (64,)
    cfg, users, _ = representatives(plan)["silu"]
    stim = captured_stimulus(capture, "silu", cfg, users, max_elements=300)
    assert all(len(r) == 1 for r in stim.rows) and 300 <= stim.elements < 300 + 128


def test_capture_errors_match_an_independent_computation(tiny):
    _, capture = tiny
    e = capture_errors(capture, "silu")
    ref = []
    for c in capture.by_op("silu"):
        x = dequantize(c.x, c.cfg.in_format)
        exact = x / (1 + np.exp(-x))
        ref.append(np.abs(dequantize(c.golden(), c.cfg.out_format) - exact) / c.cfg.out_format.lsb)
    ref = np.concatenate([r.ravel() for r in ref])
    assert e["elements"] == ref.size and e["instances"] == 3
    assert e["err_max_lsb"] == pytest.approx(ref.max()) and e["err_mean_lsb"] == pytest.approx(ref.mean())
    assert e["err_max_lsb"] <= 1.0  # the SiLU bound holds on real rows too
    sm = capture_errors(capture, "softmax")
    assert sm["elements"] == sum(int(c.mask.sum()) for c in capture.by_op("softmax"))


@pytest.mark.skipif(env.unavailable_reason("verilator") is not None, reason=str(env.unavailable_reason("verilator")))
def test_captured_rows_cosimulate_bit_exact(tiny):
    from spikeops.gen.job import cosimulate_captured
    plan, capture = tiny
    cfg, users, _ = representatives(plan)["silu"]
    r = cosimulate_captured("silu", cfg, captured_stimulus(capture, "silu", cfg, users, max_elements=2000), "verilator")
    assert r["passed"] and r["elements"] >= 2000 and r["mismatches"] == 0


def test_summary_table_lists_every_operator(tiny):
    _, capture = tiny
    rep = {"operators": {"silu": {"instances": 3, "instances_at_config": 2, "error": capture_errors(capture, "silu"),
                                  "cosim": {"passed": True, "elements": 10, "sim": "verilator",
                                            "elements_per_cycle": 0.98},
                                  "fpga": {"latency": {"kind": "fixed", "cycles": 25},
                                           "pnr": {"fmax_mhz": 59.3, "synthesis": {"lut_equivalent": 1766, "ff": 1833,
                                                                                   "dsp": 4, "bram": 2}}}}}}
    text = format_summary(rep)
    assert "| silu | 3 (2 at this config) |" in text and "| 10 (verilator) | 0.980 | 1766 | 1833 | 4 | 2 | 59.3 | 25 |" in text
    # an operator under the flow's target says so; a failed place-and-route says FAILED
    silu = rep["operators"]["silu"]
    silu["fpga"]["pnr"].update(timing_met=False, target_mhz=100.0)
    assert "| 59.3 (under its 100 MHz target) | 25 |" in format_summary(rep)
    silu["fpga"] = {"latency": {"kind": "fixed", "cycles": 25}, "error": "place-and-route timed out"}
    assert "| - | - | - | - | FAILED | 25 |" in format_summary(rep)
