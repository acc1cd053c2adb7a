"""Softmax with a mask: PWL-Exp of ``x - max + H`` and one Division Neuron Group per element.

Number formats: input ``x`` is ``s<in_width>.<in_frac>`` whose most negative code is the mask
(minus infinity); output is unsigned ``u<out_frac+1>.<out_frac>`` (1.0 is representable).

Per row (last axis, at most ``d_max`` elements), over the valid positions only (not masked by the
code or by the ``mask`` argument):

    m   = max_j x_j
    e_i = PWL-Exp(x_i - m + H)              in (0, e**H]; the maximum gives c_K ~ e**H
    S   = sum_j e_j                         (>= c_K > 0 when any position is valid)
    q_i = Division(A = e_i, B = S, shift = out_frac)

Masked positions give exactly 0 and take no part in ``m`` or ``S``; a fully masked row is all 0.
Positions more than ``2H`` below the maximum contribute 0 (``e**-2H`` relative).  This is
``normalizer="row_max"`` (the default): the RTL finds ``m`` before the first exponential, so a row's
first output waits for a pass over the whole row.

``normalizer="online"`` (with ``exp_method="range"``) takes the reference as the row arrives: with
``(n_i, p_i) = range_mantissa(x_i)`` (``e**x_i ~ p_i 2**(n_i - f)``, ``p_i`` in ``[2**f, 2**(f+1))``,
``f = mant_frac = exp_frac + floor(H log2 e)``):

    (R, S) = online_sum(n, p)               running maximum exponent and sum (golden/online.py)
    e_i = p_i >> (R - n_i)                  in (0, 2**(f+1)); the largest element's in [2**f, 2**(f+1))
    q_i = Division(A = e_i, B = S, shift = out_frac)

``R`` is an integer (log2 units), so the sum is rescaled by shifts whenever the maximum grows, and
the RTL knows ``S`` a fixed number of cycles after the row's last element.  ``S`` lies between
``sum_i e_i`` and the exact ``sum_i p_i 2**(n_i - R)`` (golden/online.py); positions more than
``f + 1`` octaves below the maximum contribute 0.

``buffer_depth`` (hardware only; the results do not depend on it) is the number of elements the RTL
holds between receiving a row and sending its last output: at least ``d_max`` (one row), by default
about ``2 d_max`` (a row received while the one before is sent; :func:`default_buffer_depth`), which
sustains one element per cycle on back-to-back rows of any length.
"""

from __future__ import annotations

import functools

from dataclasses import dataclass

import numpy as np

from .. import reference
from ..config import OperatorConfig
from ..choices import DivArch, ExpMethod, Normalizer, Rounding
from ..division import DivisionConfig, divide
from ..exp import ExpConfig, default_k, pwl_exp, range_mantissa
from ..online import online_softmax_terms
from ..fixed import FixedFormat, check_codes

__all__ = ["SoftmaxConfig", "softmax", "default_buffer_depth"]


def default_buffer_depth(d_max: int) -> int:
    """The row buffer that sustains one element per cycle on back-to-back rows: two rows, plus the
    32 entries the pipeline between receive and send holds when rows are short enough (``d_max <
    512``) that those cycles matter; from ``d_max = 512`` on, a full-length row waits the pipeline's
    16 cycles at its start instead (at least 0.97 elements per cycle) and the buffer keeps to whole
    block RAMs."""
    return 2 * d_max + (32 if d_max < 512 else 0)


#: the PWL-Exp table's parameters as this operator's options name them
_EXP_NAMES = {"out_frac": "exp_frac", "method": "exp_method"}


