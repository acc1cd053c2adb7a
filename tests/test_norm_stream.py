# amaranth: UnusedElaboratable=no
"""RMSNorm and LayerNorm as streams of rows in Amaranth's simulator: the norm is computed while a
row arrives (the streaming CORDIC tree, or the exact sums and one square root), so rows flow back to
back; every row's first output lands on the cycle the timing model
(``spikeops.hdl.timing.FixedDelay``) predicts, and the outputs equal the golden model's."""

import numpy as np
import pytest

from spikeops.golden.fixed import quantize
from spikeops.golden.ops.norms import LayerNormConfig, RMSNormConfig, layernorm, rmsnorm
from spikeops.hdl.norm import LEAF_PAIRS
from spikeops.hdl.ops.norms import LayerNorm, RMSNorm
from spikeops.hdl.timing import FixedDelay
from spikeops.verif.amaranth_sim import run_stream

OPS = {"rmsnorm": (RMSNormConfig, RMSNorm, rmsnorm), "layernorm": (LayerNormConfig, LayerNorm, layernorm)}


def _run(op, cfg, rows, **kw):
    _, comp, fn = OPS[op]
    x = np.stack([quantize(np.random.default_rng(r).normal(0, 2.0 ** (r % 7 - 3), cfg.d), cfg.in_format)
                  for r in range(rows)])
    x[1] = 0  # a zero row: its norm is eps alone
    items = [{"data": int(v), "last": int(j == cfg.d - 1)} for row in x for j, v in enumerate(row)]
    out, log = run_stream(comp(cfg), items, **kw)
    assert [int(o.data) for o in out] == fn(x, cfg).ravel().tolist()
    d = cfg.d
    last_in = [log["in"][(r + 1) * d - 1] for r in range(rows)]
    first_out = [log["out"][r * d] for r in range(rows)]
    return log, last_in, first_out


@pytest.mark.parametrize("op", list(OPS))
@pytest.mark.parametrize("method, units", [("cordic", "shared"), ("cordic", "per_level"), ("cordic", "split"),
                                           ("exact", "shared")],
                         ids=["cordic", "cordic-per_level", "cordic-split", "exact"])
def test_rows_back_to_back_at_one_element_per_cycle(op, method, units):
    """Sink always ready, source always valid: every first output where the model says, each row's
    outputs on consecutive cycles, and elements per cycle in and out (cycle counts of the
    simulation, not times) at the CORDIC tree's bound.  One shared unit does one merge per cycle,
    and a row of d leaves needs ``sum_l ceil(L_l / 2)`` merges (d - 1 plus the odd levels' padding;
    LayerNorm's Helmert leaves: d with eps, RMSNorm's: d + 1), so RMSNorm at d=64 (70 merges) gets
    64/70; a unit per level never holds the leaves, and the leaf level's own unit beside a shared
    one (``split``, RMSNorm's default at d=64) holds them only for a full queue of level-1 pairs,
    so every d gets one element per cycle."""
    cls, comp, _ = OPS[op]
    cfg = cls(d=64, norm_method=method, norm_units=units)
    rows = 8
    log, last_in, first_out = _run(op, cfg, rows)
    assert first_out == comp.first_outputs(cfg, [cfg.d] * rows, last_in)
    assert first_out[0] - last_in[0] == comp.latency_for(cfg)
    merges = cfg.norm.merges
    bound = 1.0 if method == "exact" or units != "shared" else min(1.0, cfg.d / merges)
    n = rows * cfg.d
    assert (n - 1) / (log["in"][-1] - log["in"][0]) >= bound - 0.01
    assert (n - cfg.d - 1) / (log["out"][-1] - log["out"][cfg.d]) >= bound - 0.01
    assert all(log["out"][k + 1] - log["out"][k] == 1 for r in range(rows) for k in range(r * 64, r * 64 + 63))


