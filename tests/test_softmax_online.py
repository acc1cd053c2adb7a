# amaranth: UnusedElaboratable=no
"""Softmax with the online normaliser (``normalizer="online"``): the golden recurrence against a
scalar one written out element by element, the sum's error band, the outputs against float64, the
configuration's errors, and the RTL in Amaranth's simulator: bit-exact, a row's first output a
fixed number of cycles after its last input whatever its length, one element per cycle on rows back
to back, nothing lost under backpressure or across a reset."""

import os
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spikeops.golden.exp import range_mantissa
from spikeops.golden.fixed import quantize
from spikeops.golden.online import LANES, online_sum
from spikeops.golden.ops.softmax import SoftmaxConfig, softmax
from spikeops.hdl.ops.softmax import Softmax
from spikeops.hdl.timing import FixedDelay

sys.path.insert(0, os.path.dirname(__file__))
from test_softmax_stream import run_rows  # noqa: E402

CFG = SoftmaxConfig(normalizer="online", exp_method="range")


def _scalar(x, valid, cfg):
    """The recurrence of ``golden/online.py`` one element at a time, in Python integers (None is
    ``-inf``): ``(R, S, e, n, p)``, ``e`` the outputs' numerators."""
    n, p = (list(map(int, a)) for a in range_mantissa(np.asarray(x), cfg.exp))

    def rescaled(v, new, old):            # v >> (new - old)
        return v if new is None else 0 if old is None else v >> (new - old)

    refs = [None] * LANES                 # R_(j-1), .., R_(j-LANES)
    lanes = [0] * LANES
    for j, ok in enumerate(valid):
        new = (n[j] if refs[0] is None else max(refs[0], n[j])) if ok else refs[0]
        lanes[j % LANES] = rescaled(lanes[j % LANES], new, refs[-1]) + (p[j] >> (new - n[j]) if ok else 0)
        refs = [new] + refs[:-1]
    total = sum(rescaled(lanes[(len(x) - 1 - k) % LANES], refs[0], refs[k]) for k in range(min(LANES, len(x))))
    e = [p[j] >> (refs[0] - n[j]) if ok else 0 for j, ok in enumerate(valid)]
    return refs[0], total, e, n, p


row_st = st.integers(1, 70).flatmap(lambda k: st.tuples(
    st.lists(st.integers(CFG.in_format.min_code + 1, CFG.in_format.max_code), min_size=k, max_size=k),
    st.lists(st.booleans(), min_size=k, max_size=k)))


@settings(max_examples=150, deadline=None)
@given(row_st)
def test_the_recurrence_element_by_element_and_the_sums_band(row):
    """Golden's vectorised recurrence equals the scalar one, and the sum lies between the sum of
    the numerators (each floored once) and the exact sum of ``p_j 2**(n_j - R)``."""
    xs, valid = row
    x = np.asarray(xs, dtype=np.int64)
    ref, total, e, n, p = _scalar(x, valid, CFG)
    r_g, s_g = online_sum(*range_mantissa(x, CFG.exp), np.asarray(valid))
    assert int(s_g[0]) == total
    if ref is None:
        assert total == 0 and not any(valid)
        return
    assert int(r_g[0]) == ref
    low = min(n[j] for j, ok in enumerate(valid) if ok)
    exact = sum(p[j] << (n[j] - low) for j, ok in enumerate(valid) if ok)   # S exact, times 2**(R - low)
    assert sum(e) <= total and total << (ref - low) <= exact


def test_outputs_against_float64_and_against_the_three_passes():
    """On rows of normal activations the outputs stay within about an LSB of float64 softmax, as
    close as the three-pass form with the same exponential (``exp_method="range"``): 0.88 with 6 or
    more division guard bits, 1.07 with the default 4 (the three passes: 1.10 and 1.16)."""
    rng = np.random.default_rng(0)
    x = quantize(rng.normal(0, 3, (200, 300)), CFG.in_format)
    mask = rng.random(x.shape) < 0.95
    ref = np.where(mask, np.exp((x - np.where(mask, x, -1 << 30).max(-1, keepdims=True)) / 256.0), 0)
    ref = ref / ref.sum(-1, keepdims=True) * 2 ** CFG.out_frac
    err_online = np.abs(softmax(x, CFG, mask=mask) - ref)
    err_rows = np.abs(softmax(x, CFG.replace(normalizer="row_max"), mask=mask) - ref)
    assert err_online.max() <= 1.1 and err_online.mean() <= 0.3
    assert err_online.mean() <= err_rows.mean() * 1.05 and err_online.max() <= err_rows.max()
    wide = CFG.replace(div_guard_bits=6)
    assert np.abs(softmax(x, wide, mask=mask) - ref).max() <= 1.0
    assert np.all(softmax(x, CFG, mask=mask)[~mask] == 0)


