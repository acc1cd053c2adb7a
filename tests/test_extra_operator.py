"""Adding an operator is one golden file, one hdl file and one registry entry.

A ReLU defined outside the package (``tests/extra_op/``: ``relu_golden.py``, ``relu_hdl.py``) is
registered here, and the flows take it as they take the six shipped operators, asking its record:
the error report, Verilog emission with its manifest, and a co-simulation (random, backpressure, a
reset, corners) against its golden model, with no change to ``gen/`` or ``verif/``.
"""

import numpy as np
import pytest

from extra_op.relu_golden import ReLUConfig, relu
from spikeops.gen import errors
from spikeops.golden import registry
from spikeops.hdl.emit import emit
from spikeops.verif import env
from spikeops.verif.runner import Regression
from spikeops.verif.stimulus import make


@pytest.fixture
def relu_op(monkeypatch):
    monkeypatch.setattr(registry, "OPERATORS", dict(registry.OPERATORS))
    return registry.register(registry.Operator("relu", ReLUConfig, relu, registry.Shape.ELEMENTWISE,
                                               "extra_op.relu_hdl:ReLU", kind="activation"))


def test_the_golden_model_is_relu_on_the_grid():
    cfg = ReLUConfig(in_width=8, in_frac=4, out_frac=2)
    x = np.arange(-127, 128)
    y = relu(x, cfg)
    # u5.2 out: rounding half up, saturated at the largest code (127/16 rounds to 32/4)
    assert np.array_equal(y, np.minimum(np.floor(np.maximum(x, 0) / 4 + 0.5), 31).astype(int))
    assert np.array_equal(relu(x, cfg.replace(rounding="floor")), np.maximum(x, 0) // 4)
    assert np.array_equal(relu(x, cfg.replace(out_frac=6)), np.maximum(x, 0) * 4)
    with pytest.raises(ValueError, match="relu: rounding='up' is not allowed; allowed: 'nearest', 'floor'"):
        ReLUConfig(rounding="up")


def test_the_error_report_takes_a_registered_operator(relu_op):
    rep = errors.report(["relu"], size=2000)
    rows = [r for r in rep["rows"] if r["op"] == "relu"]
    assert {r["out_frac"] for r in rows} == set(errors.GRIDS)
    assert any(r["exhaustive"] for r in rows)
    # ReLU is exact: 0 LSB against float64 rounded the same way, on every grid and data set
    assert all(r["max_lsb"] == 0 for r in rows), rows
    assert [c["out_frac"] for c in rep["costs"]] == list(errors.GRIDS)
    assert "relu" in errors.format_table(rep)


def test_emission_and_the_manifest_follow_the_record(relu_op, tmp_path):
    m = emit("relu", ReLUConfig(), tmp_path)
    assert m["top"] == "spikeops_relu" and m["shape"] == "elementwise"
    assert m["latency"]["kind"] == "fixed" and m["latency"]["cycles"] == 1
    assert (tmp_path / "spikeops_relu.v").read_text().count("module spikeops_relu") == 1
    ports = {p["name"]: p for p in m["ports"]}
    assert ports["i__payload"]["width"] == 12 and ports["o__payload"]["width"] == 11


@pytest.mark.parametrize("sim", env.SIMULATORS)
def test_cosimulation_of_a_registered_operator(relu_op, sim, tmp_path):
    reason = env.unavailable_reason(sim)
    if reason:
        pytest.skip(f"{sim}: {reason}")
    cfg = ReLUConfig(in_width=10, in_frac=5, out_frac=3)
    reg = Regression("relu", cfg, sim, root=tmp_path).build()
    for kind, kw in (("random", dict(check_latency=True)), ("random", dict(valid_p=0.6, ready_p=0.5, seed=5)),
                     ("corners", dict(valid_p=0.8, ready_p=0.7)), ("exhaustive", dict(valid_p=0.9, ready_p=0.8))):
        res = reg.run(make("relu", cfg, kind, size=500, seed=3), name=f"{kind}-{len(kw)}", **kw)
        assert res.mismatches == 0 and res.checked > 0, res.report
        assert res.latencies == res.expected_latencies
    res = reg.run(make("relu", cfg, "random", size=500, seed=4), name="reset", valid_p=0.9, ready_p=0.7,
                  reset_row=100)
    assert res.mismatches == 0 and res.did_reset == 1, res.report
