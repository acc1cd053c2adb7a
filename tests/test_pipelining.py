"""The target frequency (``target_mhz``, :mod:`spikeops.hdl.pipelining`): how many division neurons
share a stage, what the latency formulas and the manifest say, and the configuration's checks.  The
circuits at a target are co-simulated in ``tests/test_cosim.py::test_target_frequency``."""

import hashlib
import json

import pytest

from spikeops.golden import registry
from spikeops.hdl.pipelining import neurons_per_stage, report, stage_ns

OPS = list(registry.OPERATORS)
TARGETS = [250, 200, 150, 125, 100, 75, 60, 50, 25]


@pytest.mark.parametrize("op", OPS)
def test_lower_target_fewer_stages(op):
    rec = registry.get(op)
    cls = rec.component()
    ks, lats = [], []
    for t in TARGETS:
        cfg = rec.default(target_mhz=t)
        k = cls.neurons_per_stage(cfg)
        assert 1 <= k <= cfg.division.q_width
        # the largest k the model allows within the period, or 1 when none fits
        fits = [j for j in range(1, cfg.division.q_width + 1) if stage_ns(j, cfg.division.theta_bits + 1) <= 1000 / t]
        assert k == (max(fits) if fits else 1)
        ks.append(k)
        lats.append(cls.latency_for(cfg, 16) if rec.shape.is_row else cls.latency_for(cfg))
    assert ks == sorted(ks) and ks[0] == 1 and ks[-1] > 4
    assert lats == sorted(lats, reverse=True) and lats[-1] < lats[0]


@pytest.mark.parametrize("op", OPS)
def test_no_target_keeps_the_fixed_pipeline(op):
    rec = registry.get(op)
    cfg = rec.default()
    assert cfg.target_mhz is None
    cls = rec.component()
    assert cls.neurons_per_stage(cfg) == cls.fixed_neurons_per_stage(cfg)
    assert report(cfg, cls.fixed_neurons_per_stage(cfg))["choice"].startswith("fixed")
    # configurations made before target_mhz (and Softmax's normalizer, the norms' norm_units)
    # existed keep their hash; a target changes it
    params = {k: v for k, v in cfg.params().items() if k not in ("target_mhz", "normalizer", "norm_units")}
    blob = json.dumps({"kind": cfg.kind, "params": params}, sort_keys=True)
    assert cfg.stable_hash() == hashlib.sha256(blob.encode()).hexdigest()[:16]
    assert rec.default(target_mhz=100).stable_hash() != cfg.stable_hash()
    assert rec.config_from_json({k: v for k, v in cfg.params().items() if k != "target_mhz"}) == cfg


@pytest.mark.parametrize("op", ["rmsnorm", "layernorm"])
def test_the_norms_neurons_follow_the_method_and_a_target_overrides(op):
    # the CORDIC norm: one neuron a stage within issue 13's 200 cycles; the exact norm: two, within 64
    rec, cls = registry.get(op), registry.get(op).component()
    cordic, exact = rec.default(), rec.default(norm_method="exact")
    assert cls.neurons_per_stage(cordic) == 1 and cls.latency_for(cordic) <= 200
    assert cls.neurons_per_stage(exact) == 2 and cls.latency_for(exact) <= 64
    assert cls.neurons_per_stage(exact.replace(target_mhz=200)) == 1
    assert cls.neurons_per_stage(cordic.replace(target_mhz=50)) > 1
    assert report(exact, cls.fixed_neurons_per_stage(exact))["division_neurons_per_stage"] == 2


def test_report_says_when_the_division_limits_the_clock():
    # one neuron a stage is estimated at 3.6 ns: 300 MHz (3.33 ns) is beyond it
    cfg = registry.get("sigmoid").default(target_mhz=300)
    rep = report(cfg)
    assert rep["division_neurons_per_stage"] == 1
    assert "limits the clock" in rep["choice"]
    rep = report(registry.get("sigmoid").default(target_mhz=50))
    assert rep["division_neurons_per_stage"] == neurons_per_stage(registry.get("sigmoid").default(target_mhz=50))
    assert rep["division_stage_ns_estimated"] <= 20.0 and "within 20.00 ns" in rep["choice"]


def test_manifest_records_the_choice(tmp_path):
    from spikeops.hdl.emit import emit
    cfg = registry.get("silu").default(target_mhz=75)
    man = emit("silu", cfg, tmp_path)
    assert man["pipelining"]["target_mhz"] == 75
    assert man["pipelining"]["division_neurons_per_stage"] == registry.get("silu").component().neurons_per_stage(cfg)
    assert man["latency"]["cycles"] == registry.get("silu").component().latency_for(cfg)
    assert man["latency"]["cycles"] < registry.get("silu").component().latency_for(registry.get("silu").default())


@pytest.mark.parametrize("value", [5, 0, -100, 2000, "fast", True])
def test_bad_target(value):
    with pytest.raises(ValueError, match=r"silu: target_mhz=.* allowed: \[10\.0, 1000\.0\]|target_mhz must be a number"):
        registry.get("silu").default(target_mhz=value)


def test_many_neurons_a_stage_stay_small(tmp_path):
    """At 10 MHz every SiLU neuron shares one stage; each neuron's partial remainder is a signal of
    its own, so the emitted design grows with the neurons, not with the width to their power (an
    expression copied into every bit of the next neuron's chain once took minutes and gigabytes)."""
    from spikeops.hdl.emit import emit
    rec = registry.get("silu")
    slow = rec.default(target_mhz=10)
    assert rec.component().neurons_per_stage(slow) == slow.division.q_width
    sizes = {}
    for name, cfg in (("fixed", rec.default()), ("slow", slow)):
        m = emit("silu", cfg, tmp_path / name)
        sizes[name] = (tmp_path / name / f"{m['top']}.v").stat().st_size
    assert sizes["slow"] < 1.5 * sizes["fixed"]
