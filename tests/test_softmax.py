import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from spikeops.golden.fixed import dequantize, quantize
from spikeops.golden.ops.softmax import SoftmaxConfig, softmax
from spikeops.golden.reference import round_to_grid

CFG = SoftmaxConfig()
MASK = CFG.in_format.mask_code
rows = hnp.arrays(np.int64, st.tuples(st.integers(1, 5), st.integers(1, 40)),
                  elements=st.integers(CFG.in_format.min_code, CFG.in_format.max_code))


@given(rows, st.sampled_from([8, 12, 16]), st.sampled_from(["nearest", "floor"]))
def test_rows_sum_to_one_within_half_an_lsb_per_element(x, n, rounding):
    """sum_i e_i / S = 1 exactly, so only the per-element rounding moves the row sum:
    |sum q - 2**n| <= d/2 (nearest) and 0 <= 2**n - sum q <= d (floor), d = valid elements."""
    cfg = CFG.replace(out_frac=n, rounding=rounding)
    q = softmax(x, cfg)
    dev = q.sum(axis=-1) - (1 << n)
    d = x.shape[-1]
    if rounding == "nearest":
        assert np.all(np.abs(dev) <= d / 2 + 1e-9)
    else:
        assert np.all((dev <= 0) & (dev >= -d))


@given(rows, st.data())
def test_mask_equals_dropping_the_masked_positions(x, data):
    keep = data.draw(hnp.arrays(bool, x.shape))
    q = softmax(np.where(keep, x, MASK))
    assert np.array_equal(q, softmax(x, mask=keep))  # the mask code and the mask argument agree
    assert np.all(q[~keep] == 0)
    for r in range(x.shape[0]):
        if keep[r].any():
            assert np.array_equal(q[r][keep[r]], softmax(x[r][keep[r]]))
        else:
            assert np.all(q[r] == 0)  # a fully masked row gives all zeros


@given(rows, st.integers(-3000, 3000))
def test_shift_invariance_and_permutation_equivariance(x, c):
    shifted = np.clip(x + c, CFG.in_format.min_code, CFG.in_format.max_code)
    if np.array_equal(shifted - c, x):  # no saturation
        assert np.array_equal(softmax(shifted), softmax(x))
    perm = np.random.default_rng(abs(c)).permutation(x.shape[-1])
    assert np.array_equal(softmax(x[..., perm]), softmax(x)[..., perm])


def test_extremes_and_all_equal_rows():
    top, bot = CFG.in_format.max_code, CFG.in_format.min_code
    one = 1 << CFG.out_frac
    assert softmax(np.array([top, bot])).tolist() == [one, 0]
    assert softmax(np.array([5])).tolist() == [one]
    assert softmax(np.full(4, 77)).tolist() == [one // 4] * 4
    assert softmax(np.full(1024, bot)).sum() == one
    assert softmax(np.array([MASK, MASK])).tolist() == [0, 0]


def test_causal_mask_rows():
    d = 16
    x = quantize(np.random.default_rng(0).normal(0, 7, (d, d)), CFG.in_format)
    causal = np.tril(np.ones((d, d), dtype=bool))
    q = softmax(x, mask=causal)
    assert np.all(q[~causal] == 0)
    assert q[0, 0] == 1 << CFG.out_frac


@pytest.mark.parametrize("d", [8, 64, 256])
def test_error_targets_gaussian_logits(d):
    """At the 8-bit grid: max 1 LSB; mean no worse than the authors' float reference."""
    authors_mean = {8: 8.4e-5, 64: 1.04e-5, 256: 2.6e-6}[d]
    cfg = CFG.replace(out_frac=8)
    x = quantize(np.random.default_rng(d).normal(0, 7, (40000 // d, d)), cfg.in_format)
    exact = round_to_grid(cfg.reference(dequantize(x, cfg.in_format)), 8)
    err = np.abs(softmax(x, cfg) - exact)
    assert err.max() <= 1
    assert err.mean() * 2.0 ** -8 <= authors_mean


def test_paper_configuration_exp_table():
    cfg = CFG.replace(H=5, K=64, out_frac=8)
    x = quantize(np.random.default_rng(1).normal(0, 7, (500, 64)), cfg.in_format)
    exact = round_to_grid(cfg.reference(dequantize(x, cfg.in_format)), 8)
    assert np.abs(softmax(x, cfg) - exact).max() <= 1


def test_row_length_and_input_errors():
    with pytest.raises(ValueError, match=r"softmax: row length 1025 \(the last axis of x\) is not allowed; "
                                         r"allowed: 1 .. d_max=1024"):
        softmax(np.zeros((2, 1025), dtype=np.int64))
    with pytest.raises(ValueError, match="row length 0"):
        softmax(np.zeros((2, 0), dtype=np.int64))
    with pytest.raises(ValueError, match=r"softmax: x\[0, 1\]=32768 is outside the s16.8 input format; "
                                         r"allowed: \[-32768, 32767\]"):
        softmax(np.array([[0, 32768]]))


@pytest.mark.parametrize("kwargs, message", [
    ({"d_max": 0}, r"softmax: d_max=0 is out of range; allowed: in \[1, 65536\]"),
    ({"out_frac": 30}, r"softmax: out_frac=30 is out of range; allowed: in \[1, 24\]"),
    ({"K": 5000}, r"softmax: K=5000 gives segments narrower than one argument code; allowed: K <= 2\*H\*2\*\*in_frac = 4096"),
    ({"K": 20000}, r"softmax: K=20000 is out of range; allowed: in \[1, 16384\]"),
    ({"in_frac": 2, "K": 64, "H": 5}, r"softmax: K=64 gives segments narrower than one argument code"),
    ({"div_arch": "thermometer"}, r"division: arch='thermometer' needs 2\*\*17 - 1 neurons/steps"),
])
def test_config_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SoftmaxConfig(**kwargs)


def test_unary_division_at_the_paper_grid():
    """A thermometer group of 2**9 - 1 neurons is allowed at the paper's 8-bit grid."""
    assert CFG.replace(out_frac=8, div_arch="thermometer").division.population_size == 511
