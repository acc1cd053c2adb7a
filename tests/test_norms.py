import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from spikeops.golden.fixed import dequantize, quantize
from spikeops.golden.norm import NormConfig, cordic_gain, isqrt, polar_norm
from spikeops.golden.ops.norms import LayerNormConfig, RMSNormConfig, layernorm, rmsnorm
from spikeops.golden.reference import round_to_grid

RMS = RMSNormConfig(d=32)
LN = LayerNormConfig(d=24)  # not a power of two: the mean is exact all the same


# -- PolarNorm ----------------------------------------------------------------------------------
@given(hnp.arrays(np.int64, st.tuples(st.integers(1, 4), st.integers(1, 70)),
                  elements=st.integers(0, 2**20 - 1)))
def test_exact_norm_is_floor_sqrt(v):
    cfg = NormConfig(length=v.shape[-1], in_width=20, method="exact", guard_bits=3)
    got = polar_norm(v, cfg)
    for row, n in zip(v, got):
        assert n == math.isqrt(sum((int(x) << 3) ** 2 for x in row))


@given(hnp.arrays(np.int64, st.tuples(st.integers(1, 4), st.integers(1, 70)),
                  elements=st.integers(0, 2**20 - 1)), st.integers(6, 16))
def test_cordic_norm_within_its_bound(v, iterations):
    cfg = NormConfig(length=v.shape[-1], in_width=20, iterations=iterations, guard_bits=4)
    got = polar_norm(v, cfg).astype(float)
    exact = np.sqrt((v.astype(float) ** 2).sum(-1)) * cfg.gain
    # per level: angle residue 2**(-2n+1) relative, plus shift truncation (~iterations LSB each)
    bound = exact * cfg.levels * 2.0 ** (2 - 2 * iterations) + cfg.levels * (iterations + 2) * cordic_gain(iterations) ** cfg.levels
    assert np.all(np.abs(got - exact) <= bound)


def test_cordic_tree_order_is_the_specified_one():
    """Pairs merge in index order over the zero-padded vector: swapping within a pair keeps the
    root only up to CORDIC rounding, so the order is observable and pinned here."""
    cfg = NormConfig(length=3, in_width=8, iterations=4, guard_bits=0)
    assert polar_norm(np.array([3, 4, 0]), cfg) == polar_norm(np.array([[3, 4, 0]]), cfg)[0]
    v = np.array([200, 3, 17])
    a, b = v[0], v[1]
    for k in range(4):  # level 1, pair (200, 3), by hand
        s = 1 if b >= 0 else -1
        a, b = a + s * (b >> k), b - s * (a >> k)
    c, e = v[2], 0
    for k in range(4):  # level 1, pair (17, 0 padding)
        s = 1 if e >= 0 else -1
        c, e = c + s * (e >> k), e - s * (c >> k)
    for k in range(4):  # level 2
        s = 1 if c >= 0 else -1
        a, c = a + s * (c >> k), c - s * (a >> k)
    assert polar_norm(v, cfg) == a


def test_isqrt_large_values():
    s = np.array([0, 1, 2**61 + 12345, 2**62 - 1, 10**18], dtype=np.int64)
    assert isqrt(s).tolist() == [math.isqrt(int(x)) for x in s]


@pytest.mark.parametrize("kwargs, message", [
    ({"length": 0}, r"norm: length=0 is out of range; allowed: in \[1, 65536\]"),
    ({"method": "newton"}, r"norm: method='newton' is not allowed; allowed: 'cordic', 'exact'"),
    ({"iterations": 0}, r"norm: iterations=0 is out of range; allowed: in \[1, 32\]"),
    ({"length": 1025, "in_width": 26, "method": "exact"}, r"norm: in_width=26 needs a 68-bit datapath"),
])
def test_norm_config_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        NormConfig(**kwargs)


# -- RMSNorm and LayerNorm ----------------------------------------------------------------------
def _rows(cfg, rng, n=200, sigma=1.0):
    return quantize(rng.normal(0, sigma, (n, cfg.d)), cfg.in_format)


@pytest.mark.parametrize("method", ["cordic", "exact"])
def test_sign_symmetry_is_exact(method):
    rng = np.random.default_rng(0)
    for cfg, fn in ((RMS.replace(norm_method=method), rmsnorm), (LN.replace(norm_method=method), layernorm)):
        x = _rows(cfg, rng)
        g = cfg.quantize_gamma(rng.normal(1, 0.5, cfg.d))
        assert np.array_equal(fn(-x, cfg, g), -fn(x, cfg, g))
        assert np.array_equal(fn(x, cfg, -g), -fn(x, cfg, g))


def test_layernorm_is_exactly_shift_invariant():
    rng = np.random.default_rng(1)
    x = _rows(LN, rng)
    g = LN.quantize_gamma(rng.normal(1, 0.3, LN.d))
    b = LN.quantize_beta(rng.normal(0, 0.3, LN.d))
    for c in (1, -37, 5000):
        assert np.array_equal(layernorm(x + c, LN, g, b), layernorm(x, LN, g, b))


@pytest.mark.parametrize("k", [1, 3, 5])
def test_scale_invariance_within_one_lsb(k):
    """Scaling the input by 2**k moves only the block exponent; outputs agree to 1 LSB (the eps
    element and the floor of the leaves are not scaled)."""
    rng = np.random.default_rng(k)
    for cfg, fn in ((RMS, rmsnorm), (LN, layernorm)):
        x = _rows(cfg, rng, sigma=0.5)
        assert np.abs(fn(x << k, cfg) - fn(x, cfg)).max() <= 1


