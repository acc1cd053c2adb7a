"""Activity and energy of one forward pass of the converted network, against the float ANN.

Counted per layer (all positions the batch computes; divide by ``tokens`` for per-token figures):

* **spikes**: per quantiser site, ``units`` (``sum |s_t|``) and ``events`` (nonzero ``s_t``) over all
  steps; spikes per neuron = units / neurons;
* **synaptic operations** (accumulates, AC): a spike into a linear layer reaches every output
  (fan-out ``out_features``); into the attention products, a q spike at query i reaches the valid
  keys of i, a k or v spike at key j the valid queries of j (times the query heads sharing the key
  head), a p spike the ``head_dim`` entries of a value row.  Under ``ac_rule=units`` a spike of
  magnitude m counts m accumulates (what m unary spikes would cost), under ``events`` one;
* **neuron and glue integer operations**: per nonzero input a neuron integrates (one add) after a
  rescaling (one multiply, or a shift when the multiplier is a power of two); every neuron that is
  updated compares (one compare) and every firing neuron subtracts (one add); RoPE rotates an
  accumulator (two multiplies, one add); the residual stream and the SwiGLU product multiply and
  add per nonzero increment;
* **nonlinear operators**: per element evaluated (only changed rows or elements are), the integer
  operation count of the operator's configuration (:func:`op_counts`: adds, compares, shifts, table
  reads, multiplies, from its primitives and its record), plus the boundary (rescale the total,
  round, saturate: one multiply or shift, one add, two compares; the difference and the
  accumulation: two adds).

The ANN the network replaces, on the same positions: multiply-accumulates of every linear layer and
of ``Q K^T`` and ``P V`` over the valid pairs, and the float operators (:func:`float_op_counts`:
exp, divide, multiply, add per element, the divides and square roots per row).

Energy (:class:`.config.EnergyConfig`, pJ): ``AC * e_ac`` + integer operations at their prices,
against ``MAC * e_mac`` + float operations at theirs.
"""

from __future__ import annotations

import torch

from spikeops.golden import registry
from spikeops.golden.division import DivisionConfig
from spikeops.golden.exp import ExpConfig
from spikeops.golden.norm import NormConfig

__all__ = ["op_counts", "float_op_counts", "Activity", "INT_OPS", "FLOAT_OPS"]

INT_OPS = ("add", "cmp", "shift", "table", "mult")
FLOAT_OPS = ("fadd", "fmult", "fexp", "fdiv")


def _bump(d, **kw):
    for k, v in kw.items():
        d[k] = d.get(k, 0) + v
    return d


def op_counts(cfg) -> dict:
    """Integer operations per element of the spiking operator configured by ``cfg`` (module
    docstring), from its primitives' configurations and its record."""
    rec = registry.of_config(cfg)
    out = dict.fromkeys(INT_OPS, 0)
    for prim in cfg.primitives().values():
        if isinstance(prim, ExpConfig):  # clip, segment, offset, slope * offset, shift, + intercept
            _bump(out, cmp=2, table=2, mult=1, add=2, shift=1)
            _bump(out, **({"shift": 1} if prim.index_is_bit_slice else {"mult": 1, "table": 1}))
        elif isinstance(prim, DivisionConfig):  # leading one, theta and current shifts, bias, stage 2
            _bump(out, cmp=1, shift=2, add=1 if prim.rounding == "nearest" else 0)
            if prim.arch == "binary":
                _bump(out, cmp=prim.q_width, add=prim.q_width)
            elif prim.arch == "thermometer":
                _bump(out, cmp=prim.population_size, add=max(0, prim.population_size - 1))
            else:  # temporal: one neuron stepped up to q_max times
                _bump(out, cmp=prim.q_max, add=prim.q_max)
        elif isinstance(prim, NormConfig):  # about one merge per leaf
            if prim.method == "cordic":  # leaf node; align, iterations, renormalise
                _bump(out, shift=2 * prim.iterations + 4, add=2 * prim.iterations + 1, cmp=prim.iterations + 2)
            else:  # x * x, the sum
                _bump(out, mult=1, add=1)
    if rec.masked:  # max, x - m + H, the row sum
        _bump(out, cmp=1, add=2)
    elif rec.shape is registry.Shape.ELEMENTWISE:  # |y|, sign, H - |y|, one + e, x * e, alpha x
        _bump(out, cmp=2, add=2, mult=int(getattr(cfg, "numerator_power", 0) != 0)
              + int(getattr(cfg, "alpha_code", 1) != 1))
    else:  # gamma, sign; centring (and the Helmert contrast j x - S times its constant); beta
        _bump(out, cmp=1, mult=1)
        if getattr(cfg, "centred", False):
            _bump(out, mult=1 + 2 * int(getattr(cfg, "helmert", False)), add=2)
        if "beta" in rec.weights:
            _bump(out, add=1)
    return out


