"""The model-divergence figure (spikeops.gen.llm.divergence) on tiny random models: the text's windows,
zero for identical models, the equations against a hand computation, sensitivity to an operator's
output grid, the glue that runs one operator's configuration (a fake session: nothing is loaded)."""

import copy
import math
from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from tiny_models import tiny_bert, tiny_llama  # noqa: E402

from spikeops.gen.llm import divergence as dv  # noqa: E402
from spikeops.gen.llm import model_accuracy as ma  # noqa: E402
from spikeops.gen.llm.calibrate import observe  # noqa: E402
from spikeops.gen.llm.plan import apply_plan, make_plan  # noqa: E402
from spikeops.gen.llm.sites import discover  # noqa: E402
from spikeops.golden import registry  # noqa: E402

TEXTS = ["The cat sat on the mat and looked at the door.", "It rained all day, so the children stayed inside.",
         "A short one.", "Later that evening the sky cleared and the stars came out over the quiet town."]


class CharTokenizer:
    """One token per character (ids 4..93); 1 end of text, 2 [SEP], 3 [CLS]."""

    eos_token_id, sep_token_id, cls_token_id = 1, 2, 3

    def __call__(self, text, add_special_tokens=False):
        assert not add_special_tokens
        return {"input_ids": [4 + ord(c) % 90 for c in text]}


def _llama(seed=0):
    return tiny_llama(seed, max_positions=64, eager=True)


def _bert(seed=0):
    return tiny_bert(seed)


def _perturbed(model, scale=0.05):
    out = copy.deepcopy(model)
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in out.parameters():
            if p.ndim == 2 and p.shape[0] != 97:  # the projections, not the embedding / head
                p.add_(scale * p.abs().mean() * torch.randn(p.shape, generator=g))
    return out


def _converted(model, configs):
    out = copy.deepcopy(model)
    ids = torch.randint(4, 94, (2, 16), generator=torch.Generator().manual_seed(3))
    stats = observe(out, discover(out, "llama"), [ids])
    apply_plan(out, make_plan(out, "llama", kinds=("softmax",), configs=configs, stats=stats))
    return out


# -- the text ------------------------------------------------------------------------------------
def test_windows_cover_the_text_once_after_separators():
    tok = CharTokenizer()
    stream = [1] + tok(TEXTS[0])["input_ids"] + [1] + tok(TEXTS[1])["input_ids"]
    w = dv.token_windows(tok, "llama", 70, 32, TEXTS)
    # inputs ids[:-1], next tokens ids[1:]: 32 + 32 + 6 positions, consecutive windows share one id
    assert w == [stream[0:33], stream[32:65], stream[64:71]]
    assert sum(len(x) - 1 for x in w) == 70
    bstream = [2] + tok(TEXTS[0])["input_ids"] + [2] + tok(TEXTS[1])["input_ids"]
    b = dv.token_windows(tok, "bert", 70, 32, TEXTS)
    assert b == [[3] + bstream[0:30] + [2], [3] + bstream[30:60] + [2], [3] + bstream[60:70] + [2]]
    with pytest.raises(ValueError, match=r"tokens=500 is more than the text holds with this tokenizer "
                                         r"\(189 tokens, separators included\)"):
        dv.token_windows(tok, "llama", 500, 32, TEXTS)
    # the default text: CoQA stories, distinct, not the calibration or the tables' text
    from spikeops.gen.llm import data
    stories = data.stories(3)
    assert len(stories) == 3 and len(set(stories)) == 3 and not set(stories) & set(data.calibration_texts(8))
    assert dv.token_windows(tok, "llama", 40, 16)[0][1:] == tok(stories[0])["input_ids"][:16]


def test_bad_token_counts_name_the_option_the_value_and_what_is_allowed():
    for bad in (0, 15, 65537, 2.5, True, "2048"):
        with pytest.raises(ValueError, match=r"^tokens=.* is not allowed; allowed: an integer in \[16, 65536\]"):
            dv.check_tokens(bad)
    with pytest.raises(ValueError, match=r"^--model-divergence 8 is not allowed; allowed: an integer in \[16, 65536\] "
                                         r"\(tokens of text\)$"):
        dv.check_tokens(8, "--model-divergence")
    dv.check_tokens(16)
    dv.check_tokens(np.int64(4096))


