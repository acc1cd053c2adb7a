"""spikeops.gen.llm.fast is bit-identical to the golden model: ``dequantize(golden(quantize(x)))``.

The oracle here is that definition written out in numpy (``_oracle``), independent of spikeops.gen.llm.fast;
every comparison is of dtype, values and sign bits (a -0.0 where golden has +0.0 fails).
"""

import contextlib
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from spikeops.gen.llm import fast  # noqa: E402
from spikeops.gen.llm.fast import fast_golden, quantize_codes  # noqa: E402
from spikeops.gen.llm.fast import kernel as fast_kernel  # noqa: E402
from spikeops.gen.llm.fast.norm import _root  # noqa: E402
from spikeops.golden import registry  # noqa: E402
from spikeops.golden.fixed import FixedFormat, dequantize, quantize  # noqa: E402
from spikeops.golden.ops.norms import norm_root  # noqa: E402
from spikeops.golden.shift import barrel_shift  # noqa: E402


def _oracle(op, cfg, x, *args, mask=None):
    kwargs = {} if mask is None else {"mask": np.asarray(mask.numpy() if isinstance(mask, torch.Tensor) else mask)}
    codes = quantize(x.detach().to(torch.float64).numpy(), cfg.in_format)
    y = registry.get(op).golden(codes, cfg, *args, **kwargs)
    return torch.from_numpy(dequantize(y, cfg.out_format)).to(x.dtype)


def _bits(t):
    ints = {torch.float64: torch.int64, torch.float32: torch.int32, torch.float16: torch.int16,
            torch.bfloat16: torch.int16}
    return t.contiguous().view(ints[t.dtype])


def assert_same(got, want):
    assert got.dtype == want.dtype and got.shape == want.shape
    if not torch.equal(_bits(got), _bits(want)):
        bad = (_bits(got) != _bits(want)).nonzero()[0].tolist()
        raise AssertionError(f"first difference at {bad}: fast {got[tuple(bad)].item()!r}, "
                             f"golden {want[tuple(bad)].item()!r}")


def check(op, cfg, x, *args, mask=None):
    kwargs = {} if mask is None else {"mask": mask}
    assert_same(fast_golden(op, cfg, x, *args, **kwargs), _oracle(op, cfg, x, *args, mask=mask))


def llm_like(shape, *, seed=0, scale=1.0, outliers=(), outlier_scale=3e3, tail=True):
    """Bulk ~N(0, scale), a few outlier channels ~1e3-1e4, heavy (Student-t) tails, some exact zeros."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen, dtype=torch.float64) * scale
    if tail:
        heavy = torch.randn(shape, generator=gen, dtype=torch.float64) / torch.rand(shape, generator=gen,
                                                                                     dtype=torch.float64).clamp_min(1e-3)
        pick = torch.rand(shape, generator=gen) < 0.05
        x = torch.where(pick, heavy * scale, x)
    for c in outliers:
        x[..., c] *= outlier_scale * (1 + torch.rand((), generator=gen).item() * 3)
    x[torch.rand(shape, generator=gen) < 0.01] = 0.0
    return x.to(torch.float32)


def ties(fmt, n=2000, seed=0):
    """Exact quantisation ties ``(k + 1/2) * 2**-frac`` and their float32 neighbours, both signs."""
    gen = np.random.default_rng(seed)
    k = gen.integers(-fmt.max_code - 2, fmt.max_code + 2, n).astype(np.float64)
    t = torch.from_numpy((k + 0.5) * 2.0 ** -fmt.frac).to(torch.float32)
    return torch.cat([t, torch.nextafter(t, torch.full_like(t, math.inf)),
                      torch.nextafter(t, torch.full_like(t, -math.inf))])


def extremes(fmt, *, neg_inf=False):
    """Zeros, the largest codes, saturation, float32's extremes, +inf (and -inf), half-LSB ties."""
    m = fmt.max_value
    v = [0.0, -0.0, m, m + fmt.lsb / 2, m * 4, 3e38, math.inf, 1e-45, 0.49999997 * fmt.lsb, 0.5 * fmt.lsb]
    v = v + [-a for a in v if a != math.inf] + ([-math.inf] if neg_inf else [])
    return torch.tensor(v, dtype=torch.float32)


