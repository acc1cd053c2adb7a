# amaranth: UnusedElaboratable=no
"""The time-stepped wrapper (``golden/steps.py``, ``hdl/steps.py``): the specification's
properties, its agreement with the spiking network's neurons, and the RTL against it by equality in
Amaranth's simulator (the cocotb regression on both simulators is ``tests/test_steps_cosim.py``)."""

import numpy as np
import pytest

from spikeops.gen.llm.snn.neurons import IFNeurons
from spikeops.golden import registry
from spikeops.golden.steps import StepConfig, output_neurons, requant, run_steps
from spikeops.hdl.steps import INPUT_STAGES, OUTPUT_STAGES, SteppedOperator
from spikeops.verif.amaranth_sim import run_stream
from spikeops.verif.steps_stimulus import make_stepped

#: small configurations of every operator, so that simulation stays cheap
SMALL = {"softmax": {"d_max": 8, "out_frac": 10}, "sigmoid": {}, "silu": {}, "gelu": {},
         "rmsnorm": {"d": 8}, "layernorm": {"d": 6}}


def _cfg(op, **kw):
    return StepConfig(op=op, inner=SMALL[op], **kw)


@pytest.mark.parametrize("op", list(registry.OPERATORS))
def test_differences_sum_to_the_operator_on_the_final_totals(op):
    """``sum_t D_t = f(requant(X_T))`` for every sample: the wrapper loses nothing over the steps."""
    cfg = _cfg(op, steps=5, inc_width=9, in_shift=1, lanes=None if registry.get(op).shape.is_row else 7)
    st = make_stepped(cfg, "corners", samples=5, seed=2)
    for got, final in zip(st.expected(), st.final()):
        assert np.array_equal(got.sum(axis=0), final)


def test_the_output_neuron_is_the_conversion_neuron():
    """The spike encoding (``golden.neurons.multilevel_if`` on the differences) equals the
    spiking network's own population, :class:`spikeops.gen.llm.snn.neurons.IFNeurons` (torch, an
    independent implementation): threshold ``2**out_shift``, ``L`` spikes a step, ``N`` levels."""
    import torch

    cfg = StepConfig(op="silu", steps=6, encoding="spikes", out_shift=5, out_spikes=3, out_levels=20)
    cur = np.random.default_rng(4).integers(-400, 400, (2, 6, 9))
    pop = IFNeurons((2, 9), 5, 3, -10, 9)
    want = []
    for t in range(6):
        s = pop.step(torch.from_numpy(cur[:, t]))
        want.append(np.zeros((2, 9), np.int64) if s is None else s.numpy())
    assert np.array_equal(output_neurons(cfg, cur), np.stack(want, axis=1))


def test_steps_one_is_the_operator():
    cfg = _cfg("gelu", steps=1, inc_width=16, lanes=4)
    x = np.random.default_rng(1).integers(-30000, 30000, (3, 1, 4))
    assert np.array_equal(run_steps(cfg, x)[:, 0], registry.get("gelu").run(x[:, 0], cfg.inner))


def test_requantisation_rounds_half_up_and_saturates():
    cfg = _cfg("silu", in_mult=3, in_shift=2, inc_width=20)
    x = np.array([-6, -5, -2, -1, 0, 1, 2, 5, 6, 1 << 20])
    assert requant(cfg, x).tolist() == [-4, -4, -1, -1, 0, 1, 2, 4, 5, cfg.inner.in_format.max_code]


