"""The spiking network's operator instances as time-stepped operators: the increments each instance
receives inside the SNN of a tiny random Llama, run through the wrapper's specification
(``golden/steps.py``), give exactly the differences the network computed, at every step and site;
and the emitted wrapper reproduces them on the simulators (the SNN's per-channel scales included)."""

import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from tiny_models import tiny_llama  # noqa: E402

from spikeops.gen.llm.snn import SNNConfig, calibrate, convert  # noqa: E402
from spikeops.gen.llm.snn.stepped import site, unwatch, watch  # noqa: E402
from spikeops.golden.steps import run_steps  # noqa: E402
from spikeops.verif import env  # noqa: E402
from spikeops.verif.steps_runner import SteppedRegression  # noqa: E402

T = 4


@pytest.fixture(scope="module")
def sites():
    model = tiny_llama(0)
    gen = torch.Generator().manual_seed(1)
    batches = [torch.randint(0, 97, (4, 24), generator=gen) for _ in range(2)]
    snn = convert(model, SNNConfig.parse(f"T={T},L=4"), calibrate(model, batches))
    ops = watch(snn)
    snn.run(batches[0][:2, :12])
    out = {op.name: site(op, T) for op in ops}
    unwatch(ops)
    return out


def test_every_site_is_the_wrapper_at_every_step(sites):
    assert len(sites) == 9  # 2 layers x (2 norms, softmax, SiLU) + the final norm
    kinds = set()
    for name, s in sites.items():
        mask = None if s.masks is None else s.masks[:, None, :]
        got = run_steps(s.cfg, s.increments, mask=mask, **s.weights)
        assert np.array_equal(got, s.outputs), name
        kinds.add((s.cfg.op, s.cfg.in_mults is not None))
        if s.cfg.op != "rmsnorm" or s.layer > 0:  # (layer 0's first norm takes the embedding at step 0 only)
            assert s.outputs.any(axis=(0, 2)).sum() >= 2, f"{name}: fewer than two active steps"
    assert ("silu", True) in kinds  # per-channel scales: the gate's per-output-channel weight scales


SITES = ["model.layers.0.self_attn", "model.layers.1.mlp.act_fn", "model.layers.0.input_layernorm"]
#: Icarus in the default suite (or the one SPIKEOPS_SIM names), Verilator too with -m slow
SIMS = [os.environ.get("SPIKEOPS_SIM", "icarus")] + ([] if os.environ.get("SPIKEOPS_SIM") else ["verilator"])


@pytest.mark.parametrize("sim", [pytest.param(s, marks=() if j == 0 else pytest.mark.slow) for j, s in enumerate(SIMS)])
@pytest.mark.parametrize("name", SITES)
def test_the_emitted_wrapper_reproduces_the_network(sites, name, sim, tmp_path):
    reason = env.unavailable_reason(sim)
    if reason:
        pytest.skip(f"{sim}: {reason}")
    s = sites[name]
    keep = slice(0, 3)
    res = SteppedRegression(s.cfg, sim, weights=s.weights, root=tmp_path).run(
        increments=s.samples[keep], masks=None if s.masks is None else list(s.masks[keep]))
    assert res.tests == 10 and res.failed == 0, res.log[-3000:]
