"""RMSNorm and LayerNorm: ``y_i = gamma_i * sqrt(d) * v_i / ||[v, eps_elem]|| (+ beta_i)`` by PolarNorm.

Number formats: input ``x`` is ``s<in_width>.<in_frac>`` over rows of exactly ``d`` elements;
``gamma`` is ``s<gamma_width>.<gamma_frac>``; ``beta`` and the output are ``s<out_width>.<out_frac>``
(saturating).

* RMSNorm: ``v = x`` and ``eps_elem = sqrt(eps * d)``, since
  ``x / sqrt(mean(x**2) + eps) = sqrt(d) * x / ||[x, sqrt(eps d)]||``.
* LayerNorm: the mean is never rounded: ``v = d * x - sum(x)`` (``d * (x - mean)``, exact; ``d * x``
  is a shift when d is a power of two, a constant multiply otherwise) and ``eps_elem = d * sqrt(eps d)``.

The datapath, in integers (``u`` = one input LSB, ``eps_code = round(eps_elem / u)``, at least 1):

1. the norm ``||[v, eps_code]||`` as a root node ``(m, e)`` of :mod:`spikeops.golden.norm`
   (``norm_width`` mantissa bits, ``m * 2**e ~ gain * ||.||``), from leaves that exist as the row
   arrives, so the hardware merges while it receives:

   * CORDIC, RMSNorm: the leaves ``[eps_code, |x_1|, ..., |x_d|]`` (eps first);
   * CORDIC, LayerNorm: ``[eps_code, h_2, ..., h_d]`` with the Helmert contrasts
     ``h_k = |(k-1) x_k - S_(k-1)| * c_k``, ``S_(k-1) = x_1 + ... + x_(k-1)`` and
     ``c_k = d / sqrt(k (k-1))`` (a ``norm_width``-bit mantissa per k, :func:`helmert_constants`;
     the product rounded down to ``norm_width`` bits).  Since
     ``sum_k ((k-1) x_k - S_(k-1))**2 / (k (k-1)) = sum_i (x_i - mean)**2``, the leaves' norm is
     ``||v||`` without the mean, which is known only at the row's end;
   * exact: the integer ``Q = sum x**2 + eps_code**2`` (RMSNorm) or
     ``Q = d (d sum x**2 - S**2) + eps_code**2 = ||v||**2 + eps_code**2`` (LayerNorm), summed as
     the row arrives, then ``(m, e) = sqrt_node(Q)``;

2. read-out: one integer constant multiply folds the norm's gain and ``1/sqrt(d)``:
   ``R = m * C`` with ``C = round(2**gain_frac / (gain * sqrt(d)))``, so the row's RMS is
   ``R * 2**(e - gain_frac)`` in units of u;
3. Division Neuron Group per element: ``A = |v_i| * |gamma_i|``, ``B = R`` with exponent
   ``e - gain_frac``, ``shift = out_frac - gamma_frac``; ``y_i = sign(v_i gamma_i) * q_i (+ beta_i)``.
"""

from __future__ import annotations

import functools

import math
from dataclasses import dataclass

import numpy as np

from .. import reference
from ..config import OperatorConfig
from ..choices import DivArch, NormMethod, NormUnits, Rounding
from ..division import DivisionConfig, divide
from ..fixed import FixedFormat, check_codes, quantize
from ..norm import NormConfig, cordic_root, node_of, node_product, sqrt_node, sum_of_squares, tree_merges

__all__ = ["NormOpConfig", "RMSNormConfig", "LayerNormConfig", "rmsnorm", "layernorm", "check_row",
           "default_norm_units", "SHARED_RATE_FLOOR",
           "norm_leaves", "norm_root", "helmert_constants"]

#: the PolarNorm's parameters as this operator's options name them
_NORM_NAMES = {"length": "leaves", "width": "norm_width", "method": "norm_method",
               "iterations": "cordic_iterations", "guard_bits": "norm_guard_bits", "units": "norm_units"}


#: the bound on elements a cycle below which one CORDIC unit shared by every level is not the
#: default: 0.95 (issue 13's floor) plus a margin, as the measured rate sits up to 0.005 below the
#: bound when the unit is nearly always busy (the leaf pairs' queue fills now and then)
SHARED_RATE_FLOOR = 0.96


