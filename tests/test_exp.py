import math

import numpy as np
import pytest

from spikeops.golden.exp import ExpConfig, exp_table, pwl_exp

CONFIGS = [
    ExpConfig(),                                             # H=8, K=256: index is a bit slice
    ExpConfig(in_width=12, in_frac=8, H=5, K=64, out_frac=12),  # the paper's H, K: computed index
    ExpConfig(in_width=10, in_frac=5, H=5, K=64, out_frac=8),   # 5 codes per segment
    ExpConfig(in_width=10, in_frac=4, H=5, K=48, out_frac=10),  # uneven segments (160/48)
    ExpConfig(in_width=8, in_frac=2, H=4, K=8, out_frac=6, slope_frac=2),
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"H{c.H}K{c.K}f{c.in_frac}")
def test_segment_index_is_exact(cfg):
    """Every argument code falls in the segment [b_k, b_(k+1)) the integer definition gives."""
    tab = exp_table(cfg)
    hc = cfg.H_codes
    starts = [int(s) for s in tab.starts]
    for z in range(-hc, hc):
        k = (z + hc) * cfg.K // (2 * hc)
        assert starts[k] <= z + hc < starts[k + 1]
    z = np.arange(-hc, hc)
    y = pwl_exp(z, cfg)
    # evaluate the chord formula with Python ints from the definition of the segment
    expect = []
    for zz in range(-hc, hc):
        k = (zz + hc) * cfg.K // (2 * hc)
        t = zz + hc - starts[k]
        expect.append(int(tab.intercepts[k]) + ((int(tab.slopes[k]) * t) >> cfg.slope_shift))
    assert y.tolist() == expect


def test_bit_slice_flag():
    assert ExpConfig().index_is_bit_slice
    assert not ExpConfig(in_width=12, in_frac=8, H=5, K=64).index_is_bit_slice
    assert ExpConfig(in_width=12, in_frac=8, H=4, K=64).index_is_bit_slice


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"H{c.H}K{c.K}f{c.in_frac}")
def test_monotone_clamped_and_zero_below(cfg):
    hc = cfg.H_codes
    z = np.arange(-hc - 50, hc + 50)
    y = pwl_exp(z, cfg)
    assert np.all(np.diff(y) >= 0)
    assert np.all(y[z < -hc] == 0)
    top = round(math.exp(cfg.H) * 2 ** cfg.out_frac)
    assert np.all(y[z >= hc] == top)
    assert y[z == 0][0] == 2 ** cfg.out_frac  # e**0 = 1 exactly (b_k at 0 for these configs)


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"H{c.H}K{c.K}f{c.in_frac}")
def test_error_within_the_chord_bound(cfg):
    hc = cfg.H_codes
    z = np.arange(-hc, hc)
    y = pwl_exp(z, cfg).astype(np.float64)
    exact = np.exp(z / 2 ** cfg.in_frac) * 2 ** cfg.out_frac
    # chord error (relative), plus rounding of the end points and the floored slope product
    bound = exact * cfg.chord_error_bound + 2.0
    assert np.all(np.abs(y - exact) <= bound)


def test_table_is_reproducible_and_sized():
    cfg = ExpConfig()
    tab = exp_table(cfg)
    assert tab.intercepts.size == cfg.K + 1 and tab.slopes.size == cfg.K
    assert int(tab.intercepts.max()).bit_length() == cfg.out_width
    assert int(tab.slopes.max()).bit_length() <= cfg.slope_width
    assert cfg.table_bits == cfg.K * (cfg.out_width + cfg.slope_width) + cfg.out_width
    # the table is data of the specification: pin a few entries
    assert int(tab.intercepts[0]) == round(math.exp(-8) * 4096)
    assert int(tab.intercepts[-1]) == 12210004  # round(e**8 * 2**12)
    with pytest.raises(ValueError):
        tab.slopes[0] = 1  # read-only: one table, never modified


@pytest.mark.parametrize("kwargs, message", [
    ({"H": 0}, r"exp: H=0 is out of range; allowed: in \[1, 24\]"),
    ({"K": 0}, r"exp: K=0 is out of range; allowed: in \[1, 16384\]"),
    ({"in_width": 12}, r"exp: in_width=12 cannot hold H=8 at in_frac=8 \(2048 codes\); allowed: in_width >= 13"),
    ({"in_frac": 0, "H": 2, "K": 8}, r"exp: K=8 gives segments narrower than one argument code; allowed: K <= 2\*H\*2\*\*in_frac = 4"),
    ({"out_frac": 40}, r"exp: out_frac=40 makes e\*\*H = 2\*\*51.5 codes; allowed: H \* log2\(e\) \+ out_frac < 48"),
    ({"slope_frac": 33}, r"exp: slope_frac=33 is out of range; allowed: in \[0, 32\]"),
])
def test_config_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ExpConfig(**kwargs)


