"""Changing a configuration: one rule for the CLI's ``--set``, the sweep grids and conversion plans.

The rule (:func:`apply_changes`): every parameter is set as given, except that ``out_frac`` given
without ``out_width`` keeps the output's integer bits, so the width follows the fraction
(``--set out_frac=8`` on RMSNorm's ``s20.12`` output gives ``s16.8``, the same range on a coarser
grid).  Operators whose output has no ``out_width`` (Softmax, sigmoid: ``u<out_frac+1>.<out_frac>``;
SiLU, GELU: sized for ``|x|``) take ``out_frac`` as it is.  The result is validated again; an error
names the operator, the parameter, its value and what is allowed.

:func:`fit_in_frac` is the calibration's rule for scales a configuration refuses: the largest
``in_frac`` not above the wanted one that the configuration accepts (Softmax: the exp argument must
still hold ``H``).
"""

from __future__ import annotations

import json

__all__ = ["parse_sets", "apply_changes", "fit_in_frac"]


def parse_sets(pairs) -> dict:
    """``["key=value", ...]`` -> dict; values are JSON (numbers, true/false, null) or plain strings."""
    out = {}
    for pair in pairs or ():
        if "=" not in pair:
            raise ValueError(f"--set {pair!r}: expected key=value")
        key, raw = pair.split("=", 1)
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out[key.strip()] = value
    return out


def apply_changes(cfg, changes: dict):
    """``cfg`` with ``changes`` applied by the module's rule (validated)."""
    changes = dict(changes or {})
    if "out_frac" in changes and "out_width" not in changes and "out_width" in cfg.params():
        out_frac = changes.pop("out_frac")
        base = cfg.replace(**changes) if changes else cfg
        return base.replace(out_frac=out_frac, out_width=base.out_width - base.out_frac + out_frac)
    return cfg.replace(**changes) if changes else cfg


def fit_in_frac(cfg, in_frac: int, **changes):
    """``cfg`` with ``changes`` and the largest ``in_frac <= in_frac`` it accepts.

    Raises the first refusal's ValueError when no ``in_frac`` down to 0 is accepted."""
    first = None
    for frac in range(in_frac, -1, -1):
        try:
            return cfg.replace(in_frac=frac, **changes)
        except ValueError as err:
            first = first or err
    raise first if first is not None else ValueError(f"{cfg.kind}: in_frac={in_frac} is out of range")