def test_zero_and_constant_rows_give_beta():
    b = LN.quantize_beta(np.linspace(-1, 1, LN.d))
    assert np.array_equal(layernorm(np.full((2, LN.d), 123), LN, None, b)[0], b)
    assert np.all(rmsnorm(np.zeros((1, RMS.d), dtype=np.int64), RMS) == 0)


def test_output_saturates_at_both_ends():
    cfg = RMS.replace(out_width=10, out_frac=8)  # +-2 at most; a one-hot row gives +-sqrt(32)
    x = np.zeros((2, cfg.d), dtype=np.int64)
    x[0, 0], x[1, 0] = 1000, -1000
    y = rmsnorm(x, cfg)
    assert y[0, 0] == cfg.out_format.max_code and y[1, 0] == -cfg.out_format.max_code
    b = cfg.quantize_beta(np.full(cfg.d, 1.9))
    ln = LN.replace(out_width=10, out_frac=8)
    xl = np.zeros((1, ln.d), dtype=np.int64)
    xl[0, 0] = 1000
    assert layernorm(xl, ln, None, ln.quantize_beta(np.full(ln.d, 1.9)))[0, 0] == ln.out_format.max_code
    assert b.max() <= cfg.out_format.max_code


def test_outlier_channels_keep_the_bulk():
    """Outliers of 1e4 beside a unit bulk: the bulk still comes out within 1 LSB."""
    cfg = RMSNormConfig()  # s24.9 input, d=576
    rng = np.random.default_rng(3)
    xf = rng.normal(0, 1, (20, cfg.d))
    xf[:, [5, 300]] = 1e4
    x = quantize(xf, cfg.in_format)
    g = cfg.quantize_gamma(rng.normal(1, 0.3, cfg.d))
    exact = cfg.reference(dequantize(x, cfg.in_format), dequantize(g, cfg.gamma_format))
    for n in (8, 16):
        c = cfg.replace(out_frac=n, out_width=n + 8)
        assert np.abs(rmsnorm(x, c, g) - round_to_grid(exact, n)).max() <= 1


@pytest.mark.parametrize("method", ["cordic", "exact"])
@pytest.mark.parametrize("d", [8, 64, 256])
def test_error_targets(method, d):
    """At the 8-bit grid: max 1 LSB; mean no worse than the authors' RMSNorm reference."""
    authors_mean = {8: 2.25e-5, 64: 5.06e-5, 256: 7.19e-5}[d]
    rng = np.random.default_rng(d)
    for cfg, fn in ((RMSNormConfig(d=d, out_frac=8, out_width=16, norm_method=method), rmsnorm),
                    (LayerNormConfig(d=d, out_frac=8, out_width=16, norm_method=method), layernorm)):
        x = _rows(cfg, rng, n=20000 // d)
        g = cfg.quantize_gamma(rng.normal(1, 0.3, d))
        exact = round_to_grid(cfg.reference(dequantize(x, cfg.in_format), dequantize(g, cfg.gamma_format)), 8)
        err = np.abs(fn(x, cfg, g) - exact)
        assert err.max() <= 1
        assert err.mean() * 2.0 ** -8 <= authors_mean


def test_shape_and_range_errors():
    with pytest.raises(ValueError, match=r"rmsnorm: x has shape \(2, 31\); allowed: \(..., d\) with d=32"):
        rmsnorm(np.zeros((2, 31), dtype=np.int64), RMS)
    with pytest.raises(ValueError, match=r"rmsnorm: gamma has shape \(3,\); allowed: \(d,\) with d=32"):
        rmsnorm(np.zeros((2, 32), dtype=np.int64), RMS, np.ones(3, dtype=np.int64))
    with pytest.raises(ValueError, match=r"layernorm: beta\[0\]=524288 is outside the s20.12 input format"):
        layernorm(np.zeros((1, 24), dtype=np.int64), LN, None, np.full(24, 1 << 19))
    with pytest.raises(ValueError, match=r"rmsnorm: x\[0, 0\]=8388608 is outside the s24.9 input format"):
        rmsnorm(np.full((1, 32), 1 << 23), RMS)


@pytest.mark.parametrize("cls, kwargs, message", [
    (RMSNormConfig, {"d": 0}, r"rmsnorm: d=0 is out of range; allowed: in \[1, 16384\]"),
    (RMSNormConfig, {"eps": 0.0}, r"rmsnorm: eps=0.0 is out of range; allowed: \(0.0, 1.0\]"),
    (RMSNormConfig, {"eps": "tiny"}, r"rmsnorm: eps must be a number, not 'tiny'"),
    (LayerNormConfig, {"norm_method": "newton"}, r"layernorm: norm_method='newton' is not allowed"),
    (RMSNormConfig, {"out_frac": 20}, r"rmsnorm: out_frac=20 is out of range; allowed: in \[0, 19\]"),
    (RMSNormConfig, {"gain_frac": 40}, r"rmsnorm: gain_frac=40 is out of range; allowed: in \[8, 31\]"),
    (LayerNormConfig, {"in_width": 40, "gamma_width": 24, "d": 4096},
     r"layernorm: in_width=40 with gamma_width=24 and d=4096 gives a 76-bit numerator; allowed: at most 62"),
    (RMSNormConfig, {"norm_method": "exact", "norm_width": 30},
     r"rmsnorm: norm_width=30 needs a 75-bit datapath for d\+1=577, norm_guard_bits=2, "
     r"norm_method='exact'; allowed: at most 62 bits"),
])
def test_config_errors(cls, kwargs, message):
    with pytest.raises(ValueError, match=message):
        cls(**kwargs)
