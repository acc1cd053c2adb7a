import numpy as np
import pytest

from spikeops.golden.fixed import FixedFormat, check_codes, dequantize, quantize

S16_8 = FixedFormat(16, 8, signed=True)
U9_8 = FixedFormat(9, 8, signed=False)


def test_quantize_rounds_half_away_from_zero_and_saturates_both_ends():
    x = np.array([0.0, 1 / 512, -1 / 512, 1.0, -1.0, 1e9, -1e9, np.inf])
    q = quantize(x, S16_8)
    assert q.tolist() == [0, 1, -1, 256, -256, 32767, -32767, 32767]
    assert quantize([2.0, -0.1], U9_8).tolist() == [511, 0]


def test_minus_inf_is_the_mask_code_and_round_trips():
    q = quantize([-np.inf, -1e9, 0.5], S16_8)
    assert q.tolist() == [S16_8.mask_code, S16_8.min_code, 128]
    assert S16_8.mask_code == -32768 and S16_8.min_code == -32767
    back = dequantize(q, S16_8)
    assert np.isneginf(back[0]) and back[1] == -32767 / 256 and back[2] == 0.5


def test_nan_raises_naming_the_parameter_and_index():
    with pytest.raises(ValueError, match=r"quantize: gamma contains NaN at index \[1\]"):
        quantize([0.0, np.nan], S16_8, name="gamma")


def test_minus_inf_into_unsigned_format_raises():
    with pytest.raises(ValueError, match="unsigned and has no mask code"):
        quantize([-np.inf], U9_8)


def test_floor_rounding_and_bad_rounding_name():
    assert quantize([0.9 / 256, -0.1 / 256], S16_8, rounding="floor").tolist() == [0, -1]
    with pytest.raises(ValueError, match="rounding='up' is not allowed"):
        quantize([0.0], S16_8, rounding="up")


def test_check_codes_rejects_values_outside_the_width():
    assert check_codes(np.array([-32767, 32767]), S16_8, owner="silu").dtype == np.int64
    with pytest.raises(ValueError, match=r"silu: x\[1\]=32768 is outside the s16.8 input format; "
                                         r"allowed: \[-32767, 32767\]"):
        check_codes(np.array([0, 32768]), S16_8, owner="silu")
    with pytest.raises(ValueError, match=r"x\[0\]=-32768 is outside"):
        check_codes(np.array([-32768]), S16_8, owner="silu")
    assert check_codes(np.array([-32768]), S16_8, owner="softmax", allow_mask=True)[0] == -32768
    with pytest.raises(ValueError, match="must hold integer codes, not dtype float64"):
        check_codes(np.array([0.5]), S16_8, owner="silu")


def test_format_validation():
    with pytest.raises(ValueError, match=r"FixedFormat: width=63 is out of range; allowed: in \[2, 62\]"):
        FixedFormat(63, 0)
    assert FixedFormat(9, 8, signed=False).max_code == 511
    with pytest.raises(ValueError, match="unsigned format has no mask code"):
        U9_8.mask_code