@dataclass(frozen=True)
class SoftmaxConfig(OperatorConfig):
    """Softmax over rows of up to ``d_max`` elements (see the module docstring)."""

    kind = "softmax"
    in_width: int = 16
    in_frac: int = 8
    d_max: int = 1024
    out_frac: int = 16
    H: int = 8
    K: int | None = None  # the exp table's chords: 256 (uniform), 64 (range)
    exp_frac: int = 12
    slope_frac: int = 8
    exp_method: str = "uniform"
    div_guard_bits: int = 4
    div_arch: str = "binary"
    rounding: str = "nearest"
    buffer_depth: int | None = None  # elements held by the RTL's row buffer: about 2 d_max
    normalizer: str = "row_max"  # or "online" (with exp_method="range"): the module docstring
    #: the clock the generator pipelines for, MHz (hardware only; None: the fixed pipeline)
    target_mhz: float | None = None

    DEPENDENT_DEFAULTS = {"K": (("exp_method",), lambda c: default_k(c.exp_method)),
                          "buffer_depth": (("d_max",), lambda c: default_buffer_depth(c.d_max))}

    def _validate(self):
        self._choice("exp_method", ExpMethod)
        self._int("in_width", 2, 32)
        self._int("in_frac", 0, self.in_width - 1)
        self._int("d_max", 1, 1 << 16)
        self._int("buffer_depth", self.d_max, 4 * self.d_max + 64)
        self._int("out_frac", 1, 24)
        self._int("div_guard_bits", 2, 24)
        self._choice("div_arch", DivArch)
        self._choice("rounding", Rounding)
        normalizer = self._choice("normalizer", Normalizer)
        self._validate_target()
        self.exp
        if normalizer == Normalizer.ONLINE and self.exp_method != ExpMethod.RANGE:
            self._fail("normalizer", f"needs exp_method='range' (its reference moves by whole octaves, a "
                                     f"shift), not {str(self.exp_method)!r}; allowed with that exp_method: "
                                     f"{Normalizer.ROW_MAX.value!r}")
        self.division

    @property
    def online(self) -> bool:
        """Whether the reference and the sum are taken as the row arrives (``normalizer="online"``)."""
        return self.normalizer == Normalizer.ONLINE

    @functools.cached_property
    def in_format(self) -> FixedFormat:
        return FixedFormat(self.in_width, self.in_frac, signed=True)

    @functools.cached_property
    def out_format(self) -> FixedFormat:
        return FixedFormat(self.out_frac + 1, self.out_frac, signed=False)

    @functools.cached_property
    def exp(self) -> ExpConfig:
        # argument x - m + H spans [-(2**in_width - 2) + Hc, Hc]
        return self.sub_config(ExpConfig, _EXP_NAMES, in_width=self.in_width + 2, in_frac=self.in_frac,
                               H=self.H, K=self.K, out_frac=self.exp_frac, slope_frac=self.slope_frac, method=self.exp_method)

    @functools.cached_property
    def e_width(self) -> int:
        """Width of the exponentials ``e_i`` the division takes: the exp's output (``row_max``), or
        the mantissa's ``mant_frac + 1`` bits (``online``)."""
        return self.exp.mant_frac + 1 if self.online else self.exp.out_width

    @functools.cached_property
    def sum_width(self) -> int:
        """Width of the row sum ``S``: ``d_max`` terms of at most ``2**e_width - 1``."""
        return (self.d_max * ((1 << self.e_width) - 1)).bit_length()

    @functools.cached_property
    def division(self) -> DivisionConfig:
        q_width = self.out_frac + 1
        return DivisionConfig(num_width=self.e_width, den_width=self.sum_width,
                              shift=self.out_frac, q_width=q_width,
                              theta_bits=q_width + self.div_guard_bits, arch=self.div_arch,
                              rounding=self.rounding)

    def primitives(self) -> dict:
        return {"exp": self.exp, "division": self.division}

    def own_derived(self) -> dict:
        return {"e_width": self.e_width, "sum_width": self.sum_width}

    reference_name = "softmax: exp(x_i) / sum_j exp(x_j) over the valid positions"

    def reference(self, x, mask=None):
        return reference.softmax(x, mask)


def softmax(x, cfg: SoftmaxConfig = SoftmaxConfig(), mask=None) -> np.ndarray:
    """Softmax over the last axis of ``s<in_width>.<in_frac>`` codes (mask code allowed).

    ``mask`` (bool, broadcast against ``x``) marks the valid positions; False positions are masked
    like the mask code.  Returns ``u<out_frac+1>.<out_frac>`` codes.
    """
    x = check_codes(x, cfg.in_format, owner=cfg.kind, allow_mask=True)
    if x.ndim == 0 or x.shape[-1] == 0 or x.shape[-1] > cfg.d_max:
        n = x.shape[-1] if x.ndim else 0
        raise ValueError(f"softmax: row length {n} (the last axis of x) is not allowed; allowed: "
                         f"1 .. d_max={cfg.d_max}")
    valid = x != cfg.in_format.mask_code
    if mask is not None:
        valid = valid & np.broadcast_to(np.asarray(mask, dtype=bool), x.shape)
    ecfg = cfg.exp
    if cfg.online:
        e, s = online_softmax_terms(*range_mantissa(x, ecfg), valid)
    else:
        m = np.max(np.where(valid, x, cfg.in_format.min_code), axis=-1, keepdims=True)
        e = np.where(valid, pwl_exp(x - m + ecfg.H_codes, ecfg), 0)
        s = e.sum(axis=-1, keepdims=True)
    q = divide(e, s, cfg.division, check=False)
    return np.where(valid, q, 0)
