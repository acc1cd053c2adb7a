import numpy as np
import pytest
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


@pytest.mark.parametrize("width", [1, 3, 7, 8, 9, 12, 17, 30, 41])
@pytest.mark.parametrize("group", [1, 2, 4, 8])
def test_leading_one_in_two_stages_equals_the_tree(width, group):
    """The division's two-stage leading-one detection (each group's, then the groups') gives the
    tree's position and non-zero flag: every value up to 12 bits, corners and random values above."""
    from amaranth.hdl import Module, Signal
    from amaranth.sim import Simulator

    from spikeops.hdl.shift import leading_one, leading_one_groups, leading_one_of_groups

    v = Signal(width)
    (p1, z1), (p2, z2) = leading_one(v), leading_one_of_groups(leading_one_groups(v, group), group)
    m = Module()
    outs = [Signal(len(p1)), Signal(), Signal(len(p2)), Signal()]
    m.d.comb += [o.eq(e) for o, e in zip(outs, (p1, z1, p2, z2))]
    rng = np.random.default_rng(width * 10 + group)
    if width <= 12:
        values = list(range(1 << width))
    else:
        values = [0, 1, (1 << width) - 1, 1 << (width - 1)] + [int(x) >> int(s) for x, s in zip(
            rng.integers(0, 1 << width, 400, dtype=np.int64), rng.integers(0, width, 400))]
    seen = []

    async def bench(ctx):
        for x in values:
            ctx.set(v, x)
            seen.append(tuple(ctx.get(o) for o in outs))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    assert [s[:2] for s in seen] == [s[2:] for s in seen] == [(max(0, x.bit_length() - 1), int(x != 0)) for x in values]


def test_leading_one_groups_refuse_a_group_not_a_power_of_two():
    from amaranth.hdl import Signal

    from spikeops.hdl.shift import leading_one_groups
    with pytest.raises(ValueError, match=r"group=6 is not allowed; allowed: a power of two"):
        leading_one_groups(Signal(12), 6)