@contextlib.contextmanager
def path(mode):
    """``kernel``: the compiled kernels (skipped without a C compiler); ``torch``: the torch code and
    golden's norm_root, as on a machine without a compiler."""
    if mode == "kernel":
        if not fast.kernel_available():
            pytest.skip("no C compiler: everything runs in torch")
        yield
        return
    saved = fast_kernel._kernel_state.get("dll", "unset")
    fast_kernel._kernel_state["dll"] = None
    try:
        yield
    finally:
        if saved == "unset":
            fast_kernel._kernel_state.pop("dll", None)
        else:
            fast_kernel._kernel_state["dll"] = saved


@pytest.fixture(params=["kernel", "torch"])
def mode(request):
    with path(request.param):
        yield request.param


# -- quantize -------------------------------------------------------------------------------------
@pytest.mark.parametrize("width,frac", [(2, 0), (8, 3), (12, 11), (16, 8), (20, 10), (24, 9), (24, 0),
                                        (32, 16), (40, 9)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_quantize_matches_golden_on_ties_and_extremes(width, frac, dtype):
    fmt = FixedFormat(width, frac)
    x = torch.cat([ties(fmt), extremes(fmt, neg_inf=True), llm_like((3000,), scale=fmt.max_value / 4)])
    x = x.to(dtype)
    want = quantize(x.to(torch.float64).numpy(), fmt)
    got = quantize_codes(x, fmt)
    assert got.dtype == torch.int64 and np.array_equal(got.numpy(), want)


def test_quantize_mask_code_and_nan():
    fmt = FixedFormat(16, 8)
    x = torch.tensor([-math.inf, 1.0, math.inf])
    assert quantize_codes(x, fmt).tolist() == [fmt.mask_code, 256, fmt.max_code]
    assert quantize_codes(x.double(), fmt).tolist() == [fmt.mask_code, 256, fmt.max_code]
    with pytest.raises(ValueError, match="NaN"):
        quantize_codes(torch.tensor([0.0, math.nan]), fmt)


# -- sigmoid, SiLU, GELU ----------------------------------------------------------------------------
ELEMENTWISE_CONFIGS = [
    ("silu", {}), ("gelu", {}), ("sigmoid", {}),
    ("silu", {"in_width": 12, "in_frac": 6, "out_frac": 10}),
    ("silu", {"rounding": "floor", "div_guard_bits": 3}),
    ("silu", {"H": 4, "K": 64, "exp_frac": 10, "slope_frac": 4}),
    ("gelu", {"in_width": 14, "in_frac": 9, "alpha_frac": 6, "out_frac": 8}),
    ("gelu", {"rounding": "floor", "H": 6, "K": 96}),
    ("sigmoid", {"in_width": 10, "in_frac": 4, "out_frac": 20, "div_guard_bits": 2}),
    ("sigmoid", {"rounding": "floor", "H": 3, "K": 48}),
    ("silu", {"in_width": 20, "in_frac": 12}),
]


@pytest.mark.parametrize("op,changes", ELEMENTWISE_CONFIGS)
def test_elementwise_is_golden(op, changes, mode):
    cfg = registry.get(op).default(**changes)
    fmt = cfg.in_format
    codes = torch.arange(fmt.min_code, fmt.max_code + 1, dtype=torch.float64)
    step = max(1, codes.numel() // 20000)
    every = (codes[::step] * fmt.lsb).to(torch.float32)
    x = torch.cat([every, ties(fmt), extremes(fmt),
                   llm_like((4, 50, 64), scale=fmt.max_value / 8, outliers=(3, 17)).reshape(-1)])
    check(op, cfg, x)
    check(op, cfg, x.reshape(1, -1)[:, :1000].to(torch.bfloat16))
    check(op, cfg, x[:1000].to(torch.float16))
    check(op, cfg, x[:5000].to(torch.float64))
    check(op, cfg, x[:2100].reshape(3, -1, 7))  # any shape


def test_elementwise_wide_input_falls_back_to_golden(mode):
    cfg = registry.get("silu").default(in_width=24, in_frac=12)
    assert cfg.in_width > fast.TABLE_MAX_WIDTH
    check("silu", cfg, llm_like((64, 32), scale=100.0))


@given(op=st.sampled_from(["sigmoid", "silu", "gelu"]), in_width=st.integers(4, 14), data=st.data())
@settings(max_examples=25)
def test_elementwise_random_configs(op, in_width, data):
    in_frac = data.draw(st.integers(0, in_width - 1))
    h = data.draw(st.integers(1, 8))
    hc = h << (in_frac + (10 if op == "gelu" else 0))
    k = data.draw(st.sampled_from([k for k in (1, 3, 16, 64, 256, 1000) if k <= 2 * hc]))
    changes = dict(in_width=in_width, in_frac=in_frac, H=h, K=k, out_frac=data.draw(st.integers(1, 16)),
                   exp_frac=data.draw(st.integers(4, 14)), div_guard_bits=data.draw(st.integers(2, 12)),
                   rounding=data.draw(st.sampled_from(["nearest", "floor"])))
    try:
        cfg = registry.get(op).default(**changes)
    except ValueError:
        return  # not a valid configuration (e.g. the exp argument too wide)
    fmt = cfg.in_format
    x = torch.cat([ties(fmt, 300), extremes(fmt), llm_like((500,), scale=fmt.max_value / 3)])
    with path(data.draw(st.sampled_from(["kernel", "torch"]))):
        check(op, cfg, x)


def test_elementwise_errors_are_golden(mode):
    cfg = registry.get("silu").default()
    with pytest.raises(ValueError, match="NaN"):
        fast_golden("silu", cfg, torch.tensor([1.0, math.nan]))
    with pytest.raises(ValueError, match="outside the s16.8 input format"):
        fast_golden("silu", cfg, torch.tensor([1.0, -math.inf]))


# -- Softmax ----------------------------------------------------------------------------------------
SOFTMAX_CONFIGS = [
    {},
    {"in_width": 12, "in_frac": 5, "out_frac": 8},
    {"rounding": "floor"},
    {"H": 4, "K": 32, "exp_frac": 10},
    {"div_guard_bits": 24, "d_max": 256},      # den_width <= theta_bits: golden's exact division path
    {"div_guard_bits": 24, "d_max": 256, "rounding": "floor"},
    {"out_frac": 24, "div_guard_bits": 8},     # a 58-bit current: the numpy division fallback
    {"in_width": 20, "in_frac": 10, "d_max": 4096, "out_frac": 12, "slope_frac": 12},
    {"in_width": 24, "in_frac": 8, "H": 12, "exp_frac": 8},
    {"d_max": 64, "div_guard_bits": 2},
    {"exp_method": "range", "normalizer": "online"},
    {"exp_method": "range", "normalizer": "online", "in_width": 12, "in_frac": 5, "out_frac": 8, "K": 16},
]


def _scores(shape, seed, scale=4.0):
    x = llm_like(shape, seed=seed, scale=scale)
    gen = torch.Generator().manual_seed(seed + 1)
    spikes = torch.rand(shape, generator=gen) < 0.02
    return torch.where(spikes, x * 50, x)


@pytest.mark.parametrize("changes", SOFTMAX_CONFIGS)
def test_softmax_is_golden(changes, mode):
    cfg = registry.get("softmax").default(**changes)
    fmt = cfg.in_format
    n = min(cfg.d_max, 100 if not changes else 40)
    x = _scores((2, 3, n, n), seed=len(changes))
    causal = torch.ones(n, n, dtype=torch.bool).tril()
    check("softmax", cfg, x, mask=causal)
    check("softmax", cfg, x)
    check("softmax", cfg, x.double(), mask=causal.numpy())
    # masked positions, fully masked rows, -inf codes, saturation, ties, length-1 rows
    m = torch.rand(x.shape, generator=torch.Generator().manual_seed(3)) < 0.7
    m[0, 1, 5] = False
    m[1, :, :, 0] = False
    y = x.clone()
    y[0, 0, 2, ::3] = -math.inf
    y[0, 0, 3] = -math.inf
    y[1, 0, 0, :4] = torch.tensor([fmt.max_value * 3, -fmt.max_value * 3, fmt.max_value, fmt.lsb / 2])
    check("softmax", cfg, y, mask=m)
    check("softmax", cfg, y[..., :1], mask=m[..., :1])        # rows of length 1
    check("softmax", cfg, y[0, 0, 2])                         # one row (1-D)
    check("softmax", cfg, y[:1, :1, :1, :7])                  # one row, scalar-like row constants
    check("softmax", cfg, ties(fmt, 300).reshape(-1, 30).to(torch.bfloat16))


@pytest.mark.parametrize("mask_shape", ["row", "square", "expanded", "middle", "column", "scalar"])
def test_softmax_broadcast_masks(mask_shape, mode):
    cfg = registry.get("softmax").default()
    x = _scores((2, 3, 9, 9), seed=11)
    m = torch.rand(x.shape, generator=torch.Generator().manual_seed(4)) < 0.6
    mask = {"row": m[0, 0, 0], "square": m[0, 0], "expanded": m[0, :1].expand(2, 3, 9, 9),
            "middle": m[:, :1], "column": m[..., :1], "scalar": torch.tensor(True)}[mask_shape]
    check("softmax", cfg, x, mask=mask)
    check("softmax", cfg, x, mask=mask.numpy())


def test_softmax_full_row_length_and_errors(mode):
    cfg = registry.get("softmax").default(d_max=32)
    check("softmax", cfg, _scores((5, 32), seed=4))
    with pytest.raises(ValueError, match="row length 33"):
        fast_golden("softmax", cfg, torch.zeros(2, 33))
    with pytest.raises(ValueError, match="NaN"):
        fast_golden("softmax", cfg, torch.tensor([[0.0, math.nan]]))


@given(in_width=st.integers(6, 20), data=st.data())
@settings(max_examples=25)
def test_softmax_random_configs(in_width, data):
    in_frac = data.draw(st.integers(0, in_width - 4))
    changes = dict(in_width=in_width, in_frac=in_frac, H=data.draw(st.integers(1, 10)),
                   K=data.draw(st.sampled_from([1, 7, 64, 256])), d_max=data.draw(st.sampled_from([8, 100, 2048])),
                   out_frac=data.draw(st.integers(1, 22)), exp_frac=data.draw(st.integers(4, 16)),
                   div_guard_bits=data.draw(st.integers(2, 24)),
                   rounding=data.draw(st.sampled_from(["nearest", "floor"])))
    try:
        cfg = registry.get("softmax").default(**changes)
    except ValueError:
        return
    n = data.draw(st.integers(1, min(cfg.d_max, 40)))
    x = _scores((6, n), seed=data.draw(st.integers(0, 99)), scale=cfg.in_format.max_value / 16)
    mask = torch.rand(x.shape, generator=torch.Generator().manual_seed(n)) < 0.8
    mask[0] = False
    with path(data.draw(st.sampled_from(["kernel", "torch"]))):
        check("softmax", cfg, x, mask=mask)


# -- RMSNorm and LayerNorm ------------------------------------------------------------------------------
NORM_CONFIGS = [
    ("rmsnorm", {"d": 576}),
    ("layernorm", {"d": 384}),
    ("rmsnorm", {"d": 1}), ("rmsnorm", {"d": 2}), ("rmsnorm", {"d": 3}), ("rmsnorm", {"d": 5}),
    ("rmsnorm", {"d": 8}), ("layernorm", {"d": 1, "norm_method": "exact"}), ("layernorm", {"d": 7}), ("layernorm", {"d": 2}),
    ("rmsnorm", {"d": 100, "norm_method": "exact"}),
    ("layernorm", {"d": 33, "norm_method": "exact", "norm_guard_bits": 5}),
    ("rmsnorm", {"d": 31, "cordic_iterations": 4, "norm_guard_bits": 0}),
    ("rmsnorm", {"d": 64, "cordic_iterations": 20, "norm_width": 30, "norm_guard_bits": 3}),
    ("rmsnorm", {"d": 96, "norm_width": 10, "gain_frac": 20, "rounding": "floor"}),
    ("rmsnorm", {"d": 50, "in_width": 16, "in_frac": 4, "out_width": 12, "out_frac": 4, "gamma_width": 8,
                 "gamma_frac": 3, "div_guard_bits": 2}),
    ("layernorm", {"d": 24, "rounding": "floor", "out_frac": 16, "out_width": 24}),
    ("rmsnorm", {"d": 20, "in_width": 32, "in_frac": 12}),     # float64 quantisation
    ("layernorm", {"d": 12, "eps": 0.5}),
    ("rmsnorm", {"d": 8, "eps": 1e-12, "gamma_frac": 0, "out_frac": 19}),  # shift = out_frac: large k
]


def _norm_args(op, cfg, seed):
    gen = np.random.default_rng(seed)
    g = gen.normal(1.0, 1.0, cfg.d)
    g[gen.random(cfg.d) < 0.1] = 0.0
    g[: min(2, cfg.d)] = [-cfg.gamma_format.max_value, cfg.gamma_format.max_value][: min(2, cfg.d)]
    gamma = cfg.quantize_gamma(np.clip(g, -cfg.gamma_format.max_value, cfg.gamma_format.max_value))
    if op == "rmsnorm":
        return (gamma,)
    return gamma, cfg.quantize_beta(gen.normal(0, 2.0, cfg.d))


def _rows(cfg, seed, n=40):
    fmt = cfg.in_format
    x = llm_like((n, cfg.d), seed=seed, scale=fmt.max_value / 2 ** (fmt.width - fmt.frac - 6),
                 outliers=[c for c in (1, 7, 40) if c < cfg.d])
    x[0] = 0.0                                  # all zero: the eps element alone
    x[1] = fmt.lsb                              # constant row
    x[2] = fmt.max_value * 10                   # saturating
    x[3, ::2] = -fmt.max_value * 10
    x[4] = fmt.lsb * (torch.arange(cfg.d) % 3 - 1) * 0.5   # ties of quantisation
    return x


@pytest.mark.parametrize("op,changes", NORM_CONFIGS)
def test_norm_is_golden(op, changes, mode):
    cfg = registry.get(op).default(**changes)
    x = _rows(cfg, seed=cfg.d)
    args = _norm_args(op, cfg, seed=cfg.d)
    check(op, cfg, x, *args)
    check(op, cfg, x.reshape(2, -1, cfg.d))
    check(op, cfg, x[5])                                # one row (1-D)
    check(op, cfg, x.double(), *args)
    if op == "layernorm":
        check(op, cfg, x, args[0])                      # gamma only
        check(op, cfg, x, None, args[1])                # beta only


def test_norm_smollm2_shape_with_outlier_channels(mode):
    cfg = registry.get("rmsnorm").default(d=576)
    x = llm_like((2, 100, 576), seed=7, outliers=(5, 77, 300), outlier_scale=4e3)
    check("rmsnorm", cfg, x, *_norm_args("rmsnorm", cfg, 1))
    check("rmsnorm", cfg, x.to(torch.bfloat16), *_norm_args("rmsnorm", cfg, 1))


@given(op=st.sampled_from(["rmsnorm", "layernorm"]), d=st.integers(1, 70), data=st.data())
@settings(max_examples=30)
def test_norm_random_configs(op, d, data):
    changes = dict(d=d, norm_method=data.draw(st.sampled_from(["cordic", "exact"])),
                   cordic_iterations=data.draw(st.integers(1, 24)), norm_width=data.draw(st.integers(4, 30)),
                   norm_guard_bits=data.draw(st.integers(0, 6)), gain_frac=data.draw(st.integers(8, 31)),
                   div_guard_bits=data.draw(st.integers(2, 16)), out_frac=data.draw(st.integers(4, 16)),
                   rounding=data.draw(st.sampled_from(["nearest", "floor"])),
                   eps=data.draw(st.sampled_from([1e-12, 1e-5, 0.25])))
    try:
        cfg = registry.get(op).default(**changes)
    except ValueError:
        return
    seed = data.draw(st.integers(0, 999))
    with path(data.draw(st.sampled_from(["kernel", "torch"]))):
        check(op, cfg, _rows(cfg, seed, n=12), *_norm_args(op, cfg, seed))


def test_norm_errors_are_golden(mode):
    cfg = registry.get("rmsnorm").default(d=8)
    with pytest.raises(ValueError, match="x has shape"):
        fast_golden("rmsnorm", cfg, torch.zeros(3, 9))
    with pytest.raises(ValueError, match="gamma has shape"):
        fast_golden("rmsnorm", cfg, torch.zeros(3, 8), np.zeros(7, dtype=np.int64))
    with pytest.raises(ValueError, match="NaN"):
        fast_golden("rmsnorm", cfg, torch.full((2, 8), math.nan), np.zeros(7, dtype=np.int64))
    with pytest.raises(ValueError, match=r"x\[0, 3\]=-8388608 is outside"):
        fast_golden("rmsnorm", cfg, torch.tensor([[0, 0, 0, -math.inf, 0, 0, 0, 0.0]]))
    with pytest.raises(ValueError, match=r"gamma\[1\]=40000 is outside"):
        fast_golden("rmsnorm", cfg, torch.zeros(3, 8), np.array([0, 40000] + [0] * 6))


@pytest.mark.parametrize("op", ["rmsnorm", "layernorm"])
@pytest.mark.parametrize("iterations,guard,width", [(12, 2, 24), (1, 0, 4), (24, 6, 31), (7, 3, 16)])
def test_norm_root_kernel_is_golden(op, iterations, guard, width):
    """The compiled leaves and tree equal golden's ``norm_root`` on rows of every scale, zero rows
    and odd lengths."""
    if not fast.kernel_available():
        pytest.skip("no C compiler")
    gen = np.random.default_rng(iterations)
    for d in (2, 3, 4, 7, 63, 64, 65, 577):
        cfg = registry.get(op).default(d=d, cordic_iterations=iterations, norm_guard_bits=guard, norm_width=width)
        fmt = cfg.in_format
        x = gen.integers(fmt.min_code, fmt.max_code + 1, (9, d), dtype=np.int64) >> gen.integers(0, fmt.width, (9, 1))
        x[0] = fmt.max_code
        x[1] = 0
        x[2, ::2] = fmt.min_code
        got = _root(cfg, d * x - x.sum(-1, keepdims=True) if cfg.centred else x)
        want = norm_root(x, cfg)
        assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1]), d


# -- the model's entry point ------------------------------------------------------------------------------
def test_run_golden_numpy_backend_agrees():
    from spikeops.gen.llm import operators
    cfg = registry.get("softmax").default()
    x = _scores((2, 3, 10, 10), seed=1)
    mask = torch.ones(10, 10, dtype=torch.bool).tril().expand_as(x)
    old = operators.get_backend()
    try:
        operators.set_backend("numpy")
        want = operators.run_golden("softmax", cfg, x, mask=mask)
    finally:
        operators.set_backend(old)
    assert_same(fast_golden("softmax", cfg, x, mask=mask), want)


def test_benchmark_entry_point_on_smollm2_shapes(capsys):
    """``spikeops bench --fast-backend``: SmolLM2-135M shapes, every result bit-exact."""
    from spikeops.gen.cli import main
    assert main(["bench", "--fast-backend", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    for op in ("softmax", "silu", "rmsnorm"):
        assert op in out
    assert "False" not in out


@pytest.mark.parametrize("op", ["rmsnorm", "layernorm"])
def test_zero_rows_with_a_tiny_normaliser_give_zero(op):
    """A row whose division shift exceeds the current saturates its non-zero elements only (0 / B = 0)."""
    cfg = registry.get(op).default(d=8, gamma_frac=0, out_frac=19, eps=1e-12)
    x = np.zeros((3, 8))
    x[1, 3] = 0.5
    x[2] = 0.25  # constant: LayerNorm centres it to zero
    args = [np.ones(8, dtype=np.int64)] + ([np.zeros(8, dtype=np.int64)] if op == "layernorm" else [])
    want = registry.get(op).golden(quantize(x, cfg.in_format), cfg, *args)
    assert not want[0].any()
    got = fast_golden(op, cfg, torch.tensor(x, dtype=torch.float32), *args)
    assert np.array_equal(quantize(got.double().numpy(), cfg.out_format), want)
