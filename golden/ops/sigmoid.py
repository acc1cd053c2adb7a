"""Sigmoid, SiLU and GELU: ``x**m * sigmoid(p(x))`` from PWL-Exp and one Division Neuron Group.

Number formats: input ``x`` is ``s<in_width>.<in_frac>``; sigmoid's output is unsigned
``u<out_frac+1>.<out_frac>``, SiLU's and GELU's signed ``s<out_width>.<out_frac>`` wide enough for
``|x|`` (no saturation is possible).

The sigmoid's argument is an odd polynomial ``p(x) = a1 x + a3 x**3 + a5 x**5 + ...`` non-negative
for ``x >= 0`` on the range used (so ``|p(x)| = p(|x|)``): ``p(x) = x`` for sigmoid and SiLU, and for GELU
(``GELU(x) = x Phi(x)``) by its form (:class:`spikeops.golden.choices.GeluForm`):

* ``sigmoid``: ``p(x) = 1.702 x`` (transformers' ``quick_gelu``);
* ``tanh``: ``0.5 (1 + tanh(z)) = sigmoid(2 z)`` exactly, so ``p(x) = 2 sqrt(2/pi) (x + 0.044715
  x**3)`` (``gelu_new``, ``gelu_pytorch_tanh``);
* ``erf``: ``Phi(x) ~ sigmoid(p(x))`` with the odd quintic :data:`GELU_ERF_POLY`, fitted (minimax)
  so that ``max |x (Phi(x) - sigmoid(p(x)))| = 2.5e-5`` over all x (0.1 LSB at ``2**-12``), the
  exact GELU of transformers' ``gelu``.

In integers (``f = in_frac``, coefficient codes ``c_i = round(a_i 2**A)`` with ``A = alpha_frac``):
a linear ``p`` is the exact product ``y = |x| c_1`` (``f + A`` fraction bits); a higher degree is
evaluated by Horner's rule on ``s = min(|x|, x_clamp)`` with floors (arithmetic shifts):

    u = (s * s) >> f;    h = c_last;    h = c_i + ((h * u) >> f)  (i descending);    y = h * s

``x_clamp`` is the smallest input code whose ``y`` exceeds ``2H`` (the exponential below is then 0,
and it stays 0 for every larger ``|x|``, which is clamped to it; the clamp bounds the products'
widths); ``y`` is checked to be non-negative up to it.  With ``y`` (``f + A`` fraction bits) the
exponential is evaluated with the Softmax offset trick so that the whole table on ``[-H, H]`` is
used:

    e   = PWL-Exp(H - y)             ~ e**H * e**-|p(x)|   (0 once y > 2H)
    one = PWL-Exp(H) = c_K           ~ e**H
    sigmoid(p(x)) = one / (one + e)  if x >= 0,    e / (one + e)   if x < 0

and the Division Neuron Group computes, on magnitudes, ``q = A * 2**shift / B`` with ``B = one + e``:

    sigmoid:   A = one or e,          shift = out_frac
    SiLU/GELU: A = |x| * (one or e),  shift = out_frac - in_frac,  result sign(x) * q

Over the whole input range the approximation errors are the chords, the coefficients' rounding,
the erf form's fit and the cut-off at ``y > 2H`` (``e**-2H`` relative), so real activations far
outside ``[-H, H]`` (SmolLM2's MLP inputs reach -12 and +50) keep the error bound: every form is
within 1 LSB of its own exact definition over every 16-bit input code at the default grid
(``tests/test_sigmoid_family.py``).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from ..config import OperatorConfig
from ..choices import DivArch, ExpMethod, GeluForm, Rounding
from ..division import DivisionConfig, divide
from ..exp import ExpConfig, default_k, pwl_exp
from ..fixed import FixedFormat, check_codes
from .. import reference

__all__ = ["SigmoidFamilyConfig", "SigmoidConfig", "SiLUConfig", "GELUConfig", "sigmoid", "silu", "gelu",
           "argument", "GELU_ERF_POLY", "GELU_TANH_POLY"]

#: the erf form's odd quintic: Phi(x) ~ sigmoid(a1 x + a3 x**3 + a5 x**5), minimax of
#: |x (Phi(x) - sigmoid(p(x)))| over x >= 0 (2.5e-5 at most)
GELU_ERF_POLY = (1.59501577, 7.40112921e-02, -7.03033581e-04)
#: the tanh form exactly: sigmoid(2 sqrt(2/pi) (x + 0.044715 x**3))
GELU_TANH_POLY = (2.0 * math.sqrt(2.0 / math.pi), 2.0 * math.sqrt(2.0 / math.pi) * reference.GELU_TANH_C)


#: the PWL-Exp table's parameters as this operator's options name them
_EXP_NAMES = {"out_frac": "exp_frac", "method": "exp_method"}


@dataclass(frozen=True)
class SigmoidFamilyConfig(OperatorConfig):
    """Shared parameters of the sigmoid family (see the module docstring)."""

    in_width: int = 16
    in_frac: int = 8
    out_frac: int = 12
    H: int = 8
    K: int | None = None  # the exp table's chords: 256 (uniform), 64 (range)
    exp_frac: int = 12
    slope_frac: int = 8
    exp_method: str = "uniform"
    div_guard_bits: int = 4
    div_arch: str = "binary"
    rounding: str = "nearest"
    #: the clock the generator pipelines for, MHz (hardware only; None: the fixed pipeline)
    target_mhz: float | None = None

    #: x**numerator_power * sigmoid(p(x)); subclasses set these
    numerator_power = 1
    alpha = 1.0

    @property
    def poly(self) -> tuple:
        """The odd polynomial's coefficients ``(a1, a3, ...)`` (see the module docstring)."""
        return (self.alpha,)

    DEPENDENT_DEFAULTS = {"K": (("exp_method",), lambda c: default_k(c.exp_method))}

    def _validate(self):
        self._choice("exp_method", ExpMethod)
        self._int("in_width", 2, 32)
        self._int("in_frac", 0, self.in_width - 1)
        self._int("out_frac", 1, 24)
        self._int("div_guard_bits", 2, 24)
        self._choice("div_arch", DivArch)
        self._choice("rounding", Rounding)
        self._validate_target()
        self._int("alpha_frac", 0, 16)
        self.exp  # validates H, K, exp_frac, slope_frac (errors name the exp parameter)
        self.division

    alpha_frac = 0

    @functools.cached_property
    def poly_codes(self) -> tuple:
        """``c_i = round(a_i 2**alpha_frac)``."""
        return tuple(round(a * (1 << self.alpha_frac)) for a in self.poly)

    @property
    def alpha_code(self) -> int:
        """The linear coefficient's code."""
        return self.poly_codes[0]

    @functools.cached_property
    def x_clamp(self) -> int | None:
        """The input magnitude (code) beyond which ``y > 2H`` (None for a linear ``p``: no clamp)."""
        if len(self.poly) == 1:
            return None
        top = (1 << (self.in_width - 1)) - 1
        codes = np.arange(top + 1, dtype=np.int64)
        y = argument(codes, self.poly_codes, self.in_frac, None)
        limit = (2 * self.H) << (self.in_frac + self.alpha_frac)
        over = np.nonzero(y > limit)[0]
        if not over.size:
            peak = float(y.max()) / 2.0 ** (self.in_frac + self.alpha_frac)
            self._fail("H", f"is too large for this argument polynomial: it reaches at most p={peak:.3g} "
                            f"< 2H={2 * self.H}; allowed: H <= {int(peak // 2)}")
        end = int(over[0])
        if np.any(y[:end + 1] < 0):
            self._fail("alpha_frac", "makes the argument polynomial negative for a positive input")
        return end

    @functools.cached_property
    def y_max(self) -> int:
        """The largest argument code ``y`` (at ``x_clamp`` or the largest input)."""
        top = (1 << (self.in_width - 1)) - 1
        return int(argument(np.array([top]), self.poly_codes, self.in_frac, self.x_clamp)[0])

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
        arg_width = (self.y_max + (self.H << frac)).bit_length() + 1
        return self.sub_config(ExpConfig, _EXP_NAMES, in_width=arg_width, in_frac=frac, H=self.H,
                               K=self.K, out_frac=self.exp_frac, slope_frac=self.slope_frac, method=self.exp_method)

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

    def costs(self) -> dict:
        """The primitives' figures and the argument polynomial's terms (Horner multiplies)."""
        return {"arg_poly_terms": len(self.poly), **super().costs()}

    def own_derived(self) -> dict:
        if len(self.poly) == 1:
            return {"alpha_code": self.alpha_code}
        return {"poly_codes": list(self.poly_codes), "x_clamp": self.x_clamp}


