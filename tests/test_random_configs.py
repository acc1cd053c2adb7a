"""Random configurations across the validated space, co-simulated on Verilator against the golden
model by equality (random and corner stimulus, idle cycles and backpressure, a reset in the middle
of a row), failures shrunk by hypothesis to a minimal configuration.

The default suite draws two configurations per operator; ``-m slow`` draws 40 per operator
(``SPIKEOPS_RANDOM_CONFIGS=N`` changes that).  The seed is printed (and fixed by hypothesis'
database / ``--hypothesis-seed``) so that a failure replays.
"""

import os

import pytest
from hypothesis import HealthCheck, given, seed, settings

from config_strategies import configs
from spikeops.golden import registry
from spikeops.verif import env
from spikeops.verif.runner import Regression
from spikeops.verif.stimulus import make

OPS = list(registry.OPERATORS)
SEED = int(os.environ.get("SPIKEOPS_RANDOM_SEED", "20261203"))


def _cosim(op, cfg, tmp_root):
    weights = make(op, cfg, "random", size=1).weights
    reg = Regression(op, cfg, "verilator", weights=weights, root=tmp_root).build()
    row = registry.get(op).shape.is_row
    runs = [("random", dict(check_latency=True)), ("random", dict(valid_p=0.7, ready_p=0.5, seed=7)),
            ("corners", dict(valid_p=0.8, ready_p=0.6, seed=3))]
    for j, (kind, kw) in enumerate(runs):
        res = reg.run(make(op, cfg, kind, size=300 if row else 400, seed=j + 1), name=f"{kind}-{j}", **kw)
        assert res.mismatches == 0 and res.checked > 0, f"{cfg!r}\n{res.report}"
        if res.expected_latencies:
            assert res.timing_ok, (repr(cfg), res.latencies, res.expected_latencies, res.spans)
    stim = make(op, cfg, "random", size=300 if row else 400, seed=9)
    if len(stim.rows) >= 2:
        res = reg.run(stim, name="reset", valid_p=0.9, ready_p=0.7, reset_row=0 if row else 100)
        assert res.mismatches == 0 and res.did_reset == 1, f"{cfg!r}\n{res.report}"


def _test(examples):
    def run(op, tmp_path_factory):
        if env.unavailable_reason("verilator"):
            pytest.skip(env.unavailable_reason("verilator"))
        print(f"random configurations of {op}: seed {SEED}, {examples} examples")

        @seed(SEED + OPS.index(op))
        @settings(max_examples=examples, deadline=None, database=None, derandomize=False,
                  suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow,
                                         HealthCheck.function_scoped_fixture])
        @given(cfg=configs(op))
        def check(cfg):
            _cosim(op, cfg, tmp_path_factory.mktemp(op))
        check()
    return run


@pytest.mark.parametrize("op", OPS)
def test_random_configurations(op, tmp_path_factory):
    _test(2)(op, tmp_path_factory)


@pytest.mark.slow
@pytest.mark.parametrize("op", OPS)
def test_many_random_configurations(op, tmp_path_factory):
    _test(int(os.environ.get("SPIKEOPS_RANDOM_CONFIGS", "40")))(op, tmp_path_factory)