def float_op_counts(cfg) -> tuple[dict, dict]:
    """``(per element, per row)`` float operations of the exact operator ``cfg`` stands for."""
    rec = registry.of_config(cfg)
    if rec.masked:  # max, x - m, exp, sum, times 1/sum; one divide per row
        return {"fadd": 3, "fexp": 1, "fmult": 1}, {"fdiv": 1}
    if rec.shape is registry.Shape.ELEMENTWISE:  # exp, 1 + e, divide, x * sigmoid, alpha x
        return ({"fexp": 1, "fadd": 1, "fdiv": 1,
                 "fmult": int(getattr(cfg, "numerator_power", 0) != 0) + int(getattr(cfg, "alpha_code", 1) != 1)},
                {})
    per = {"fadd": 1, "fmult": 3}  # x*x, sum, times 1/rms, gamma
    if getattr(cfg, "centred", False):
        _bump(per, fadd=2)
    if "beta" in rec.weights:
        _bump(per, fadd=1)
    return per, {"fdiv": 2}  # square root and reciprocal per row


def _price(counts: dict, e) -> float:
    table = {"add": e.e_add, "cmp": e.e_cmp, "shift": e.e_shift, "table": e.e_table, "mult": e.e_mult,
             "fadd": e.e_fadd, "fmult": e.e_fmult, "fexp": e.e_fexp, "fdiv": e.e_fdiv}
    return float(sum(table[k] * v for k, v in counts.items()))


def _nnz(x) -> int:
    return 0 if x is None else int(x.count_nonzero())


def _units(x) -> int:
    return 0 if x is None else int(x.abs().sum())


class Activity:
    """The counters of one run (module docstring); ``layer_step`` is called by every layer each step."""

    def __init__(self, snn, valid):
        self.snn = snn
        v = valid[:, 0].to(torch.int64)
        self.n_k = v.sum(-1)  # (B, S): valid keys of query i
        self.n_q = v.sum(-2)  # (B, S): valid queries of key j
        self.tokens = int(v.shape[0] * v.shape[1])
        self.pairs = int(v.sum())
        self.layers: dict = {}

    def _layer(self, layer):
        c = self.layers.get(layer.index)
        if c is None:
            c = self.layers[layer.index] = {"units": {}, "events": {}, "ac_units": 0, "ac_events": 0,
                                            "int": dict.fromkeys(INT_OPS, 0)}
        return c

    def layer_done(self, layer):
        """Keep what the report needs of a layer whose run is over (its state is then released)."""
        c = self._layer(layer)
        c["neurons"] = {site: int(pop.v.numel()) for site, pop in layer.n.items()}
        c["ops"] = {op.name: _op_report(op, self.snn.energy, layer.H * self.pairs if op.rec.masked else None)
                    for op in layer.ops.values()}

    def layer_step(self, layer, spikes: dict, inc: dict):
        c = self._layer(layer)
        for site, s in spikes.items():
            if s is not None:
                _bump(c["units"], **{site: _units(s)})
                _bump(c["events"], **{site: _nnz(s)})
        lin, g = layer.lin, layer.groups
        fan = {"attn_in": lin["q"].out_features + lin["k"].out_features + lin["v"].out_features,
               "attn_out": lin["o"].out_features, "mlp_in": lin["gate"].out_features + lin["up"].out_features,
               "mlp_mid": lin["down"].out_features}
        for kind, f in (("ac_units", lambda s: s.abs()), ("ac_events", lambda s: (s != 0).to(s.dtype))):
            total = 0
            for site, out in fan.items():
                if spikes[site] is not None:
                    total += int(f(spikes[site]).sum()) * out
            if spikes["q"] is not None:
                total += int((f(spikes["q"]).sum((1, 3)) * self.n_k).sum())
            for site in ("k", "v"):
                if spikes[site] is not None:
                    total += int((f(spikes[site]).sum((1, 3)) * self.n_q).sum()) * g
            if spikes["p"] is not None:
                total += int(f(spikes["p"]).sum()) * layer.D
            c[kind] += total
        ops = c["int"]
        currents = {"attn_in": inc["d1"], "q": inc["acc"]["q"], "k": inc["acc"]["k"], "v": inc["acc"]["v"],
                    "p": inc["dP"], "attn_out": inc["o_in"], "mlp_in": inc["d2"], "mlp_mid": inc["dM"]}
        for site, cur in currents.items():
            nz = _nnz(cur)
            shift = layer.rq[site].is_shift
            _bump(ops, add=nz, mult=0 if shift else nz, shift=nz if shift else 0, cmp=_numel_if(layer.n[site], cur,
                                                                                             spikes[site]))
            _bump(ops, add=_nnz(spikes[site]), shift=_nnz(spikes[site]))
        for key in ("q", "k"):
            nz = _nnz(inc["acc"][key])
            _bump(ops, mult=2 * nz, add=nz)
        for key in ("acc_o", "acc_d"):
            nz = _nnz(inc[key])
            _bump(ops, mult=nz, add=nz)
        nz = _nnz(inc["dSi"]) + _nnz(inc["acc_u"])
        _bump(ops, mult=nz, add=nz + _nnz(inc["acc_u"]))

    # -- the report ------------------------------------------------------------------------------
    def report(self, layers, final, steps: int, settle: dict) -> dict:
        """Per layer and in total: spikes, AC, integer operations, operator evaluations, energies,
        and the ANN's MACs and float operations on the same positions (JSON-ready)."""
        e, rule = self.snn.energy, self.snn.energy.ac_rule
        out_layers, tot = [], {}
        for layer in layers:
            c = self._layer(layer)
            if "ops" not in c:
                self.layer_done(layer)
            neurons, ops_rep = c["neurons"], c["ops"]
            ops_e = sum(r["energy_pj"] for r in ops_rep.values())
            ops_fe = sum(r["float_energy_pj"] for r in ops_rep.values())
            ann_mac = self.tokens * sum(lin.in_features * lin.out_features for lin in layer.lin.values()) \
                + 2 * layer.H * layer.D * self.pairs
            ac = c["ac_units"] if rule == "units" else c["ac_events"]
            e_syn, e_neu = ac * e.e_ac, _price(c["int"], e)
            units = sum(c["units"].values())
            row = {"layer": layer.index, "settle_steps": settle.get(layer.index),
                   "neurons": neurons, "spikes": dict(c["units"]), "events": dict(c["events"]),
                   "spikes_per_neuron": units / max(1, sum(neurons.values())),
                   "ac": ac, "ac_units": c["ac_units"], "ac_events": c["ac_events"], "ann_mac": ann_mac,
                   "int_ops": dict(c["int"]), "operators": ops_rep,
                   "energy_pj": {"synaptic": e_syn, "neurons": e_neu, "operators": ops_e,
                                 "total": e_syn + e_neu + ops_e},
                   "ann_energy_pj": {"mac": ann_mac * e.e_mac, "operators": ops_fe,
                                     "total": ann_mac * e.e_mac + ops_fe}}
            n = max(1, self.tokens)
            row["per_token"] = {"spikes": units / n, "ac": ac / n, "ann_mac": ann_mac / n,
                                "energy_pj": row["energy_pj"]["total"] / n,
                                "ann_energy_pj": row["ann_energy_pj"]["total"] / n}
            out_layers.append(row)
            for k in ("ac", "ac_units", "ac_events", "ann_mac"):
                _bump(tot, **{k: row[k]})
            _bump(tot, spikes=units, neurons=sum(neurons.values()))
            for k, v in row["energy_pj"].items():
                _bump(tot, **{f"energy_{k}": v})
            for k, v in row["ann_energy_pj"].items():
                _bump(tot, **{f"ann_energy_{k}": v})
        fr = _op_report(final.op, e)
        _bump(tot, energy_operators=fr["energy_pj"], energy_total=fr["energy_pj"],
              ann_energy_operators=fr["float_energy_pj"], ann_energy_total=fr["float_energy_pj"])
        n = max(1, self.tokens)
        total = {"tokens": self.tokens, "steps": steps,
                 "spikes_per_neuron": tot.get("spikes", 0) / max(1, tot.get("neurons", 0)),
                 **{f"{k}_per_token": v / n for k, v in tot.items() if k not in ("neurons",)},
                 "ac_over_mac": tot.get("ac", 0) / max(1, tot.get("ann_mac", 0)),
                 "energy_ratio": tot.get("energy_total", 0.0) / max(1e-30, tot.get("ann_energy_total", 0.0)),
                 "operators_share_of_energy": tot.get("energy_operators", 0.0) / max(1e-30, tot.get("energy_total", 0.0)),
                 "final_norm": fr}
        return {"config": self.snn.describe(), "ac_rule": str(rule), "layers": out_layers, "total": total}


