"""A Llama-family model converted into a quantised ANN or a spiking network (SpikeZIP-TF style).

    cal = calibrate(model, batches)                     # float model on the calibration text
    snn = convert(model, SNNConfig.parse("T=4,L=16,W=8,A=8"), cal)
    logits = snn(input_ids).logits                      # or snn.run(...) for settle steps, records
    qann = snn.with_config(snn.snn.replace(mode="qann"))

What runs (see :mod:`.engine` for the number formats of every site, :mod:`.neurons`,
:mod:`.layers`, :mod:`.quantizers` for the equations):

* float only at the boundary: the token embedding enters the residual stream as integers
  ``round(e * 2**F)`` at step 0, and the final RMSNorm's accumulated output codes are dequantised
  for the float LM head;
* each time step runs every layer in order on that step's increments; the input arrives at step 0
  and later steps carry only what neurons and operators emit;
* ``mode=qann``: one step with unbounded neurons, each quantiser evaluated on its total: the QANN;
* ``mode=snn``: ``T`` steps, or (``T=settle``) until a step in which nothing anywhere changes (then
  nothing ever will: no input, no neuron above threshold); ``fast`` evaluates ``T=settle`` as the
  QANN, which it equals bit for bit (the theorem of :mod:`.neurons`, applied layer by layer, with
  the exact product and operator-difference rules of :mod:`.layers`; tested site by site).

**Settle time**: the number of steps until the last step with activity, per layer and for the
network (:class:`Run`).  A run below it gives the partial totals: the outputs of the last layers
are then ``f`` of incomplete inputs.

Residual grid ``F``: the largest writer's multiplier (o_proj, down_proj) gets ``P`` bits,
``F = max_writers (P - 1 - floor(log2 max_c sigma_c))``, but at most ``59 - ceil(log2 max |h|)``
with ``max |h|`` the calibration's largest norm input (no int64 overflow).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from spikeops.golden import registry

from .activity import Activity
from .config import Division, SNNConfig
from .engine import FinalNorm, SpikingLayer, rope_bits, rope_tables, valid_mask
from .observe import SITES, Observations, observe_sites
from .quantizers import activation_scale, quantize_weight, round_half_away
from .smooth import o_channels, smoothed_observation, smoothed_weights, smoothing_factors

__all__ = ["Calibration", "calibrate", "convert", "SpikingLlama", "Run"]


@dataclass
class Calibration:
    """What the float model showed on the calibration text: the quantiser sites' observations
    (:mod:`.observe`) and the operators' statistics (:func:`spikeops.gen.llm.calibrate.observe`)."""

    sites: Observations
    stats: dict
    info: dict = field(default_factory=dict)

    def scales(self, snn: SNNConfig, factors=None) -> dict:
        """``{site: s}`` by the configuration's rule (``scale``, ``pow2``, ``A``), on the observations
        smoothed by ``factors`` (per layer, :func:`.smooth.smoothing_factors`)."""
        out = {}
        for name, o in sorted(self.sites.items()):
            f = _site_factor(name, factors)
            if f is not None:
                o = smoothed_observation(o, f)
            out[name] = activation_scale(o["sample"], o["max"], 1 << snn.bits(name), snn.scale, snn.pow2)
        return out

    def digest(self) -> str:
        """sha256 (16 hex digits) of what the conversion reads from the calibration: every site's
        observations (maximum, sample, per-channel maxima and channels, bit for bit) and the
        operators' statistics.  Kept results carry it, so a calibration that came out different (another
        CPU's float kernels summing in another order) never shares rows with this one."""
        import hashlib
        import json

        h = hashlib.sha256()
        for name, o in sorted(self.sites.items()):
            h.update(f"{name}:{float(o['max']).hex()}".encode())
            for k in ("sample", "chmax", "ch"):
                if k in o:
                    a = np.ascontiguousarray(o[k])
                    h.update(f"{k}:{a.dtype.str}:{a.shape}".encode())
                    h.update(a.tobytes())
        h.update(json.dumps(self.stats, sort_keys=True, default=_stat_json).encode())
        return h.hexdigest()[:16]

    def residual_max(self) -> float:
        """The largest residual-stream magnitude the norms saw."""
        return max([v["in"] for v in self.stats.values() if v.get("in")] + [1.0])


def _stat_json(v):
    """An operator statistic as JSON (numpy scalars and arrays exactly, floats as hex)."""
    a = np.asarray(v)
    return {"dtype": a.dtype.str, "shape": list(a.shape), "hex": a.tobytes().hex()}


