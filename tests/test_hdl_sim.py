# amaranth: UnusedElaboratable=no
"""The RTL generators against the golden model, in Amaranth's simulator (fast unit checks).

Random idle cycles on the input and backpressure on the output throughout; equality everywhere.
"""

import numpy as np
import pytest
from amaranth.sim import Simulator

from spikeops.golden.division import DivisionConfig, divide
from spikeops.golden.exp import ExpConfig, pwl_exp
from spikeops.golden.fixed import quantize
from spikeops.golden.neurons import LIFConfig, lif_step
from spikeops.golden.norm import NormConfig, cordic_root, node_of, sqrt_node, sum_of_squares
from spikeops.golden.ops.norms import LayerNormConfig, RMSNormConfig, layernorm, rmsnorm
from spikeops.golden.ops.sigmoid import GELUConfig, SigmoidConfig, SiLUConfig, gelu, sigmoid, silu
from spikeops.golden.ops.softmax import SoftmaxConfig, softmax
from spikeops.hdl.division import DivisionNeuronGroup, division_latency
from spikeops.hdl.exp import PWLExp, index_multiplier
from spikeops.hdl.neurons import LIFPopulation
from spikeops.hdl.norm import LEAF_PAIRS, SPLIT_PAIRS, PolarNorm, SqrtNode, tree_latency
from spikeops.hdl.ops.norms import LayerNorm, RMSNorm
from spikeops.hdl.ops.sigmoid import GELU, Sigmoid, SiLU
from spikeops.hdl.ops.softmax import Softmax
from spikeops.verif.amaranth_sim import run_stream

PRESSURE = dict(valid_p=0.7, ready_p=0.6)


@pytest.mark.parametrize("arch", ["binary", "thermometer", "temporal"])
@pytest.mark.parametrize("theta_bits, rounding", [(5, "nearest"), (9, "floor")])
def test_division_group(arch, theta_bits, rounding):
    cfg = DivisionConfig(num_width=8, den_width=7, shift=2, q_width=5, theta_bits=theta_bits,
                         arch=arch, rounding=rounding)
    rng = np.random.default_rng(theta_bits)
    a, b = rng.integers(0, 256, 150), rng.integers(0, 128, 150)
    out, _ = run_stream(DivisionNeuronGroup(cfg), list(zip(a, b)), seed=1,
                        payload=lambda p: {"a": int(p[0]), "b": int(p[1])}, **PRESSURE)
    assert [int(q) for q in out] == divide(a, b, cfg).tolist()


@pytest.mark.parametrize("q_width, theta_bits, shift, rounding", [
    (1, 3, 0, "nearest"), (2, 2, 1, "floor"), (3, 4, -1, "nearest"), (4, 6, 3, "floor"), (5, 3, 5, "nearest"),
    # the shift scaling's right shift r = p_b + (q_width - shift + 1) reaches 2**4 with B's top bit set: the
    # sum must not be read as a negative number (it was: every such B saturated)
    (7, 3, -5, "floor")])
@pytest.mark.parametrize("arch", ["binary", "binary-2", "binary-3", "thermometer", "binary-lod2", "thermometer-lod2"])
def test_division_group_every_operand_pair(arch, q_width, theta_bits, shift, rounding):
    """Every (A, B) of 6- and 5-bit operands: the binary neurons (non-restoring: ``theta_bits + 2``-bit
    add-or-subtract chains below the overflow test, one to three a stage) and the staged shift
    scaling (leading ones in one stage or two) equal golden, overflow, B = 0 and saturation included."""
    kind, _, opt = arch.partition("-")
    cfg = DivisionConfig(num_width=6, den_width=5, shift=shift, q_width=q_width, theta_bits=theta_bits,
                         arch=kind, rounding=rounding)
    a, b = (v.ravel() for v in np.meshgrid(np.arange(64), np.arange(32)))
    dut = DivisionNeuronGroup(cfg, neurons_per_stage=int(opt) if opt.isdigit() else 1,
                              leading_one_stages=2 if opt == "lod2" else 1)
    assert dut.latency == 1 + division_latency(cfg, dut.neurons_per_stage, dut.leading_one_stages)
    out, _ = run_stream(dut, list(zip(a, b)), payload=lambda p: {"a": int(p[0]), "b": int(p[1])})
    assert [int(q) for q in out] == divide(a, b, cfg, realisation="binary").tolist()


