"""BERT conversion, conversion plans, capture files, evaluation data and scoring (tiny models; no hub)."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from tiny_models import tiny_bert, tiny_llama  # noqa: E402

from spikeops.gen.llm import capture as cap  # noqa: E402
from spikeops.gen.llm.calibrate import calibrated, observe  # noqa: E402
from spikeops.gen.llm.command import parse_layers  # noqa: E402
from spikeops.gen.llm.evaluate import embedding_agreement  # noqa: E402
from spikeops.gen.llm.operators import SpikingActivation, SpikingLayerNorm, recording  # noqa: E402
from spikeops.gen.llm.plan import Plan, apply_plan, make_plan  # noqa: E402
from spikeops.gen.llm.sites import discover  # noqa: E402
from spikeops.gen.llm.table import format_table  # noqa: E402
from spikeops.golden import registry  # noqa: E402
from spikeops.golden.fixed import dequantize, quantize  # noqa: E402

pytestmark = pytest.mark.usefixtures("numpy_backend")


def _tiny_bert(seed=0):
    model = tiny_bert(seed, vocab_size=101)
    with torch.no_grad():
        for layer in model.encoder.layer:
            layer.output.LayerNorm.weight.uniform_(0.5, 2.0)
            layer.output.LayerNorm.bias.uniform_(-0.5, 0.5)
    return model


def _bert_batch(seed=1):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 101, (3, 12), generator=g)
    att = torch.ones_like(ids)
    att[1, 8:] = 0  # padding: masked keys must not take part in the softmax
    return {"input_ids": ids, "attention_mask": att}


def test_bert_sites_and_conversion_stay_close_to_float():
    model = _tiny_bert()
    batch = _bert_batch()
    with torch.no_grad():
        ref = model(**batch).last_hidden_state
    sites = discover(model, "bert")
    assert [s.op for s in sites[:5]] == ["layernorm", "softmax", "layernorm", "gelu", "layernorm"]
    stats = observe(model, sites, [batch])
    assert all(v["in"] > 0 for v in stats.values())
    plan = make_plan(model, "bert", stats=stats)
    assert plan.by_kind()["norm"][0] == "embeddings.LayerNorm" and len(plan.instances) == 9
    apply_plan(model, plan)
    assert isinstance(model.encoder.layer[1].output.LayerNorm, SpikingLayerNorm)
    assert isinstance(model.encoder.layer[0].intermediate.intermediate_act_fn, SpikingActivation)
    with torch.no_grad():
        out = model(**batch).last_hidden_state
    valid = batch["attention_mask"].bool()
    rel = (out - ref)[valid].abs().max() / ref[valid].abs().max()
    assert 0 < rel < 2e-2, rel


def test_bert_padding_mask_survives_conversion():
    """Changing a padded token must not change the valid positions' outputs."""
    model = _tiny_bert(2)
    apply_plan(model, make_plan(model, "bert", kinds=("softmax",)))
    a = _bert_batch()
    b = {k: v.clone() for k, v in a.items()}
    b["input_ids"][1, 9] = (b["input_ids"][1, 9] + 7) % 101
    with torch.no_grad():
        ya, yb = model(**a).last_hidden_state, model(**b).last_hidden_state
    assert torch.equal(ya[1, :8], yb[1, :8])
    assert not torch.equal(ya[1, 9], yb[1, 9])


def test_plan_round_trips_through_json_and_reproduces_the_model(tmp_path):
    model = tiny_llama()
    ids = torch.randint(0, 97, (2, 16), generator=torch.Generator().manual_seed(3))
    stats = observe(model, discover(model, "llama"), [ids])
    plan = make_plan(model, "llama", name="tiny", layers=[1], stats=stats, calibration={"text": "random ids"})
    path = plan.save(tmp_path / "plan.json")
    raw = json.loads(path.read_text())
    assert raw["format"] == "spikeops-plan" and raw["layers"] == [1]
    assert {i["name"] for i in raw["instances"]} == {
        "model.layers.1.self_attn", "model.layers.1.input_layernorm", "model.layers.1.post_attention_layernorm",
        "model.layers.1.mlp.act_fn"}
    again = Plan.load(path)
    assert [i["config"] for i in again.instances] == [i["config"] for i in plan.instances]
    m1, m2 = tiny_llama(), tiny_llama()
    apply_plan(m1, plan)
    apply_plan(m2, again)
    with torch.no_grad():
        assert torch.equal(m1(ids).logits, m2(ids).logits)
    # calibrated scales: the norm input's largest value fits, with the most fraction bits
    inst = next(i for i in again.instances if i["name"] == "model.layers.1.input_layernorm")
    assert inst["config"] == calibrated(
        registry.get("rmsnorm").default(d=64, eps=1e-5), stats["model.layers.1.input_layernorm"]).replace(
        gamma_frac=inst["config"].gamma_frac)
    assert len(again.configs()) == 3  # rmsnorm twice (one config each if scales differ) collapses by hash
    bad = dict(raw, version=99)
    with pytest.raises(ValueError, match="plan: format 'spikeops-plan' version 99 is not allowed"):
        Plan.from_json(bad)


