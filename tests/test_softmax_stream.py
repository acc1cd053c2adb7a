# amaranth: UnusedElaboratable=no
"""Softmax as a stream of rows in Amaranth's simulator: the three passes overlap, so rows of any
lengths flow at one element per cycle; every row's first output lands on the cycle the timing model
(``spikeops.hdl.timing.ThreePasses``) predicts, and the outputs equal the golden model's."""

import numpy as np
import pytest

from spikeops.golden.fixed import quantize
from spikeops.golden.ops.softmax import SoftmaxConfig, softmax
from spikeops.hdl.ops.softmax import Softmax
from spikeops.hdl.timing import ThreePasses
from spikeops.verif.amaranth_sim import run_stream


def _rows(cfg, lengths, seed=1):
    rng = np.random.default_rng(seed)
    rows = [quantize(rng.normal(0, 7, n), cfg.in_format) for n in lengths]
    masks = [rng.random(n) < 0.9 for n in lengths]
    if len(lengths) > 2:
        masks[2][:] = False  # a fully masked row in the middle of the stream
    return rows, masks


def _items(rows, masks):
    return [{"data": int(v), "masked": int(not k), "last": int(j == len(r) - 1)}
            for r, mk in zip(rows, masks) for j, (v, k) in enumerate(zip(r, mk))]


def _run(cfg, lengths, **kw):
    return run_rows(cfg, *_rows(cfg, lengths), **kw)


def run_rows(cfg, rows, masks, **kw):
    """Stream ``rows`` (with their ``masks``) through :class:`Softmax` in Amaranth's simulator
    (``run_stream``'s keywords: idle cycles, backpressure), check every output and ``last`` against
    the golden model; return the cycle log, each row's last input cycle and first output cycle."""
    lengths = [len(r) for r in rows]
    out, log = run_stream(Softmax(cfg), _items(rows, masks), **kw)
    want = [int(v) for r, mk in zip(rows, masks) for v in softmax(r, cfg, mask=mk)]
    assert [int(o.data) for o in out] == want
    assert [int(o.last) for o in out] == [int(j == n - 1) for n in lengths for j in range(n)]
    ends = np.cumsum(lengths)
    starts = ends - np.asarray(lengths)
    return log, [log["in"][e - 1] for e in ends], [log["out"][s] for s in starts]


@pytest.mark.parametrize("cfg", [SoftmaxConfig(d_max=64, out_frac=12),
                                 SoftmaxConfig(d_max=64, out_frac=12, buffer_depth=64),
                                 SoftmaxConfig(d_max=40, out_frac=10, exp_method="range"),
                                 SoftmaxConfig(d_max=9, out_frac=6, div_arch="thermometer", buffer_depth=13)],
                         ids=["default-buffer", "one-row-buffer", "range-exp", "thermometer"])
