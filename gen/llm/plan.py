"""The conversion plan: which operator instances are replaced, with which configuration (JSON).

A plan is made from a float model, the selection (kinds, layers), base configurations and the
calibration statistics; it is saved as JSON, reloaded, applied to a model, and read by the RTL
flow (each distinct configuration is one generated operator).  Layout::

    {"format": "spikeops-plan", "version": 1, "model": "smollm2", "family": "llama",
     "kinds": [...], "layers": null | [...], "calibration": {...},
     "instances": [{"name": "model.layers.0.mlp.act_fn", "op": "silu", "kind": "activation",
                    "layer": 0, "config": {"kind": "silu", "params": {...}, "derived": {...}},
                    "stats": {"in": 12.5, "out": 12.5}}, ...]}
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from spikeops.golden import registry

from ..files import write_atomic
from .calibrate import calibrated
from .sites import KINDS, activation, discover, n_layers

__all__ = ["Plan", "make_plan", "apply_plan", "check_plan", "default_config", "FORMAT"]

FORMAT = "spikeops-plan"
VERSION = 1


@dataclass
class Plan:
    model: str
    family: str
    kinds: list
    layers: list | None
    instances: list  # dicts: name, op, kind, layer, config (a config object), stats
    calibration: dict = field(default_factory=dict)
    #: the quantised or spiking network the operators run in (:class:`spikeops.gen.llm.snn.SNNConfig`;
    #: ``spikeops convert --snn``), None for the float model with its operators replaced
    snn: object = None

    def to_json(self) -> dict:
        inst = [dict(i, config=i["config"].to_json()) for i in self.instances]
        out = {"format": FORMAT, "version": VERSION, "model": self.model, "family": self.family,
               "kinds": list(self.kinds), "layers": self.layers, "calibration": self.calibration,
               "instances": inst}
        if self.snn is not None:
            out["snn"] = self.snn.to_json()
        return out

    @classmethod
    def from_json(cls, data: dict, source: str = "plan") -> "Plan":
        """The plan of parsed JSON ``data``; ValueError naming ``source`` (the file), the field or
        instance, the value and what is allowed when it is not a conversion plan."""
        allowed = "allowed: a plan written by `spikeops convert --plan FILE`"
        if not isinstance(data, dict):
            raise ValueError(f"{source}: a JSON {type(data).__name__}, not a conversion plan; {allowed}")
        if data.get("format") != FORMAT or data.get("version") != VERSION:
            raise ValueError(f"{source}: format {data.get('format')!r} version {data.get('version')!r} "
                             f"is not allowed; allowed: {FORMAT!r} version {VERSION}")
        missing = [k for k in ("model", "family", "kinds", "layers", "instances") if k not in data]
        if missing:
            raise ValueError(f"{source}: no {', '.join(missing)}; {allowed}")
        from .models import FAMILIES
        if data["family"] not in FAMILIES:
            raise ValueError(f"{source}: family={data['family']!r} is not allowed; allowed: {', '.join(FAMILIES)}")
        if not isinstance(data["kinds"], list) or set(data["kinds"]) - set(KINDS):
            raise ValueError(f"{source}: kinds={data['kinds']!r} is not allowed; allowed: a list of {', '.join(KINDS)}")
        if data["layers"] is not None and (not isinstance(data["layers"], list)
                                           or not all(isinstance(i, int) for i in data["layers"])):
            raise ValueError(f"{source}: layers={data['layers']!r} is not allowed; allowed: null or a list of indices")
        if not isinstance(data["instances"], list):
            raise ValueError(f"{source}: instances is not a list; {allowed}")
        inst = [_instance(i, j, source) for j, i in enumerate(data["instances"])]
        snn = None
        if data.get("snn") is not None:
            from .snn.config import SNNConfig
            try:
                snn = SNNConfig.from_json(data["snn"])
            except (ValueError, TypeError, KeyError) as err:
                raise ValueError(f"{source}: snn={data['snn']!r} is not allowed ({err}); allowed: a network "
                                 "written by `spikeops convert --snn SPEC`") from None
        return cls(data["model"], data["family"], data["kinds"], data["layers"], inst, data.get("calibration", {}),
                   snn)

    def save(self, path) -> Path:
        return write_atomic(path, json.dumps(self.to_json(), indent=1) + "\n")

    @classmethod
    def load(cls, path) -> "Plan":
        """Read a plan file: FileNotFoundError when there is none, ValueError naming the file when it
        is not a conversion plan (not JSON, truncated, a field or a configuration refused)."""
        path = Path(path)
        if not path.is_file():
            what = "is a folder, not a file" if path.is_dir() else "does not exist"
            raise FileNotFoundError(f"plan: {path} {what} (write one with `spikeops convert --plan FILE`)")
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"plan: {path} is not JSON ({err}); the file is truncated or not a plan; "
                             "allowed: a plan written by `spikeops convert --plan FILE`") from None
        return cls.from_json(data, source=f"plan: {path}")

    def configs(self) -> dict:
        """``{(op, config hash): config}``: the distinct operators the RTL flow has to generate."""
        out = {}
        for i in self.instances:
            out.setdefault((i["op"], i["config"].stable_hash()), i["config"])
        return out

    def by_kind(self) -> dict:
        out = {k: [] for k in KINDS}
        for i in self.instances:
            out[i["kind"]].append(i["name"])
        return out


_INSTANCE_KEYS = ("name", "op", "kind", "layer", "config")


def _instance(i, j: int, source: str) -> dict:
    """Instance ``j`` of a plan's JSON with its configuration object (ValueError naming it)."""
    if not isinstance(i, dict) or any(k not in i for k in _INSTANCE_KEYS):
        raise ValueError(f"{source}: instance {j} is not an object with {', '.join(_INSTANCE_KEYS)}; "
                         "allowed: instances as `spikeops convert` writes them")
    try:
        return dict(i, config=registry.get(i["op"]).config_from_json(i["config"]))
    except (ValueError, TypeError, KeyError, AttributeError) as err:
        kind = "" if isinstance(err, ValueError) else f"{type(err).__name__}: "
        raise ValueError(f"{source}: instance {i['name']!r}: {kind}{err}") from None


