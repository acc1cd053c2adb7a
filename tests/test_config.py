import json

import pytest

from spikeops.golden import registry
from spikeops.golden.division import DivisionConfig
from spikeops.golden.exp import ExpConfig
from spikeops.golden.norm import NormConfig

ALL_CONFIGS = [op.default() for op in registry.OPERATORS.values()] + [
    DivisionConfig(), ExpConfig(), NormConfig()]


@pytest.mark.parametrize("cfg", ALL_CONFIGS, ids=lambda c: c.kind)
def test_json_round_trip_and_stable_hash(cfg):
    data = json.loads(json.dumps(cfg.to_json()))
    assert data["kind"] == cfg.kind
    again = type(cfg).from_json(data)
    assert again == cfg and again.stable_hash() == cfg.stable_hash()
    assert len(cfg.stable_hash()) == 16


def test_hash_is_pinned_and_changes_with_parameters():
    """The hash keys sweep caches: it must not drift between runs or machines."""
    cfg = registry.get("softmax").default()
    assert cfg.stable_hash() == cfg.replace().stable_hash()
    assert cfg.replace(K=128).stable_hash() != cfg.stable_hash()
    assert DivisionConfig().stable_hash() == "ee4cc5df72999cb0"  # sha256 of the canonical JSON


def test_replace_rejects_unknown_parameters():
    with pytest.raises(ValueError, match=r"softmax: unknown parameter\(s\) \['k'\]; known: in_width, "):
        registry.get("softmax").default().replace(k=3)


def test_configs_are_frozen():
    cfg = registry.get("silu").default()
    with pytest.raises(AttributeError):
        cfg.K = 3


def test_registry_lookup_error_and_grid_helper():
    with pytest.raises(ValueError, match="operator 'tanh' is unknown; allowed: softmax, sigmoid, silu, gelu, "
                                         "rmsnorm, layernorm"):
        registry.get("tanh")
    rms = registry.get("rmsnorm").default()
    at8 = registry.at_grid(rms, 8)
    assert at8.out_frac == 8 and at8.out_width - 8 == rms.out_width - rms.out_frac
    assert registry.at_grid(registry.get("softmax").default(), 12).out_frac == 12


def test_derived_describes_formats_and_sub_configs():
    d = registry.get("softmax").default().to_json()["derived"]
    assert d["in_format"]["width"] == 16 and d["out_format"]["frac"] == 16
    assert d["exp"]["derived"]["index_is_bit_slice"] is True
    assert d["division"]["params"]["q_width"] == 17


def test_one_rule_from_set_to_a_configuration():
    """``--set out_frac=8`` means the same configuration in ``spikeops verilog``/``config`` and in a
    sweep grid: RMSNorm's s20.12 output becomes s16.8 (the integer bits kept)."""
    from spikeops.gen.cli import build_config
    from spikeops.gen.sweep.grid import make_config
    from spikeops.golden.changes import apply_changes

    cli = build_config("rmsnorm", ["out_frac=8"])
    assert cli.out_format.describe() == "s16.8"
    assert make_config("rmsnorm", {"out_frac": 8}) == cli == apply_changes(registry.get("rmsnorm").default(),
                                                                          {"out_frac": 8})
    # out_width given with out_frac is taken as it is; formats without out_width take out_frac alone
    assert build_config("rmsnorm", ["out_frac=8", "out_width=20"]).out_format.describe() == "s20.8"
    assert build_config("softmax", ["out_frac=8"]).out_format.describe() == "u9.8"


def test_the_norms_choose_a_second_cordic_unit_only_where_one_is_the_limit():
    """``norm_units`` follows d: one shared CORDIC unit where its bound (``d / merges``) is at least
    0.96 (0.95 and the measured rate's margin below the bound), else ``split``; the defaults keep their hashes (result caches and plan
    digests hold), a choice the user states is kept, and the exact norm has no units."""
    from spikeops.golden.ops.norms import SHARED_RATE_FLOOR, LayerNormConfig, RMSNormConfig
    from spikeops.golden.norm import tree_merges

    rms = [*range(64, 75), 76, 80, 81, 82, 84, 88, 96, 128, 129, 130, 132, 136]
    for cls, leaves, want in ((RMSNormConfig, lambda d: d + 1, rms),
                              (LayerNormConfig, lambda d: d, [*range(65, 72), 73, 81, 129])):
        split = [d for d in range(64, 4097) if cls(d=d).norm_units == "split"]
        assert split == want
        assert all((d / tree_merges(leaves(d)) < SHARED_RATE_FLOOR) == (d in want) for d in range(64, 4097))
        assert cls().norm_units == "shared" and cls(norm_method="exact", d=64).norm_units == "shared"
        assert cls().replace(d=65).norm_units == "split" and cls(d=65).replace(d=384).norm_units == "shared"
        assert cls(d=65, norm_units="shared").replace(d=66).norm_units == "shared"
    assert RMSNormConfig().stable_hash() == "3acef20fbbe7c485"
    assert LayerNormConfig(d=384).stable_hash() == LayerNormConfig(d=384, norm_units="shared").stable_hash()
    assert RMSNormConfig(d=64).stable_hash() != RMSNormConfig(d=64, norm_units="shared").stable_hash()