# -- the range-reduced method ----------------------------------------------------------------------
RANGE = [ExpConfig(method="range", K=64), ExpConfig(method="range", K=16, in_width=12, in_frac=6, H=5, out_frac=10),
         ExpConfig(method="range", K=1, in_width=8, in_frac=2, H=3, out_frac=4),
         ExpConfig(method="range", K=32, in_width=28, in_frac=22, H=8, out_frac=12)]


def _range_by_hand(z: int, cfg) -> int:
    """The module docstring's range reduction, in Python integers and decimal from scratch."""
    import decimal
    ctx = decimal.Context(prec=60, rounding=decimal.ROUND_HALF_UP)
    hc = cfg.H_codes
    if z < -hc:
        return 0
    z = min(z, hc)
    f = cfg.in_frac + 24
    L = round(math.log2(math.e) * 2 ** 24)
    w = z * L
    n, r = w >> f, w & ((1 << f) - 1)
    kb = cfg.K.bit_length() - 1
    k, low = r >> (f - kb), f - kb
    mf = cfg.out_frac + ((hc * L) >> f)
    tb = mf - kb
    t = (r & ((1 << low) - 1)) >> (low - tb) if low >= tb else (r & ((1 << low) - 1)) << (tb - low)

    def c(j):
        v = ctx.multiply(ctx.exp(ctx.multiply(ctx.ln(decimal.Decimal(2)), decimal.Decimal(j) / cfg.K)),
                         decimal.Decimal(2) ** mf)
        return int(v.to_integral_value(rounding=decimal.ROUND_HALF_UP, context=ctx))
    m = c(k) + (((c(k + 1) - c(k)) * t) >> tb)
    return m >> (((hc * L) >> f) - n)


@pytest.mark.parametrize("cfg", RANGE, ids=lambda c: f"range-K{c.K}f{c.in_frac}")
def test_range_reduction_follows_its_definition(cfg):
    hc = cfg.H_codes
    rng = np.random.default_rng(1)
    zs = np.unique(np.concatenate([np.arange(-hc - 3, -hc + 40), np.arange(-40, 40), np.arange(hc - 40, hc + 3),
                                   rng.integers(-hc, hc, 300)]))
    assert pwl_exp(zs, cfg).tolist() == [_range_by_hand(int(z), cfg) for z in zs]


@pytest.mark.parametrize("cfg", RANGE, ids=lambda c: f"range-K{c.K}f{c.in_frac}")
def test_range_reduction_is_monotone_and_within_its_bound(cfg):
    hc = cfg.H_codes
    step = max(1, (2 * hc) // 400_000)
    z = np.arange(-hc - 5, hc + 5, step)
    y = pwl_exp(z, cfg)
    assert np.all(np.diff(y) >= 0) and np.all(y[z < -hc] == 0) and np.all(y[z >= hc] == cfg.one_code)
    inside = (z >= -hc) & (z < hc)
    exact = np.exp(z[inside] / 2 ** cfg.in_frac) * 2 ** cfg.out_frac
    err = np.abs(y[inside] - exact)
    # relative chord error plus L's rounding, and one output code of flooring
    assert np.all(err <= exact * (cfg.chord_error_bound + cfg.H * 2.0 ** -24) + 1.0)
    assert cfg.chord_error_bound < 1.5e-5 or cfg.K < 64


def test_range_reduction_beats_the_paper_table_and_fits_in_luts():
    u, r = ExpConfig(), ExpConfig(method="range", K=64)
    z = np.arange(-u.H_codes, u.H_codes)
    exact = np.exp(z / 2 ** u.in_frac) * 2 ** u.out_frac
    eu, er = np.abs(pwl_exp(z, u) - exact).max(), np.abs(pwl_exp(z, r) - exact).max()
    assert er * 20 < eu
    assert r.table_bits < u.table_bits / 4 and r.out_format == u.out_format
    with pytest.raises(ValueError, match=r"exp: K=256 is not allowed with method='range'; allowed: a power of two <= 64"):
        ExpConfig(method="range", K=256)
    with pytest.raises(ValueError, match=r"exp: method='cubic' is not allowed; allowed: 'uniform', 'range'"):
        ExpConfig(method="cubic")


def test_operators_take_the_range_method_with_its_own_default_k():
    from spikeops.golden import registry
    for op in ("softmax", "silu", "sigmoid", "gelu"):
        cfg = registry.get(op).default()
        assert cfg.K == 256 and cfg.replace(exp_method="range").K == 64
        assert cfg.replace(exp_method="range", K=32).exp.K == 32
    with pytest.raises(ValueError, match=r"silu: K=256 is not allowed with exp_method='range'"):
        registry.get("silu").default(exp_method="range", K=256)
