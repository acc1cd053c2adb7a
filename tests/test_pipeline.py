"""The pipeline building blocks: the credit pipeline's stream contract and rate, and the staged
multiplier's products, in Amaranth's simulator."""

import numpy as np
import pytest
from amaranth.hdl import Module, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from spikeops.hdl.pipeline import CreditPipeline, credit_latency, multiply_latency, multiply_stages
from spikeops.verif.amaranth_sim import run_stream


class _Product(wiring.Component):
    """``o = i.a * i.b`` through :func:`multiply_stages` in a credit pipeline (plus ``extra`` empty
    stages)."""

    def __init__(self, a_shape, b_shape, extra=0, sum_stages=1):
        self.a_shape, self.b_shape, self.extra, self.sum_stages = a_shape, b_shape, extra, sum_stages
        width = a_shape.width + b_shape.width
        out = signed(width) if a_shape.signed or b_shape.signed else unsigned(width)
        layout = {"a": a_shape, "b": b_shape}
        super().__init__({"i": In(stream.Signature(data.StructLayout(layout))), "o": Out(stream.Signature(out))})

    @property
    def latency(self):
        return credit_latency(multiply_latency(self.sum_stages) + self.extra)

    def elaborate(self, platform):
        m = Module()
        pipe = CreditPipeline(m, self.o, i=self.i, name="t")
        p = multiply_stages(pipe, self.i.payload.a, self.i.payload.b, sum_stages=self.sum_stages)
        for _ in range(self.extra):
            p = pipe.stage(p=p).p
        pipe.finish(p)
        return m


def _values(shape, rng, n):
    lo, hi = (-(1 << (shape.width - 1)), 1 << (shape.width - 1)) if shape.signed else (0, 1 << shape.width)
    corners = [lo, hi - 1, 0, 1, lo + 1 if shape.signed else hi // 2]
    return np.concatenate([corners, rng.integers(lo, hi, n - len(corners), dtype=np.int64)])


@pytest.mark.parametrize("a_shape, b_shape", [
    (unsigned(5), unsigned(7)), (unsigned(17), unsigned(17)), (signed(18), signed(18)),
    (unsigned(24), unsigned(16)), (signed(24), unsigned(20)), (signed(30), signed(26)), (unsigned(40), signed(9)),
    (unsigned(29), unsigned(18)), (signed(51), unsigned(11)), (signed(52), signed(40))],
    ids=lambda s: f"{'s' if s.signed else 'u'}{s.width}")
@pytest.mark.parametrize("sum_stages", [1, 2])
def test_staged_products_are_exact(a_shape, b_shape, sum_stages):
    """Products split into 18-bit signed pieces (slices of 17 bits, the top one signed) and summed
    after the blocks' registers, in one stage or two, equal Python's, corner operands included, each
    ``credit_latency`` after its operands with the sink ready."""
    rng = np.random.default_rng(a_shape.width * 100 + b_shape.width)
    a, b = _values(a_shape, rng, 60), _values(b_shape, rng, 60)
    dut = _Product(a_shape, b_shape, sum_stages=sum_stages)
    items = list(zip(a.tolist(), b.tolist()))
    out, log = run_stream(dut, items, payload=lambda p: {"a": p[0], "b": p[1]}, valid_p=0.8, ready_p=0.7, seed=5)
    assert [int(v) for v in out] == [int(x) * int(y) for x, y in zip(a, b)]
    _, log = run_stream(_Product(a_shape, b_shape, sum_stages=sum_stages), items[:3],
                        payload=lambda p: {"a": p[0], "b": p[1]})
    assert log["out"][0] - log["in"][0] == dut.latency


def test_credit_pipeline_runs_at_one_element_per_cycle_and_loses_nothing_under_backpressure():
    """Sink always ready: an element in and out every cycle, each ``credit_latency`` after it
    entered.  Random idle cycles and backpressure: every element once, in order."""
    dut = _Product(unsigned(8), unsigned(8), extra=5)
    items = [(k % 256, (3 * k) % 256) for k in range(300)]
    want = [x * y for x, y in items]
    out, log = run_stream(dut, items, payload=lambda p: {"a": p[0], "b": p[1]})
    assert [int(v) for v in out] == want
    assert np.all(np.diff(log["in"]) == 1) and np.all(np.diff(log["out"]) == 1)
    assert log["out"][0] - log["in"][0] == dut.latency
    for seed, (vp, rp) in enumerate([(1.0, 0.3), (0.5, 0.5), (1.0, 0.9), (0.3, 1.0)]):
        out, _ = run_stream(_Product(unsigned(8), unsigned(8), extra=5), items,
                            payload=lambda p: {"a": p[0], "b": p[1]}, valid_p=vp, ready_p=rp, seed=seed)
        assert [int(v) for v in out] == want


def test_credit_pipeline_wants_one_input():
    m = Module()
    m._MustUse__silence = True
    o = stream.Signature(8).create()
    with pytest.raises(TypeError, match="exactly one of i"):
        CreditPipeline(m, o, name="x")