def default_norm_units(cfg: "NormOpConfig") -> str:
    """The CORDIC tree's default layout: ``"shared"`` (one unit) where its bound ``d / merges``
    (:func:`spikeops.golden.norm.tree_merges` of the leaves) is at least :data:`SHARED_RATE_FLOOR`,
    else ``"split"`` (a second unit for the leaf level, one element a cycle at any d): from d 64 to
    16,384 that is RMSNorm at d 64-74, 76, 80-82, 84, 88, 96, 128-130, 132 and 136, LayerNorm at d
    65-71, 73, 81 and 129.  The exact norm has no units (``"shared"``).  A value the validation
    will refuse gets ``"shared"``, so that the error names it."""
    d = cfg.d
    if cfg.norm_method != NormMethod.CORDIC or isinstance(d, bool) or not isinstance(d, int) or d < 1:
        return NormUnits.SHARED.value
    return NormUnits.SHARED.value if d >= SHARED_RATE_FLOOR * tree_merges(cfg.leaves) else NormUnits.SPLIT.value


@dataclass(frozen=True)
class NormOpConfig(OperatorConfig):
    """Shared parameters of RMSNorm and LayerNorm (see the module docstring)."""

    d: int = 576
    in_width: int = 24
    in_frac: int = 9
    out_width: int = 20
    out_frac: int = 12
    gamma_width: int = 16
    gamma_frac: int = 12
    eps: float = 1e-5
    norm_method: str = "cordic"
    cordic_iterations: int = 11
    norm_width: int = 24
    norm_guard_bits: int = 2
    #: the CORDIC tree's units (hardware only): one shared by every level, the leaf level's own
    #: and one shared by the rest, or one per level; None: :func:`default_norm_units`
    norm_units: str | None = None
    gain_frac: int = 30
    div_guard_bits: int = 4
    div_arch: str = "binary"
    rounding: str = "nearest"
    #: elements the RTL's ring buffer holds (hardware only; results do not depend on it): 0 sizes
    #: it for full rate (d plus the norm's latency); d .. 4d + 4096 trades rate for memory
    buffer_depth: int = 0
    #: the clock the generator pipelines for, MHz (hardware only; None: the fixed pipeline)
    target_mhz: float | None = None

    centred = False

    DEPENDENT_DEFAULTS = {"norm_units": (("d", "norm_method"), default_norm_units)}

    def _validate(self):
        self._int("d", 1, 1 << 14)
        self._int("in_width", 2, 40)
        self._int("in_frac", 0, self.in_width - 1)
        self._int("out_width", 2, 40)
        self._int("out_frac", 0, self.out_width - 1)
        self._int("gamma_width", 2, 24)
        self._int("gamma_frac", 0, self.gamma_width - 1)
        self._number("eps", 0.0, 1.0, lo_open=True)
        self._choice("norm_method", NormMethod)
        self._int("norm_width", 2, 31)
        self._int("gain_frac", 8, 31)
        self._int("div_guard_bits", 2, 24)
        self._choice("div_arch", DivArch)
        self._choice("rounding", Rounding)
        self._validate_target()
        if self.buffer_depth != 0:
            self._int("buffer_depth", self.d, 4 * self.d + 4096)
        self.norm  # validates norm_width, norm_method, cordic_iterations, norm_guard_bits
        if self.v_width + self.gamma_width - 1 > 62:
            self._fail("in_width", f"with gamma_width={self.gamma_width} and d={self.d} gives a "
                       f"{self.v_width + self.gamma_width - 1}-bit numerator; allowed: at most 62")
        self.division

    @functools.cached_property
    def _eps_scale(self) -> float:
        return float(self.d) if self.centred else 1.0

    @functools.cached_property
    def eps_element(self) -> float:
        """The extra vector element in real units: ``sqrt(eps d)`` (LayerNorm: times d)."""
        return math.sqrt(self.eps * self.d) * self._eps_scale

    @functools.cached_property
    def eps_code(self) -> int:
        """``eps_element`` in input LSBs, rounded, and at least 1 so a constant row has a norm > 0
        (a constant row then gives exactly ``beta``; a vanishing eps, like BERT's 1e-12, otherwise
        changes nothing)."""
        return max(1, int(math.floor(self.eps_element * 2 ** self.in_frac + 0.5)))

    @functools.cached_property
    def v_width(self) -> int:
        """Bits of ``|v|``: the input magnitude, times d plus the sum for LayerNorm."""
        mag = self.in_width - 1
        return mag + (self.d.bit_length() + 1 if self.centred else 0)

    @functools.cached_property
    def in_format(self) -> FixedFormat:
        return FixedFormat(self.in_width, self.in_frac, signed=True)

    @functools.cached_property
    def out_format(self) -> FixedFormat:
        return FixedFormat(self.out_width, self.out_frac, signed=True)

    @functools.cached_property
    def gamma_format(self) -> FixedFormat:
        return FixedFormat(self.gamma_width, self.gamma_frac, signed=True)

    @functools.cached_property
    def norm(self) -> NormConfig:
        return self.sub_config(NormConfig, _NORM_NAMES, length=self.leaves, width=self.norm_width,
                               method=self.norm_method, iterations=self.cordic_iterations,
                               guard_bits=self.norm_guard_bits, leaf_bits=self.leaf_bits,
                               units=self.norm_units)

    @functools.cached_property
    def helmert(self) -> bool:
        """The leaves are Helmert contrasts (LayerNorm with the CORDIC tree)."""
        return self.centred and self.norm_method == "cordic"

    @functools.cached_property
    def leaves(self) -> int:
        """Leaves of the norm: ``d`` values and eps, or ``d - 1`` contrasts and eps."""
        return self.d if self.helmert else self.d + 1

    @functools.cached_property
    def leaf_bits(self) -> int:
        """Bits of the largest leaf: ``|v|`` (a contrast is at most ``||v||``), or eps."""
        top = self.v_width + (self.d.bit_length() + 1) // 2 if self.helmert else self.v_width + 1
        return max(top, self.eps_code.bit_length())

    @functools.cached_property
    def readout_constant(self) -> int:
        """``C = round(2**gain_frac / (gain * sqrt(d)))``: folds the norm's gain and 1/sqrt(d)."""
        return int(math.floor(2 ** self.gain_frac / (self.norm.gain * math.sqrt(self.d)) + 0.5))

    @functools.cached_property
    def division(self) -> DivisionConfig:
        q_width = self.out_width - 1
        return DivisionConfig(num_width=self.v_width + self.gamma_width - 1,
                              den_width=self.norm_width + self.readout_constant.bit_length(),
                              shift=self.out_frac - self.gamma_frac, q_width=q_width,
                              theta_bits=min(q_width + self.div_guard_bits, 61 - q_width),
                              arch=self.div_arch, rounding=self.rounding)

    def primitives(self) -> dict:
        return {"norm": self.norm, "division": self.division}

    def own_derived(self) -> dict:
        return {"gamma_format": self.gamma_format.to_json(), "eps_code": self.eps_code,
                "v_width": self.v_width, "readout_constant": self.readout_constant}

    @functools.cached_property
    def gamma_one(self) -> int:
        """The gamma code used when no gamma is given: 1.0, or the largest code when the format has
        no integer bit for it (``gamma_frac = gamma_width - 1``); golden and RTL share it."""
        return min(1 << self.gamma_frac, self.gamma_format.max_code)

    def quantize_gamma(self, gamma) -> np.ndarray:
        return quantize(gamma, self.gamma_format, name="gamma")

    def quantize_beta(self, beta) -> np.ndarray:
        return quantize(beta, self.out_format, name="beta")