#: where a Hugging Face configuration keeps its normalisation epsilon (Llama, BERT, others)
_EPS_ATTRS = ("rms_norm_eps", "layer_norm_eps", "norm_eps")


def default_config(op: str, hf_config):
    """The operator's default configuration sized for the model: rows of a fixed ``d`` get the
    hidden size (and the model's ``eps``), rows up to ``d_max`` the model's own context
    (``max_position_embeddings``: 8,192 positions for SmolLM2, 512 for MiniLM; 2048 when the model
    does not say), so any prompt the model takes fits; a smaller ``d_max`` stays a choice
    (``--set softmax.d_max=N``), and :func:`apply_plan` then refuses a longer input before its
    forward pass starts; the model's activation gets the changes that make it
    the function the model declares (GELU's form from ``hidden_act``)."""
    rec = registry.get(op)
    changes = {}
    if rec.kind == "activation" and hasattr(hf_config, "hidden_act"):
        act_op, act_changes = activation(hf_config)
        if act_op == rec.name:
            changes.update(act_changes)
    if rec.fixed_row_length(rec.default()) is not None:
        changes[rec.row_param] = hf_config.hidden_size
        if "eps" in rec.default().params():
            eps = next((getattr(hf_config, a) for a in _EPS_ATTRS if getattr(hf_config, a, None) is not None), None)
            if eps is not None:
                changes["eps"] = float(eps)
    elif rec.row_param is not None:
        changes[rec.row_param] = int(getattr(hf_config, "max_position_embeddings", None) or 2048)
    return rec.default(**changes)


def _select(model, family, kinds, layers):
    bad = set(kinds) - set(KINDS)
    if bad:
        raise ValueError(f"convert: kinds {sorted(bad)} are unknown; allowed: {', '.join(KINDS)}")
    n = n_layers(model, family)
    if layers is not None:
        layers = sorted({int(i) for i in layers})
        for i in layers:
            if not 0 <= i < n:
                raise ValueError(f"convert: layer {i} does not exist; allowed: 0 .. {n - 1}")
    out = []
    for s in discover(model, family):
        if s.kind not in kinds:
            continue
        inside = 0 <= s.layer < n
        # the embedding / final norms belong to no layer: converted only when all layers are
        if (layers is None) or (inside and s.layer in layers):
            out.append(s)
    return out, layers


def make_plan(model, family: str, *, name: str = "model", kinds=KINDS, layers=None, configs=None,
              stats=None, calibration=None) -> Plan:
    """Choose every selected instance's configuration: base config, calibrated scales, fitted gamma."""
    from .operators import fit_gamma

    sites, layers = _select(model, family, kinds, layers)
    configs, stats = dict(configs or {}), dict(stats or {})
    inst = []
    for s in sites:
        cfg = configs.get(s.op) or default_config(s.op, model.config)
        cfg = calibrated(cfg, stats.get(s.name))
        if s.kind == "norm":
            cfg = fit_gamma(cfg, s.module.weight.detach().cpu().double().numpy())
        inst.append({"name": s.name, "op": s.op, "kind": s.kind, "layer": s.layer, "config": cfg,
                     "stats": stats.get(s.name)})
    return Plan(name, family, [k for k in KINDS if k in kinds], layers, inst, dict(calibration or {}))