# -- the figures ---------------------------------------------------------------------------------
def test_identical_models_give_zero_divergence_and_full_agreement():
    model = _llama()
    windows = dv.token_windows(CharTokenizer(), "llama", 40, 16, TEXTS)
    ref = dv.reference(model, "llama", windows)
    for other in (model, copy.deepcopy(model)):
        out = dv.divergence(ref, other)
        assert out["kl_mean"] == 0.0 and out["kl_max"] == 0.0 and out["kl_sem"] == 0.0
        assert out["top1_agreement"] == 1.0 and out["ppl"] == out["ppl_float"]
        assert out["nll_delta"] == 0.0 and out["ppl_delta_pct"] == 0.0
        assert (out["tokens"], out["windows"]) == (40, 3)
    bert = _bert()
    windows = dv.token_windows(CharTokenizer(), "bert", 40, 16, TEXTS)
    out = dv.divergence(dv.reference(bert, "bert", windows), copy.deepcopy(bert))
    assert out["cos_dist_mean"] == 0.0 and out["cos_dist_max"] == 0.0 and out["emb_cos_dist_mean"] == 0.0


def _log_softmax(x):
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def test_decoder_figures_equal_a_hand_computation():
    """Reference: one plain forward per window through the whole model, numpy in float64."""
    f, g = _llama(), _perturbed(_llama())
    windows = dv.token_windows(CharTokenizer(), "llama", 40, 16, TEXTS)
    out = dv.divergence(dv.reference(f, "llama", windows, batch_tokens=40), g, batch_tokens=40)
    kl, agree, nll_f, nll_g = [], [], [], []
    with torch.no_grad():
        for w in windows:
            ids, nxt = torch.tensor([w[:-1]]), np.array(w[1:])
            lp = _log_softmax(f(ids).logits[0].double().numpy())
            lq = _log_softmax(g(ids).logits[0].double().numpy())
            kl += list((np.exp(lp) * (lp - lq)).sum(axis=1))
            agree += list(lp.argmax(1) == lq.argmax(1))
            nll_f += list(-lp[np.arange(len(nxt)), nxt])
            nll_g += list(-lq[np.arange(len(nxt)), nxt])
    kl = np.array(kl)
    assert len(kl) == 40 and out["kl_mean"] > 1e-6
    assert out["kl_mean"] == pytest.approx(kl.mean(), rel=1e-6)
    assert out["kl_max"] == pytest.approx(kl.max(), rel=1e-6)
    assert out["kl_sem"] == pytest.approx(kl.std(ddof=1) / math.sqrt(40), rel=1e-5)
    assert out["top1_agreement"] == np.mean(agree) < 1
    assert out["ppl_float"] == pytest.approx(math.exp(np.mean(nll_f)), rel=1e-9)
    assert out["ppl"] == pytest.approx(math.exp(np.mean(nll_g)), rel=1e-9)
    assert out["nll_delta"] == pytest.approx(np.mean(nll_g) - np.mean(nll_f), rel=1e-6, abs=1e-12)
    assert out["ppl_delta_pct"] == pytest.approx(100 * (out["ppl"] / out["ppl_float"] - 1), rel=1e-9)


