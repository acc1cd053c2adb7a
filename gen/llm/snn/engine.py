"""One decoder layer of the converted Llama, as integers, one time step at a time.

Number formats (all totals int64; ``F`` is the residual grid, ``s_x`` the quantiser scale of site x):

* residual stream ``R``: integers in units ``2**-F``; the embedding enters at step 0 as
  ``round(e * 2**F)``, and o_proj / down_proj write ``M_c * acc`` with ``M_c = round(sigma_c * 2**F)``
  (``sigma_c = s_in * s_w[c]``, the accumulator unit), exactly linear, so per-step writes sum to the
  write of the totals;
* the RMSNorms take ``R`` on their input format by a shift (``2**-F`` to ``2**-in_frac``, rounded half
  up) and emit output codes (``2**-out_frac``);
* neurons (threshold ``2**G``) integrate ``M * increment`` (:class:`.quantizers.Requant`): the norm
  output codes (``attn_in``, ``mlp_in``), the RoPE-rotated q/k accumulators, the v accumulator, the
  Softmax output codes (``p``), the context ``P V`` (``attn_out``) and the SwiGLU product
  (``mlp_mid``);
* RoPE in integers: q_proj and k_proj share one weight scale per rotary pair (channels ``d`` and
  ``d + D/2`` of a head), so ``q'_d = sigma_d (A_d cos + rotate_half(A)_d sin)``; with
  ``c = round(cos * 2**Rb)`` and ``s = round(sin * 2**Rb)`` (per position, shared by all layers) the
  q neuron's current is ``M_d (c A + s rotate_half(A))`` with ``M_d ~ 2**G sigma_d / (s_q 2**Rb)``;
* scores ``Q K^T`` (spike totals, units ``s_q s_k * scaling``) feed the Softmax; its output codes
  the ``p`` neurons; the context ``P V`` (units ``s_p s_v``) the ``attn_out`` neurons;
* SiLU takes the gate accumulator (units ``sigma_gate[c]``, per channel: an integer multiplier);
  the product ``SiLU(gate) * up`` (units ``2**-out_frac * sigma_up[c]``) is accumulated by the
  product rule of :mod:`.layers` and feeds the ``mlp_mid`` neurons.

Every step, layer by layer (no synaptic delay, as in SpikeZIP-TF), each part turns its input
increment into its output increment (None for "nothing"); the QANN is the same code run for one
step with unbounded neurons (:mod:`.neurons`).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .config import SITES
from .layers import IntLinear, OperatorOnTotals, add, product_step
from .neurons import IFNeurons
from .quantizers import Requant, int_matmul, round_half_away
from .smooth import smoothed_weights

__all__ = ["SpikingLayer", "FinalNorm", "rope_bits", "rope_tables", "valid_mask", "share_pair_scales"]


def share_pair_scales(weight, W: int, head_dim: int):
    """``(w_int, s_w)`` of q_proj/k_proj with one scale per rotary pair (channels d, d + D/2)."""
    w = weight.detach().to(torch.float64)
    out = w.shape[0]
    top = (1 << (W - 1)) - 1
    m = w.abs().amax(dim=1).reshape(out // head_dim, 2, head_dim // 2).amax(dim=1)
    s = (m / top).repeat(1, 2).reshape(out)
    s = torch.where(s > 0, s, torch.ones_like(s))
    q = torch.from_numpy(round_half_away((w / s[:, None]).numpy())).clamp_(-top, top)
    return q, s


def rope_bits(rotary, P: int) -> int:
    """``Rb = P - 1 - floor(log2 a)``, ``a`` the rotary embedding's ``attention_scaling`` (the
    largest ``|cos|``, at position 0): the tables get P-bit entries."""
    a = float(getattr(rotary, "attention_scaling", 1.0) or 1.0)
    return P - 1 - math.floor(math.log2(a))


def rope_tables(rotary, positions: torch.Tensor, Rb: int):
    """``(c, s)``: ``round(cos * 2**Rb)``, ``round(sin * 2**Rb)`` (int64, ``(B, S, D)``, half away
    from zero) from the model's rotary embedding at ``positions``."""
    dummy = torch.zeros((), dtype=torch.float64)
    with torch.no_grad():
        cos, sin = rotary(dummy, positions)
    c = torch.from_numpy(round_half_away(np.ldexp(cos.to(torch.float64).numpy(), Rb)))
    s = torch.from_numpy(round_half_away(np.ldexp(sin.to(torch.float64).numpy(), Rb)))
    return c, s