def test_division_group_refuses_a_bad_neurons_per_stage():
    with pytest.raises(ValueError, match=r"neurons_per_stage=0 is not allowed; allowed: an integer >= 1"):
        DivisionNeuronGroup(DivisionConfig(num_width=6, den_width=5, q_width=3), neurons_per_stage=0)
    with pytest.raises(ValueError, match=r"leading_one_stages=3 is not allowed; allowed: 1 or 2"):
        DivisionNeuronGroup(DivisionConfig(num_width=6, den_width=5, q_width=3), leading_one_stages=3)

@pytest.mark.parametrize("arch", ["binary", "thermometer", "temporal"])
def test_division_group_zero_numerator_with_a_tiny_denominator(arch):
    """0 / B = 0 where every non-zero numerator saturates (stage 1's shift exceeds the current)."""
    cfg = DivisionConfig(num_width=8, den_width=7, shift=8, q_width=5, theta_bits=5, arch=arch)
    a, b = [0, 1, 0, 255, 0, 7], [1, 1, 3, 3, 0, 100]
    out, _ = run_stream(DivisionNeuronGroup(cfg), list(zip(a, b)), seed=2,
                        payload=lambda p: {"a": int(p[0]), "b": int(p[1])}, **PRESSURE)
    assert [int(q) for q in out] == divide(np.array(a), np.array(b), cfg).tolist() == [0, 31, 0, 31, 31, 18]


@pytest.mark.parametrize("cfg", [ExpConfig(in_width=8, in_frac=2, H=4, K=8, out_frac=6, slope_frac=2),
                                 ExpConfig(in_width=10, in_frac=4, H=5, K=48, out_frac=10),
                                 ExpConfig(in_width=12, in_frac=8, H=5, K=64, out_frac=12),
                                 ExpConfig(in_width=12, in_frac=6, H=8, K=64, out_frac=12, method="range"),
                                 ExpConfig(in_width=9, in_frac=3, H=5, K=16, out_frac=6, method="range"),
                                 ExpConfig(in_width=8, in_frac=1, H=3, K=1, out_frac=3, method="range")],
                         ids=["bit-slice", "uneven", "paper", "range", "range-small", "range-K1"])
def test_pwl_exp_every_argument(cfg):
    z = np.arange(-cfg.H_codes - 4, cfg.H_codes + 4)
    out, _ = run_stream(PWLExp(cfg), [int(v) for v in z], **PRESSURE)
    assert [int(e) for e in out] == pwl_exp(z, cfg).tolist()