def _numel_if(pop, current, spikes) -> int:
    return int(pop.v.numel()) if (current is not None or spikes is not None) else 0


def _op_report(op, e, valid_elements=None) -> dict:
    """Elements an operator instance evaluated, its integer operations and energy, against the float
    operator on every element (the ANN evaluates each once)."""
    per = dict(op_counts(op.cfg)) if not op.float_ops else {}
    boundary = {"shift": 1} if op.requant.exact else {"mult": 1}
    _bump(boundary, add=3, cmp=2)
    counts = {k: (per.get(k, 0) + boundary.get(k, 0)) * op.evaluated for k in INT_OPS}
    f_el, f_row = float_op_counts(op.cfg)
    n_el, n_row = _ann_elements(op, valid_elements)
    fcounts = {k: f_el.get(k, 0) * n_el + f_row.get(k, 0) * n_row for k in FLOAT_OPS}
    return {"op": op.rec.name, "elements_evaluated": op.evaluated, "rows_evaluated": op.rows_evaluated,
            "per_element": per, "int_ops": counts, "energy_pj": _price(counts, e) if not op.float_ops
            else _price(fcounts, e) * op.evaluated / max(1, n_el),
            "float_ops": fcounts, "float_energy_pj": _price(fcounts, e)}


def _ann_elements(op, valid_elements=None) -> tuple[int, int]:
    """Elements and rows the float operator evaluates once (masked rows: the valid entries)."""
    X = op.X
    if X is None:
        return 0, 0
    rows = X.numel() // X.shape[-1] if op.row else 0
    return (int(X.numel()) if valid_elements is None else int(valid_elements)), rows