@pytest.mark.parametrize("op", list(OPS))
def test_short_rows_wait_for_the_square_root(op):
    """The exact norm's square root takes one row per ``width + 2`` cycles: rows shorter than that
    queue for it, and the model says when each one comes out."""
    cls, comp, _ = OPS[op]
    cfg = cls(d=5, norm_method="exact")
    assert comp.timing(cfg).unit_period > cfg.d
    _, last_in, first_out = _run(op, cfg, 6)
    assert first_out == comp.first_outputs(cfg, [cfg.d] * 6, last_in)
    gaps = np.diff(first_out)
    assert gaps.max() == comp.timing(cfg).unit_period


@pytest.mark.parametrize("op", list(OPS))
@pytest.mark.parametrize("method", ["cordic", "exact"])
def test_latency_at_the_default_configuration(op, method):
    """Issue 13's bounds: at most 200 cycles from a row's last input to its first output with the
    CORDIC PolarNorm, 64 with the exact norm (RMSNorm d=576, LayerNorm d=384); a CORDIC unit per
    level takes the leaf queue's wait off (``2 (LEAF_PAIRS + levels) + 4`` cycles) and the ring
    shrinks by as much."""
    cls, comp, _ = OPS[op]
    cfg = cls(norm_method=method)
    assert comp.latency_for(cfg) <= (200 if method == "cordic" else 64) == comp.latency_bound(cfg)
    if method == "cordic":
        per_level = cfg.replace(norm_units="per_level")
        saved = 2 * (LEAF_PAIRS + cfg.norm.levels) + 4
        # less the spare cycles each layout spends on registers (test_spare_cycles_go_to_registers)
        extra = int(comp.pair_register(cfg)) + comp.leading_one_stages(cfg) - comp.leading_one_stages(per_level)
        assert comp.latency_for(cfg) - comp.latency_for(per_level) == saved + extra
        # the ring holds what arrives before the send pass takes a row: the division's stages not
        assert comp.ring_depth(cfg) - comp.ring_depth(per_level) == saved + int(comp.pair_register(cfg))


@pytest.mark.parametrize("op", list(OPS))
@pytest.mark.parametrize("d", [16, 64, 384, 576, 1024])
@pytest.mark.parametrize("method", ["cordic", "exact"])
def test_spare_cycles_go_to_registers(op, d, method):
    """Without a target, a norm spends the cycles its latency bound leaves on two registers, each
    only where the bound still holds with it: the division's leading-one detection in two stages
    first, then the CORDIC tree's leaf pairs registered before their queue (the shared unit's);
    neither changes a result.  At the defaults LayerNorm (d 384, 195 cycles without them) takes
    both, RMSNorm (d 576, 200) neither."""
    cls, comp, _ = OPS[op]
    cfg = cls(d=d, norm_method=method, norm_units="shared")
    bound = comp.latency_bound(cfg)
    lod, reg = comp.leading_one_stages(cfg), comp.pair_register(cfg)
    nps = comp.neurons_per_stage(cfg)

    def latency(stages, register):
        return comp._timing(cfg, {"neurons_per_stage": nps, "leading_one_stages": stages}, register).latency(d)

    assert comp.latency_for(cfg) == latency(lod, reg) <= max(bound, latency(1, False))  # spent within the bound
    assert (lod == 2) == (latency(2, False) <= bound)
    if method == "exact":
        assert not reg
    else:
        assert reg == (latency(lod, True) <= bound)
    assert comp.pipelining(cfg)["tree_pair_register"] == reg
    assert comp.pipelining(cfg)["leading_one_stages"] == lod
    if d == cls().d and method == "cordic":
        assert (lod, reg) == ((2, True) if op == "layernorm" else (1, False))