def check_plan(model, plan: Plan) -> dict:
    """``{instance name: site}`` of ``plan`` in ``model``; ValueError naming the plan's model, the
    instance and what differs when the plan was made for another model (another family, an
    instance the model lacks or runs as another operator, a norm of another width)."""
    from .models import family_of

    made = f"plan made for {plan.model!r} ({plan.family})"
    allowed = "allowed: a plan made for this model (spikeops convert --model ... --plan FILE)"
    family = family_of(model.config)
    if family != plan.family:
        raise ValueError(f"{made}: this model is a {family} model; {allowed}")
    sites = {s.name: s for s in discover(model, plan.family)}
    out = {}
    for i in plan.instances:
        s = sites.get(i["name"])
        if s is None:
            raise ValueError(f"plan: instance {i['name']!r} does not exist in this {plan.family} model "
                             f"({made}); {allowed}")
        if s.op != i["op"]:
            raise ValueError(f"plan: instance {i['name']!r} is op {i['op']!r} in the plan but "
                             f"{s.op!r} in the model ({made}); {allowed}")
        if s.kind == "norm":
            d = s.module.weight.shape[-1]
            if i["config"].d != d:
                raise ValueError(f"plan: instance {s.name!r} has d={i['config'].d}; the model's is {d} "
                                 f"({made}); {allowed}")
        out[i["name"]] = s
    return out


def apply_plan(model, plan: Plan) -> dict:
    """Replace the plan's instances in ``model`` (in place); return ``{kind: [names]}``.  The plan is
    checked against the model first (:func:`check_plan`), so a refused plan changes nothing."""
    from .attention import ATTENTION_NAME, register_attention
    from .operators import SpikingActivation, SpikingLayerNorm, SpikingRMSNorm

    used = check_plan(model, plan)
    softmax_seen = False
    for s in discover(model, plan.family):  # attention modules not in the plan keep the float softmax
        if s.attention:
            s.module.spikeops_softmax = None
    for i in plan.instances:
        s = used[i["name"]]
        cfg, old = i["config"], s.module
        if s.kind == "norm":
            if "beta" in registry.get(s.op).weights:
                new = SpikingLayerNorm(cfg, old.weight, getattr(old, "bias", None), s.name, s.layer, fit=False)
            else:
                new = SpikingRMSNorm(cfg, old.weight, s.name, s.layer, fit=False)
            setattr(s.parent, s.attr, new)
        elif s.kind == "activation":
            setattr(s.parent, s.attr, SpikingActivation(s.op, cfg, s.name, s.layer))
        else:
            old.spikeops_softmax = cfg
            old.spikeops_site = (s.name, s.layer)
            softmax_seen = True
    if softmax_seen:
        register_attention()
        model.set_attn_implementation(ATTENTION_NAME)
    guard_length(model, plan)
    return plan.by_kind()


def longest_row(plan: Plan):
    """``(positions, instance name, row parameter)``: the longest row every masked-row operator of
    ``plan`` (the attention softmax) takes, with the instance that limits it; None without one."""
    limit = None
    for i in plan.instances:
        rec = registry.get(i["op"])
        if rec.masked and rec.row_param is not None:
            n = rec.row_length(i["config"])
            if limit is None or n < limit[0]:
                limit = (n, i["name"], rec.row_param)
    return limit


def guard_length(model, plan: Plan) -> None:
    """Refuse, before the forward pass starts, an input whose attention rows (its tokens plus any
    cached ones) are longer than the converted softmax takes: a ValueError naming the length, the
    limiting instance and its ``d_max``, and how to convert for longer rows.  Replaces the guard of
    an earlier plan; without a converted softmax there is none."""
    old = getattr(model, "_spikeops_length_guard", None)
    if old is not None:
        old.remove()
        model._spikeops_length_guard = None
    limit = longest_row(plan)
    if limit is None:
        return
    n_max, name, param = limit
    positions = getattr(model.config, "max_position_embeddings", None)

    def check(module, args, kwargs):
        x = kwargs.get("input_ids", args[0] if args else None)
        if x is None:
            x = kwargs.get("inputs_embeds")
        if x is None or x.dim() < 2:
            return None
        cache = kwargs.get("past_key_values")
        past = int(cache.get_seq_length()) if cache is not None and hasattr(cache, "get_seq_length") else 0
        n = int(x.shape[1]) + past
        if n > n_max:
            more = f" (up to the model's {positions} positions)" if positions else ""
            raise ValueError(f"converted model: an input of {n} positions{f' ({past} cached)' if past else ''} "
                             f"is not allowed; the spiking softmax {name!r} takes rows of {param}={n_max}; "
                             f"allowed: at most {n_max} positions, or convert with --set softmax.{param}=N{more}")
        return None

    model._spikeops_length_guard = model.register_forward_pre_hook(check, with_kwargs=True)