@dataclass(frozen=True)
class SigmoidConfig(SigmoidFamilyConfig):
    """sigmoid(x) = 1 / (1 + e**-x); output ``u<out_frac+1>.<out_frac>``."""

    kind = "sigmoid"
    reference_name = "sigmoid: 1 / (1 + exp(-x))"
    numerator_power = 0
    #: theta as wide as the 25-bit denominator: the division is exact (and the model faster)
    div_guard_bits: int = 12

    def reference(self, x):
        return reference.sigmoid(x)


@dataclass(frozen=True)
class SiLUConfig(SigmoidFamilyConfig):
    """SiLU(x) = x * sigmoid(x)."""

    kind = "silu"
    reference_name = "SiLU: x / (1 + exp(-x))"

    def reference(self, x):
        return reference.silu(x)


@dataclass(frozen=True)
class GELUConfig(SigmoidFamilyConfig):
    """GELU(x) = x Phi(x) in the chosen ``form`` (``erf``, ``tanh`` or ``sigmoid``; see the module
    docstring); the coefficients have ``alpha_frac`` fraction bits (default 14 for erf and tanh,
    10 for the sigmoid form's 1.702)."""

    kind = "gelu"
    form: str = "erf"
    alpha_frac: int | None = None  # 10 (sigmoid form), 14 (erf, tanh)

    DEPENDENT_DEFAULTS = {**SigmoidFamilyConfig.DEPENDENT_DEFAULTS,
                          "alpha_frac": (("form",), lambda c: 10 if c.form == GeluForm.SIGMOID else 14)}

    def _validate(self):
        self._choice("form", GeluForm)
        super()._validate()

    @property
    def alpha(self) -> float:
        return reference.GELU_ALPHA

    @property
    def poly(self) -> tuple:
        return {GeluForm.ERF: GELU_ERF_POLY, GeluForm.TANH: GELU_TANH_POLY,
                GeluForm.SIGMOID: (reference.GELU_ALPHA,)}[self.form]

    def reference(self, x):
        """The exact GELU of the configured form."""
        return {GeluForm.ERF: reference.gelu_erf, GeluForm.TANH: reference.gelu_tanh,
                GeluForm.SIGMOID: reference.gelu_sigmoid}[self.form](x)

    @property
    def reference_name(self) -> str:
        return REFERENCE_NAMES[self.form]

    def other_references(self) -> dict:
        """The GELU BERT computes (the erf form), measured whatever the configured form, so a form's
        distance from it is never hidden behind its own reference."""
        return {} if self.form == GeluForm.ERF else {REFERENCE_NAMES[GeluForm.ERF]: reference.gelu_erf}


