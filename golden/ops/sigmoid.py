"""Sigmoid, SiLU and GELU: ``x**p * sigmoid(alpha * x)`` from PWL-Exp and one Division Neuron Group.

Number formats: input ``x`` is ``s<in_width>.<in_frac>``; sigmoid's output is unsigned
``u<out_frac+1>.<out_frac>``, SiLU's and GELU's signed ``s<out_width>.<out_frac>`` wide enough for
``|x|`` (no saturation is possible).

With ``y = alpha * x`` (exact: ``alpha`` is the integer ``round(alpha * 2**alpha_frac)``, so ``y``
has ``in_frac + alpha_frac`` fraction bits; ``alpha = 1`` for sigmoid and SiLU) the exponential is
evaluated with the Softmax offset trick so that the whole table on ``[-H, H]`` is used:

    e   = PWL-Exp(H - |y|)           ~ e**H * e**-|y|      (0 once |y| >= 2H)
    one = PWL-Exp(H) = c_K           ~ e**H
    sigmoid(y) = one / (one + e)   if x >= 0,    e / (one + e)   if x < 0

and the Division Neuron Group computes, on magnitudes, ``q = A * 2**shift / B`` with ``B = one + e``:

    sigmoid:   A = one or e,          shift = out_frac
    SiLU/GELU: A = |x| * (one or e),  shift = out_frac - in_frac,  result sign(x) * q

Over the whole input range the only approximation errors are the chords and the cut-off at
``|y| >= 2H`` (``e**-2H`` relative), so real activations far outside ``[-H, H]`` (SmolLM2's MLP
inputs reach -12 and +50) keep the error bound.
"""

from __future__ import annotations

import functools

from dataclasses import dataclass

import numpy as np

from ..config import OperatorConfig
from ..choices import DivArch, Rounding
from ..division import DivisionConfig, divide
from ..exp import ExpConfig, pwl_exp
from ..fixed import FixedFormat, check_codes
from .. import reference

__all__ = ["SigmoidFamilyConfig", "SigmoidConfig", "SiLUConfig", "GELUConfig", "sigmoid", "silu", "gelu"]


#: the PWL-Exp table's parameters as this operator's options name them
_EXP_NAMES = {"out_frac": "exp_frac"}


@dataclass(frozen=True)
class SigmoidFamilyConfig(OperatorConfig):
    """Shared parameters of the sigmoid family (see the module docstring)."""

    in_width: int = 16
    in_frac: int = 8
    out_frac: int = 12
    H: int = 8
    K: int = 256
    exp_frac: int = 12
    slope_frac: int = 8
    div_guard_bits: int = 8
    div_arch: str = "binary"
    rounding: str = "nearest"

    #: x**numerator_power * sigmoid(alpha x); subclasses set these
    numerator_power = 1
    alpha = 1.0

    def _validate(self):
        self._int("in_width", 2, 32)
        self._int("in_frac", 0, self.in_width - 1)
        self._int("out_frac", 1, 24)
        self._int("div_guard_bits", 2, 24)
        self._choice("div_arch", DivArch)
        self._choice("rounding", Rounding)
        self._int("alpha_frac", 0, 16)
        self.exp  # validates H, K, exp_frac, slope_frac (errors name the exp parameter)
        self.division

    alpha_frac = 0

    @functools.cached_property
    def alpha_code(self) -> int:
        return round(self.alpha * (1 << self.alpha_frac))

    @functools.cached_property
    def in_format(self) -> FixedFormat:
        return FixedFormat(self.in_width, self.in_frac, signed=True)

    @functools.cached_property
    def out_format(self) -> FixedFormat:
        if self.numerator_power == 0:
            return FixedFormat(self.out_frac + 1, self.out_frac, signed=False)
        return FixedFormat(self.division.q_width + 1, self.out_frac, signed=True)

    @functools.cached_property
    def exp(self) -> ExpConfig:
        frac = self.in_frac + self.alpha_frac
        y_max = ((1 << (self.in_width - 1)) - 1) * self.alpha_code
        arg_width = (y_max + (self.H << frac)).bit_length() + 1
        return self.sub_config(ExpConfig, _EXP_NAMES, in_width=arg_width, in_frac=frac, H=self.H,
                               K=self.K, out_frac=self.exp_frac, slope_frac=self.slope_frac)

    @functools.cached_property
    def division(self) -> DivisionConfig:
        e_width = self.exp.out_width
        if self.numerator_power == 0:
            num_width, shift, q_width = e_width, self.out_frac, self.out_frac + 1
        else:
            num_width = self.in_width - 1 + e_width
            shift = self.out_frac - self.in_frac
            q_width = max(1, self.in_width - 1 - self.in_frac + self.out_frac)
        return DivisionConfig(num_width=num_width, den_width=e_width + 1, shift=shift,
                              q_width=q_width, theta_bits=q_width + self.div_guard_bits,
                              arch=self.div_arch, rounding=self.rounding)

    def primitives(self) -> dict:
        return {"exp": self.exp, "division": self.division}

    def own_derived(self) -> dict:
        return {"alpha_code": self.alpha_code}


