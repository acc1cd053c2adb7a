"""Sigmoid, SiLU and GELU in hardware (twin of ``golden/ops/sigmoid.py``; same equations).

One element per cycle (II 1), in a :class:`spikeops.hdl.pipeline.CreditPipeline` (no stall
enable in the datapath; an output queue).  Pipeline: input register; ``|x|`` and the sign; the
sigmoid's argument ``y = p(|x|)`` (``alpha * |x|`` in a stage of its own when ``alpha != 1``; a
polynomial (GELU's erf and tanh forms): the clamp ``s = min(|x|, x_clamp)``, ``u = s*s >> in_frac``,
a product and a sum stage per further coefficient, ``y = h * s``); ``z = H - y``; PWL-Exp; the
Division Neuron Group's operands ``A = one or e``, ``B = one + e``, then ``A * |x|`` in a stage of
its own for SiLU and GELU; the division; for SiLU and GELU the quotient registered and the sign in
a stage of its own; the output queue.  Every multiplier sits between registers with no logic on its paths.

Latency (:meth:`_SigmoidFamily.latency_for`): ``argument + 3 + exp latency + numerator + division
latency + sign + 1`` (the output register), with ``numerator = 1`` (+ ``MULTIPLY_STAGES`` for SiLU
and GELU) and ``sign = 2`` for SiLU and GELU, 0 for the sigmoid.  With a polynomial argument the
wide products (``h * u``, ``h * s``) sum their partial products over two stages, a
stage more each (:func:`_sum_stages`), and so does ``num * |x|`` where it takes three or more blocks.
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, signed, unsigned
from amaranth.lib import stream
from amaranth.lib.wiring import In, Out

from spikeops.golden.ops.sigmoid import GELUConfig, SigmoidConfig, SiLUConfig, SigmoidFamilyConfig

from ..carry import negated_if
from ..division import division_latency, division_stages
from ..exp import exp_latency, exp_stages
from ..pipeline import (MULTIPLY_STAGES, CreditPipeline, credit_latency, multiply_latency, multiply_stages,
                        product_sum_stages)
from ..component import OperatorComponent
from .base import OperatorSignature

__all__ = ["Sigmoid", "SiLU", "GELU"]


def _out_shape(cfg):
    fmt = cfg.out_format
    return signed(fmt.width) if fmt.signed else unsigned(fmt.width)


class _SigmoidFamily(OperatorComponent):
    #: the division's leading ones in two stages without a target (the one-stage tree of a 30-bit
    #: operand was the critical path at about 195 MHz)
    LEADING_ONE_STAGES = 2

    class Signature(OperatorSignature):
        config_type = SigmoidFamilyConfig

        @classmethod
        def build_members(cls, config):
            return {"i": In(stream.Signature(signed(config.in_width))),
                    "o": Out(stream.Signature(_out_shape(config)))}

    @classmethod
    def latency_for(cls, config, n: int | None = None) -> int:
        """Cycles from an accepted input to its output with no stalls (``n`` is not used:
        elementwise)."""
        return credit_latency(_argument_stages(config) + 3 + exp_latency(config.exp)
                              + _numerator_stages(config)
                              + division_latency(config.division, **cls.division_options(config))
                              + _sign_stages(config))

    @property
    def latency(self) -> int:
        return self.latency_for(self.config)

    ii = 1

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        ecfg = cfg.exp
        pipe = CreditPipeline(m, self.o, i=self.i, name=cfg.kind)
        s0 = pipe.stage(x=self.i.payload)
        clamp = {"over": (s0.x > cfg.x_clamp) | (s0.x < -cfg.x_clamp)} if len(cfg.poly_codes) > 1 else {}
        s1 = pipe.stage(ax=abs(s0.x), neg=s0.x < 0, **clamp)
        pipe.carry(ax=s1.ax, neg=s1.neg)
        y = _argument(pipe, s1.ax, cfg, over=s1.over if clamp else None)
        z = pipe.stage(z=(ecfg.H_codes - y).as_signed()[:ecfg.in_width].as_signed()).z
        e = exp_stages(pipe, z, ecfg)
        one = ecfg.one_code
        st = pipe.stage(a=Mux(pipe.carried["neg"], e, one), den=one + e)
        a = st.a
        if cfg.numerator_power:
            pipe.carry(den=st.den)
            ax = pipe.carried["ax"]
            if (a.shape(), ax.shape()) != _numerator_shapes(cfg):
                raise RuntimeError(f"{cfg.kind}: num * |x| has shapes {a.shape()}, {ax.shape()}; "
                                   f"the latency assumed {_numerator_shapes(cfg)}")
            a = multiply_stages(pipe, a, ax, sum_stages=product_sum_stages(a.shape(), ax.shape()))
        q = division_stages(pipe, a, pipe.carried.pop("den") if cfg.numerator_power else st.den, cfg.division,
                            **self.division_options(cfg))
        if cfg.numerator_power:   # the sign applied in a stage of its own (a carry chain)
            # the quotient (the saturation's multiplexer) registered, then the sign as one chain
            q = pipe.stage(q=q).q
            q = pipe.stage(y=negated_if(m, q, pipe.carried["neg"], "sign")).y
        pipe.finish(q)
        return m


def _sign_stages(cfg) -> int:
    """The stages that give SiLU's and GELU's quotient the sign of ``x``: the quotient registered,
    then the negation (none for the sigmoid)."""
    return 2 if cfg.numerator_power else 0


def _sum_stages(cfg) -> int:
    """Stages that sum a product's partial products (:func:`spikeops.hdl.pipeline.multiply_stages`)
    in the products of a polynomial argument (``h * u`` and ``h * s``: 22-51 bit operands, up to
    four multiplier blocks each): 2, so that no adder follows another in a cycle off the blocks."""
    return 2 if len(cfg.poly_codes) > 1 else 1


def _product_stages(cfg) -> int:
    """Stages of a polynomial argument's product (``h * u``, ``h * s``)."""
    return multiply_latency(_sum_stages(cfg))


