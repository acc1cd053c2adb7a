"""The converted LLM as a spiking network (spikeops.gen.llm.snn): the neuron against its numpy
reference, the exact product rule, integer rescaling, and the theorem the package rests on: after
the network settles, every site's accumulated total equals the QANN's, bit for bit (tiny random
Llama; SmolLM2 on two prompts)."""

import math
import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from tiny_models import tiny_llama  # noqa: E402

from spikeops.gen.llm.snn import SNNConfig, calibrate, convert  # noqa: E402
from spikeops.gen.llm.snn.activity import float_op_counts, op_counts  # noqa: E402
from spikeops.gen.llm.snn.config import EnergyConfig  # noqa: E402
from spikeops.gen.llm.snn.layers import OperatorOnTotals, product_step  # noqa: E402
from spikeops.gen.llm.snn.neurons import IFNeurons, if_reference  # noqa: E402
from spikeops.gen.llm.snn.quantizers import (Requant, activation_scale, int_matmul,  # noqa: E402
                                             quantize_weight)
from spikeops.gen.llm.snn.smooth import smoothed_weights  # noqa: E402
from spikeops.golden import registry  # noqa: E402


# -- configuration -------------------------------------------------------------------------------
def test_config_parses_describes_and_hashes():
    c = SNNConfig.parse("T=4,L=16,W=8,A=8")
    assert (c.T, c.L, c.W, c.A, c.N, c.levels, c.w_max) == (4, 16, 8, 8, 256, (-128, 127), 127)
    assert c.spiking and c.steps == 4 and c.per_step == 16
    s = SNNConfig.parse("T=settle, L=1, W=4, A=4, ops=float, e_ac=0.5, A.p=6")
    assert s.T is None and s.N == 16 and s.bits("p") == 6 and s.bits("model.layers.3.q") == 4
    assert s.site_levels("p") == (-32, 31) and s.energy.e_ac == 0.5
    assert not s.spiking and s.steps == 1 and s.per_step is None  # the settled fast path is the QANN
    assert s.replace(fast=False).steps == s.max_steps
    assert SNNConfig.from_json(s.to_json()) == s and SNNConfig.parse(s.spec()) == s
    assert s.stable_hash() == SNNConfig.from_json(s.to_json()).stable_hash() != c.stable_hash()
    assert s.network_hash() == s.replace(energy=EnergyConfig(e_ac=2.0)).network_hash()
    assert s.stable_hash() != s.replace(energy=EnergyConfig(e_ac=2.0)).stable_hash()
    assert c.describe() == "SNN T=4 L=16 W8A8" and SNNConfig.parse("mode=qann").describe() == "QANN W8A8"
    assert c.tl_bits == math.ceil(math.log2(2 * 4 * 16 + 1))


@pytest.mark.parametrize("text, message", [
    ("T=4,X=3", r"snn: unknown key 'X' in 'X=3'; allowed: T, L, W, A, mode, ops, .*A\.<site>"),
    ("L=0", r"snn: L=0 is out of range; allowed: in \[1, 65536\]"),
    ("T=abc", r"snn: T='abc' is not allowed; allowed: an integer or 'settle'"),
    ("W=1", r"snn: W=1 is out of range; allowed: in \[2, 16\]"),
    ("mode=ann", r"snn: mode='ann' is not allowed; allowed: 'qann', 'snn'"),
    ("ops=exact", r"snn: ops='exact' is not allowed; allowed: 'spikeops', 'float'"),
    ("pow2=maybe", r"snn: pow2='maybe' is not allowed; allowed: 1, 0, true, false"),
    ("A.z=8", r"snn: A.z names no quantiser site; allowed: A.attn_in, A.q"),
    ("A.p=20", r"snn: A.p=20 is out of range; allowed: in \[2, 16\]"),
    ("e_ac=-1", r"energy: e_ac=-1.0 is out of range"),
    ("T4", r"snn: 'T4' is not allowed; allowed: key=value pairs"),
])
def test_config_errors_name_key_value_and_allowed(text, message):
    with pytest.raises(ValueError, match=message):
        SNNConfig.parse(text)