def calibrate(model, batches, info: dict | None = None, stats: dict | None = None) -> Calibration:
    """Run the float ``model`` (Llama family) on ``batches`` (dicts of inputs or id tensors) and
    keep what the conversion needs; ``stats``, the operators' statistics already observed on the
    same batches (:attr:`spikeops.gen.llm.session.Session.stats`), are taken as they are."""
    from ..calibrate import observe
    from ..sites import discover

    t0 = time.perf_counter()
    batches = list(batches)
    sites = observe_sites(model, batches)
    if stats is None:
        stats = observe(model, discover(model, "llama"), batches)
    info = dict(info or {}, seconds=round(time.perf_counter() - t0, 2))
    return Calibration(sites, stats, info)


@dataclass
class Run:
    """One forward pass: the hidden state before the LM head, how many steps ran, whether the
    network settled (a step with no activity was seen), the settle steps per layer (``"final"``
    for the final norm) and overall, and, when asked for, the totals of every site and the
    activity report (:mod:`.activity`)."""

    hidden: torch.Tensor
    steps: int
    settled: bool
    settle_steps: int | None
    settle_per_layer: dict
    records: dict | None = None
    activity: dict | None = None
    seconds: float = 0.0
    #: ``{t: hidden}``: the hidden state the same network at ``T = t`` gives, for each asked-for
    #: checkpoint ``t`` (:meth:`SpikingLlama.run`)
    hidden_at: dict = field(default_factory=dict)


class _Body(nn.Module):
    """``model.model`` of the converted network: ids in, ``last_hidden_state`` out (what the
    scoring code and lm-eval call, with the LM head ``model.lm_head`` applied separately)."""

    def __init__(self, owner):
        super().__init__()
        self._owner = [owner]

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, **kwargs):
        from transformers.modeling_outputs import BaseModelOutputWithPast

        run = self._owner[0].run(input_ids, attention_mask, position_ids)
        return BaseModelOutputWithPast(last_hidden_state=run.hidden)

    def views(self, keys, input_ids=None, attention_mask=None, position_ids=None) -> dict:
        """``{T: last_hidden_state}`` of the same network at each time-step count of ``keys`` (at
        most the network's own ``T``), all from one run (:meth:`SpikingLlama.run`'s checkpoints):
        the scoring code's views (:func:`spikeops.gen.llm.scoring.score_tokens`)."""
        return self._owner[0].run(input_ids, attention_mask, position_ids, checkpoints=keys).hidden_at


