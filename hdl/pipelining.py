"""Pipelining for a target clock (FloPoCo's idea): an operator configuration's ``target_mhz`` sets
how many binary division neurons share a pipeline stage, the choice that moves the clock and the
latency most (the division is each operator's longest run of stages).

The neurons of a stage form a chain of add-or-subtracts (non-restoring), each a carry chain over
the membrane's top ``b = theta_bits + 1`` bits whose sign enters the next neuron's chain.  The delay
of a stage of ``k`` neurons is estimated, for ECP5 at speed grade 6, as

    t(k) = T_STAGE + k * (T_NEURON + T_BIT * b)   ns

``T_STAGE`` covers the register's clock-to-out and setup; ``T_NEURON`` a neuron's carry-chain entry
and exit and the routing of the previous sign to every bit of its chain (most of it); ``T_BIT`` a
carry chain's cost per bit.  The constants are a straight line through nextpnr's critical paths of
the sigmoid's ECP5 emission (26 bits, seed 1, ``--freq 250``, the neurons as ``CCU2C`` cells whose
LUTs take the sign, :mod:`spikeops.hdl.carry`): 6.56 ns with two neurons a stage, 9.62 with three,
12.44 with four (the line: 6.56, 9.50, 12.44); with one neuron a stage the division is no longer the
sigmoid's critical path (4.5 ns, the output queue's read).  The generic emission's neuron has a LUT
and a routing hop more in front of each chain (the constants before the ``CCU2C`` neurons, 1.9 and
2.77 ns, fitted on it, gave 5.72 ns for one neuron a stage and 8.88 for two): a target is then met
with less margin.  For ``target_mhz = f`` the generator takes the largest ``k`` with
``t(k) <= 1000 / f`` (at least 1, at most the quotient's width); the rest of each operator is
pipelined for about 200 MHz whatever the target, so a target above what one neuron a stage allows
is met only as far as that stage goes (``report`` says so).

The target also sets the stages of the shift scaling's leading-one detection: one (a tree of
``log2(width)`` multiplexers, 5.1-5.2 ns on 29-30 bit operands at seed 1) up to
:data:`LOD_SPLIT_MHZ`, two above it (each 8-bit group's leading one, then the groups').

Without a target (``target_mhz=None``) each operator keeps its fixed choice: one neuron a stage in
Softmax, the sigmoid family and the CORDIC norms, two in the exact norms (their 64-cycle bound,
issue 13); two leading-one stages in Softmax and the sigmoid family, and in a norm two where its
latency bound has the cycle, else one (``fixed_leading_one_stages``; a norm then spends a cycle
still left on its CORDIC tree's pair register).  The choice never changes a result, only the
latency (which the manifest, the testbench and the formulas follow).
"""

from __future__ import annotations

__all__ = ["T_STAGE", "T_NEURON", "T_BIT", "LOD_SPLIT_MHZ", "stage_ns", "neurons_per_stage", "leading_one_stages",
           "report"]

#: the delay model's constants, ns (module docstring)
T_STAGE = 0.68
T_NEURON = 1.90
T_BIT = 0.04


#: the clock above which the leading-one detection takes two stages (module docstring)
LOD_SPLIT_MHZ = 180.0


def stage_ns(k: int, bits: int) -> float:
    """Estimated delay of a stage of ``k`` binary neurons over ``bits`` membrane bits, ns."""
    return T_STAGE + k * (T_NEURON + T_BIT * bits)


def _bits(division) -> int:
    return division.theta_bits + 1


def neurons_per_stage(cfg, default: int = 1) -> int:
    """Binary division neurons per pipeline stage for the operator configuration ``cfg`` (its
    ``target_mhz``, through the delay model; ``default`` without a target)."""
    target = getattr(cfg, "target_mhz", None)
    if target is None:
        return default
    division = cfg.division
    budget, bits = 1000.0 / target, _bits(division)
    k = 1
    while k < division.q_width and stage_ns(k + 1, bits) <= budget:
        k += 1
    return k


def leading_one_stages(cfg, default: int = 1) -> int:
    """Stages of the division's leading-one detection for ``cfg``: 2 above :data:`LOD_SPLIT_MHZ`,
    else 1 (``default`` without a target)."""
    target = getattr(cfg, "target_mhz", None)
    if target is None:
        return default
    return 2 if target > LOD_SPLIT_MHZ else 1


def report(cfg, default: int = 1, lod_default: int = 1) -> dict:
    """What the generator chose for ``cfg`` and why, for the manifest."""
    k = neurons_per_stage(cfg, default)
    bits = _bits(cfg.division)
    out = {"target_mhz": cfg.target_mhz, "division_neurons_per_stage": k,
           "division_stage_ns_estimated": round(stage_ns(k, bits), 2), "neuron_bits": bits,
           "leading_one_stages": leading_one_stages(cfg, lod_default)}
    if cfg.target_mhz is None:
        out["choice"] = f"fixed: {k} neuron(s) a stage (no target_mhz)"
    elif stage_ns(k, bits) > 1000.0 / cfg.target_mhz:
        out["choice"] = (f"one neuron a stage is estimated at {stage_ns(1, bits):.2f} ns, more than the "
                         f"{1000.0 / cfg.target_mhz:.2f} ns of {cfg.target_mhz:g} MHz: the division limits the clock")
    else:
        out["choice"] = (f"{k} neuron(s) a stage, estimated {stage_ns(k, bits):.2f} ns within "
                         f"{1000.0 / cfg.target_mhz:.2f} ns ({cfg.target_mhz:g} MHz)")
    return out