def test_plan_refuses_a_model_it_was_not_made_for():
    plan = make_plan(tiny_llama(), "llama")
    with pytest.raises(ValueError, match="does not exist in this bert model"):
        apply_plan(_tiny_bert(), Plan.from_json(dict(plan.to_json(), family="bert")))


def test_capture_records_codes_that_reproduce_the_golden_outputs(tmp_path):
    model = tiny_llama()
    ids = torch.randint(0, 97, (2, 10), generator=torch.Generator().manual_seed(4))
    plan = make_plan(model, "llama", stats=observe(model, discover(model, "llama"), [ids]))
    apply_plan(model, plan)
    rec = cap.Recorder(max_rows=7, seed=1)
    with recording(rec), torch.no_grad():
        model(ids)
        model(ids[:, :6])
    c = rec.capture(model="tiny", prompts=2)
    path = cap.save(c, tmp_path / "c.npz")
    back = cap.load(path)
    assert back.meta["model"] == "tiny" and back.meta["max_rows"] == 7
    assert back.ops() == ["rmsnorm", "silu", "softmax"]
    sm = next(i for i in back.instances if i.name == "model.layers.0.self_attn")
    assert sm.x.shape == (7, 10) and sm.mask is not None and sm.calls == 2
    assert sm.rows_seen == 2 * 4 * 10 + 2 * 4 * 6
    # masked positions carry the mask code; the causal row t has t+1 valid positions at most
    assert np.all(sm.x[~sm.mask] == sm.cfg.in_format.mask_code)
    nrm = next(i for i in back.instances if i.name == "model.layers.1.input_layernorm")
    assert nrm.gamma is not None and nrm.x.shape == (7, 64) and nrm.rows_seen == 2 * 10 + 2 * 6
    # the stored codes are what the operator saw: golden on them equals the model's output codes
    x = torch.from_numpy(nrm.values()).float()
    y = model.model.layers[1].input_layernorm(x)
    assert np.array_equal(np.round(y.double().numpy() * 2 ** nrm.cfg.out_frac).astype(np.int64), nrm.golden())
    xs, ms = sm.block(range(5))
    assert xs.shape == (5, 10) and ms.shape == (5, 10)
    # one row per captured row, cut after its last valid position
    rows = sm.rows()
    assert len(rows) == 7 and all(m is not None and m[-1] and len(x) == len(m) for x, m in rows)
    with pytest.raises(ValueError, match="no instance of op='gelu'"):
        back.instances_of("gelu")


def test_capture_refuses_bad_files(tmp_path):
    np.savez(tmp_path / "x.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="has no __meta__ entry"):
        cap.load(tmp_path / "x.npz")
    with pytest.raises(ValueError, match="max_rows=0 is not allowed"):
        cap.Recorder(max_rows=0)


def test_reservoir_keeps_a_uniform_bounded_sample():
    rec = cap.Recorder(max_rows=50, seed=0)
    cfg = registry.get("silu").default()
    for k in range(40):
        rec.record("a", "silu", 0, cfg, np.arange(k * 25, (k + 1) * 25).reshape(25, 1))
    got = rec.items["a"].x[:, 0]
    assert len(got) == 50 and len(set(got)) == 50 and rec.items["a"].rows_seen == 1000
    assert 300 < got.mean() < 700  # drawn from the whole stream, not its head


def test_parse_layers():
    assert parse_layers("0-2,5") == [0, 1, 2, 5]
    assert parse_layers("all") is None
    with pytest.raises(ValueError, match="--layers '3-1'"):
        parse_layers("3-1")


def test_embedding_agreement_and_table():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(40, 8))
    r = embedding_agreement(a, a + 1e-9)
    assert r["cosine_min"] > 0.999999 and r["top1_agreement"] == 1.0 and r["top5_overlap"] == 1.0
    r = embedding_agreement(a, rng.normal(size=(40, 8)))
    assert r["top1_agreement"] < 0.5
    rep = {"model": "m", "family": "llama", "tasks": ["piqa"], "limit": 3, "rows": {
        "original": {"tasks": {"piqa": {"acc": 0.5, "acc_norm": 0.6}}, "avg": {"acc": 0.5, "acc_norm": 0.6},
                     "lambada": {"perplexity": 20.0}},
        "all": {"tasks": {"piqa": {"acc": 0.48, "acc_norm": 0.6}}, "avg": {"acc": 0.48, "acc_norm": 0.6},
                "lambada": {"perplexity": 20.2}, "slowdown": 1.5}}}
    md = format_table(rep)
    assert "| all | 48.0 (-2.0) | 48.00 (-2.00) | 20.200 (+1.00%) | 1.50x |" in md