class SpikingLlama(nn.Module):
    """The converted network (module docstring).  ``snn`` is its :class:`SNNConfig`, ``scales`` the
    quantiser scales, ``F`` the residual grid, ``last_run`` the last :class:`Run`."""

    def __init__(self, model, snn: SNNConfig, calibration: Calibration, plan):
        super().__init__()
        self._hf = [model]
        self.snn, self.calibration, self.plan = snn, calibration, plan
        self.config = model.config
        self.embed_tokens = model.model.embed_tokens
        self.rotary = model.model.rotary_emb
        self.lm_head = model.lm_head
        self.model = _Body(self)
        missing = [f"model.layers.{i}.{s}" for i in range(len(model.model.layers)) for s in SITES
                   if f"model.layers.{i}.{s}" not in calibration.sites]
        if missing:
            raise ValueError(f"snn: the calibration has no observation of {missing[0]} "
                             f"({len(missing)} sites missing); calibrate this model first")
        self.factors = smoothing_factors(model, calibration.sites, snn.smooth)
        self.scales = calibration.scales(snn, self.factors)
        ops = _plan_ops(plan, snn, len(model.model.layers))
        self.F = _residual_grid(model, snn, self.scales, calibration.residual_max(), self.factors)
        self.Rb = rope_bits(self.rotary, snn.P)
        self.layers = []
        for i, layer in enumerate(model.model.layers):
            sc = {s: self.scales[f"model.layers.{i}.{s}"] for s in SITES}
            self.layers.append(SpikingLayer(layer, i, snn, sc, ops[i], self.F, self.Rb, self.factors[i]))
        self.final = FinalNorm(model.model.norm, ops["final"], snn, self.F, len(self.layers))
        #: the scoring code bounds its packs by a spiking softmax's d_max found on a module
        self.spikeops_softmax = min((layer.softmax.cfg for layer in self.layers), key=lambda c: c.d_max)
        self.last_run: Run | None = None

    # -- configuration ------------------------------------------------------------------------------
    def with_config(self, snn: SNNConfig) -> "SpikingLlama":
        """The same float model, calibration and plan converted at ``snn``."""
        return SpikingLlama(self._hf[0], snn, self.calibration, self.plan)

    def describe(self) -> dict:
        """JSON: the configuration, scales, grids and the operators' configurations per site."""
        return {"snn": self.snn.to_json(), "network_hash": self.snn.network_hash(), "F": self.F,
                "Rb": self.Rb, "scales": self.scales,
                "operators": {op.name: {"op": op.rec.name, "config": op.cfg.to_json(),
                                        "input_rescale": repr(op.requant)}
                              for layer in self.layers for op in layer.ops.values()}}

    def set_recorder(self, recorder):
        """Offer every integer operator evaluation's input codes to ``recorder``
        (:class:`spikeops.gen.llm.capture.Recorder`), or stop with None."""
        for layer in self.layers:
            for op in layer.ops.values():
                op.recorder = recorder
        self.final.op.recorder = recorder

    # -- running -------------------------------------------------------------------------------------
    def run(self, input_ids, attention_mask=None, position_ids=None, *, record: bool = False,
            activity: bool = False, checkpoints=()) -> Run:
        """One forward pass (module docstring); ``record`` keeps every site's total, ``activity``
        counts spikes, operations and energy.

        ``checkpoints`` (time-step counts ``t``, at most ``T``) adds ``Run.hidden_at[t]``: the hidden
        state of the same network run for ``t`` steps, bit for bit.  Step ``t`` of every layer
        depends only on steps ``<= t`` of its input (the input arrives at step 0, nothing looks
        ahead, and with ``division=plan`` no operator depends on ``T``), so the first ``t`` steps of
        this run are the whole ``T = t`` run and the final norm's output after them is its hidden
        state: one run at the largest ``T`` gives the rows of every smaller one."""
        t0 = time.perf_counter()
        checkpoints = self._checkpoints(checkpoints)
        B, S = input_ids.shape
        valid = valid_mask(attention_mask, B, S)
        pos = position_ids if position_ids is not None else torch.arange(S)[None].expand(B, S)
        rope = rope_tables(self.rotary, pos, self.Rb)
        L, limit = self.snn.per_step, self.snn.steps
        ctr = Activity(self.snn, valid) if activity else None
        with torch.no_grad():
            e = self.embed_tokens(input_ids).to(torch.float64).numpy()
        if np.abs(e).max() * 2.0 ** self.F >= 2.0 ** 62:
            raise OverflowError(f"snn: the embedding at the residual grid 2**-{self.F} overflows int64")
        R0 = torch.from_numpy(round_half_away(np.ldexp(e, self.F)))
        # Layer by layer, each over all its steps: no layer feeds an earlier one and there is no
        # synaptic delay, so this computes exactly what running every layer at step t before any
        # at step t + 1 computes, with one layer's state in memory at a time.  A layer stops at
        # the first step after its input has ended in which nothing in it changed (it is quiet).
        incs = [R0]
        with torch.no_grad():
            for layer in self.layers:
                layer.reset(B, S, valid, rope, L, record)
                out = []
                for t in range(limit):
                    out.append(layer.step(t, incs[t] if t < len(incs) else None, ctr))
                    if t >= len(incs) - 1 and layer.last_active < t:
                        break
                while out and out[-1] is None:
                    out.pop()
                incs = out
                if ctr is not None:
                    ctr.layer_done(layer)
                if not record:
                    layer.release()
            self.final.op.reset((B, S, self.config.hidden_size))
            final_last = -1
            hidden_at = {}
            for t, dR in enumerate(incs):
                if self.final.op.step(dR) is not None or dR is not None:
                    final_last = t
                if t + 1 in checkpoints:
                    hidden_at[t + 1] = self.final.hidden()
        last = max([final_last] + [layer.last_active for layer in self.layers])
        settled = (not self.snn.spiking) or last + 1 < limit
        steps = 1 if not self.snn.spiking else min(limit, last + 2)
        per_layer = {layer.index: layer.last_active + 1 for layer in self.layers}
        per_layer["final"] = final_last + 1
        records = None
        if record:
            records = {"model.embed_tokens": R0, "model.norm.in": self.final.op.X, "model.norm": self.final.op.Y}
            for layer in self.layers:
                records.update(layer.records())
        run = Run(self.final.hidden(), steps, settled, last + 1 if settled else None, per_layer, records)
        for t in checkpoints:  # after the last increment nothing changes any more
            run.hidden_at[t] = hidden_at.get(t, run.hidden)
        if ctr is not None:
            run.activity = ctr.report(self.layers, self.final, steps, per_layer)
        run.seconds = time.perf_counter() - t0
        self.last_run = run
        return run

    def _checkpoints(self, checkpoints) -> tuple:
        """``checkpoints`` checked: time-step counts in ``[1, T]`` of a time-stepped network with
        ``division=plan`` (ValueError naming the value and what is allowed)."""
        out = tuple(sorted({int(t) for t in checkpoints or ()}))
        if not out:
            return out
        if not self.snn.spiking or self.snn.T is None:
            raise ValueError(f"snn: checkpoints {list(out)} are not allowed for {self.snn.describe()}; allowed: "
                             "a time-stepped network with a fixed T")
        if self.snn.division != Division.PLAN:
            raise ValueError(f"snn: checkpoints {list(out)} are not allowed with division={self.snn.division} "
                             "(the operators' grids depend on T); allowed: division=plan")
        bad = [t for t in out if not 1 <= t <= self.snn.T]
        if bad:
            raise ValueError(f"snn: checkpoint T={bad[0]} is out of range; allowed: 1 to the network's T={self.snn.T}")
        return out

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, **kwargs):
        """Logits (a transformers ``CausalLMOutputWithPast``)."""
        from transformers.modeling_outputs import CausalLMOutputWithPast

        run = self.run(input_ids, attention_mask, position_ids)
        with torch.no_grad():
            logits = self.lm_head(run.hidden)
        return CausalLMOutputWithPast(logits=logits)