def test_every_first_output_where_the_timing_model_says(cfg):
    """Mixed lengths (full rows, single elements, short rows queued behind long ones), sink always
    ready: each row's first output on the predicted cycle, its outputs on consecutive cycles."""
    d = cfg.d_max
    lengths = [d, 1, 3, d, d, 1, 1, 1, 1, 1, 1, d, 2, d // 2, d, 5, 1, d]
    log, last_in, first_out = _run(cfg, lengths)
    assert first_out == Softmax.first_outputs(cfg, lengths, last_in)
    ends = np.cumsum(lengths)
    assert [log["out"][e - 1] - f + 1 for e, f in zip(ends, first_out)] == lengths


def test_an_idle_operator_answers_after_its_latency():
    cfg = SoftmaxConfig(d_max=32, out_frac=12)
    for n in (1, 17, 32):
        _, last_in, first_out = _run(cfg, [n])
        assert first_out[0] - last_in[0] == Softmax.latency_for(cfg, n) == n + Softmax.latency_for(cfg, 0)


@pytest.mark.parametrize("lengths", [[64] * 40, [128] * 20, "mixed"], ids=["rows-of-64", "rows-of-d_max", "mixed"])
def test_one_element_per_cycle_on_back_to_back_rows(lengths):
    """At full rate the input never stalls and, once the first row is out, the outputs leave at
    least 0.95 elements per cycle (rows of 64 to d_max, including a mixed stream)."""
    cfg = SoftmaxConfig(d_max=128, out_frac=12)
    if lengths == "mixed":
        lengths = [int(n) for n in np.random.default_rng(5).integers(64, 129, 40)]
    log, _, first_out = _run(cfg, lengths)
    total = sum(lengths)
    assert log["in"][-1] - log["in"][0] == total - 1  # one element accepted every cycle
    rest = total - lengths[0]
    out_rate = rest / (log["out"][-1] - log["out"][lengths[0] - 1])
    assert out_rate >= 0.95, out_rate


def test_backpressure_and_idle_cycles_lose_nothing():
    cfg = SoftmaxConfig(d_max=24, out_frac=12, buffer_depth=30)
    _run(cfg, [24, 1, 7, 24, 3, 24, 24, 2, 1, 1, 16], valid_p=0.8, ready_p=0.45, seed=4)


@pytest.mark.parametrize("valid_p", [1.0, 0.6], ids=["full-rate", "idle-cycles"])
def test_the_running_maximum_of_short_rows_back_to_back(valid_p):
    """The receive pass decides an element's place in the row's maximum from compares against the
    maximum and the two elements not yet in it: short rows back to back (a row after a larger one ended), the maximum at every
    position, ties, masked positions among the compared ones and rows whose only valid position is
    last; golden's rows out, with and without idle cycles between the elements."""
    cfg = SoftmaxConfig(d_max=8, out_frac=12, buffer_depth=40)
    patterns = [[5], [3, 9], [1, 2], [9, 3], [1, 2, 3], [3, 2, 1], [2, 3, 1], [4, 4, 4], [-7, 6, -7, 6],
                [0, -1, 8, -2, 7], [6, 1, 2, 3, 4, 5, 0, 5]]
    rows, masks = [], []
    for k, pat in enumerate(patterns * 3):
        row = quantize(np.asarray(pat, float) * (0.5 + k % 3), cfg.in_format)
        mask = np.ones(len(pat), bool)
        if k % 4 == 1 and len(pat) > 1:
            mask[int(np.argmax(row))] = False          # the largest masked: the next largest wins
        if k % 5 == 2:
            mask[:-1] = False                          # only the last position valid
        rows.append(row)
        masks.append(mask)
    out, _ = run_stream(Softmax(cfg), _items(rows, masks), valid_p=valid_p, seed=3)
    want = [int(v) for r, mk in zip(rows, masks) for v in softmax(r, cfg, mask=mk)]
    assert [int(o.data) for o in out] == want


def test_a_buffer_smaller_than_a_row_is_refused():
    with pytest.raises(ValueError, match=r"softmax: buffer_depth=40 is out of range; allowed: in \[64, 320\]"):
        SoftmaxConfig(d_max=64, buffer_depth=40)
    assert SoftmaxConfig(d_max=100).buffer_depth == 232 and SoftmaxConfig(d_max=1024).buffer_depth == 2048
    assert SoftmaxConfig(d_max=100).replace(d_max=10).buffer_depth == 52  # the default follows d_max


def test_the_model_by_hand():
    """The recurrences on a small case worked by hand: two rows of 4 then one of 8."""
    t = ThreePasses(to_reduce=2, to_send=6, to_output=10, queue=4)
    # e(0) = 5 + 2 = 7, s(0) = 7 + 4 + 6 = 17
    # e(1) = max(9 + 2, 7 + 4) = 11, s(1) = max(11 + 4 + 6, 17 + 4) = 21
    # e(2) = max(17 + 2, 11 + 4) = 19, s(2) = max(19 + 8 + 6, 21 + 4) = 33
    assert t.first_outputs([4, 4, 8], [5, 9, 17]) == [27, 31, 43]
    assert t.latency(4) == 22
    # queue of 1: row 1 waits until the send pass has taken row 0
    assert ThreePasses(2, 6, 10, queue=1).first_outputs([4, 4], [5, 9]) == [27, 38]  # e(1) = s(0) + 1 = 18, s(1) = 28
