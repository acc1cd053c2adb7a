"""Calibration: a power-of-two scale per operator instance, from calibration text.

Rule (deterministic): run the float model on the calibration batches and record, per instance,
``max |x|`` at its input (Softmax: over the valid attention scores) and ``max |y|`` at its output.
The instance's input format gets the most fraction bits that keep the maximum inside it: the
largest ``in_frac`` in ``[0, in_width - 1]`` with ``max |x| * 2**in_frac < 2**(in_width - 1)``.
Norm outputs (whose range grows with gamma and the outliers) get ``out_frac`` by the same rule
on ``max |y|`` and ``out_width``, never above the configured ``out_frac``; the activations' output
formats follow from their inputs.  Where the configuration refuses the chosen ``in_frac`` (Softmax:
the exp argument must still hold ``H``), the next smaller one it accepts is used.  Gamma formats are fitted to the weights
(:func:`spikeops.gen.llm.operators.fit_gamma`).
"""

from __future__ import annotations

import math

from spikeops.golden.changes import fit_in_frac

__all__ = ["observe", "observe_ranges", "in_frac_for", "calibrated"]


def in_frac_for(max_abs: float, in_width: int) -> int:
    """The largest ``in_frac`` in ``[0, in_width - 1]`` with ``max_abs * 2**in_frac < 2**(in_width - 1)``."""
    if max_abs <= 0:
        return in_width - 1
    frac = in_width - 1 - math.floor(math.log2(max_abs)) - 1
    while frac > 0 and max_abs * 2 ** frac >= 2 ** (in_width - 1):
        frac -= 1
    while frac < in_width - 1 and max_abs * 2 ** (frac + 1) < 2 ** (in_width - 1):
        frac += 1
    return max(0, min(in_width - 1, frac))


def calibrated(cfg, stats: dict | None):
    """``cfg`` with its scales set from ``stats`` (``{"in": max|x|, "out": max|y|}``) by the rule."""
    if not stats:
        return cfg
    out_frac = cfg.out_frac
    if "out_width" in cfg.params() and stats.get("out") is not None:
        out_frac = min(cfg.out_frac, in_frac_for(stats["out"], cfg.out_width))
    try:  # e.g. Softmax: the exp argument must still hold H
        return fit_in_frac(cfg, in_frac_for(stats["in"], cfg.in_width), out_frac=out_frac)
    except ValueError as err:
        raise ValueError(f"calibrate: no in_frac fits {cfg.kind} with max |x| = {stats['in']}: {err}") from None


def observe(model, sites, batches) -> dict:
    """``{site name: {"in": max |x|, "out": max |y|}}`` over ``batches`` (dicts of model inputs or
    token-id tensors) for every site in ``sites``, with the float model."""
    import torch

    from .attention import ATTENTION_NAME, register_attention

    stats = {s.name: {"in": 0.0, "out": 0.0} for s in sites}
    hooks, attn = [], []

    def bump(name, key, t):
        stats[name][key] = max(stats[name][key], float(t.detach().abs().max()) if t.numel() else 0.0)

    for s in sites:
        mod = s.module
        if s.attention:
            mod.spikeops_softmax = None
            mod.spikeops_observe = (lambda t, n=s.name: bump(n, "in", t))
            attn.append(mod)
            continue
        hooks.append(mod.register_forward_pre_hook(lambda m, a, n=s.name: bump(n, "in", a[0])))
        hooks.append(mod.register_forward_hook(lambda m, a, y, n=s.name: bump(n, "out", y)))
    previous = model.config._attn_implementation
    if attn:
        register_attention()
        model.set_attn_implementation(ATTENTION_NAME)
    try:
        with torch.no_grad():
            for batch in batches:
                model(**batch) if isinstance(batch, dict) else model(batch)
    finally:
        for h in hooks:
            h.remove()
        for mod in attn:
            del mod.spikeops_observe
        if attn:
            model.set_attn_implementation(previous)
    return stats


def observe_ranges(model, batches, family: str = "llama") -> dict:
    """``{site name: max |input|}`` for the norms and activations (and attention scores)."""
    from .sites import discover
    return {k: v["in"] for k, v in observe(model, discover(model, family), batches).items()}