def test_index_multiplier_is_exact():
    cfg = ExpConfig(in_width=26, in_frac=18, H=5, K=64)  # GELU-like argument, 2.6M codes
    mult, s = index_multiplier(cfg)
    u = np.arange(2 * cfg.H_codes, dtype=np.int64)
    assert np.array_equal((u * mult) >> s, (u * cfg.K) // (2 * cfg.H_codes))


def _leaf_items(dut, lm, le):
    """Payload setters for a tree's leaf nodes ``(lm, le)``, row after row."""
    return [(lambda a, b: lambda ctx: (ctx.set(dut.i.payload.m, a), ctx.set(dut.i.payload.e, b)))(int(a), int(b))
            for a, b in zip(lm.ravel(), le.ravel())]


def _run_norm_unit(dut, items, expect, gaps):
    """Drive ``dut.i`` with ``items`` (payload setters) under random idle cycles; collect ``expect``
    results from ``o_valid``/``o``, and the cycles of every accepted item and every result.  Every
    cycle, ``i.ready`` must not wait on ``i.valid`` or the payload (a source stalls on it)."""
    got, accepted, results = [], [], []
    rng = np.random.default_rng(len(items))

    async def bench(ctx):
        k, cycle = 0, 0
        while len(got) < expect and cycle < 50_000:
            offer = k < len(items) and rng.random() >= gaps
            ctx.set(dut.i.valid, 0)
            idle_ready = ctx.get(dut.i.ready)
            ctx.set(dut.i.valid, int(offer))
            if offer:
                items[k](ctx)
            assert ctx.get(dut.i.ready) == idle_ready, f"i.ready follows i.valid at cycle {cycle}"
            _, _, ready = await ctx.tick().sample(dut.i.ready)
            if offer and ready:
                accepted.append(cycle)
                k += 1
            if ctx.get(dut.o_valid):
                got.append((ctx.get(dut.o.m), ctx.get(dut.o.e)))
                results.append(cycle)
            cycle += 1

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return got, accepted, results


#: the tree's layouts: ``units`` and the shared layout's ``pair_register``
LAYOUTS = pytest.mark.parametrize("units, pair_register", [("shared", False), ("shared", True), ("per_level", False),
                                                            ("split", False)],
                                  ids=["shared", "shared-pair_register", "per_level", "split"])


@LAYOUTS
@pytest.mark.parametrize("first_leaf", [False, True])
@pytest.mark.parametrize("length", [1, 2, 3, 6, 13, 64])
@pytest.mark.parametrize("gaps", [0.0, 0.3])
def test_polar_norm_tree(length, first_leaf, gaps, units, pair_register):
    """The streaming tree gives golden's root for every vector, vectors back to back or with idle
    cycles, leaves of every scale and zero vectors, within its latency bound, with one CORDIC unit
    (its leaf pairs registered before their queue or not) or one per level, or the leaf level's own
    and one shared by the rest."""
    if first_leaf and length < 2:
        with pytest.raises(ValueError, match="first_leaf needs length >= 2"):
            PolarNorm(NormConfig(length=1), first_leaf=(1, 0))
        return
    if pair_register and length == 1:
        pytest.skip("one leaf has no tree: the pair register is refused (test_pair_register_needs_the_shared_queue)")
    _check_polar_norm_tree(NormConfig(length=length, width=12, iterations=7, guard_bits=2, leaf_bits=24,
                                      units=units), first_leaf, gaps, pair_register)


def test_pair_register_needs_the_shared_queue():
    for cfg in (NormConfig(length=5, units="per_level"), NormConfig(length=5, units="split"), NormConfig(length=1)):
        with pytest.raises(ValueError, match=r"PolarNorm: pair_register=True is not allowed with units='.*' and "
                                             r"\d levels; allowed: units='shared' with at least one level"):
            PolarNorm(cfg, pair_register=True)
    with pytest.raises(ValueError, match=r"pair_register=1 is not allowed; allowed: False or True"):
        PolarNorm(NormConfig(length=5), pair_register=1)
    cfg = NormConfig(length=5)
    assert tree_latency(cfg, pair_register=True) == tree_latency(cfg) + 1


@LAYOUTS
@pytest.mark.parametrize("iterations, guard_bits", [(1, 0), (2, 5)])
def test_polar_norm_tree_short_unit(iterations, guard_bits, units, pair_register):
    """The unit's first vectoring step shares its stage with the alignment: one step (that stage
    also normalises) and two, with no guard bits and many, still give golden's root."""
    _check_polar_norm_tree(NormConfig(length=13, width=10, iterations=iterations, guard_bits=guard_bits,
                                      leaf_bits=24, units=units), True, 0.2, pair_register)


@pytest.mark.parametrize("length", [2, 5, 64, 577])
def test_per_level_units_answer_at_their_bound_and_never_stall(length):
    """One unit per level: the leaf stream is never held, and every root comes exactly
    :func:`tree_latency` cycles after its vector's last leaf (the bound is the latency), which is
    ``2 (LEAF_PAIRS + levels) + 4`` cycles below the shared unit's bound."""
    cfg = NormConfig(length=length, width=10, iterations=4, guard_bits=1, leaf_bits=16, units="per_level")
    v = np.random.default_rng(length).integers(0, 1 << 16, (3, length))
    lm, le = node_of(v, cfg.width)
    dut = PolarNorm(cfg)
    items = _leaf_items(dut, lm, le)
    got, accepted, results = _run_norm_unit(dut, items, 3, 0.0)
    want = cordic_root(lm, le, cfg)
    assert got == list(zip(want[0].tolist(), want[1].tolist()))
    assert accepted == list(range(3 * length))
    assert [r - a for r, a in zip(results, accepted[length - 1::length])] == [tree_latency(cfg)] * 3
    shared = tree_latency(cfg.replace(units="shared"))
    assert shared - tree_latency(cfg) == 2 * (LEAF_PAIRS + cfg.levels) + 4


@pytest.mark.parametrize("pair_register", [False, True])
@pytest.mark.parametrize("length, first_leaf", [(13, True), (65, True), (66, False), (100, True)])
def test_shared_unit_wastes_no_cycle_when_it_is_the_limit(length, first_leaf, pair_register):
    """The shared unit does one merge a cycle and a vector needs ``sum_l ceil(L_l / 2)`` of them
    (the odd levels' zero pairs included): where that exceeds the leaves streamed, the leaf stream
    is held, and once the leaf-pair queue has filled each vector takes exactly that many cycles (no
    cycle of the unit idles while a pair waits), so the rate is ``streamed / merges``, with the
    leaf pairs registered before their queue too; every root within :func:`tree_latency`."""
    cfg = NormConfig(length=length, width=10, iterations=4, guard_bits=1, leaf_bits=16)
    merges = cfg.merges
    streamed = length - int(first_leaf)
    assert merges > streamed
    accepted, results = _rows_back_to_back(cfg, first_leaf, 8, pair_register)
    lasts = accepted[streamed - 1::streamed]
    per_vector = np.diff(lasts)
    assert per_vector[-3:].tolist() == [merges] * 3, per_vector
    assert all(0 < r - a <= tree_latency(cfg, pair_register) for r, a in zip(results, lasts))


@pytest.mark.parametrize("iterations", [4, 12])
@pytest.mark.parametrize("length, first_leaf", [(13, True), (65, True), (66, False), (100, True), (129, True)])
def test_split_units_take_a_leaf_every_cycle(length, first_leaf, iterations):
    """Where one shared unit is the limit (``merges > leaves streamed``), the ``split`` layout (the
    leaf level's own unit, one shared by the levels above, its queue of level-1 pairs reserved as
    the leaves arrive) takes a leaf every cycle, rows back to back, and every root comes within
    :func:`tree_latency`, which is ``2 (SPLIT_PAIRS + levels - 1) + 4`` cycles above a unit per
    level's."""
    cfg = NormConfig(length=length, width=10, iterations=iterations, guard_bits=1, leaf_bits=16, units="split")
    streamed = length - int(first_leaf)
    assert cfg.merges > streamed
    rows = 8
    accepted, results = _rows_back_to_back(cfg, first_leaf, rows)
    assert accepted == list(range(rows * streamed))
    lasts = accepted[streamed - 1::streamed]
    assert all(0 < r - a <= tree_latency(cfg) for r, a in zip(results, lasts))
    per_level = tree_latency(cfg.replace(units="per_level"))
    assert tree_latency(cfg) - per_level == 2 * (SPLIT_PAIRS + cfg.levels - 1) + 4


def _rows_back_to_back(cfg, first_leaf, rows, pair_register=False):
    """``rows`` random vectors through :class:`PolarNorm` at ``cfg`` with no idle cycle (a constant
    first leaf when ``first_leaf``): every root checked against golden's; returns the cycles of the
    accepted leaves and of the roots."""
    streamed = cfg.length - int(first_leaf)
    lm, le = node_of(np.random.default_rng(cfg.length).integers(0, 1 << 16, (rows, streamed)), cfg.width)
    dut = PolarNorm(cfg, first_leaf=(1 << (cfg.width - 1), 0) if first_leaf else None, pair_register=pair_register)
    got, accepted, results = _run_norm_unit(dut, _leaf_items(dut, lm, le), rows, 0.0)
    if first_leaf:
        lm, le = np.insert(lm, 0, 1 << (cfg.width - 1), axis=1), np.insert(le, 0, 0, axis=1)
    want = cordic_root(lm, le, cfg)
    assert got == list(zip(want[0].tolist(), want[1].tolist()))
    return accepted, results


def test_norm_units_need_the_cordic_tree():
    with pytest.raises(ValueError, match=r"norm: units='per_level' needs the CORDIC tree \(method='exact' has no "
                                         r"units\); allowed with it: 'shared'"):
        NormConfig(method="exact", units="per_level")
    with pytest.raises(ValueError, match=r"rmsnorm: norm_units='one' is not allowed; allowed: 'shared', 'per_level', "
                                         r"'split'$"):
        RMSNormConfig(norm_units="one")


def _check_polar_norm_tree(cfg, first_leaf, gaps, pair_register=False):
    length = cfg.length
    rng = np.random.default_rng(length)
    v = rng.integers(0, 1 << 24, (5, length)) >> rng.integers(0, 24, (5, 1))
    v[1] = 0
    lm, le = node_of(v, cfg.width)
    if first_leaf:
        lm[:, 0], le[:, 0] = lm[0, 0], le[0, 0]
    start = int(first_leaf)

    def item(r, j):
        def put(ctx):
            ctx.set(dut.i.payload.m, int(lm[r, j]))
            ctx.set(dut.i.payload.e, int(le[r, j]))
        return put

    dut = PolarNorm(cfg, first_leaf=(int(lm[0, 0]), int(le[0, 0])) if first_leaf else None, pair_register=pair_register)
    items = [item(r, j) for r in range(5) for j in range(start, length)]
    got, accepted, results = _run_norm_unit(dut, items, 5, gaps)
    want = cordic_root(lm, le, cfg)
    assert got == list(zip(want[0].tolist(), want[1].tolist()))
    lasts = accepted[length - start - 1::length - start]
    assert all(0 <= res - last <= tree_latency(cfg, pair_register) for res, last in zip(results, lasts))


@pytest.mark.parametrize("length", [1, 3, 577])
def test_sqrt_node(length):
    cfg = NormConfig(length=length, width=12, method="exact", leaf_bits=20)
    v = np.random.default_rng(length).integers(0, 1 << 20, (4, length)) >> np.arange(0, 20, 5)[:, None]
    v[:, 0] |= 1
    q = sum_of_squares(v)
    dut = SqrtNode(cfg)
    items = [(lambda x: lambda ctx: ctx.set(dut.i.payload, x))(int(x)) for x in q]
    got, accepted, results = _run_norm_unit(dut, items, 4, 0.0)
    want = sqrt_node(q, cfg.width)
    assert got == list(zip(want[0].tolist(), want[1].tolist()))
    assert [r - a for r, a in zip(results, accepted)] == [SqrtNode.latency(cfg) - 1] * 4


def test_sqrt_node_on_squares_and_their_neighbours():
    """The digit loop's one subtraction (``res | bit`` for ``res + bit``, the borrow as the compare)
    at the values where a digit decision flips: perfect squares, one either side, all-ones, powers
    of two, the smallest and the largest ``Q``, and random values of every bit length."""
    cfg = NormConfig(length=5, width=8, method="exact", leaf_bits=12)
    top = (1 << SqrtNode.q_width(cfg)) - 1
    rng = np.random.default_rng(7)
    roots = rng.integers(1, 1 << 13, 12)             # squares below 2**26 <= top
    q = sorted({1, 2, 3, top, top >> 1, *(1 << k for k in range(0, SqrtNode.q_width(cfg), 5)),
                *(int(r) ** 2 + d for r in roots for d in (-1, 0, 1)),
                *(int(rng.integers(1 << (b - 1), 1 << b)) for b in range(1, SqrtNode.q_width(cfg) + 1, 3))})
    dut = SqrtNode(cfg)
    items = [(lambda x: lambda ctx: ctx.set(dut.i.payload, x))(int(x)) for x in q]
    got, accepted, results = _run_norm_unit(dut, items, len(q), 0.0)
    want = sqrt_node(np.array(q, dtype=object), cfg.width)
    assert got == list(zip([int(v) for v in want[0]], [int(v) for v in want[1]]))
    assert [r - a for r, a in zip(results, accepted)] == [SqrtNode.latency(cfg) - 1] * len(q)


def test_lif_population_steps_like_the_golden_model():
    cfg = LIFConfig(neurons=3, membrane_width=12, leak=2, reset="subtract")
    dut = LIFPopulation(cfg)
    rng = np.random.default_rng(0)
    cur = rng.integers(-20, 60, (12, 3))
    theta = np.array([40, 80, 120])
    seen = []

    async def bench(ctx):
        for j in range(3):
            ctx.set(dut.theta[j], int(theta[j]))
        ctx.set(dut.step, 1)
        for t in range(12):
            for j in range(3):
                ctx.set(dut.current[j], int(cur[t, j]))
            await ctx.tick()
            seen.append(([ctx.get(dut.membranes[j]) for j in range(3)], ctx.get(dut.spikes)))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    v = np.zeros(3, dtype=np.int64)
    for t in range(12):
        v, s = lif_step(v, cur[t], theta, leak=2)
        assert seen[t][0] == v.tolist()
        assert seen[t][1] == sum(int(b) << j for j, b in enumerate(s))


ELEMENTWISE = [(SigmoidConfig, Sigmoid, sigmoid), (SiLUConfig, SiLU, silu), (GELUConfig, GELU, gelu)]


@pytest.mark.parametrize("cls, comp, fn", ELEMENTWISE, ids=["sigmoid", "silu", "gelu"])
@pytest.mark.parametrize("overrides", [{"out_frac": 8}, {"in_width": 10, "in_frac": 6, "out_frac": 5, "H": 5, "K": 64, "div_arch": "thermometer"},
                                       {"out_frac": 12, "rounding": "floor"}], ids=["8bit", "paper-thermo", "12bit-floor"])
def test_elementwise_operator(cls, comp, fn, overrides):
    cfg = cls(**overrides)
    rng = np.random.default_rng(3)
    x = np.concatenate([[cfg.in_format.min_code, cfg.in_format.max_code, 0, -1, 1],
                        rng.integers(cfg.in_format.min_code, cfg.in_format.max_code + 1, 120)])
    out, log = run_stream(comp(cfg), [int(v) for v in x], **PRESSURE)
    assert [int(y) for y in out] == fn(x, cfg).tolist()
    # latency with no stalls is the documented formula
    out, log = run_stream(comp(cfg), [int(v) for v in x[:3]])
    assert log["out"][0] - log["in"][0] == comp.latency_for(cfg)
    assert log["out"][1] - log["out"][0] == 1  # II = 1


def test_range_reduced_exp_in_the_operators():
    """Softmax, sigmoid, SiLU and GELU with the range-reduced PWL-Exp, against golden."""
    rng = np.random.default_rng(9)
    for cls, comp, fn in ELEMENTWISE:
        cfg = cls(exp_method="range")
        x = np.concatenate([[cfg.in_format.min_code, cfg.in_format.max_code, 0, -1, 1],
                            rng.integers(cfg.in_format.min_code, cfg.in_format.max_code + 1, 100),
                            rng.integers(-3000, 3000, 100)])
        out, _ = run_stream(comp(cfg), [int(v) for v in x], **PRESSURE)
        assert [int(y) for y in out] == fn(x, cfg).tolist(), cls
        out, log = run_stream(comp(cfg), [int(v) for v in x[:3]])
        assert log["out"][0] - log["in"][0] == comp.latency_for(cfg)


@pytest.mark.parametrize("form", ["erf", "tanh", "sigmoid"])
@pytest.mark.parametrize("overrides", [{}, {"in_width": 12, "in_frac": 6, "out_frac": 8, "H": 5, "K": 64},
                                       # the random-configuration regression's find: x = +-1 saturated
                                       # (the division's shift, 16 in 5 bits, read as -16)
                                       {"in_width": 9, "in_frac": 0, "out_frac": 4, "H": 2, "K": 1,
                                        "exp_frac": 4, "slope_frac": 9, "exp_method": "range",
                                        "div_guard_bits": 9, "rounding": "floor", "alpha_frac": 14}],
                         ids=["default", "small", "narrow-range"])
def test_gelu_forms(form, overrides):
    cfg = GELUConfig(form=form, **overrides)
    rng = np.random.default_rng(5)
    fmt = cfg.in_format
    near = [c for c in (cfg.x_clamp,) if c is not None for c in (c - 1, c, c + 1, -c)]
    x = np.concatenate([[fmt.min_code, fmt.max_code, 0, -1, 1, *near],
                        rng.integers(fmt.min_code, fmt.max_code + 1, 150),
                        rng.integers(-6 << fmt.frac, 6 << fmt.frac, 150)])
    out, log = run_stream(GELU(cfg), [int(v) for v in x], **PRESSURE)
    assert [int(y) for y in out] == gelu(x, cfg).tolist()
    out, log = run_stream(GELU(cfg), [int(v) for v in x[:3]])
    assert log["out"][0] - log["in"][0] == GELU.latency_for(cfg)


def _rows_payload(rows, masks=None):
    items = []
    for r, row in enumerate(rows):
        for j, v in enumerate(row):
            item = {"data": int(v), "last": int(j == len(row) - 1)}
            if masks is not None:
                item["masked"] = int(not masks[r][j])
            items.append(item)
    return items


def test_softmax_rows_masks_and_latency():
    cfg = SoftmaxConfig(d_max=16, out_frac=12)
    rng = np.random.default_rng(0)
    rows, masks, want = [], [], []
    for n in (1, 16, 5, 3, 16, 7):
        x = quantize(rng.normal(0, 7, n), cfg.in_format)
        keep = rng.random(n) < 0.75
        if n == 3:
            keep[:] = False  # a fully masked row
        if n == 7:
            x[2] = cfg.in_format.mask_code  # the in-band mask code
        rows.append(x)
        masks.append(keep)
        want += softmax(x, cfg, mask=keep).tolist()
    out, _ = run_stream(Softmax(cfg), _rows_payload(rows, masks), **PRESSURE)
    assert [int(o.data) for o in out] == want
    assert [int(o.last) for o in out] == [int(j == len(r) - 1) for r in rows for j in range(len(r))]
    for n in (1, 9):
        items = _rows_payload([np.arange(n) * 50], [np.ones(n, bool)])
        _, log = run_stream(Softmax(cfg), items)
        assert log["out"][0] - log["in"][-1] == Softmax.latency_for(cfg, n)


def test_softmax_overflow_flag_splits_a_long_row():
    cfg = SoftmaxConfig(d_max=4, out_frac=8)
    dut = Softmax(cfg)
    items = [{"data": 10 * j, "masked": 0, "last": int(j == 5)} for j in range(6)]
    out, _ = run_stream(dut, items)
    want = softmax(np.arange(4) * 10, cfg).tolist() + softmax(np.array([40, 50]), cfg).tolist()
    assert [int(o.data) for o in out] == want


@pytest.mark.parametrize("method, units", [("cordic", "shared"), ("cordic", "per_level"), ("exact", "shared")],
                         ids=["cordic", "cordic-per_level", "exact"])
@pytest.mark.parametrize("cls, comp, fn", [(RMSNormConfig, RMSNorm, rmsnorm), (LayerNormConfig, LayerNorm, layernorm)],
                         ids=["rmsnorm", "layernorm"])
@pytest.mark.parametrize("d", [1, 6, 13])
def test_norm_operator(method, units, cls, comp, fn, d):
    if cls is LayerNormConfig and method == "cordic" and d == 1:
        with pytest.raises(ValueError, match="d=1 is too short"):
            cls(d=d, norm_method=method)
        return
    cfg = cls(d=d, norm_method=method, cordic_iterations=9, norm_units=units)
    rng = np.random.default_rng(d)
    x = quantize(rng.normal(0, 2, (4, d)), cfg.in_format)
    x[1, 0] = cfg.in_format.max_code  # an outlier channel
    x[2] = 0                          # a zero row
    g = cfg.quantize_gamma(rng.normal(1, 0.5, d))
    weights, args = {"gamma": g}, [g]
    if cfg.centred:
        b = cfg.quantize_beta(rng.normal(0, 0.5, d))
        weights["beta"], args = b, [g, b]
    out, _ = run_stream(comp(cfg, **weights), _rows_payload(x), **PRESSURE)
    assert [int(o.data) for o in out] == fn(x, cfg, *args).ravel().tolist()
    _, log = run_stream(comp(cfg, **weights), _rows_payload(x[:1]))
    assert log["out"][0] - log["in"][-1] == comp.latency_for(cfg)


def test_temporal_division_is_refused_inside_an_operator():
    with pytest.raises(ValueError, match=r"SiLU: div_arch='temporal' is iterative .* allowed: 'binary', 'thermometer'"):
        SiLU(SiLUConfig(out_frac=4, in_frac=8, div_arch="temporal"))
    with pytest.raises(TypeError, match="Softmax: config must be a SoftmaxConfig"):
        Softmax(SiLUConfig())


def test_signatures_hold_compare_and_print_their_configuration():
    cfg = ExpConfig(in_width=10, in_frac=4, H=5, K=48, out_frac=10)
    assert PWLExp.Signature(cfg) == PWLExp.Signature(cfg)
    assert PWLExp.Signature(cfg) != PWLExp.Signature(cfg.replace(K=40))
    assert repr(PWLExp.Signature(cfg)) == f"PWLExp.Signature({cfg!r})"
    assert PWLExp(cfg).config is cfg
    with pytest.raises(TypeError, match="PolarNorm: config must be a NormConfig, not "):
        PolarNorm(cfg)
    sig = SiLU.Signature(SiLUConfig())
    assert sig.members["i"].signature.members["payload"].shape.width == 16


@pytest.mark.parametrize("width", [1, 2, 3, 5, 8, 10])
def test_leading_one_detector_every_input(width):
    """The log-depth leading-one tree, at widths that are and are not powers of two."""
    from spikeops.golden.shift import bit_length
    from spikeops.hdl.shift import LeadingOneDetector
    dut = LeadingOneDetector(width)
    seen = []

    async def bench(ctx):
        for v in range(1 << width):
            ctx.set(dut.value, v)
            seen.append(ctx.get(dut.count))

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()
    assert seen == bit_length(np.arange(1 << width)).tolist()