def valid_mask(attention_mask, B: int, S: int) -> torch.Tensor:
    """Bool ``(B, 1, S, S)``: True where query i attends key j (causal, and the padding of a 2-D
    mask; a 4-D mask, bool or additive with the dtype minimum for masked, is taken as given)."""
    causal = torch.tril(torch.ones((S, S), dtype=torch.bool))[None, None]
    if attention_mask is None:
        return causal.expand(B, 1, S, S)
    m = attention_mask
    if m.dim() == 2:
        return causal & m.bool()[:, None, None, :]
    if m.dim() == 4:
        if m.dtype != torch.bool:
            m = m > torch.finfo(m.dtype).min / 2
        return m[:, :1] if m.shape[1] > 1 and bool((m == m[:, :1]).all()) else m
    raise ValueError(f"snn: attention_mask of shape {tuple(m.shape)} is not allowed; allowed: (B, S) or "
                     "(B, 1, S, S)")


def _rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def _heads(x, B, S, n, D):
    """``(B, S, n*D)`` -> ``(B, n, S, D)`` (contiguous)."""
    return x.reshape(B, S, n, D).transpose(1, 2).contiguous()


class SpikingLayer:
    """A Llama decoder layer's integer parameters and, during a run, its state (module docstring).

    ``scales``: ``{site: s}`` of this layer's quantisers (keys of :data:`.observe.SITES`);
    ``ops``: ``{"input_layernorm"|"softmax"|"post_attention_layernorm"|"act_fn": (op, cfg)}``;
    ``F``: the residual grid; ``Rb``: the RoPE tables' fraction bits; ``factors``: the smoothing
    factors of this layer (:mod:`.smooth`)."""

    #: the quantiser site whose neurons feed each linear layer
    LIN_SOURCE = {"q": "attn_in", "k": "attn_in", "v": "attn_in", "o": "attn_out", "gate": "mlp_in",
                  "up": "mlp_in", "down": "mlp_mid"}

    def __init__(self, layer, index: int, snn, scales: dict, ops: dict, F: int, Rb: int, factors=None):
        sa, mlp = layer.self_attn, layer.mlp
        for part in ("q_proj", "k_proj", "v_proj", "o_proj"):
            if not hasattr(sa, part):
                raise ValueError(f"snn: layer {index} has no self_attn.{part}; allowed: Llama-family layers")
        for extra in ("q_norm", "k_norm"):
            if getattr(sa, extra, None) is not None:
                raise ValueError(f"snn: layer {index} has self_attn.{extra}; allowed: Llama-family layers "
                                 "without query/key norms")
        self.index, self.prefix, self.snn = index, f"model.layers.{index}.", snn
        p = self.prefix
        self.D = sa.head_dim
        self.H = sa.q_proj.out_features // self.D
        self.Hkv = sa.k_proj.out_features // self.D
        self.groups = self.H // self.Hkv
        self.scaling = float(sa.scaling)
        self.s = dict(scales)
        W, P = snn.W, snn.P
        s = self.s
        wt = smoothed_weights(layer, factors or {})
        pair = lambda name: share_pair_scales(wt[name][0], W, self.D)
        mk_lin = lambda name, site, part, quant=None: IntLinear(*wt[name], W, s[site], f"{p}{part}", quant)
        self.lin = {"q": mk_lin("q", "attn_in", "self_attn.q_proj", pair("q")),
                    "k": mk_lin("k", "attn_in", "self_attn.k_proj", pair("k")),
                    "v": mk_lin("v", "attn_in", "self_attn.v_proj"),
                    "o": mk_lin("o", "attn_out", "self_attn.o_proj"),
                    "gate": mk_lin("gate", "mlp_in", "mlp.gate_proj"),
                    "up": mk_lin("up", "mlp_in", "mlp.up_proj"),
                    "down": mk_lin("down", "mlp_mid", "mlp.down_proj")}
        n1, sm, n2, act = ops["input_layernorm"], ops["softmax"], ops["post_attention_layernorm"], ops["act_fn"]
        mk = lambda op_cfg, sigma, name, **kw: OperatorOnTotals(op_cfg[0], op_cfg[1], sigma, ops=snn.ops, P=P,
                                                               name=name, layer=index, **kw)
        self.norm1 = mk(n1, 2.0 ** -F, f"{p}input_layernorm", **_norm_weights(n1[1], layer.input_layernorm))
        self.norm2 = mk(n2, 2.0 ** -F, f"{p}post_attention_layernorm",
                        **_norm_weights(n2[1], layer.post_attention_layernorm))
        sig_s = s["q"] * s["k"] * self.scaling  # scores on 2**-e: exact codes when in_frac >= e
        self.softmax = mk(sm, sig_s, f"{p}self_attn")
        self.act = mk(act, self.lin["gate"].sigma.numpy(), f"{p}mlp.act_fn")
        # rescaling into the neurons (threshold 2**G) and into the residual stream (2**-F)
        hd = (self.H, self.D)
        self.rq = {
            "attn_in": Requant(2.0 ** -self.norm1.out_fmt.frac / s["attn_in"], P, min_G=1, site=p + "attn_in"),
            "q": Requant((self.lin["q"].sigma.numpy() / (s["q"] * 2.0 ** Rb)).reshape(hd), P, min_G=1, site=p + "q"),
            "k": Requant((self.lin["k"].sigma.numpy() / (s["k"] * 2.0 ** Rb)).reshape(self.Hkv, self.D), P,
                         min_G=1, site=p + "k"),
            "v": Requant(self.lin["v"].sigma.numpy() / s["v"], P, min_G=1, site=p + "v"),
            "p": Requant(2.0 ** -self.softmax.out_fmt.frac / s["p"], P, min_G=1, site=p + "p"),
            "attn_out": Requant(s["p"] * s["v"] / s["attn_out"], P, min_G=1, site=p + "attn_out"),
            "mlp_in": Requant(2.0 ** -self.norm2.out_fmt.frac / s["mlp_in"], P, min_G=1, site=p + "mlp_in"),
            "mlp_mid": Requant(2.0 ** -self.act.out_fmt.frac * self.lin["up"].sigma.numpy() / s["mlp_mid"], P,
                               min_G=1, site=p + "mlp_mid"),
            "res_o": Requant(self.lin["o"].sigma.numpy() * 2.0 ** F, P, fixed_G=0, site=p + "self_attn.o_proj"),
            "res_down": Requant(self.lin["down"].sigma.numpy() * 2.0 ** F, P, fixed_G=0, site=p + "mlp.down_proj"),
        }
        # static bounds on every rescaled increment: the run-time overflow guards are skipped
        # wherever they prove that no product leaves 62 bits
        half = {site: 1 << (snn.bits(site) - 1) for site in SITES}
        src = self.LIN_SOURCE
        acc = {k: v.in_features * half[src[k]] * snn.w_max + (0 if v.bias is None else int(v.bias.abs().max()))
               for k, v in self.lin.items()}
        rq = self.rq
        rq["attn_in"].bound(2 * self.norm1.out_fmt.max_code)
        rq["q"].bound(2 * (1 << snn.P) * acc["q"])
        rq["k"].bound(2 * (1 << snn.P) * acc["k"])
        rq["v"].bound(acc["v"])
        rq["p"].bound(2 * self.softmax.out_fmt.max_code)
        rq["attn_out"].bound(2 * self.softmax.cfg.d_max * half["p"] * half["v"])
        rq["mlp_in"].bound(2 * self.norm2.out_fmt.max_code)
        rq["mlp_mid"].bound(4 * self.act.out_fmt.max_code * acc["up"])
        rq["res_o"].bound(acc["o"])
        rq["res_down"].bound(acc["down"])
        self.act.requant.bound(acc["gate"])
        self.softmax.requant.bound(2 * self.D * half["q"] * half["k"])
        self.ops = {"input_layernorm": self.norm1, "softmax": self.softmax,
                    "post_attention_layernorm": self.norm2, "act_fn": self.act}

    # -- a run -----------------------------------------------------------------------------------------
    def reset(self, B: int, S: int, valid: torch.Tensor, rope, L, record: bool):
        hid, inter = self.lin["o"].out_features, self.lin["up"].out_features
        H, Hkv, D = self.H, self.Hkv, self.D
        mk = lambda name, shape: IFNeurons(shape, self.rq[name].G, L, *self.snn.site_levels(name),
                                           self.prefix + name)
        self.n = {"attn_in": mk("attn_in", (B, S, hid)), "q": mk("q", (B, H, S, D)), "k": mk("k", (B, Hkv, S, D)),
                  "v": mk("v", (B, Hkv, S, D)), "p": mk("p", (B, H, S, S)), "attn_out": mk("attn_out", (B, S, H * D)),
                  "mlp_in": mk("mlp_in", (B, S, hid)), "mlp_mid": mk("mlp_mid", (B, S, inter))}
        # a step's spikes: at most L, and the difference of two counts in the levels; without L (the
        # QANN: one step from a zero count) the count itself
        for key, lin in self.lin.items():
            lo, hi = self.snn.site_levels(self.LIN_SOURCE[key])
            lin.in_max = min(L, hi - lo) if L is not None else max(-lo, hi)
        self.norm1.reset((B, S, hid))
        self.norm2.reset((B, S, hid))
        self.softmax.reset((B, H, S, S))
        self.act.reset((B, S, inter))
        self.U = torch.zeros((B, S, inter), dtype=torch.int64)
        self.valid, self.rope, self.B, self.S = valid, rope, B, S
        self.totals = {} if record else None
        self.last_active = -1

    def release(self):
        """Drop the run's state (the neurons, totals), keeping the parameters."""
        self.n, self.U, self.totals, self.rope, self.valid = {}, None, None, None, None
        for op in self.ops.values():
            op.X = op.Y = op._mask = None

    def _keep(self, name, inc):
        if self.totals is not None and inc is not None:
            self.totals[name] = inc.clone() if name not in self.totals else self.totals[name] + inc

    def _rope_current(self, name, acc, n_heads):
        """The q/k neurons' current from the accumulator increment ``acc`` ``(B, S, n*D)``."""
        if acc is None:
            return None
        B, S, D = self.B, self.S, self.D
        a = acc.reshape(B, S, n_heads, D)
        c, s = self.rope[0][:, :, None, :], self.rope[1][:, :, None, :]
        r = c * a + s * _rotate_half(a)
        return self.rq[name].current(r).transpose(1, 2).contiguous()

    def _gqa(self, a, b, transpose_b: bool):
        """``a @ b`` (or ``a @ b^T``) for heads ``a (B, H, S, x)`` against key/value heads
        ``b (B, Hkv, S, y)``: the query heads of a group share their key/value head."""
        B, H, S = a.shape[0], a.shape[1], a.shape[2]
        ar = a.reshape(B, self.Hkv, self.groups * S, a.shape[-1])
        out = int_matmul(ar, b.transpose(-1, -2) if transpose_b else b)
        return out.reshape(B, H, S, out.shape[-1])

    def step(self, t: int, dR: torch.Tensor | None, ctr=None) -> torch.Tensor | None:
        """One time step: the residual increment in, the residual increment out."""
        first, B, S, p = t == 0, self.B, self.S, self.prefix
        n, rq, lin = self.n, self.rq, self.lin
        lead = (B, S)
        d1 = self.norm1.step(dR)
        a = n["attn_in"].step(None if d1 is None else rq["attn_in"].current(d1))
        acc = {k: lin[k](a, first, lead) for k in ("q", "k", "v")}
        for k in ("q", "k", "v"):
            self._keep(lin[k].name, acc[k])
        q = n["q"].step(self._rope_current("q", acc["q"], self.H))
        k = n["k"].step(self._rope_current("k", acc["k"], self.Hkv))
        v_cur = None if acc["v"] is None else _heads(rq["v"].current(acc["v"]), B, S, self.Hkv, self.D)
        v = n["v"].step(v_cur)
        Q, K = n["q"].count, n["k"].count
        dS = product_step(Q if q is None else Q - q, q, K, k, lambda x, y: self._gqa(x, y, True))
        dP = self.softmax.step(dS, self.valid)
        pp = n["p"].step(None if dP is None else rq["p"].current(dP))
        Pc, V = n["p"].count, n["v"].count
        dO = product_step(Pc if pp is None else Pc - pp, pp, V, v, lambda x, y: self._gqa(x, y, False))
        self._keep(p + "self_attn.context", dO)
        o_in = None if dO is None else dO.transpose(1, 2).reshape(B, S, self.H * self.D)
        o = n["attn_out"].step(None if o_in is None else rq["attn_out"].current(o_in))
        acc_o = lin["o"](o, first, lead)
        self._keep(lin["o"].name, acc_o)
        dR_mid = add(dR, None if acc_o is None else rq["res_o"].current(acc_o))
        d2 = self.norm2.step(dR_mid)
        b = n["mlp_in"].step(None if d2 is None else rq["mlp_in"].current(d2))
        acc_g, acc_u = lin["gate"](b, first, lead), lin["up"](b, first, lead)
        self._keep(lin["gate"].name, acc_g)
        self._keep(lin["up"].name, acc_u)
        dSi = self.act.step(acc_g)
        if acc_u is not None:
            self.U += acc_u
        Y = self.act.Y
        dM = product_step(Y if dSi is None else Y - dSi, dSi, self.U, acc_u, torch.mul)
        self._keep(p + "mlp.product", dM)
        m = n["mlp_mid"].step(None if dM is None else rq["mlp_mid"].current(dM))
        acc_d = lin["down"](m, first, lead)
        self._keep(lin["down"].name, acc_d)
        dR_out = add(dR_mid, None if acc_d is None else rq["res_down"].current(acc_d))
        if any(x is not None for x in (d1, a, q, k, v, dP, pp, o, d2, b, dSi, m, acc_o, acc_d)):
            self.last_active = t
        if ctr is not None:
            ctr.layer_step(self, dict(attn_in=a, q=q, k=k, v=v, p=pp, attn_out=o, mlp_in=b, mlp_mid=m),
                           dict(d1=d1, v_cur=v_cur, dSi=dSi, acc_u=acc_u, dM=dM, o_in=o_in, dR=dR, acc=acc,
                                acc_o=acc_o, acc_g=acc_g, acc_d=acc_d, d2=d2, dP=dP))
        return dR_out

    def records(self) -> dict:
        """``{site: total}`` of everything this layer accumulated (after a run with ``record``)."""
        p, out = self.prefix, dict(self.totals or {})
        for name, pop in self.n.items():
            out[p + name] = pop.count
        for key, op in self.ops.items():
            out[op.name + ".in"] = op.X
            out[op.name] = op.Y
        out[p + "mlp.up_proj"] = self.U
        return out


def _norm_weights(cfg, module) -> dict:
    """The norm's gamma as codes (for the integer operator) and real (for the float one)."""
    w = module.weight.detach().to(torch.float64).numpy()
    return {"weights": {"gamma": cfg.quantize_gamma(w)}, "real": {"gamma": w}}


class FinalNorm:
    """The final RMSNorm on the residual totals; its accumulated output is the hidden state."""

    def __init__(self, norm, op_cfg, snn, F: int, layer: int):
        self.op = OperatorOnTotals(op_cfg[0], op_cfg[1], 2.0 ** -F, ops=snn.ops, P=snn.P, name="model.norm",
                                   layer=layer, **_norm_weights(op_cfg[1], norm))

    def hidden(self) -> torch.Tensor:
        """The accumulated output as float32 values (the float boundary before the LM head)."""
        return (self.op.Y.to(torch.float64) * 2.0 ** -self.op.out_fmt.frac).to(torch.float32)