@pytest.mark.parametrize("op, d", [("rmsnorm", 64), ("rmsnorm", 68), ("layernorm", 130)])
def test_a_rows_last_element_waits_for_the_norm_at_the_port(op, d):
    """Where the shared CORDIC unit is the limit (more merges than leaves), the norm's input side
    stalls now and then; a row's last element is accepted only when the norm takes it at once, so
    every row's first output is where the model, counting from the last input, says (a last element
    held in the feed's skid made its row a cycle late at RMSNorm d 64 and 68 with the tree's pair
    register)."""
    cls, comp, _ = OPS[op]
    cfg = cls(d=d, norm_units="shared")
    assert cfg.norm.merges > d
    _, last_in, first_out = _run(op, cfg, 8)
    assert first_out == comp.first_outputs(cfg, [d] * 8, last_in)


def test_fixed_delay_model_by_hand():
    t = FixedDelay(to_send=10, to_output=5)
    # rows of 4: row 1 is in at 5, but row 0 is sent over 13..16, so row 1 is taken at 17
    assert t.first_outputs([4, 4, 4], [3, 5, 30]) == [18, 22, 45]
    u = FixedDelay(to_send=10, to_output=5, unit_start=2, unit_period=8)
    # the unit takes rows at 5, 13 (busy until then), 21; sends at 13, 21, 29
    assert u.first_outputs([2, 2, 2], [3, 5, 7]) == [18, 26, 34]
    assert u.latency(2) == 15 and "u(r-1) + 8" in u.describe()


@pytest.mark.parametrize("op", list(OPS))
@pytest.mark.parametrize("units", ["shared", "split"])
def test_backpressure_and_idle_cycles_lose_nothing(op, units):
    """Idle cycles, backpressure, and with one shared CORDIC unit at d 17 (20 merges a row) the
    tree holding the leaf pipeline now and then: LayerNorm's Helmert constants, read through a
    registered table that advances with the pipeline, stay with their elements."""
    cfg = OPS[op][0](d=17, cordic_iterations=6, norm_units=units)
    _run(op, cfg, 5, valid_p=0.7, ready_p=0.5, seed=3)
    _run(op, cfg, 6)
    cfg = LayerNormConfig(d=16, norm_method="exact")
    _run("layernorm", cfg, 5, valid_p=0.7, ready_p=0.5, seed=4)


@pytest.mark.parametrize("op", list(OPS))
def test_a_smaller_ring_costs_rate_not_results(op):
    """``buffer_depth=d``: one row in the ring, so the receive side waits for the send pass to free
    entries; results and the timing model hold, the rate drops."""
    cls, comp, _ = OPS[op]
    cfg = cls(d=32, buffer_depth=32)
    assert comp.ring_depth(cfg) == 32 and comp.ring_depth(cls(d=32)) > 32
    log, last_in, first_out = _run(op, cfg, 5)
    assert first_out == comp.first_outputs(cfg, [cfg.d] * 5, last_in)
    assert (5 * 32 - 1) / (log["in"][-1] - log["in"][0]) < 0.8


def test_buffer_depth_is_checked():
    with pytest.raises(ValueError, match=r"rmsnorm: buffer_depth=10 is out of range; allowed: in \[16, 4160\]"):
        RMSNormConfig(d=16, buffer_depth=10)


@pytest.mark.parametrize("op", list(OPS))
def test_a_fast_target_splits_the_leading_ones_as_reported(op):
    """With ``target_mhz`` above ``LOD_SPLIT_MHZ`` the norms' division finds its leading ones in two
    stages, as the manifest's pipelining entry reports: the first output lands where the latency
    formula (which counts that stage) says, one cycle later than without a target's split."""
    cls, comp, _ = OPS[op]
    cfg = cls(d=16, norm_method="exact", target_mhz=200)
    assert comp.pipelining(cfg)["leading_one_stages"] == comp.division_options(cfg)["leading_one_stages"] == 2
    _, last_in, first_out = _run(op, cfg, 3)
    assert first_out == comp.first_outputs(cfg, [cfg.d] * 3, last_in)
    assert comp.latency_for(cfg) == comp.latency_for(cfg.replace(target_mhz=180)) + 1
