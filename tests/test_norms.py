import itertools
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from spikeops.golden.fixed import dequantize, quantize
from spikeops.golden.norm import NormConfig, merge, node_of, polar_norm, sqrt_node, sum_of_squares
from spikeops.golden.ops.norms import LayerNormConfig, RMSNormConfig, layernorm, rmsnorm
from spikeops.golden.reference import round_to_grid

RMS = RMSNormConfig(d=32)
LN = LayerNormConfig(d=24)  # not a power of two: the mean is exact all the same


# -- PolarNorm ----------------------------------------------------------------------------------
@given(hnp.arrays(np.int64, st.tuples(st.integers(1, 4), st.integers(1, 70)),
                  elements=st.integers(0, 2**20 - 1)), st.integers(4, 24))
def test_exact_norm_is_floor_sqrt_of_the_normalised_sum(v, width):
    v[:, 0] |= 1  # a sum of squares of at least 1
    cfg = NormConfig(length=v.shape[-1], width=width, method="exact", leaf_bits=20)
    m, e = polar_norm(v, cfg)
    for row, mi, ei in zip(v, m, e):
        q = sum(int(x) ** 2 for x in row)
        assert mi == math.isqrt(q >> (2 * ei) if ei >= 0 else q << (-2 * ei))
        assert 1 << (width - 1) <= mi < 1 << width or q < 1 << (2 * width - 2)
        assert (q >> (2 * ei) if ei >= 0 else q << (-2 * ei)) < 1 << (2 * width)


@given(hnp.arrays(np.int64, st.tuples(st.integers(1, 4), st.integers(1, 70)),
                  elements=st.integers(0, 2**20 - 1)), st.integers(6, 16), st.integers(10, 28),
       st.integers(0, 16))
def test_cordic_norm_within_its_bound(v, iterations, width, scale):
    """Relative error per level (and for the leaves): the CORDIC's angle residue ``2**(2-2n)`` plus
    about ``n + 3`` truncations at the node's last bit; the same at every scale of the leaves."""
    v = v << scale
    cfg = NormConfig(length=v.shape[-1], width=width, iterations=iterations, guard_bits=2, leaf_bits=37)
    m, e = polar_norm(v, cfg)
    got = m * 2.0 ** e / cfg.gain
    exact = np.sqrt((v.astype(float) ** 2).sum(-1))
    bound = exact * (cfg.levels + 1) * (2.0 ** (2 - 2 * iterations) + (iterations + 3) * 2.0 ** (1 - width))
    assert np.all(np.abs(got - exact) <= bound)
    assert np.all((m == 0) == (exact == 0))
    assert np.all((m == 0) | ((m >= 1 << (width - 1)) & (m < 1 << width)))


def test_cordic_tree_order_is_the_specified_one():
    """Adjacent pairs merge in index order, an odd level's last node with the zero node: the root
    of 3 leaves is merge(merge(l0, l1), merge(l2, 0)); another order gives another root."""
    cfg = NormConfig(length=3, width=8, iterations=4, guard_bits=0)
    v = np.array([255, 1, 254])
    lm, le = node_of(v, 8)
    assert (lm.tolist(), le.tolist()) == ([255, 128, 254], [0, -7, 0])
    left = merge(lm[0], le[0], lm[1], le[1], cfg)
    right = merge(lm[2], le[2], np.int64(0), np.int64(cfg.zero_exp), cfg)
    want = merge(*left, *right, cfg)
    assert polar_norm(v, cfg) == want
    assert len({tuple(int(x) for x in polar_norm(v[list(p)], cfg)) for p in itertools.permutations(range(3))}) > 1
    assert [int(x[0]) for x in polar_norm(v[None], cfg)] == [int(want[0]), int(want[1])]


def test_a_merge_by_hand():
    """(3, 4) at 4 bits, no guard bits, 3 iterations: a = 3 + 4 = 7, b = 4 - 3 = 1; a = 7 + 0 = 7,
    b = 1 - 3 = -2; a = 7 + 1 = 8 (-2 >> 2 = -1, negated); 8 normalised to 4 bits is (8, 0)."""
    cfg = NormConfig(length=2, width=4, iterations=3, guard_bits=0)
    assert merge(np.int64(12), np.int64(-2), np.int64(8), np.int64(-1), cfg) == (8, 0)
    assert merge(np.int64(0), np.int64(-4), np.int64(0), np.int64(-4), cfg) == (0, -4)


def test_sum_of_squares_is_exact():
    v = np.array([[(1 << 39) + 12345, -(1 << 38) - 7, 3], [0, 0, 1]], dtype=np.int64)
    assert sum_of_squares(v).tolist() == [sum(int(x) ** 2 for x in row) for row in v]