@dataclass(frozen=True)
class RMSNormConfig(NormOpConfig):
    """RMSNorm over rows of ``d`` elements; defaults sized for SmolLM2 (d=576, outliers to 1e4)."""

    kind = "rmsnorm"
    reference_name = "RMSNorm: gamma x / sqrt(mean(x^2) + eps)"

    def reference(self, x, gamma=None):
        return reference.rmsnorm(x, gamma, self.eps)


@dataclass(frozen=True)
class LayerNormConfig(NormOpConfig):
    """LayerNorm over rows of ``d`` elements (gamma, beta); defaults sized for MiniLM (d=384)."""

    kind = "layernorm"
    d: int = 384
    in_width: int = 20
    in_frac: int = 10
    eps: float = 1e-12
    centred = True
    reference_name = "LayerNorm: gamma (x - mean(x)) / sqrt(var(x) + eps) + beta"

    def _validate(self):
        super()._validate()
        if self.norm_method == "cordic" and self.d < 2:
            self._fail("d", "is too short for the CORDIC norm of the centred row (one element centres "
                       "to 0); allowed: d >= 2, or norm_method='exact'")

    def reference(self, x, gamma=None, beta=None):
        return reference.layernorm(x, gamma, beta, self.eps)


def check_row(x, cfg: NormOpConfig, name: str, fmt: FixedFormat, *, vector: bool = False):
    """``x`` as int64 codes of ``fmt`` with rows of ``cfg.d`` on the last axis (``vector``: exactly
    one row, a weight vector); ValueError naming ``name`` otherwise."""
    a = check_codes(x, fmt, owner=cfg.kind, name=name)
    if (a.ndim != 1 if vector else a.ndim < 1) or a.shape[-1] != cfg.d:
        raise ValueError(f"{cfg.kind}: {name} has shape {a.shape}; allowed: "
                         f"{'(d,)' if vector else '(..., d)'} with d={cfg.d}")
    return a


