import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from spikeops.golden.shift import barrel_shift, bit_length, normalise


@given(st.lists(st.integers(0, 2**63 - 1), min_size=1, max_size=50))
def test_bit_length_matches_python(values):
    assert bit_length(np.array(values, dtype=np.int64)).tolist() == [v.bit_length() for v in values]


def test_bit_length_at_float_rounding_boundaries():
    vals = [0, 1, 2**53 - 1, 2**53, 2**53 + 1, 2**62 - 1, 2**62, 2**63 - 1]
    assert bit_length(np.array(vals, dtype=np.int64)).tolist() == [v.bit_length() for v in vals]


@given(st.lists(st.tuples(st.integers(-2**40, 2**40), st.integers(-70, 20)), min_size=1, max_size=40))
def test_barrel_shift_is_multiply_or_floor_divide(pairs):
    x = np.array([p[0] for p in pairs], dtype=np.int64)
    s = np.array([p[1] for p in pairs], dtype=np.int64)
    expect = [v << k if k >= 0 else v >> -k for v, k in pairs]
    assert barrel_shift(x, s).tolist() == expect
    for k in (-3, 0, 5):  # scalar shift amounts
        assert barrel_shift(x, k).tolist() == [v << k if k >= 0 else v >> -k for v, _ in pairs]


@given(st.integers(1, 2**61), st.integers(2, 40))
def test_normalise_places_the_leading_one(x, width):
    m, e = normalise(np.array([x]), width)
    assert int(m[0]).bit_length() == width
    assert int(e[0]) == width - x.bit_length()
    assert int(m[0]) == (x << int(e[0]) if e[0] >= 0 else x >> -int(e[0]))
