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


def test_softmax_is_sized_for_the_models_context():
    """d_max follows max_position_embeddings (SmolLM2: 8,192), not the evaluation's 2048."""
    from spikeops.gen.llm.plan import default_config
    for positions in (64, 4096, 8192):
        assert default_config("softmax", tiny_llama(max_positions=positions).config).d_max == positions
    class Unsaid:  # a configuration that does not give its context
        hidden_size = 32
    assert default_config("softmax", Unsaid()).d_max == 2048


def test_a_prompt_longer_than_d_max_is_refused_before_the_forward_pass():
    """With a smaller d_max chosen, a longer input fails at once, naming the option; no attention
    (so no operator) has run; shorter inputs go on; another plan replaces the guard."""
    from spikeops.gen.llm.plan import apply_plan, make_plan
    model = _tiny()
    small = registry.get("softmax").default(d_max=16)
    apply_plan(model, make_plan(model, "llama", configs={"softmax": small}))
    calls = []
    model.model.layers[0].self_attn.register_forward_pre_hook(lambda *a: calls.append(1))
    with torch.no_grad(), pytest.raises(ValueError) as err:
        model(torch.randint(0, 97, (1, 20)))
    msg = str(err.value)
    assert "an input of 20 positions is not allowed" in msg and "d_max=16" in msg
    assert "--set softmax.d_max=N (up to the model's 64 positions)" in msg
    assert calls == []
    with torch.no_grad():
        model(torch.randint(0, 97, (1, 16)))
    assert calls == [1]
    apply_plan(model, make_plan(model, "llama"))  # sized for the 64 positions
    with torch.no_grad():
        model(torch.randint(0, 97, (1, 20)))
    assert len(model._forward_pre_hooks) == 1
