"""The three neuron realisations and the fast path of the Division Neuron Group are bit-identical."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from spikeops.golden.division import ARCHITECTURES, REALISATIONS, DivisionConfig, divide


def _exact(a, b, shift, rounding, q_max):
    """floor(a 2**shift / b) or round-half-up, saturated; Python ints."""
    if b == 0:
        return q_max
    num, den = (a << shift, b) if shift >= 0 else (a, b << -shift)
    q = (2 * num + den) // (2 * den) if rounding == "nearest" else num // den
    return min(q, q_max)


@pytest.mark.parametrize("rounding", ["nearest", "floor"])
@pytest.mark.parametrize("shift", [-2, 0, 3])
def test_all_realisations_exhaustive_small_widths(rounding, shift):
    cfg = DivisionConfig(num_width=7, den_width=6, shift=shift, q_width=5, theta_bits=8,
                         arch="thermometer", rounding=rounding)
    a, b = (g.ravel() for g in np.meshgrid(np.arange(128), np.arange(64)))
    results = {r: divide(a, b, cfg, realisation=r) for r in REALISATIONS}
    for r in REALISATIONS:
        np.testing.assert_array_equal(results[r], results["fast"], err_msg=r)
    # theta_bits >= den_width: the group divides exactly
    expect = [_exact(int(x), int(y), shift, rounding, cfg.q_max) for x, y in zip(a, b)]
    assert results["fast"].tolist() == expect


def test_truncated_theta_exhaustive():
    """theta_bits < den_width: B is truncated, and all realisations still agree bit for bit."""
    cfg = DivisionConfig(num_width=8, den_width=8, shift=4, q_width=6, theta_bits=3, arch="temporal")
    a, b = (g.ravel() for g in np.meshgrid(np.arange(256), np.arange(256)))
    results = [divide(a, b, cfg, realisation=r) for r in REALISATIONS]
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])
    # and stays within the documented bound: relative error < 2**(1 - theta_bits) before saturation
    exact = a * 16 / np.maximum(b, 1)
    ok = (b > 0) & (results[0] < cfg.q_max)
    assert np.all(np.abs(results[0][ok] - exact[ok]) <= exact[ok] * 2.0 ** (1 - cfg.theta_bits) + 1)


@given(st.integers(1, 30), st.integers(1, 30), st.integers(-8, 16), st.integers(1, 10),
       st.integers(2, 30), st.sampled_from(["nearest", "floor"]), st.integers(0, 2**32))
def test_random_configs_fast_equals_neurons(num_w, den_w, shift, q_w, theta_bits, rounding, seed):
    cfg = DivisionConfig(num_width=num_w, den_width=den_w, shift=shift, q_width=q_w,
                         theta_bits=theta_bits, rounding=rounding)
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 1 << num_w, 300)
    b = rng.integers(0, 1 << den_w, 300)
    fast = divide(a, b, cfg)
    for r in ARCHITECTURES:
        np.testing.assert_array_equal(divide(a, b, cfg, realisation=r), fast, err_msg=r)


@given(st.integers(0, 2**32))
def test_large_widths_binary_equals_fast_and_exact(seed):
    cfg = DivisionConfig(num_width=40, den_width=34, shift=16, q_width=20, theta_bits=36)
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 1 << 40, 2000)
    b = rng.integers(1, 1 << 34, 2000)
    fast = divide(a, b, cfg)
    np.testing.assert_array_equal(divide(a, b, cfg, realisation="binary"), fast)
    assert fast.tolist() == [_exact(int(x), int(y), 16, "nearest", cfg.q_max) for x, y in zip(a, b)]


def test_b_exp_scales_the_denominator():
    cfg = DivisionConfig(num_width=20, den_width=12, shift=8, q_width=12, theta_bits=16)
    a = np.arange(0, 1 << 20, 997)
    b = np.full_like(a, 1000)
    for b_exp in (-3, 0, 5):
        got = divide(a, b, cfg, b_exp=b_exp)
        want = [_exact(int(x), 1000, 8 - b_exp, "nearest", cfg.q_max) for x in a]
        assert got.tolist() == want
        np.testing.assert_array_equal(divide(a, b, cfg, b_exp=np.full_like(a, b_exp), realisation="binary"), got)


def test_saturation_and_zero_denominator():
    cfg = DivisionConfig(num_width=16, den_width=8, shift=8, q_width=9, theta_bits=12)
    assert divide(np.array([65535, 0, 300]), np.array([1, 0, 1]), cfg).tolist() == [511, 511, 511]
    for r in REALISATIONS[1:]:
        cfg_r = cfg.replace(arch=r)
        assert divide(np.array([65535, 0]), np.array([1, 0]), cfg_r, realisation=r).tolist() == [511, 511]


def test_zero_numerator_is_never_saturated():
    """0 / B = 0 even when B is so small that every non-zero numerator saturates."""
    cfg = DivisionConfig(num_width=8, den_width=7, shift=8, q_width=5, theta_bits=5)
    a, b = np.array([0, 1, 0, 255, 0]), np.array([1, 1, 3, 3, 0])
    for r in REALISATIONS:
        got = divide(a, b, cfg.replace(arch=r) if r != "fast" else cfg, realisation=r).tolist()
        assert got == [0, 31, 0, 31, 31], r  # 0 / 0 stays the all-fire q_max
    wide = DivisionConfig(num_width=20, den_width=12, shift=8, q_width=12, theta_bits=16)
    assert divide(np.array([0, 0]), np.array([1, 1]), wide, b_exp=np.array([-40, 0])).tolist() == [0, 0]


@pytest.mark.parametrize("kwargs, message", [
    ({"num_width": 0}, r"division: num_width=0 is out of range; allowed: in \[1, 62\]"),
    ({"den_width": 63}, r"division: den_width=63 is out of range; allowed: in \[1, 62\]"),
    ({"shift": 70}, r"division: shift=70 is out of range; allowed: in \[-62, 62\]"),
    ({"q_width": 0}, r"division: q_width=0 is out of range; allowed: in \[1, 40\]"),
    ({"theta_bits": 1}, r"division: theta_bits=1 is out of range; allowed: in \[2, 60\]"),
    ({"q_width": 30, "theta_bits": 40}, r"theta_bits=40 with q_width=30 needs 70-bit comparators; "
                                        r"allowed: q_width \+ theta_bits <= 61"),
    ({"arch": "ripple"}, r"arch='ripple' is not allowed; allowed: 'binary', 'thermometer', 'temporal'"),
    ({"arch": "thermometer", "q_width": 13}, r"arch='thermometer' needs 2\*\*13 - 1 neurons/steps"),
    ({"rounding": "ceil"}, r"rounding='ceil' is not allowed; allowed: 'nearest', 'floor'"),
    ({"num_width": 2.5}, r"division: num_width must be an integer, not 2.5"),
])
def test_config_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DivisionConfig(**kwargs)


def test_input_range_errors_and_realisation_name():
    cfg = DivisionConfig(num_width=4, den_width=4)
    with pytest.raises(ValueError, match=r"divide: a=16 is outside the unsigned 4-bit range "
                                         r"\(num_width=4\); allowed: \[0, 15\]"):
        divide(np.array([16]), np.array([1]), cfg)
    with pytest.raises(ValueError, match=r"divide: b=-1 is outside .*\(den_width=4\)"):
        divide(np.array([1]), np.array([-1]), cfg)
    with pytest.raises(ValueError, match="realisation='magic' is not allowed"):
        divide(np.array([1]), np.array([1]), cfg, realisation="magic")


def test_population_sizes():
    assert DivisionConfig(q_width=9, arch="thermometer").population_size == 511
    assert DivisionConfig(q_width=9, arch="binary").population_size == 9
    assert DivisionConfig(q_width=9, theta_bits=20).current_width == 29
