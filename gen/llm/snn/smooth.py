"""Smoothing (SmoothQuant's migration) at the two quantisers no norm precedes, folded into weights.

LLM activations carry massive outlier channels (SmolLM2's down_proj input reaches 481 where the
bulk is about 1), which a per-tensor quantiser cannot keep together with the bulk.  Per channel c
of a quantised tensor X feeding a linear layer with weight W, with ``alpha = snn.smooth``:

    f_c = clamp(max |X_c|**alpha / max_j |W_(j, c)|**(1 - alpha), 2**-16, 2**16)   (1 where X_c = 0)

and ``X_c / f_c`` is quantised while ``W_(:, c) * f_c`` multiplies it, so the product is unchanged.
The division is folded into the layer that produces X, exactly (per-output-channel weight
quantisation is invariant to a row's scale, so those integer weights do not move):

* ``mlp_mid`` (down_proj's input ``SiLU(gate) * up``): ``up_proj`` rows (and bias) ``/ f``,
  ``down_proj`` columns ``* f``;
* ``attn_out`` (o_proj's input ``P V``): ``v_proj`` rows ``/ f`` and ``o_proj`` columns ``* f``, with
  one factor per value channel (the query heads of a group share it: the maxima are taken over the
  group), so the ``v`` quantiser sees ``V / f`` too.

``max |X_c|`` is the calibration's per-channel maximum (:mod:`.observe`); the samples the scale
rule reads are divided by their channel's factor (:func:`smoothed_observation`).  ``alpha = 0``
turns smoothing off.  The sites after a norm (``attn_in``, ``mlp_in``) are not smoothed (the
factor would have to enter the operator's gamma and output format).
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["smoothing_factors", "smoothed_weights", "smoothed_observation", "o_channels", "LIMIT"]

#: the factors stay within 2**-16 .. 2**16
LIMIT = 16.0


def _factor(xmax: np.ndarray, wmax: np.ndarray, alpha: float) -> np.ndarray:
    x = np.asarray(xmax, dtype=np.float64)
    w = np.maximum(np.asarray(wmax, dtype=np.float64), 1e-30)
    f = np.where(x > 0, x ** alpha / w ** (1.0 - alpha), 1.0)
    return np.clip(f, 2.0 ** -LIMIT, 2.0 ** LIMIT)


def smoothing_factors(model, sites, alpha: float) -> list[dict]:
    """Per layer ``{"mlp_mid": f (intermediate,), "v": f (kv heads * head_dim,)}`` (empty dicts
    when ``alpha`` is 0)."""
    out = []
    for i, layer in enumerate(model.model.layers):
        if not alpha:
            out.append({})
            continue
        p = f"model.layers.{i}."
        sa, mlp = layer.self_attn, layer.mlp
        down = mlp.down_proj.weight.detach().to(torch.float64).abs().amax(dim=0).numpy()
        f_mlp = _factor(sites[p + "mlp_mid"]["chmax"], down, alpha)
        D = sa.head_dim
        H, Hkv = sa.q_proj.out_features // D, sa.k_proj.out_features // D
        groups = H // Hkv
        xo = np.asarray(sites[p + "attn_out"]["chmax"]).reshape(Hkv, groups, D).max(axis=1).reshape(-1)
        wo = sa.o_proj.weight.detach().to(torch.float64).abs().amax(dim=0).numpy()
        wo = wo.reshape(Hkv, groups, D).max(axis=1).reshape(-1)
        out.append({"mlp_mid": f_mlp, "v": _factor(xo, wo, alpha), "groups": groups, "head_dim": D})
    return out


def smoothed_weights(layer, factors: dict) -> dict:
    """``{"q"|"k"|"v"|"o"|"gate"|"up"|"down": (weight, bias)}`` (float64 tensors, bias or None)
    with the factors folded in (module docstring)."""
    sa, mlp = layer.self_attn, layer.mlp
    mods = {"q": sa.q_proj, "k": sa.k_proj, "v": sa.v_proj, "o": sa.o_proj, "gate": mlp.gate_proj,
            "up": mlp.up_proj, "down": mlp.down_proj}
    out = {k: (m.weight.detach().to(torch.float64),
               None if getattr(m, "bias", None) is None else m.bias.detach().to(torch.float64))
           for k, m in mods.items()}
    if not factors:
        return out
    f = torch.from_numpy(np.asarray(factors["mlp_mid"], dtype=np.float64))
    w, b = out["up"]
    out["up"] = (w / f[:, None], None if b is None else b / f)
    out["down"] = (out["down"][0] * f[None, :], out["down"][1])
    fv = torch.from_numpy(np.asarray(factors["v"], dtype=np.float64))
    w, b = out["v"]
    out["v"] = (w / fv[:, None], None if b is None else b / fv)
    out["o"] = (out["o"][0] * o_channels(fv, factors["groups"], sa.head_dim)[None, :], out["o"][1])
    return out


def o_channels(f_v, groups: int, head_dim: int):
    """``f_v`` (kv heads x head_dim) spread to o_proj's input channels (heads x head_dim): head h
    reads kv head ``h // groups``."""
    t = torch.as_tensor(np.asarray(f_v, dtype=np.float64))
    return t.reshape(-1, 1, head_dim).expand(-1, groups, head_dim).reshape(-1)


def smoothed_observation(item: dict, f) -> dict:
    """The observation of a smoothed site: samples divided by their channel's factor, the maximum
    of the per-channel maxima so divided."""
    f = np.asarray(f, dtype=np.float64)
    return {"max": float(np.max(np.asarray(item["chmax"]) / f)) if len(item["chmax"]) else 0.0,
            "sample": np.asarray(item["sample"]) / f[np.asarray(item["ch"])]}
