"""Sigmoid, SiLU and GELU in hardware (twin of ``golden/ops/sigmoid.py``; same equations).

One element per cycle (II 1).  Pipeline: input register; the sigmoid's argument ``y = p(|x|)``
(a linear ``p``: ``y = alpha * |x|`` in the next stage; a polynomial (GELU's erf and tanh forms):
the clamp ``s = min(|x|, x_clamp)``, ``u = s*s >> in_frac``, one Horner stage per further
coefficient, ``y = h * s``, one register each) and ``z = H - y``; PWL-Exp (2 stages); the Division
Neuron Group on ``A = (one or e) [* |x|]``, ``B = one + e``; the sign and an output register.

Latency = 4 + division latency (``1 + q_width`` for ``binary``, 3 for ``thermometer``), plus
``2 + len(poly)`` for a polynomial argument.
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, signed, unsigned
from amaranth.lib import stream
from amaranth.lib.wiring import In, Out

from spikeops.golden.ops.sigmoid import GELUConfig, SigmoidConfig, SiLUConfig, SigmoidFamilyConfig

from ..division import division_latency, division_stages
from ..exp import exp_latency, exp_stages
from ..pipeline import Pipeline
from ..component import ConfigComponent
from .base import OperatorSignature

__all__ = ["Sigmoid", "SiLU", "GELU"]


def _out_shape(cfg):
    fmt = cfg.out_format
    return signed(fmt.width) if fmt.signed else unsigned(fmt.width)


class _SigmoidFamily(ConfigComponent):
    class Signature(OperatorSignature):
        config_type = SigmoidFamilyConfig

        @classmethod
        def build_members(cls, config):
            return {"i": In(stream.Signature(signed(config.in_width))),
                    "o": Out(stream.Signature(_out_shape(config)))}

    @staticmethod
    def latency_for(config, n: int | None = None) -> int:
        """Cycles from an accepted input to its output with no stalls (``n`` is not used:
        elementwise)."""
        return 2 + exp_latency(config.exp) + division_latency(config.division) + 1 + _argument_stages(config)

    @property
    def latency(self) -> int:
        return self.latency_for(self.config)

    ii = 1

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        ecfg = cfg.exp
        en = ~self.o.valid | self.o.ready
        m.d.comb += self.i.ready.eq(en)
        pipe = Pipeline(m, en, self.i.valid & en, name=cfg.kind)
        s0 = pipe.stage(x=self.i.payload)
        ax = abs(s0.x)
        if _argument_stages(cfg) == 0:
            y = ax * cfg.alpha_code if cfg.alpha_code != 1 else ax
            s1 = pipe.stage(z=(ecfg.H_codes - y).as_signed()[:ecfg.in_width].as_signed(), ax=ax, neg=s0.x < 0)
        else:
            pipe.carry(ax=ax, neg=s0.x < 0)
            y = _argument(pipe, ax, cfg)
            s1 = pipe.stage(z=(ecfg.H_codes - y).as_signed()[:ecfg.in_width].as_signed(),
                            ax=pipe.carried["ax"], neg=pipe.carried["neg"])
        pipe.carry(ax=s1.ax, neg=s1.neg)
        e = exp_stages(pipe, s1.z, ecfg)
        one = ecfg.one_code
        ax, neg = pipe.carried["ax"], pipe.carried["neg"]
        num = Mux(neg, e, one)
        if cfg.numerator_power:
            num = num * ax
        q = division_stages(pipe, num, one + e, cfg.division)
        neg = pipe.carried["neg"]
        result = q if cfg.numerator_power == 0 else Mux(neg, -q, q)
        out = pipe.stage(y=result)
        m.d.comb += [self.o.payload.eq(out.y), self.o.valid.eq(out.valid)]
        return m


def _argument_stages(cfg) -> int:
    """Pipeline stages the polynomial argument adds (0 for a linear ``p``)."""
    return 0 if len(cfg.poly_codes) == 1 else 2 + len(cfg.poly_codes)


def _argument(pipe, ax, cfg):
    """``y = p(min(|x|, x_clamp))`` by Horner's rule, one register per step (golden: ``argument``)."""
    codes, f = cfg.poly_codes, cfg.in_frac
    xc = cfg.x_clamp
    st = pipe.stage(s=Mux(ax > xc, xc, ax)[:xc.bit_length()])
    pipe.carry(s=st.s)
    st = pipe.stage(u=(st.s * st.s) >> f)
    pipe.carry(u=st.u)
    h = Const(codes[-1], signed(max(2, codes[-1].bit_length() + 1)))
    for c in reversed(codes[:-1]):
        st = pipe.stage(h=c + ((h * pipe.carried["u"]) >> f))
        h = st.h
    return pipe.stage(y=h * pipe.carried["s"]).y


class Sigmoid(_SigmoidFamily):
    """Stream sigmoid: ``s<in_width>.<in_frac>`` in, ``u<out_frac+1>.<out_frac>`` out."""

    class Signature(_SigmoidFamily.Signature):
        config_type = SigmoidConfig
        owner = "Sigmoid"


class SiLU(_SigmoidFamily):
    """Stream SiLU: ``s<in_width>.<in_frac>`` in, ``cfg.out_format`` out."""

    class Signature(_SigmoidFamily.Signature):
        config_type = SiLUConfig
        owner = "SiLU"


class GELU(_SigmoidFamily):
    """Stream GELU (of ``cfg.form``: erf, tanh or sigmoid): ``s<in_width>.<in_frac>`` in, ``cfg.out_format`` out."""

    class Signature(_SigmoidFamily.Signature):
        config_type = GELUConfig
        owner = "GELU"
