"""An operator that speaks spikes: the time-stepped wrapper, bit-exact specification.

In the spiking network (``spikeops.gen.llm.snn``) an operator instance receives, at each of ``T``
time steps, the step's increments of its input, accumulates its input total and emits the change of
its output.  :class:`StepConfig` wraps any registered operator's configuration (``inner``) with the
step parameters; :func:`run_steps` is the specification the RTL (``spikeops.hdl.steps``) matches to
the bit.  For one sample (a row of a row operator, ``lanes`` elements of an elementwise one) and
step ``t = 0 .. T-1``, with ``dX_t`` the frame of increments (signed ``inc_width``-bit integers)::

    X_t = X_(t-1) + dX_t                          (X_(-1) = 0: totals, integers)
    c_t = clamp((M X_t + 2**(in_shift-1)) >> in_shift, in_min, in_max)
                                                  (the operator's input codes: rounded half up;
                                                   no rounding term when in_shift = 0; M is in_mult,
                                                   or in_mults[k] at frame position k)
    Y_t = f(c_t)                                  (the operator's golden model on the frame)
    D_t = Y_t - Y_(t-1)                           (Y_(-1) = 0, so sum_t D_t = f(c_(T-1)))

``encoding="difference"`` emits ``D_t`` (``out_width + 1`` bits).  ``encoding="spikes"`` feeds
``D_t`` as the input current of a bipolar multi-level integrate-and-fire neuron per element (the
conversion's neuron, :func:`spikeops.golden.neurons.multilevel_if`), threshold ``theta = 2**out_shift``,
at most ``L = out_spikes`` spikes a step, its running count within ``[-N/2, N/2 - 1]``
(``N = out_levels``)::

    V_0 = theta / 2, C_0 = 0;   V += D_t;   s = clamp(V >> out_shift, -L, L)
    s = clamp(s, -N/2 - C, N/2 - 1 - C);   C += s;   V -= s * theta

and emits the signed spike count ``s_t`` for the next linear layer.  The membrane is what is left
when the T steps end (a neuron still charged then fires no more: the hardware runs T steps).

After ``T`` frames the next frame starts a new sample: totals, outputs and neurons start again from
zero, so a reset needs to clear nothing but the frame and step counters.  For the Softmax the
mask bit travels with each element of each frame, and the operator sees the frame's mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import registry
from .changes import parse_sets
from .choices import Choice
from .config import Config
from .fixed import FixedFormat
from .neurons import multilevel_if

__all__ = ["Encoding", "StepConfig", "run_steps", "requant", "output_neurons"]


class Encoding(Choice):
    """What a stepped operator emits each step."""

    DIFFERENCE = "difference"  # D_t = f(X_t) - f(X_(t-1)), output codes
    SPIKES = "spikes"          # D_t re-encoded by a multi-level IF neuron: signed spike counts


#: the largest product ``in_mult * X`` the datapath carries (bits, sign included)
MAX_PRODUCT_BITS = 60
#: the largest input multiplier (two DSP blocks' worth: 24 bits)
MAX_MULT = (1 << 24) - 1
#: elementwise lanes per frame when not given
DEFAULT_LANES = 16


@dataclass(frozen=True)
class StepConfig(Config):
    """A registered operator (``op``, configured by ``inner``) run on spike increments over
    ``steps`` time steps (module docstring).  ``inner`` is the operator's configuration object (or
    its parameters as a dict; None: the operator's default)."""

    kind = "steps"

    op: str = "silu"
    inner: object = None
    steps: int = 4
    inc_width: int = 8
    in_mult: int = 1
    in_shift: int = 0
    in_mults: tuple | None = None
    lanes: int | None = None
    encoding: Encoding = Encoding.DIFFERENCE
    out_shift: int = 4
    out_spikes: int = 15
    out_levels: int = 256

    def _validate(self):
        rec = self._record()
        if self.inner is None:
            object.__setattr__(self, "inner", rec.default())
        elif isinstance(self.inner, dict):
            object.__setattr__(self, "inner", rec.config_from_json(self.inner))
        elif type(self.inner) is not rec.config:
            raise ValueError(f"steps: inner={self.inner!r} is not allowed; allowed: a {rec.config.__name__} "
                             f"(the configuration of {rec.name}), its parameters as a dict, or None")
        self._int("steps", 1, 4096)
        self._int("inc_width", 2, 48)
        self._int("in_mult", 1, MAX_MULT)
        self._int("in_shift", 0, 48)
        if rec.shape.is_row:
            if self.lanes is not None:
                self._fail("lanes", f"is not allowed for the row operator {rec.name}; allowed: None "
                           "(a frame is one row)")
        else:
            if self.lanes is None:
                object.__setattr__(self, "lanes", DEFAULT_LANES)
            self._int("lanes", 1, 1 << 16)
        if self.in_mults is not None:
            self._check_mults()
        self._choice("encoding", Encoding)
        self._int("out_shift", 1, 30)
        self._int("out_spikes", 1, 1 << 15)
        self._int("out_levels", 2, 1 << 20)
        if self.out_levels % 2:
            self._fail("out_levels", "is odd; allowed: an even number (levels -N/2 .. N/2 - 1)")
        if self.product_width > MAX_PRODUCT_BITS:
            raise ValueError(f"steps: inc_width={self.inc_width}, steps={self.steps} and a multiplier of {self.max_mult} "
                             f"need a {self.product_width}-bit product; allowed: at most {MAX_PRODUCT_BITS} bits")

    @classmethod
    def parse(cls, op: str, inner, spec: str, option: str = "--steps") -> "StepConfig":
        """The wrapper of ``op`` at ``inner`` with the step parameters of ``spec``
        (``"steps=4,encoding=spikes,out_shift=10"``; values as ``--set`` reads them)."""
        changes = parse_sets([p for p in str(spec).split(",") if p.strip()]) if spec else {}
        known = [f for f in cls.__dataclass_fields__ if f not in ("op", "inner")]
        unknown = [k for k in changes if k not in known]
        if unknown:
            raise ValueError(f"{option}: unknown parameter(s) {unknown}; known: {', '.join(known)}")
        return cls(op=registry.get(op).name, inner=inner, **changes)

    def _check_mults(self):
        if self.in_mult != 1:
            self._fail("in_mult", "is not allowed with in_mults; allowed: 1 (in_mults gives every position's)")
        try:
            mults = tuple(int(v) for v in self.in_mults)
            exact = all(v == w for v, w in zip(mults, self.in_mults))
        except (TypeError, ValueError):
            mults, exact = (), False
        if not exact or len(mults) != self.frame:
            raise ValueError(f"steps: in_mults of {len(mults) if exact else 'non-integer'} entries is not allowed; "
                             f"allowed: {self.frame} integers, one per frame position")
        bad = [v for v in mults if not 1 <= v <= MAX_MULT]
        if bad:
            raise ValueError(f"steps: in_mults holds {bad[0]}; allowed: 1 .. {MAX_MULT}")
        object.__setattr__(self, "in_mults", mults)

    def _record(self):
        try:
            return registry.get(self.op)
        except ValueError:
            raise ValueError(f"steps: op={self.op!r} is not allowed; allowed: "
                             + ", ".join(registry.OPERATORS)) from None

    # -- description ------------------------------------------------------------------------------
    @property
    def record(self):
        """The wrapped operator's record."""
        return registry.get(self.op)

    def params(self) -> dict:
        p = super().params()
        p["inner"] = self.inner.params()
        return p

    def derived(self) -> dict:
        return {"in_format": self.in_format.to_json(), "out_format": self.out_format.to_json(),
                "frame": self.frame, "total_width": self.total_width, "product_width": self.product_width,
                "membrane_width": self.membrane_width, "count_width": self.count_width,
                "inner": self.inner.to_json()}

    def primitives(self) -> dict:
        return {"inner": self.inner}

    @property
    def frame(self) -> int:
        """The longest frame: the row length (``d`` or ``d_max``) or ``lanes``."""
        return self.record.row_length(self.inner) or self.lanes

    @property
    def in_format(self) -> FixedFormat:
        """The increments: signed integers of ``inc_width`` bits (all codes, :attr:`inc_range`)."""
        return FixedFormat(self.inc_width, 0)

    @property
    def inc_range(self) -> tuple[int, int]:
        """The increments: every ``inc_width``-bit two's complement value."""
        return -(1 << (self.inc_width - 1)), (1 << (self.inc_width - 1)) - 1

    @property
    def total_width(self) -> int:
        """Bits of a total of ``steps`` increments."""
        return self.inc_width + (self.steps - 1).bit_length()

    @property
    def max_mult(self) -> int:
        return max(self.in_mults) if self.in_mults is not None else self.in_mult

    @property
    def product_width(self) -> int:
        return self.total_width + self.max_mult.bit_length() + 1

    @property
    def diff_width(self) -> int:
        """Bits of a difference of two output codes."""
        return self.inner.out_format.width + 1

    @property
    def spike_width(self) -> int:
        return self.out_spikes.bit_length() + 1

    @property
    def out_format(self) -> FixedFormat:
        """``difference``: output codes at the operator's scale, one bit wider; ``spikes``: counts."""
        if self.encoding is Encoding.DIFFERENCE:
            return FixedFormat(self.diff_width, self.inner.out_format.frac)
        return FixedFormat(self.spike_width, 0)

    @property
    def membrane_width(self) -> int:
        """Bits of the output neuron's membrane: a threshold plus what ``steps`` currents bring
        while the count is pinned at a level."""
        return max(self.out_shift + 1, self.diff_width + self.steps.bit_length()) + 2

    @property
    def count_width(self) -> int:
        return (self.out_levels // 2).bit_length() + 1

    @property
    def levels(self) -> tuple[int, int]:
        return -(self.out_levels // 2), self.out_levels // 2 - 1


def requant(cfg: StepConfig, totals) -> np.ndarray:
    """The operator's input codes of ``totals`` (module docstring; frame positions on the last
    axis, each with its ``in_mults`` entry when given)."""
    fmt = cfg.inner.in_format
    v = np.asarray(totals, dtype=np.int64)
    v = v * (cfg.in_mult if cfg.in_mults is None else np.asarray(cfg.in_mults, dtype=np.int64)[:v.shape[-1]])
    if cfg.in_shift:
        v = (v + (1 << (cfg.in_shift - 1))) >> cfg.in_shift
    return np.clip(v, fmt.min_code, fmt.max_code)


def output_neurons(cfg: StepConfig, currents) -> np.ndarray:
    """Spike counts of the output neurons for ``currents`` ``(..., T, n)`` (module docstring;
    :func:`spikeops.golden.neurons.multilevel_if` at threshold ``2**out_shift``)."""
    lo, hi = cfg.levels
    steps_first = np.moveaxis(np.asarray(currents, dtype=np.int64), -2, 0)
    spikes = multilevel_if(steps_first, 1 << cfg.out_shift, cfg.out_spikes, lo, hi)[0]
    return np.moveaxis(spikes, 0, -2)


def run_steps(cfg: StepConfig, increments, mask=None, **weights) -> np.ndarray:
    """The wrapper's outputs for ``increments`` ``(..., T, n)``: samples of ``T = cfg.steps``
    frames of ``n`` elements (``n`` up to the frame: a row, or ``lanes`` elements).  ``mask``
    (Softmax; bool, True = valid) broadcasts against the increments; ``weights``: the norms'
    ``gamma``/``beta`` codes.  Returns the same shape: ``D_t`` or spike counts."""
    inc = np.asarray(increments)
    if inc.ndim < 2 or inc.shape[-2] != cfg.steps:
        raise ValueError(f"steps: increments of shape {inc.shape} are not allowed; allowed: (..., "
                         f"steps={cfg.steps}, n) with n up to the frame ({cfg.frame})")
    n = inc.shape[-1]
    if not 1 <= n <= cfg.frame:
        raise ValueError(f"steps: frames of {n} elements are not allowed; allowed: 1 .. {cfg.frame}")
    fixed = cfg.record.fixed_row_length(cfg.inner)
    if fixed is not None and n != fixed:
        raise ValueError(f"steps: frames of {n} elements are not allowed for {cfg.op}; allowed: d={fixed}")
    inc = inc.astype(np.int64)
    lo, hi = cfg.inc_range
    if inc.size and (inc.min() < lo or inc.max() > hi):
        raise ValueError(f"steps: an increment of {int(inc.min()) if inc.min() < lo else int(inc.max())} "
                         f"is out of range; allowed: {lo} .. {hi} (inc_width={cfg.inc_width})")
    codes = requant(cfg, np.cumsum(inc, axis=-2))
    rec = cfg.record
    kw = dict(weights)
    if mask is not None and rec.masked:
        kw["mask"] = np.broadcast_to(np.asarray(mask, dtype=bool), codes.shape).reshape(-1, n)
    flat = codes.reshape(-1, n) if rec.shape.is_row else codes.reshape(-1)
    y = np.asarray(rec.run(flat, cfg.inner, **kw), dtype=np.int64).reshape(codes.shape)
    d = np.diff(y, axis=-2, prepend=np.zeros_like(y[..., :1, :]))
    return d if cfg.encoding is Encoding.DIFFERENCE else output_neurons(cfg, d)
