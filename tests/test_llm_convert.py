"""Conversion of a (tiny, randomly initialised) Llama model; no download, no hub."""

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from tiny_models import tiny_llama  # noqa: E402

from spikeops.gen.llm.calibrate import in_frac_for, observe_ranges  # noqa: E402
from spikeops.gen.llm.convert import convert  # noqa: E402
from spikeops.gen.llm.operators import SpikingActivation, SpikingRMSNorm, fit_gamma  # noqa: E402
from spikeops.golden import registry  # noqa: E402


def _tiny(seed=0):
    model = tiny_llama(seed)
    with torch.no_grad():  # give the norms weights that are not all 1
        for layer in model.model.layers:
            layer.input_layernorm.weight.uniform_(0.5, 2.0)
    return model


def test_conversion_replaces_every_operator_and_stays_close_to_float():
    model = _tiny()
    ids = torch.randint(0, 97, (2, 24))
    with torch.no_grad():
        ref = model(ids).logits
    ranges = observe_ranges(model, [torch.randint(0, 97, (2, 24))])
    assert ranges["model.layers.0.input_layernorm"] > 0 and len(ranges) == 9
    replaced = convert(model, ranges=ranges)
    assert replaced["norm"] == ["model.layers.0.input_layernorm", "model.layers.0.post_attention_layernorm",
                                "model.layers.1.input_layernorm", "model.layers.1.post_attention_layernorm",
                                "model.norm"]
    assert isinstance(model.model.layers[1].mlp.act_fn, SpikingActivation)
    assert isinstance(model.model.norm, SpikingRMSNorm)
    with torch.no_grad():
        out = model(ids).logits
    rel = (out - ref).abs().max() / ref.abs().max()
    assert 0 < rel < 2e-3, rel  # integer operators at calibrated scales: not identical, but close
    assert model.model.layers[0].input_layernorm.cfg.in_frac == in_frac_for(
        ranges["model.layers.0.input_layernorm"], 24)


def test_causal_mask_survives_conversion():
    """Changing a later token must not change earlier logits (fails if the mask were lost)."""
    model = _tiny(1)
    convert(model, kinds=("softmax",))
    ids = torch.randint(0, 97, (1, 16))
    ids2 = ids.clone()
    ids2[0, 10:] = (ids2[0, 10:] + 5) % 97
    with torch.no_grad():
        a, b = model(ids).logits, model(ids2).logits
    assert torch.equal(a[0, :10], b[0, :10])
    assert not torch.equal(a[0, 10:], b[0, 10:])


def test_selective_conversion_by_kind_and_layer():
    model = _tiny()
    replaced = convert(model, kinds=("norm", "activation"), layers=[1])
    assert replaced["norm"] == ["model.layers.1.input_layernorm", "model.layers.1.post_attention_layernorm"]
    assert replaced["softmax"] == []
    assert not isinstance(model.model.layers[0].mlp.act_fn, SpikingActivation)
    with pytest.raises(ValueError, match=r"convert: layer 5 does not exist; allowed: 0 .. 1"):
        convert(_tiny(), layers=[5])
    with pytest.raises(ValueError, match=r"convert: kinds \['gelu'\] are unknown"):
        convert(_tiny(), kinds=("gelu",))


def test_fit_gamma_keeps_the_largest_weight():
    cfg = registry.get("rmsnorm").default(d=4)
    assert fit_gamma(cfg, [0.5, 1.0, -0.25, 0.1]).gamma_frac == 14
    assert fit_gamma(cfg, [30.0, 1.0, 0.0, 0.0]).gamma_frac == 10
    big = fit_gamma(cfg, [100.0, -3.0, 0, 0])
    assert big.quantize_gamma([100.0])[0] == round(100.0 * 2 ** big.gamma_frac)


def test_in_frac_rule():
    assert in_frac_for(1.0, 16) == 14          # 1.0 * 2**14 < 2**15, 2**15 is not
    assert in_frac_for(0.99, 16) == 15
    assert in_frac_for(1e4, 24) == 9           # SmolLM2's outliers: 1e4 * 2**9 < 2**23
    assert in_frac_for(0.0, 16) == 15
    assert in_frac_for(1e9, 16) == 0           # saturates rather than overflow the format