@pytest.mark.parametrize("changes, message", [
    ({"op": "relu"}, "op='relu' is not allowed; allowed: softmax"),
    ({"steps": 0}, "steps"),
    ({"inc_width": 1}, "inc_width"),
    ({"op": "rmsnorm", "lanes": 4}, "lanes=4 is not allowed for the row operator rmsnorm"),
    ({"out_levels": 7}, "out_levels=7 is odd"),
    ({"encoding": "rate"}, "encoding='rate' is not allowed; allowed: 'difference', 'spikes'"),
    ({"inner": {"d_max": 8}}, "unknown parameter"),
    ({"inc_width": 32, "steps": 4096, "in_mult": 100000}, "bit product; allowed: at most 60"),
])
def test_bad_configurations_are_named(changes, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        StepConfig(**changes)


def test_bad_increments_are_named():
    cfg = _cfg("silu", lanes=2, inc_width=4)
    with pytest.raises(ValueError, match=r"increment of 8 is out of range; allowed: -8 \.\. 7"):
        run_steps(cfg, np.full((4, 2), 8))
    with pytest.raises(ValueError, match="shape"):
        run_steps(cfg, np.zeros((3, 2), np.int64))


def test_the_configuration_round_trips_through_json():
    cfg = _cfg("layernorm", steps=8, encoding="spikes")
    again = StepConfig.from_json(cfg.to_json())
    assert again == cfg and again.stable_hash() == cfg.stable_hash()
    assert cfg.replace(steps=16).total_width == cfg.total_width + 1


def _payload(cfg):
    rec = cfg.record
    if not rec.shape.is_row:
        return lambda it: it["data"]
    keys = ("data", "last", "masked") if rec.masked else ("data", "last")
    return lambda it: {k: it[k] for k in keys}


def _simulate(cfg, st, **kw):
    row = cfg.record.shape.is_row
    out, log = run_stream(SteppedOperator(cfg, **st.weights), st.stream(), payload=_payload(cfg), **kw)
    want = st.expected_stream()
    assert [int(o.data) if row else int(o) for o in out] == [w["data"] for w in want]
    if row:
        assert [int(o.last) for o in out] == [w["last"] for w in want]
    return log


@pytest.mark.parametrize("op", list(registry.OPERATORS))
@pytest.mark.parametrize("encoding", ["difference", "spikes"])
def test_rtl_equals_golden_under_idle_cycles_and_backpressure(op, encoding):
    lanes = None if registry.get(op).shape.is_row else 3
    cfg = _cfg(op, steps=3, inc_width=10, in_shift=1, lanes=lanes, encoding=encoding, out_shift=9,
               out_spikes=3, out_levels=32)
    _simulate(cfg, make_stepped(cfg, "corners", samples=3, seed=5), valid_p=0.7, ready_p=0.6, seed=3)


@pytest.mark.parametrize("op", ["silu", "softmax"])
def test_frames_of_one_element_read_what_the_previous_step_wrote(op):
    """Back-to-back frames of one element: each total is read the cycle after it is written (the
    memories' transparent read ports)."""
    cfg = StepConfig(op=op, inner={"d_max": 1} if op == "softmax" else None, steps=4,
                     lanes=None if op == "softmax" else 1)
    _simulate(cfg, make_stepped(cfg, "random", samples=6, seed=1))


@pytest.mark.parametrize("op", list(registry.OPERATORS))
def test_first_outputs_where_the_timing_model_says(op):
    """Source always valid, sink always ready: each frame's first output on the cycle the
    operator's model predicts from the cycles the operator took the frame's last input, plus the
    wrapper's output stages; the operator takes each element the wrapper's input stages later
    wherever it keeps up (always, but for a norm's shared CORDIC unit on rows this short);
    elementwise, a fixed latency."""
    rec = registry.get(op)
    cfg = _cfg(op, steps=2, lanes=None if rec.shape.is_row else 4)
    st = make_stepped(cfg, "random", samples=3, seed=7)
    dut = SteppedOperator(cfg, **st.weights)
    out, log = run_stream(dut, st.stream(), payload=_payload(cfg), watch={"op_in": dut.operator.i})
    assert [int(o.data) if rec.shape.is_row else int(o) for o in out] == [w["data"] for w in st.expected_stream()]
    if not rec.shape.is_row:
        assert {o - i for i, o in zip(log["in"], log["out"])} == {SteppedOperator.latency_for(cfg)}
        return
    lengths = [s.shape[1] for s in st.samples for _ in range(cfg.steps)]
    ends = np.cumsum(lengths)
    op_last_in = [log["op_in"][e - 1] for e in ends]
    first = [log["out"][e - n] for e, n in zip(ends, lengths)]
    model = rec.component().first_outputs(cfg.inner, lengths, op_last_in)
    assert first == [c + OUTPUT_STAGES for c in model]
    kept_up = [i + INPUT_STAGES for i in log["in"]] == log["op_in"]
    assert kept_up or rec.kind == "norm"
    if kept_up:
        assert first == SteppedOperator.first_outputs(cfg, lengths, [log["in"][e - 1] for e in ends])


@pytest.mark.parametrize("op", ["silu", "softmax"])
def test_per_position_multipliers(op):
    """``in_mults``: each frame position its own multiplier (a spiking layer's per-channel scale),
    in golden and from a table in the RTL."""
    rec = registry.get(op)
    frame = 8 if rec.shape.is_row else 5
    mults = tuple(int(v) for v in np.random.default_rng(2).integers(1, 3000, frame))
    cfg = _cfg(op, steps=3, inc_width=12, in_shift=9, in_mults=mults, lanes=None if rec.shape.is_row else frame)
    x = np.random.default_rng(3).integers(-2000, 2000, (3, frame))
    assert np.array_equal(requant(cfg, x), np.clip((x * np.array(mults) + 256) >> 9,
                                                   cfg.inner.in_format.min_code, cfg.inner.in_format.max_code))
    _simulate(cfg, make_stepped(cfg, "random", samples=4, seed=6), valid_p=0.8, ready_p=0.7)


def test_bad_multipliers_are_named():
    with pytest.raises(ValueError, match="in_mults of 3 entries is not allowed; allowed: 16 integers"):
        StepConfig(op="silu", in_mults=(1, 2, 3))
    with pytest.raises(ValueError, match="in_mult=2 is not allowed with in_mults"):
        StepConfig(op="silu", lanes=2, in_mult=2, in_mults=(1, 2))
    with pytest.raises(ValueError, match="in_mults holds 0"):
        StepConfig(op="silu", lanes=2, in_mults=(0, 2))