def test_sqrt_node_large_values():
    """The exact root of sums up to 2**62 and beyond int64 (Python ints), and 0 refused."""
    q = [1, 2**61 + 12345, 2**62 - 1, 10**18, 3 * 2**90 + 7]
    m, e = sqrt_node(q, 24)
    for qi, mi, ei in zip(q, m.tolist(), e.tolist()):
        assert mi == math.isqrt(qi >> (2 * ei) if ei >= 0 else qi << (-2 * ei))
    with pytest.raises(ValueError, match="at least 1, not 0"):
        sqrt_node([0], 24)


@pytest.mark.parametrize("kwargs, message", [
    ({"length": 0}, r"norm: length=0 is out of range; allowed: in \[1, 65536\]"),
    ({"method": "newton"}, r"norm: method='newton' is not allowed; allowed: 'cordic', 'exact'"),
    ({"iterations": 0}, r"norm: iterations=0 is out of range; allowed: in \[1, 32\]"),
    ({"width": 32}, r"norm: width=32 is out of range; allowed: in \[2, 31\]"),
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
    """Scaling the input by 2**k moves only the nodes' exponents; outputs agree to 1 LSB (the eps
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
    """Outliers of 1e4 beside a unit bulk: the bulk still comes out within 1 LSB; the outliers
    themselves (about 17 at the output) within 1 LSB up to the default grid's 12 fraction bits, and
    within 3 at 16, where they need 21 significant bits (11 vectoring steps resolve the norm to a
    few parts in 10**6)."""
    cfg = RMSNormConfig()  # s24.9 input, d=576
    rng = np.random.default_rng(3)
    xf = rng.normal(0, 1, (20, cfg.d))
    xf[:, [5, 300]] = 1e4
    x = quantize(xf, cfg.in_format)
    g = cfg.quantize_gamma(rng.normal(1, 0.3, cfg.d))
    exact = cfg.reference(dequantize(x, cfg.in_format), dequantize(g, cfg.gamma_format))
    bulk = np.ones(cfg.d, dtype=bool)
    bulk[[5, 300]] = False
    for n, outlier_lsb in ((8, 1), (12, 1), (16, 3)):
        c = cfg.replace(out_frac=n, out_width=n + 8)
        err = np.abs(rmsnorm(x, c, g) - round_to_grid(exact, n))
        assert err[:, bulk].max() <= 1 and err[:, ~bulk].max() <= outlier_lsb


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
    (RMSNormConfig, {"norm_width": 32}, r"rmsnorm: norm_width=32 is out of range; allowed: in \[2, 31\]"),
    (LayerNormConfig, {"d": 1}, r"layernorm: d=1 is too short for the CORDIC norm of the centred row .*"
     r"allowed: d >= 2, or norm_method='exact'"),
])
def test_config_errors(cls, kwargs, message):
    with pytest.raises(ValueError, match=message):
        cls(**kwargs)


@pytest.mark.parametrize("cls", [RMSNormConfig, LayerNormConfig])
@pytest.mark.parametrize("method, kwargs", [
    ("cordic", {}), ("cordic", dict(norm_width=6, in_width=5, in_frac=2, d=7)), ("exact", {}),
    ("exact", dict(norm_width=5, in_width=4, in_frac=1, d=3, eps=0.25)),
    ("cordic", dict(gain_frac=8, d=64)), ("exact", dict(gain_frac=30, d=2, in_width=6, in_frac=3))])
def test_the_divisor_has_its_leading_one_in_the_top_two_bits(cls, method, kwargs):
    """The RTL takes B's leading one from B's top bit alone (``hdl/ops/norms.py``): B = m C with the
    root's mantissa m normalised, so ``bit_length(B)`` is ``den_width`` or ``den_width - 1`` (or B is
    0).  Random, constant, zero, saturated and one-hot rows."""
    from spikeops.golden.ops.norms import norm_root

    cfg = cls(norm_method=method, **kwargs)
    rng = np.random.default_rng(7)
    lo, hi = cfg.in_format.min_code, cfg.in_format.max_code
    rows = [rng.integers(lo, hi + 1, size=(200, cfg.d)), np.zeros((1, cfg.d), np.int64),
            np.full((1, cfg.d), hi), np.full((1, cfg.d), lo), np.eye(cfg.d, dtype=np.int64)[:4] * hi,
            rng.integers(-1, 2, size=(50, cfg.d))]
    m, _ = norm_root(np.concatenate(rows).astype(np.int64), cfg)
    b = [int(v) * cfg.readout_constant for v in np.asarray(m).reshape(-1)]
    w = cfg.division.den_width
    assert all(v == 0 or v.bit_length() in (w - 1, w) for v in b), sorted({v.bit_length() for v in b})
    assert sum(v != 0 for v in b) > len(b) // 2          # the rule was checked on real divisors, not zeros