def test_extremes():
    top, bot, one = CFG.in_format.max_code, CFG.in_format.min_code + 1, 1 << CFG.out_frac
    assert softmax(np.array([top, bot]), CFG).tolist() == [one, 0]
    assert softmax(np.array([bot, top]), CFG).tolist() == [0, one]
    assert softmax(np.array([5]), CFG).tolist() == [one]
    assert softmax(np.full(4, 77), CFG).tolist() == [one // 4] * 4
    mask_code = CFG.in_format.mask_code
    assert softmax(np.array([mask_code, mask_code]), CFG).tolist() == [0, 0]
    rising = np.arange(0, 64 * 180, 180)                 # the maximum moves at every element
    q = softmax(rising, CFG)
    assert q[-1] == max(q) and abs(int(q.sum()) - one) <= 32


def test_the_configuration_names_what_the_online_form_needs():
    with pytest.raises(ValueError, match=r"softmax: normalizer='online' needs exp_method='range' .*; allowed "
                                         r"with that exp_method: 'row_max'"):
        SoftmaxConfig(normalizer="online")
    with pytest.raises(ValueError, match=r"softmax: normalizer='streaming' is not allowed; allowed: 'row_max', "
                                         r"'online'"):
        SoftmaxConfig(normalizer="streaming", exp_method="range")
    # the default's hash is the one its other parameters give, as before the parameter existed
    # (pinned: it changed with division guard bits 4 on 2026-12-06)
    assert SoftmaxConfig().stable_hash() == "b371053c79da71c8"
    assert CFG.stable_hash() != CFG.replace(normalizer="row_max").stable_hash()
    assert CFG.e_width == CFG.exp.mant_frac + 1 and CFG.division.num_width == CFG.e_width


# -- the RTL ---------------------------------------------------------------------------------------

def _rows(cfg, lengths, seed=1, rising=False):
    rng = np.random.default_rng(seed)
    # rising: a ramp of 0.7 a step, so the maximum's exponent (an octave is 0.69) moves at every element
    rows = [quantize(-60 + 0.7 * np.arange(n) if rising else rng.normal(0, 7, n), cfg.in_format)
            for n in lengths]
    masks = [rng.random(n) < 0.9 for n in lengths]
    if len(lengths) > 2:
        masks[2][:] = False  # a fully masked row in the middle of the stream
    return rows, masks


def _run(cfg, lengths, rising=False, **kw):
    return run_rows(cfg, *_rows(cfg, lengths, rising=rising), **kw)


@pytest.mark.parametrize("cfg", [SoftmaxConfig(d_max=40, out_frac=10, exp_method="range", normalizer="online"),
                                 SoftmaxConfig(d_max=9, out_frac=6, exp_method="range", normalizer="online",
                                               K=16, div_arch="thermometer", buffer_depth=13)],
                         ids=["d40", "thermometer-small-buffer"])
def test_every_first_output_where_the_timing_model_says(cfg):
    """Mixed lengths, sink always ready: bit-exact, each row's first output on the cycle
    :class:`FixedDelay` predicts, the same latency for every length at an idle operator."""
    d = cfg.d_max
    lengths = [d, 1, 3, d, d, 1, 1, 1, 1, 1, 1, d, 2, d // 2, d, 5, 1, d]
    log, last_in, first_out = _run(cfg, lengths)
    assert isinstance(Softmax.timing(cfg), FixedDelay)
    assert first_out == Softmax.first_outputs(cfg, lengths, last_in)
    ends = np.cumsum(lengths)
    assert [log["out"][e - 1] - f + 1 for e, f in zip(ends, first_out)] == lengths
    for n in (1, d):
        _, last_in, first_out = _run(cfg, [n])
        assert first_out[0] - last_in[0] == Softmax.latency_for(cfg, n) == Softmax.latency_for(cfg, 0)


def test_the_default_latency_is_inside_64_cycles():
    cfg = SoftmaxConfig(exp_method="range", normalizer="online")
    assert Softmax.latency_for(cfg, cfg.d_max) == Softmax.latency_for(cfg, 1) <= 64


@pytest.mark.parametrize("rising", [False, True], ids=["random", "rising"])
def test_one_element_per_cycle_on_back_to_back_rows(rising):
    """Rows of 64 to d_max back to back, also rows whose maximum moves at every element (each
    element rescales the sum), all bit-exact: the input never stalls and the outputs leave at one per cycle."""
    cfg = SoftmaxConfig(d_max=128, out_frac=12, exp_method="range", normalizer="online")
    lengths = [int(n) for n in np.random.default_rng(5).integers(64, 129, 24)]
    log, _, _ = _run(cfg, lengths, rising=rising)
    total = sum(lengths)
    assert log["in"][-1] - log["in"][0] == total - 1
    rest = total - lengths[0]
    assert rest / (log["out"][-1] - log["out"][lengths[0] - 1]) >= 0.95


def test_backpressure_and_idle_cycles_lose_nothing():
    cfg = SoftmaxConfig(d_max=24, out_frac=12, exp_method="range", normalizer="online", buffer_depth=30)
    _run(cfg, [24, 1, 7, 24, 3, 24, 24, 2, 1, 1, 16], valid_p=0.8, ready_p=0.45, seed=4)