@functools.lru_cache(maxsize=64)
def helmert_constants(cfg: NormOpConfig):
    """``(cm, ce)``: ``c_k = d / sqrt(k (k-1)) ~ cm[j] * 2**ce[j]`` for ``k = j + 1``, ``j = 1 .. d-1``
    (index 0 unused, 0), with ``norm_width``-bit mantissas rounded to nearest (the RTL's table);
    read-only arrays, computed once per configuration."""
    w, d = cfg.norm_width, cfg.d
    cm, ce = [0], [0]
    for j in range(1, d):
        f, ex = math.frexp(d / math.sqrt(j * (j + 1)))
        mant = int(math.floor(f * 2 ** w + 0.5))
        if mant == 1 << w:
            mant, ex = mant >> 1, ex + 1
        cm.append(mant)
        ce.append(ex - w)
    arrays = np.array(cm, dtype=np.int64), np.array(ce, dtype=np.int64)
    for a in arrays:
        a.setflags(write=False)
    return arrays


def norm_leaves(x: np.ndarray, cfg: NormOpConfig):
    """The CORDIC tree's leaf nodes ``(m, e)`` of int64 rows ``x`` (last axis, length d; LayerNorm:
    adding a constant to a row changes nothing), ``cfg.leaves`` per row, eps first."""
    w = cfg.norm_width
    eps = np.full(x.shape[:-1] + (1,), cfg.eps_code, dtype=np.int64)
    if not cfg.helmert:
        return node_of(np.concatenate([eps, np.abs(x)], axis=-1), w)
    j = np.arange(cfg.d, dtype=np.int64)
    contrast = np.abs(j * x - (np.cumsum(x, axis=-1) - x))[..., 1:]
    cm, ce = helmert_constants(cfg)
    lm, le = node_product(*node_of(contrast, w), cm[1:], ce[1:], w)
    em, ee = node_of(eps, w)
    return np.concatenate([em, lm], axis=-1), np.concatenate([ee, le], axis=-1)


def norm_root(x: np.ndarray, cfg: NormOpConfig):
    """Step 1 of the module docstring on int64 rows ``x`` (last axis, length d; LayerNorm: adding a
    constant to a row changes nothing): the root node ``(m, e)`` of ``||[v, eps_code]||`` per row."""
    if cfg.norm_method == "exact":
        sq = sum_of_squares(x)
        if cfg.centred:
            s = x.sum(axis=-1).astype(object)
            q = cfg.d * (cfg.d * sq - s * s) + cfg.eps_code ** 2
        else:
            q = sq + cfg.eps_code ** 2
        return sqrt_node(q, cfg.norm_width)
    return cordic_root(*norm_leaves(x, cfg), cfg.norm)


def _normalise_rows(x: np.ndarray, v: np.ndarray, cfg: NormOpConfig, gamma, beta) -> np.ndarray:
    """Steps 1-3 of the module docstring: ``x`` the input rows, ``v`` the centred (or raw) rows."""
    m, e = norm_root(x, cfg)
    rms = m * cfg.readout_constant
    b_exp = e - cfg.gain_frac
    mag = np.abs(v)
    if gamma is None:
        g = np.int64(cfg.gamma_one)
        num, neg = mag * g, v < 0
    else:
        g = check_row(gamma, cfg, "gamma", cfg.gamma_format, vector=True)
        num, neg = mag * np.abs(g), (v < 0) != (g < 0)
    q = divide(num, rms[..., None], cfg.division, b_exp=b_exp[..., None], check=False)
    y = np.where(neg, -q, q)
    if beta is not None:
        y = np.clip(y + check_row(beta, cfg, "beta", cfg.out_format, vector=True),
                    cfg.out_format.min_code, cfg.out_format.max_code)
    return y


def rmsnorm(x, cfg: RMSNormConfig = RMSNormConfig(), gamma=None) -> np.ndarray:
    """RMSNorm of ``s<in_width>.<in_frac>`` rows (last axis, length d); ``gamma`` codes (d,) or None (=1)."""
    x = check_row(x, cfg, "x", cfg.in_format)
    return _normalise_rows(x, x, cfg, gamma, None)


def layernorm(x, cfg: LayerNormConfig = LayerNormConfig(), gamma=None, beta=None) -> np.ndarray:
    """LayerNorm of ``s<in_width>.<in_frac>`` rows; ``gamma`` (gamma format), ``beta`` (out format) codes."""
    x = check_row(x, cfg, "x", cfg.in_format)
    v = cfg.d * x - x.sum(axis=-1, keepdims=True)
    return _normalise_rows(x, v, cfg, gamma, beta)