def _site_factor(name: str, factors):
    """The smoothing factors of quantiser site ``name`` (``model.layers.i.<site>``), or None."""
    if not factors or not name.startswith("model.layers."):
        return None
    i, site = name[len("model.layers."):].split(".", 1)
    f = factors[int(i)] if int(i) < len(factors) else {}
    if not f:
        return None
    if site == "mlp_mid":
        return f["mlp_mid"]
    if site == "v":
        return f["v"]
    if site == "attn_out":
        return o_channels(f["v"], f["groups"], f["head_dim"]).numpy()
    return None


def _plan_ops(plan, snn: SNNConfig, n_layers: int) -> dict:
    """``{layer: {role: (op, cfg)}, "final": (op, cfg)}`` from the plan's instances; the
    (T, L)-division sets the output grid of the operators that feed a quantiser."""
    by_name = {i["name"]: (i["op"], i["config"]) for i in plan.instances}
    roles = {"input_layernorm": "input_layernorm", "softmax": "self_attn",
             "post_attention_layernorm": "post_attention_layernorm", "act_fn": "mlp.act_fn"}
    out = {}
    for i in range(n_layers):
        out[i] = {}
        for role, suffix in roles.items():
            name = f"model.layers.{i}.{suffix}"
            if name not in by_name:
                raise ValueError(f"snn: the conversion plan has no instance {name!r}; allowed: a plan of "
                                 "every operator kind and every layer")
            op, cfg = by_name[name]
            if snn.division == Division.TL and role != "act_fn":  # these feed a quantiser
                cfg = registry.at_grid(cfg, snn.tl_bits)
            out[i][role] = (op, cfg)
    if "model.norm" not in by_name:
        raise ValueError("snn: the conversion plan has no instance 'model.norm'; allowed: a plan of every "
                         "operator kind and every layer")
    out["final"] = by_name["model.norm"]
    return out


def _residual_grid(model, snn: SNNConfig, scales: dict, top: float, factors) -> int:
    need = 0
    for i, layer in enumerate(model.model.layers):
        wt = smoothed_weights(layer, factors[i])
        for key, site in (("o", "attn_out"), ("down", "mlp_mid")):
            sigma = float(quantize_weight(wt[key][0], snn.W)[1].max()) * scales[f"model.layers.{i}.{site}"]
            need = max(need, snn.P - 1 - math.floor(math.log2(sigma)))
    cap = 59 - math.ceil(math.log2(max(top, 1.0)))
    return max(0, min(need, cap))


def convert(model, snn: SNNConfig, calibration: Calibration, plan=None) -> SpikingLlama:
    """``model`` (a Llama-family ``*ForCausalLM``, float, unchanged) as a :class:`SpikingLlama` at
    ``snn``; ``plan`` (:class:`spikeops.gen.llm.plan.Plan`) gives the operators' configurations,
    by default made from the calibration's statistics for every kind and layer."""
    from ..plan import make_plan

    if isinstance(snn, str):
        snn = SNNConfig.parse(snn)
    if plan is None:
        plan = make_plan(model, "llama", stats=calibration.stats)
    return SpikingLlama(model, snn, calibration, plan)
