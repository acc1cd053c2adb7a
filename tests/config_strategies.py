"""Hypothesis strategies that draw valid configurations of every operator across the whole validated
space (every parameter; small rows so that a co-simulation stays cheap).

Each strategy draws raw parameters and keeps those the configuration accepts (the golden model's
validation is the definition of "valid"); a draw the configuration refuses is rejected, not shrunk
towards.  The RTL must then build and agree with the golden model for every drawn configuration.
"""

from __future__ import annotations

from hypothesis import assume
from hypothesis import strategies as st

from spikeops.golden import registry

__all__ = ["configs", "STRATEGIES"]


def _exp_params(draw, in_frac_bound: int):
    method = draw(st.sampled_from(["uniform", "range"]))
    h = draw(st.integers(1, 8))
    k = draw(st.sampled_from([1, 2, 4, 8, 16, 32, 64]) if method == "range"
             else st.sampled_from([1, 3, 8, 16, 17, 32, 48, 64, 100, 128, 256]))
    return {"exp_method": method, "H": h, "K": k, "exp_frac": draw(st.integers(2, 14)),
            "slope_frac": draw(st.integers(0, 10))}


def _division_params(draw):
    return {"div_guard_bits": draw(st.integers(2, 10)),
            "div_arch": draw(st.sampled_from(["binary", "binary", "thermometer"])),
            "rounding": draw(st.sampled_from(["nearest", "floor"]))}


@st.composite
def _softmax(draw):
    w = draw(st.integers(4, 16))
    d_max = draw(st.integers(1, 20))
    p = {"in_width": w, "in_frac": draw(st.integers(0, w - 1)), "d_max": d_max,
         "out_frac": draw(st.integers(1, 16)), **_exp_params(draw, w), **_division_params(draw),
         # the row buffer: the default (two rows and the pipeline) or anything from one row up
         "buffer_depth": draw(st.one_of(st.none(), st.integers(d_max, 2 * d_max + 40)))}
    if p["exp_method"] == "range":   # the online normaliser needs the range-reduced exponential
        p["normalizer"] = draw(st.sampled_from(["row_max", "online"]))
    return p


@st.composite
def _elementwise(draw, gelu: bool = False):
    w = draw(st.integers(3, 14))
    p = {"in_width": w, "in_frac": draw(st.integers(0, w - 1)), "out_frac": draw(st.integers(1, 16)),
         **_exp_params(draw, w), **_division_params(draw)}
    if gelu:
        p["form"] = draw(st.sampled_from(["erf", "tanh", "sigmoid"]))
        p["alpha_frac"] = draw(st.one_of(st.none(), st.integers(8, 16)))
    return p


@st.composite
def _norm(draw):
    w = draw(st.integers(4, 24))
    ow = draw(st.integers(4, 20))
    gw = draw(st.integers(3, 16))
    d = draw(st.integers(1, 12))
    method = draw(st.sampled_from(["cordic", "exact"]))
    units = draw(st.sampled_from(["shared", "per_level", "split"])) if method == "cordic" else "shared"
    return {"d": d, "norm_units": units, "buffer_depth": draw(st.sampled_from([0, 0, d, 2 * d + 1])),
            "in_width": w, "in_frac": draw(st.integers(0, w - 1)),
            "out_width": ow, "out_frac": draw(st.integers(0, ow - 1)), "gamma_width": gw,
            "gamma_frac": draw(st.integers(0, gw - 1)), "eps": draw(st.sampled_from([1e-12, 1e-6, 1e-5, 0.01, 0.5])),
            "norm_method": method, "norm_width": draw(st.integers(4, 26)),
            "cordic_iterations": draw(st.integers(2, 14)), "norm_guard_bits": draw(st.integers(0, 4)),
            "gain_frac": draw(st.integers(8, 31)), **_division_params(draw)}


STRATEGIES = {"softmax": _softmax, "sigmoid": _elementwise, "silu": _elementwise,
              "gelu": lambda: _elementwise(gelu=True), "rmsnorm": _norm, "layernorm": _norm}


@st.composite
def configs(draw, op: str):
    """A valid configuration of ``op`` (rejecting the draws its validation refuses)."""
    params = draw(STRATEGIES[op]())
    try:
        cfg = registry.get(op).default(**params)
    except ValueError:
        assume(False)
    # the RTL must be buildable: the same checks the generator makes before elaborating
    try:
        registry.get(op).component().Signature.check_parameters(cfg)
    except ValueError:
        assume(False)
    return cfg