def _numerator_shapes(cfg):
    """The operands of ``num * |x|``: ``num`` (``one`` or ``e``) and ``|x|``."""
    return unsigned(max(cfg.exp.out_width, cfg.exp.one_code.bit_length())), unsigned(cfg.in_width)


def _numerator_stages(cfg) -> int:
    """Stages of the division's operands: ``num`` and ``den``, then ``num * |x|`` for SiLU and GELU
    (its partial products summed in one stage or two: :func:`spikeops.hdl.pipeline.product_sum_stages`)."""
    if not cfg.numerator_power:
        return 1
    return 1 + multiply_latency(product_sum_stages(*_numerator_shapes(cfg)))


def _argument_stages(cfg) -> int:
    """Pipeline stages of the sigmoid's argument ``y = p(|x|)`` before ``z = H - y``: none for
    ``p(x) = x``, one multiplier stage for ``alpha * x``, and for a polynomial the clamp, ``s * s``,
    a product (:func:`_product_stages`) and a sum per further coefficient and the product ``h * s``."""
    if len(cfg.poly_codes) > 1:
        return 1 + MULTIPLY_STAGES + (_product_stages(cfg) + 1) * (len(cfg.poly_codes) - 1) + _product_stages(cfg)
    return 0 if cfg.alpha_code == 1 else MULTIPLY_STAGES


def _argument(pipe, ax, cfg, over=None):
    """``y = p(min(|x|, x_clamp))`` (golden: ``argument``): ``alpha * |x|`` for a linear ``p``, else
    Horner's rule; every multiplier sits between registers.  ``over``: ``|x| > x_clamp``, registered
    beside ``|x|`` (compared on ``x``, so that no compare follows the absolute value's carry chain)."""
    if len(cfg.poly_codes) == 1:
        return ax if cfg.alpha_code == 1 else multiply_stages(pipe, ax, cfg.alpha_code)
    codes, f = cfg.poly_codes, cfg.in_frac
    xc = cfg.x_clamp
    st = pipe.stage(s=Mux(over, xc, ax)[:xc.bit_length()])   # over = |x| > x_clamp, a stage earlier
    pipe.carry(s=st.s)
    pipe.carry(u=multiply_stages(pipe, st.s, st.s) >> f)
    h = Const(codes[-1], signed(max(2, codes[-1].bit_length() + 1)))
    for c in reversed(codes[:-1]):
        p = multiply_stages(pipe, h, pipe.carried["u"], sum_stages=_sum_stages(cfg))
        h = pipe.stage(h=c + (p >> f)).h
    y = multiply_stages(pipe, h, pipe.carried["s"], sum_stages=_sum_stages(cfg))
    del pipe.carried["s"], pipe.carried["u"]
    return y


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