def test_model_accuracy_replaces_the_operators_kind_in_the_model_that_runs_it(monkeypatch):
    """The model comes from the embedded models' operator lists, the kind from the operator record
    (a fake session: nothing is loaded)."""
    from types import SimpleNamespace

    from spikeops.gen.llm import model_accuracy as ma
    from spikeops.gen.llm.models import model_for

    assert [model_for(op) for op in ("softmax", "silu", "rmsnorm", "gelu", "layernorm", "sigmoid")] == [
        "smollm2", "smollm2", "smollm2", "minilm", "minilm", None]
    with pytest.raises(ValueError, match=r"op='sigmoid' is not used by the embedded models; allowed: "
                                         r"softmax, silu, rmsnorm \(SmolLM2\), gelu, layernorm \(MiniLM\)"):
        ma.model_accuracy("sigmoid", None)
    seen = []

    class FakeSession:
        def __init__(self, model):
            self.model, self.lm = model, SimpleNamespace(family="llama")

        def plan(self, kinds, configs):
            seen.append((self.model, kinds, configs))

        def converted(self, plan):
            return "converted"

    monkeypatch.setattr(ma, "calibrated_session", FakeSession)
    monkeypatch.setattr(ma, "evaluate_tasks", lambda lm, tasks, limit, ppl_limit, progress: {
        "tasks": {"piqa": {"acc": 0.5}}, "avg": {"acc": 0.5, "acc_norm": 0.25}, "lambada": {"perplexity": 9.0}})
    out = ma.model_accuracy("rmsnorm", "cfg", limit=3)
    assert out == {"acc_piqa": 0.5, "avg_acc": 0.5, "avg_acc_norm": 0.25, "lambada_ppl": 9.0}
    ma.model_accuracy("silu", "cfg")
    assert seen == [("smollm2", ("norm",), {"rmsnorm": "cfg"}), ("smollm2", ("activation",), {"silu": "cfg"})]


def test_verilog_from_a_plan_emits_each_distinct_configuration(tmp_path, capsys):
    from spikeops.gen.cli import main
    model = tiny_llama()
    ids = torch.randint(0, 97, (2, 16), generator=torch.Generator().manual_seed(5))
    plan = make_plan(model, "llama", layers=[0], kinds=("activation", "norm"),
                     stats=observe(model, discover(model, "llama"), [ids]))
    path = plan.save(tmp_path / "plan.json")
    assert main(["verilog", "--plan", str(path), "-o", str(tmp_path / "rtl")]) == 0
    dirs = sorted(p.name for p in (tmp_path / "rtl").iterdir())
    assert dirs == sorted(f"{op}-{h}" for op, h in plan.configs())
    for op, h in plan.configs():
        manifest = json.loads((tmp_path / "rtl" / f"{op}-{h}" / f"spikeops_{op}.json").read_text())
        assert manifest["config_hash"] == h
    assert "serves 1 instance(s): model.layers.0.mlp.act_fn" in capsys.readouterr().out
    assert main(["verilog", "--plan", str(path), "--op", "silu", "-o", str(tmp_path / "x")]) == 2


@pytest.mark.parametrize("hidden_act, form", [("gelu", "erf"), ("gelu_new", "tanh"), ("gelu_pytorch_tanh", "tanh"),
                                              ("quick_gelu", "sigmoid")])
def test_the_conversion_takes_the_gelu_the_model_declares(hidden_act, form):
    model = _tiny_bert()
    model.config.hidden_act = hidden_act
    plan = make_plan(model, "bert", kinds=("activation",))
    forms = {i["config"].form for i in plan.instances}
    assert forms == {form}
    # the plan records the form, and the reloaded plan computes the same function
    back = Plan.from_json(json.loads(json.dumps(plan.to_json())))
    assert {i["config"].form for i in back.instances} == {form}
    # each instance computes its own form's exact GELU within 1 LSB on a grid of inputs
    cfg = plan.instances[0]["config"]
    x = np.linspace(-6, 6, 2001)
    codes = registry.get("gelu").run(quantize(x, cfg.in_format), cfg)
    exact = cfg.reference(dequantize(quantize(x, cfg.in_format), cfg.in_format))
    assert np.abs(codes - np.round(exact * 2 ** cfg.out_frac)).max() <= 1


def test_an_activation_no_operator_computes_is_refused():
    model = _tiny_bert()
    model.config.hidden_act = "gelu_10"
    with pytest.raises(ValueError, match=r"convert: hidden_act='gelu_10' has no spiking operator that computes it; "
                                         r"allowed: silu, swish, gelu, gelu_python, gelu_new"):
        make_plan(model, "bert", kinds=("activation",))