@dataclass(frozen=True)
class SigmoidConfig(SigmoidFamilyConfig):
    """sigmoid(x) = 1 / (1 + e**-x); output ``u<out_frac+1>.<out_frac>``."""

    kind = "sigmoid"
    numerator_power = 0
    #: theta as wide as the 25-bit denominator: the division is exact (and the model faster)
    div_guard_bits: int = 12

    def reference(self, x):
        return reference.sigmoid(x)


@dataclass(frozen=True)
class SiLUConfig(SigmoidFamilyConfig):
    """SiLU(x) = x * sigmoid(x)."""

    kind = "silu"

    def reference(self, x):
        return reference.silu(x)


@dataclass(frozen=True)
class GELUConfig(SigmoidFamilyConfig):
    """GELU(x) ~ x * sigmoid(1.702 x); 1.702 is the integer ``alpha_code`` over ``2**alpha_frac``."""

    kind = "gelu"
    alpha = reference.GELU_ALPHA
    alpha_frac: int = 10

    def reference(self, x):
        return reference.gelu_sigmoid(x)

    @property
    def also_against(self) -> dict:
        """Other exact functions the error report measures this form against, for information:
        the erf form transformers' ``gelu`` computes."""
        return {"erf_gelu": reference.gelu_erf}


def _sigmoid_family(x, cfg: SigmoidFamilyConfig) -> np.ndarray:
    x = check_codes(x, cfg.in_format, owner=cfg.kind)
    ecfg = cfg.exp
    y_abs = np.abs(x) * cfg.alpha_code if cfg.alpha_code != 1 else np.abs(x)
    e = pwl_exp(ecfg.H_codes - y_abs, ecfg)
    one = ecfg.one_code
    num = np.where(x >= 0, one, e)
    if cfg.numerator_power:
        num = num * np.abs(x)
    q = divide(num, one + e, cfg.division, check=False)
    return q if cfg.numerator_power == 0 else np.where(x < 0, -q, q)


def sigmoid(x, cfg: SigmoidConfig = SigmoidConfig()) -> np.ndarray:
    """sigmoid of ``s<in_width>.<in_frac>`` codes as ``u<out_frac+1>.<out_frac>`` codes."""
    return _sigmoid_family(x, cfg)


def silu(x, cfg: SiLUConfig = SiLUConfig()) -> np.ndarray:
    """SiLU of ``s<in_width>.<in_frac>`` codes as ``cfg.out_format`` codes."""
    return _sigmoid_family(x, cfg)


def gelu(x, cfg: GELUConfig = GELUConfig()) -> np.ndarray:
    """GELU (sigmoid form) of ``s<in_width>.<in_frac>`` codes as ``cfg.out_format`` codes."""
    return _sigmoid_family(x, cfg)