def test_encoder_figures_equal_a_hand_computation():
    f, g = _bert(), _perturbed(_bert())
    windows = dv.token_windows(CharTokenizer(), "bert", 40, 16, TEXTS)
    out = dv.divergence(dv.reference(f, "bert", windows), g)
    tok_d, emb_d = [], []

    def dist(a, b):
        return 1 - (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)

    with torch.no_grad():
        for w in windows:
            ids = torch.tensor([w])
            a, b = (m(input_ids=ids).last_hidden_state[0].double().numpy() for m in (f, g))
            tok_d += list(dist(a[1:-1], b[1:-1]))
            emb_d.append(dist(a.mean(0), b.mean(0)))
    assert len(tok_d) == 40 and out["cos_dist_mean"] > 1e-6
    assert out["cos_dist_mean"] == pytest.approx(np.mean(tok_d), rel=1e-5)
    assert out["cos_dist_max"] == pytest.approx(np.max(tok_d), rel=1e-5)
    assert out["emb_cos_dist_mean"] == pytest.approx(np.mean(emb_d), rel=1e-5)
    assert "kl_mean" not in out


def test_a_coarser_softmax_grid_diverges_more_and_a_short_row_is_refused():
    f = _llama()
    windows = dv.token_windows(CharTokenizer(), "llama", 48, 16, TEXTS)
    ref = dv.reference(f, "llama", windows)
    sm = registry.get("softmax")
    kl = {b: dv.divergence(ref, _converted(f, {"softmax": sm.default(d_max=64, out_frac=b)}))["kl_mean"]
          for b in (4, 8, 16)}
    assert kl[4] > kl[8] > kl[16] > 0
    with pytest.raises(ValueError, match=r"softmax d_max=8 is shorter than the 16-token windows; allowed: "
                                         r"d_max >= 16"):
        dv.divergence(ref, _converted(f, {"softmax": sm.default(d_max=8)}))
    with pytest.raises(ValueError, match=r"windows of 80 tokens do not fit the model's 64 positions; allowed: "
                                         r"window <= 64"):
        dv.reference(f, "llama", dv.token_windows(CharTokenizer(), "llama", 100, 80, TEXTS))


# -- one operator's configuration in the embedded model ------------------------------------------------
def test_model_divergence_replaces_the_operators_kind_and_runs_float_once(monkeypatch):
    sessions, plans, refs = {}, [], []
    model = _llama()

    class FakeSession:
        def __init__(self, name):
            self.name = name
            self.lm = SimpleNamespace(model=model, family="llama", tokenizer=CharTokenizer())

        def plan(self, kinds, configs):
            plans.append((self.name, kinds, configs))
            return kinds, configs

        def converted(self, plan):
            kinds, configs = plan
            assert kinds == ("softmax",)
            return SimpleNamespace(model=_converted(model, configs))

    monkeypatch.setattr(ma, "calibrated_session", lambda name: sessions.setdefault(name, FakeSession(name)))
    real = dv.reference
    monkeypatch.setattr(dv, "reference", lambda *a, **k: refs.append(a[1:]) or real(*a, **k))
    sm = registry.get("softmax")
    a = dv.model_divergence("softmax", sm.default(d_max=64, out_frac=6), tokens=32, window=16)
    b = dv.model_divergence("softmax", sm.default(d_max=64, out_frac=12), tokens=32, window=16)
    assert len(refs) == 1 and a["seconds_float"] > 0 and b["seconds_float"] == 0.0  # float: once
    assert [p[:2] for p in plans] == [("smollm2", ("softmax",))] * 2
    assert plans[0][2] == {"softmax": sm.default(d_max=64, out_frac=6)}
    assert a["kl_mean"] > b["kl_mean"] > 0 and a["ppl_float"] == b["ppl_float"]
    assert {k: a[k] for k in ("tokens", "windows", "window", "text", "model", "family")} == {
        "tokens": 32, "windows": 2, "window": 16, "text": dv.TEXT, "model": "smollm2", "family": "llama"}
    with pytest.raises(ValueError, match=r"^model_divergence: op='sigmoid' is not used by the embedded models; "
                                         r"allowed: softmax, silu, rmsnorm \(SmolLM2\), gelu, layernorm \(MiniLM\)"):
        dv.model_divergence("sigmoid", sm.default(), tokens=32)
    with pytest.raises(ValueError, match=r"^tokens=4 is not allowed; allowed: an integer in \[16, 65536\]"):
        dv.model_divergence("softmax", sm.default(), tokens=4)