#: the exact GELU of each form, by name
REFERENCE_NAMES = {GeluForm.ERF: "GELU (erf): 0.5 x (1 + erf(x / sqrt 2))",
                   GeluForm.TANH: "GELU (tanh): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))",
                   GeluForm.SIGMOID: "GELU (sigmoid): x sigmoid(1.702 x)"}


def argument(ax, codes, in_frac: int, x_clamp: int | None) -> np.ndarray:
    """``y = p(min(|x|, x_clamp))`` in integers from magnitudes ``ax`` (see the module docstring)."""
    ax = np.asarray(ax, dtype=np.int64)
    if len(codes) == 1:
        return ax * codes[0] if codes[0] != 1 else ax
    s = ax if x_clamp is None else np.minimum(ax, x_clamp)
    u = (s * s) >> in_frac
    h = np.full_like(s, codes[-1])
    for c in reversed(codes[:-1]):
        h = c + ((h * u) >> in_frac)
    return h * s


def _sigmoid_family(x, cfg: SigmoidFamilyConfig) -> np.ndarray:
    x = check_codes(x, cfg.in_format, owner=cfg.kind)
    ecfg = cfg.exp
    y_abs = argument(np.abs(x), cfg.poly_codes, cfg.in_frac, cfg.x_clamp)
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
    """GELU (of ``cfg.form``) of ``s<in_width>.<in_frac>`` codes as ``cfg.out_format`` codes."""
    return _sigmoid_family(x, cfg)