# -- the neuron ----------------------------------------------------------------------------------
@pytest.mark.parametrize("G, L, A", [(1, 1, 8), (4, 1, 4), (6, 3, 4), (5, 16, 8), (3, None, 4)])
def test_neuron_matches_the_numpy_reference_and_settles_to_the_quantiser(G, L, A):
    rng = np.random.default_rng(G * 100 + A)
    lo, hi = -(1 << (A - 1)), (1 << (A - 1)) - 1
    theta = 1 << G
    T = 3 * (1 << A) + 8
    cur = np.zeros((T, 64), dtype=np.int64)
    cur[0] = rng.integers(-(hi + 40) * theta, (hi + 40) * theta, 64)  # beyond the levels both ways
    cur[1:4] = rng.integers(-3 * theta, 3 * theta, (3, 64))           # later input of both signs
    cur[:, :4] = 0
    cur[0, :4] = [theta // 2 - 1, -theta // 2, -theta // 2 - 1, 0]    # rounding at half a threshold
    want_s, want_c, want_v = if_reference(cur, theta, L, lo, hi)
    pop = IFNeurons((64,), G, L, lo, hi)
    assert int(pop.v[0]) == theta // 2  # the membrane starts at half a threshold
    got = []
    for t in range(T):
        s = pop.step(torch.from_numpy(cur[t]))
        got.append(np.zeros(64, np.int64) if s is None else s.numpy())
    assert np.array_equal(np.stack(got), want_s)
    assert np.array_equal(pop.count.numpy(), want_c) and np.array_equal(pop.v.numpy(), want_v)
    if L is not None:
        assert np.abs(want_s).max() <= L
    assert np.all(np.cumsum(want_s, axis=0) >= lo) and np.all(np.cumsum(want_s, axis=0) <= hi)
    assert not pop.pending  # settled: the count is the quantiser of the total input
    z = cur.sum(axis=0)
    assert np.array_equal(want_c, np.clip(np.floor(z / theta + 0.5), lo, hi).astype(np.int64))
    assert list(want_c[:4]) == [0, 0, -1, 0]


def test_neuron_emits_at_most_L_per_step_and_reaches_the_top_level():
    pop = IFNeurons((1,), 2, 1, -8, 7)
    spikes = [pop.step(torch.tensor([100 * 4]) if t == 0 else None) for t in range(9)]
    assert [0 if s is None else int(s[0]) for s in spikes] == [1] * 7 + [0, 0]
    assert int(pop.count[0]) == 7 and not pop.pending


# -- products, rescaling, weights ----------------------------------------------------------------
def test_the_product_rule_sums_to_the_product_of_totals_and_is_spikezips():
    rng = np.random.default_rng(1)
    a_steps = [torch.from_numpy(rng.integers(-2, 3, (2, 5, 4))) for _ in range(6)]
    b_steps = [torch.from_numpy(rng.integers(-2, 3, (2, 4, 3))) for _ in range(6)]
    A, B, P = torch.zeros(2, 5, 4, dtype=torch.int64), torch.zeros(2, 4, 3, dtype=torch.int64), 0
    for a, b in zip(a_steps, b_steps):
        A_prev = A.clone()
        A, B = A + a, B + b
        d = product_step(A_prev, a, B, b, int_matmul)
        assert torch.equal(d, A @ b + a @ B - a @ b)  # SpikeZIP-TF: Q_acc K_t + Q_t K_acc - Q_t K_t
        P = P + d
    assert torch.equal(P, A @ B)
    x, y = torch.tensor([3, -2]), torch.tensor([5, 7])
    assert torch.equal(product_step(x - 1, torch.ones(2, dtype=torch.int64), y, None, torch.mul), y)
    assert product_step(x, None, y, None, torch.mul) is None


def test_int_matmul_is_exact_beyond_float32():
    a = torch.full((1, 300), 127, dtype=torch.int64)
    b = torch.full((300, 2), 1 << 16, dtype=torch.int64)  # 2.5e9: past 2**24, float64 is used
    assert torch.equal(int_matmul(a, b), a @ b)
    big = torch.full((1, 4), 1 << 40, dtype=torch.int64)
    assert torch.equal(int_matmul(big, torch.full((4, 1), 1 << 20, dtype=torch.int64)), big @ torch.full((4, 1), 1 << 20))


@pytest.mark.parametrize("int8", [False, True])
def test_int_matmul_paths_are_exact_with_weights_cached(monkeypatch, int8):
    """Every path of a cached weight matrix (float32 by the static or the measured bound, float64,
    and torch's int8 product, forced here whatever this machine's timing says) gives a @ w."""
    from spikeops.gen.llm.snn import quantizers

    monkeypatch.setattr(quantizers, "int8_products_pay", lambda: int8)
    gen = torch.Generator().manual_seed(5)
    w = torch.randint(-127, 128, (700, 40), generator=gen)
    cache = {}
    for hi, a_max in ((2, 2), (16, None), (127, None), (128, None), (1 << 12, None)):
        a = torch.randint(-hi, hi + 1, (3, 5, 700), generator=gen)
        assert torch.equal(int_matmul(a, w, cache, a_max), a @ w), hi
    assert (cache["int8"] is not None) == int8 and cache["max"] == int(w.abs().max())


def test_requant_is_a_shift_for_powers_of_two_and_rounds_otherwise():
    r = Requant(2.0 ** -5, 16, min_G=1)
    assert (r.G, r.m_int, r.exact) == (5, 1, True)
    assert torch.equal(r.codes(torch.tensor([15, 16, -16, -17, 48]), -2, 2), torch.tensor([0, 1, 0, -1, 2]))
    u = Requant(2.0 ** 3, 16)
    assert u.exact and u.G == 0 and torch.equal(u.current(torch.tensor([3])), torch.tensor([24]))
    v = Requant(np.array([0.3, 0.01]), 12, min_G=1)
    assert not v.exact and 2 ** 11 <= v.m_max < 2 ** 12
    assert np.allclose(v.M.numpy() / 2.0 ** v.G, [0.3, 0.01], rtol=2e-3)
    with pytest.raises(OverflowError, match="snn: the integer product at x needs"):
        Requant(0.7, 16, site="x").current(torch.tensor([1 << 60]))


def test_weights_per_output_channel_and_scale_rules():
    w = torch.tensor([[0.5, -0.25, 0.1], [0.0, 0.0, 0.0], [2.0, 1.0, -2.0]])
    q, s = quantize_weight(w, 8)
    assert q.abs().max() <= 127 and s[1] == 1.0 and torch.equal(q[1], torch.zeros(3, dtype=torch.int64))
    assert torch.allclose(q * s[:, None], w.double(), atol=float(s.max()) / 2)
    x = np.concatenate([np.random.default_rng(0).normal(size=5000), [40.0]])
    assert activation_scale(x, 40.0, 256, "max", pow2=False) == pytest.approx(40.0 / 127)
    assert activation_scale(x, 40.0, 256, "max", pow2=True) == 0.5
    m = activation_scale(x, 40.0, 16, "mse", pow2=True)
    assert m <= 0.5 < activation_scale(x, 40.0, 16, "max") == 8.0  # mse clips the lone outlier
    assert math.log2(m) == int(math.log2(m))
    assert activation_scale(x, 40.0, 16, "mse", pow2=True) == m  # deterministic


# -- the tiny Llama -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny():
    model = tiny_llama(0)
    with torch.no_grad():  # norm weights that are not all 1
        for layer in model.model.layers:
            layer.input_layernorm.weight.uniform_(0.5, 2.0)
            layer.post_attention_layernorm.weight.uniform_(0.5, 2.0)
    gen = torch.Generator().manual_seed(1)
    batches = [torch.randint(0, 97, (4, 24), generator=gen) for _ in range(2)]
    return model, calibrate(model, batches), batches


def test_qann_follows_the_float_model_and_smoothing_is_exact_algebra(tiny):
    model, cal, batches = tiny
    ids = batches[0][:2, :16]  # calibration text: no activation beyond the calibrated maxima
    with torch.no_grad():
        ref = model(ids).logits
    for spec in ("smooth=0", "smooth=0.8"):
        q = convert(model, SNNConfig.parse(f"mode=qann,W=12,A=12,P=14,scale=max,pow2=0,{spec}"), cal)
        out = q(ids).logits
        assert (out - ref).abs().max() / ref.abs().max() < 1e-2, spec
    q8 = convert(model, SNNConfig.parse("mode=qann"), cal)
    assert 0 < (q8(ids).logits - ref).abs().max() / ref.abs().max() < 0.2
    # smoothing moves a factor from one weight into the next: the float model is unchanged
    layer = model.model.layers[0]
    wt = smoothed_weights(layer, q8.factors[0])
    x = torch.randn(3, 64, dtype=torch.float64)
    up, down = wt["up"][0], wt["down"][0]
    ref_mid = layer.mlp.up_proj.weight.double() @ x.T
    assert torch.allclose(down @ (up @ x.T), layer.mlp.down_proj.weight.double() @ ref_mid, atol=1e-10)


SETTLE_CASES = [("L=1,W=8,A=8", 40), ("L=16,W=8,A=8", 0), ("L=1,W=4,A=4", 0), ("L=3,W=4,A=4", 0)]


@pytest.mark.parametrize("spec, _", SETTLE_CASES)
def test_snn_settles_to_the_qann_bit_for_bit_at_every_site(tiny, spec, _):
    model, cal, _b = tiny
    ids = torch.randint(0, 97, (2, 10), generator=torch.Generator().manual_seed(2))
    qann = convert(model, SNNConfig.parse(f"mode=qann,{spec}"), cal)
    want = qann.run(ids, record=True)
    snn = qann.with_config(SNNConfig.parse(f"T=settle,fast=0,{spec}"))
    got = snn.run(ids, record=True, activity=True)
    assert got.settled and got.steps == got.settle_steps + 1
    assert len(want.records) == 2 * 25 + 3 and set(want.records) == set(got.records)
    for name, total in want.records.items():
        assert total.dtype == torch.int64, name
        assert torch.equal(total, got.records[name]), name
    assert torch.equal(got.hidden, want.hidden)
    L = snn.snn.L
    per = got.settle_per_layer
    assert 0 < per[0] <= per[1] <= per["final"] == got.settle_steps
    if L == 1:  # unary spikes: at least as many steps as the largest count
        assert got.settle_steps >= max(int(got.records[f"model.layers.{i}.{s}"].abs().max())
                                       for i in (0, 1) for s in ("attn_in", "p", "mlp_mid"))
    act = got.activity
    assert act["total"]["steps"] == got.steps and len(act["layers"]) == 2
    units = sum(v for row in act["layers"] for v in row["spikes"].values())
    assert units >= sum(int(got.records[f"model.layers.{i}.{s}"].abs().sum()) for i in (0, 1)
                        for s in ("attn_in", "q", "k", "v", "p", "attn_out", "mlp_in", "mlp_mid"))
    assert act["total"]["ac_per_token"] > 0 and act["total"]["energy_total_per_token"] > 0


def test_runs_below_settle_and_the_settled_fast_path(tiny):
    model, cal, _b = tiny
    ids = torch.randint(0, 97, (1, 12), generator=torch.Generator().manual_seed(3))
    base = convert(model, SNNConfig.parse("T=settle,L=4"), cal)  # fast: the QANN itself
    q = base.run(ids, record=True)
    assert q.steps == 1 and q.settled and not base.snn.spiking
    short = base.with_config(SNNConfig.parse("T=2,L=4")).run(ids, record=True)
    assert short.steps == 2 and not short.settled and short.settle_steps is None
    assert not torch.equal(short.records["model.norm"], q.records["model.norm"])
    assert int(short.records["model.layers.0.mlp_in"].abs().max()) <= 2 * 4  # T steps of at most L
    full = base.with_config(SNNConfig.parse("T=settle,fast=0,L=4")).run(ids)
    long = base.with_config(SNNConfig.parse(f"T={full.settle_steps + 3},L=4")).run(ids, record=True)
    assert long.settled and long.settle_steps == full.settle_steps and long.steps == full.steps
    assert all(torch.equal(long.records[k], q.records[k]) for k in q.records)


def test_one_run_gives_every_smaller_T_bit_for_bit(tiny):
    model, cal, _b = tiny
    ids = torch.randint(0, 97, (2, 11), generator=torch.Generator().manual_seed(4))
    mask = torch.ones_like(ids)
    mask[1, :3] = 0  # left padding: the mask travels with every step count
    base = convert(model, SNNConfig.parse("T=5,L=2"), cal)
    settle = base.with_config(SNNConfig.parse("T=settle,fast=0,L=2")).run(ids, mask).settle_steps
    top = settle + 2
    net = base.with_config(SNNConfig.parse(f"T={top},L=2"))
    keys = (1, 2, 3, settle, top)
    run = net.run(ids, mask, checkpoints=keys)
    assert sorted(run.hidden_at) == sorted(set(keys)) and torch.equal(run.hidden_at[top], run.hidden)
    seen = []
    for t in sorted(set(keys)):
        alone = base.with_config(SNNConfig.parse(f"T={t},L=2")).run(ids, mask).hidden
        assert torch.equal(run.hidden_at[t], alone), t
        seen.append(alone)
    assert not torch.equal(seen[0], seen[1])  # the step counts really differ below settle
    assert torch.equal(run.hidden_at[settle], run.hidden)  # settled: later steps change nothing
    assert torch.equal(net.model.views([2, top], input_ids=ids, attention_mask=mask)[2], run.hidden_at[2])
    for spec, keys, needle in (("T=3,L=2", [4], "checkpoint T=4 is out of range; allowed: 1 to the network's T=3"),
                               ("T=3,L=2", [0], "checkpoint T=0 is out of range"),
                               ("mode=qann", [1], "not allowed for QANN W8A8; allowed: a time-stepped network"),
                               ("T=settle,L=2", [1], "allowed: a time-stepped network with a fixed T"),
                               ("T=3,L=2,division=tl", [1], "division=tl (the operators' grids depend on T)")):
        with pytest.raises(ValueError, match=re.escape(needle)):
            base.with_config(SNNConfig.parse(spec)).run(ids, checkpoints=keys)


def test_masks_survive_the_conversion(tiny):
    model, cal, _b = tiny
    snn = convert(model, SNNConfig.parse("T=6,L=8"), cal)
    ids = torch.randint(0, 97, (1, 12), generator=torch.Generator().manual_seed(4))
    ids2 = ids.clone()
    ids2[0, 8:] = (ids2[0, 8:] + 5) % 97
    a, b = snn(ids).logits, snn(ids2).logits
    assert torch.equal(a[0, :8], b[0, :8]) and not torch.equal(a[0, 8:], b[0, 8:])
    pad = torch.cat([ids, torch.zeros(1, 4, dtype=torch.long)], 1)  # right padding, 2-D mask
    att = torch.cat([torch.ones(1, 12, dtype=torch.long), torch.zeros(1, 4, dtype=torch.long)], 1)
    assert torch.equal(snn(pad, attention_mask=att).logits[0, :12], a[0])
    four = torch.tril(torch.ones(12, 12, dtype=torch.bool))[None, None]
    additive = torch.zeros(1, 1, 12, 12).masked_fill(~four, torch.finfo(torch.float32).min)
    assert torch.equal(snn.model(ids, attention_mask=additive).last_hidden_state, snn.run(ids).hidden)


def test_float_operators_and_tl_division(tiny):
    model, cal, batches = tiny
    ids = batches[1][:1, :12]
    q = convert(model, SNNConfig.parse("mode=qann"), cal)
    f = q.with_config(q.snn.replace(ops="float"))
    rq, rf = q.run(ids, record=True), f.run(ids, record=True)
    assert all(t.dtype == torch.int64 for t in rf.records.values())
    assert not torch.equal(rq.records["model.norm"], rf.records["model.norm"])
    assert (rq.hidden - rf.hidden).abs().max() < 0.05 * rq.hidden.abs().max()
    # float operators in the SNN settle to the float-operator QANN as well
    fs = f.with_config(f.snn.replace(mode="snn", T=None, fast=False, L=16)).run(ids, record=True)
    assert all(torch.equal(rf.records[k], fs.records[k]) for k in rf.records)
    tl = q.with_config(SNNConfig.parse("T=2,L=4,division=tl"))
    n = math.ceil(math.log2(2 * 2 * 4 + 1))
    assert tl.layers[0].softmax.cfg.out_frac == n and tl.layers[0].norm1.cfg.out_frac == n
    assert tl.layers[0].act.cfg.out_frac == q.layers[0].act.cfg.out_frac


def test_fast_back_end_and_numpy_golden_agree_inside_the_network(tiny, numpy_backend):
    model, cal, batches = tiny
    ids = batches[0][:1, :10]
    snn = convert(model, SNNConfig.parse("T=3,L=4"), cal)
    slow = snn.run(ids, record=True).records  # numpy back end: the operator record's run on codes
    from spikeops.gen.llm.operators import set_backend
    set_backend("fast")
    fast = snn.run(ids, record=True).records
    assert all(torch.equal(slow[k], fast[k]) for k in slow)
    op = snn.layers[0].softmax
    codes = torch.randint(-3000, 3000, (6, 10), generator=torch.Generator().manual_seed(5))
    mask = torch.tril(torch.ones(6, 10, dtype=torch.bool), diagonal=4)
    want = registry.get(op.rec.name).run(codes.numpy(), op.cfg, mask=mask.numpy())
    assert np.array_equal(op.golden(codes, mask).numpy(), want)


def test_recorder_sees_the_integer_totals(tiny):
    from spikeops.gen.llm.capture import Recorder

    model, cal, batches = tiny
    snn = convert(model, SNNConfig.parse("mode=qann"), cal)
    rec = Recorder(max_rows=8)
    snn.set_recorder(rec)
    rec_run = snn.run(batches[0][:1, :8], record=True)
    snn.set_recorder(None)
    item = rec.items["model.layers.1.self_attn"]
    assert item.cfg == snn.layers[1].softmax.cfg and item.x.shape[1] == 8
    norm = rec.items["model.norm"]
    codes = snn.final.op.codes(rec_run.records["model.norm.in"]).reshape(-1, 64).numpy()
    assert any(np.array_equal(r, c) for r in norm.x for c in codes)


def test_operation_counts_come_from_the_configuration():
    for name, rec in registry.OPERATORS.items():
        cfg = rec.default()
        c, (per, row) = op_counts(cfg), float_op_counts(cfg)
        assert set(c) == {"add", "cmp", "shift", "table", "mult"} and sum(c.values()) > 0, name
        assert sum(per.values()) > 0, name
    sm = registry.get("softmax").default()
    assert op_counts(sm.replace(K=64, H=5))["mult"] == op_counts(sm)["mult"] + 1  # index not a bit slice
    assert op_counts(sm.replace(div_arch="thermometer", out_frac=6))["cmp"] > op_counts(sm.replace(out_frac=6))["cmp"]


def test_conversion_errors(tiny):
    model, cal, _b = tiny
    from spikeops.gen.llm.plan import make_plan

    partial = make_plan(model, "llama", kinds=("softmax",), stats=cal.stats)
    with pytest.raises(ValueError, match="snn: the conversion plan has no instance 'model.layers.0.input_layernorm'"):
        convert(model, SNNConfig(), cal, plan=partial)
    from spikeops.gen.llm.snn import Calibration
    with pytest.raises(ValueError, match="snn: the calibration has no observation of model.layers.0.attn_in"):
        convert(model, SNNConfig(), Calibration({}, cal.stats))


# -- SmolLM2 ---------------------------------------------------------------------------------------
@pytest.mark.slow
def test_smollm2_settles_to_its_qann_on_two_prompts():
    from spikeops.gen.llm import data
    from spikeops.gen.llm.models import load

    lm = load("smollm2", quiet=True)
    tok = lm.tokenizer
    texts = data.calibration_texts(2)
    cal = calibrate(lm.model, [dict(tok(texts, padding=True, truncation=True, max_length=64,
                                        return_tensors="pt"))])
    qann = convert(lm.model, SNNConfig.parse("mode=qann,L=16"), cal)
    for prompt in ("The capital of France is", "Water boils at a temperature of"):
        ids = tok(prompt, return_tensors="pt")["input_ids"]
        want = qann.run(ids, record=True)
        got = qann.with_config(SNNConfig.parse("T=settle,fast=0,L=16")).run(ids, record=True)
        assert got.settled and len(got.records) == 30 * 25 + 3
        for name, total in want.records.items():
            assert torch.equal(total, got.records[name]), (prompt, name)
