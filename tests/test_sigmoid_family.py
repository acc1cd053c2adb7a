import numpy as np
import pytest

from spikeops.golden.fixed import dequantize
from spikeops.golden.ops.sigmoid import GELUConfig, SigmoidConfig, SiLUConfig, gelu, sigmoid, silu
from spikeops.golden.reference import round_to_grid

ALL = np.arange(-32767, 32768, dtype=np.int64)  # every s16.8 input code


def test_sigmoid_is_monotone_over_every_input():
    y = sigmoid(ALL)
    assert np.all(np.diff(y) >= 0)
    assert y[0] == 0 and y[-1] == 1 << SigmoidConfig().out_frac  # saturates at both ends
    assert sigmoid(np.array([0]))[0] == 1 << (SigmoidConfig().out_frac - 1)  # sigmoid(0) = 1/2


def test_sigmoid_symmetry():
    cfg = SigmoidConfig()
    y, y_neg = sigmoid(ALL, cfg), sigmoid(-ALL, cfg)
    assert np.all(np.abs(y + y_neg - (1 << cfg.out_frac)) <= 1)


def test_silu_and_gelu_saturate_to_identity_and_zero():
    for fn, cfg in ((silu, SiLUConfig()), (gelu, GELUConfig())):
        top = cfg.in_format.max_code
        scale = 1 << (cfg.out_frac - cfg.in_frac)
        assert fn(np.array([top]), cfg)[0] == top * scale  # x * 1
        assert fn(np.array([-top]), cfg)[0] == 0  # x * e**-128: far below one LSB
        assert fn(np.array([0]), cfg)[0] == 0


def test_silu_holds_the_bound_beyond_minus_h():
    """Real MLP inputs reach -12: the authors' reference returns 0 below -H (9 LSB off at -5)."""
    cfg = SiLUConfig(out_frac=8)
    x = np.arange(-20 * 256, -4 * 256)
    exact = round_to_grid(cfg.reference(dequantize(x, cfg.in_format)), 8)
    assert np.max(np.abs(silu(x, cfg) - exact)) <= 1
    assert silu(np.array([-5 * 256]), cfg)[0] == -9  # SiLU(-5) = -0.0335 = -8.6 LSB


@pytest.mark.parametrize("cls, fn", [(SigmoidConfig, sigmoid), (SiLUConfig, silu), (GELUConfig, gelu)])
@pytest.mark.parametrize("rounding", ["nearest", "floor"])
def test_exhaustive_error_at_most_one_lsb_at_8_and_12_bits(cls, fn, rounding):
    for n in (8, 12):
        cfg = cls(out_frac=n, rounding=rounding)
        exact = round_to_grid(cfg.reference(dequantize(ALL, cfg.in_format)), n, rounding)
        err = np.abs(fn(ALL, cfg) - exact)
        assert err.max() <= 1, (cfg, int(ALL[np.argmax(err)]))


def test_paper_exp_table_also_meets_one_lsb():
    cfg = SiLUConfig(out_frac=8, H=5, K=64)
    assert not cfg.exp.index_is_bit_slice
    exact = round_to_grid(cfg.reference(dequantize(ALL, cfg.in_format)), 8)
    assert np.max(np.abs(silu(ALL, cfg) - exact)) <= 1


def test_division_architecture_does_not_change_results():
    x = np.arange(-2000, 2000, 7)
    base = SigmoidConfig(out_frac=8)
    want = sigmoid(x, base)
    for arch in ("thermometer", "temporal"):
        assert np.array_equal(sigmoid(x, base.replace(div_arch=arch)), want)


def test_out_of_range_input_raises():
    with pytest.raises(ValueError, match=r"silu: x\[2\]=40000 is outside the s16.8 input format"):
        silu(np.array([0, 1, 40000]))
    with pytest.raises(ValueError, match=r"x\[0\]=-32768 is outside"):  # the mask code is not an input here
        sigmoid(np.array([-32768]))


@pytest.mark.parametrize("cls, kwargs, message", [
    (SiLUConfig, {"in_width": 1}, r"silu: in_width=1 is out of range; allowed: in \[2, 32\]"),
    (SiLUConfig, {"in_frac": 16}, r"silu: in_frac=16 is out of range; allowed: in \[0, 15\]"),
    (SigmoidConfig, {"out_frac": 0}, r"sigmoid: out_frac=0 is out of range; allowed: in \[1, 24\]"),
    (GELUConfig, {"H": 30}, r"gelu: H=30 is out of range; allowed: in \[1, 24\]"),
    (SiLUConfig, {"exp_frac": 40}, r"silu: exp_frac=40 makes e\*\*H"),
    (SiLUConfig, {"div_arch": "thermometer"}, r"division: arch='thermometer' needs 2\*\*19 - 1"),
    (SiLUConfig, {"rounding": "even"}, r"silu: rounding='even' is not allowed"),
    (GELUConfig, {"alpha_frac": 20}, r"gelu: alpha_frac=20 is out of range; allowed: in \[0, 16\]"),
])
def test_config_errors(cls, kwargs, message):
    with pytest.raises(ValueError, match=message):
        cls(**kwargs)


def test_gelu_alpha_is_an_exact_integer_product():
    cfg = GELUConfig()
    assert cfg.alpha_code == 1743 and cfg.exp.in_frac == cfg.in_frac + cfg.alpha_frac
