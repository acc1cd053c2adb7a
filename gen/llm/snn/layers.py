"""The spiking layers: integer linear layers, products of two spiking operands, and the nonlinear
operators on spike totals.

**Linear** (:class:`IntLinear`): ``acc_t = w_int @ s_t`` on each step's spikes (integers, exact,
:func:`.quantizers.int_matmul`), plus the bias codes once at step 0; the sum over steps is
``w_int @ C + b`` for the spike totals ``C``: the QANN's accumulator.

**Products of two time-varying operands** (:func:`product_step`): with running totals
``A_t = A_(t-1) + a_t`` and ``B_t = B_(t-1) + b_t`` each step adds

    dP_t = A_(t-1) b_t + a_t B_t     (= SpikeZIP-TF's A_acc B_t + A_t B_acc - A_t B_t, A_acc = A_t)

so ``sum_t dP_t = A_T B_T`` exactly (it telescopes: ``dP_t = A_t B_t - A_(t-1) B_(t-1)``).  The
attention scores ``Q K^T``, the attention context ``P V`` and the SwiGLU product
``SiLU(gate) * up`` (elementwise) use it.

**Nonlinear operators on totals** (:class:`OperatorOnTotals`): the operator accumulates its input
total ``X_t`` (integer, in units ``sigma`` per channel) and emits ``y_t = f(X_t) - f(X_(t-1))``
(``f(X_(-1)) = 0``), so the outputs sum to ``f(X_T)``.  With ``ops=spikeops``, ``f`` is the golden
integer operator on the codes ``requant(X_t)`` (:class:`.quantizers.Requant`: a pure shift when
``sigma`` is a power of two, else an integer multiplier rounded half up), so every ``y_t`` is an
integer difference of output codes, bit-exact.  With ``ops=float``, ``f`` is the operator's exact
float64 reference on ``X_t * sigma`` (no input rounding), its output rounded to the same output
format (:func:`spikeops.golden.fixed.quantize`), so everything downstream stays integer.  Only
rows (or elements) whose total changed are evaluated.

The golden operator runs through the project's back end (:func:`spikeops.gen.llm.operators.get_backend`):
``numpy`` calls the operator record's ``run`` on the codes; ``fast`` calls
:func:`spikeops.gen.llm.fast.fast_golden`, whose interface is float: the codes travel as
``code * 2**-in_frac`` in float32 (float64 beyond 24-bit codes), which is exact, and the output
codes come back as ``y * 2**out_frac``, exact likewise (the fast back end is proven bit-identical
to the golden model; the tests check this path against ``run`` on the codes).
"""

from __future__ import annotations

import numpy as np
import torch

from spikeops.golden import registry
from spikeops.golden.fixed import quantize

from ..defaults import Backend
from ..fast import fast_golden
from .quantizers import Requant, bias_codes, int_matmul, quantize_weight

__all__ = ["IntLinear", "product_step", "OperatorOnTotals", "add"]


def add(a, b):
    """``a + b`` where None stands for an all-zero increment."""
    if a is None:
        return b
    if b is None:
        return a
    return a + b


class IntLinear:
    """A linear layer with per-output-channel integer weights (module docstring).

    ``weight`` ``(out, in)`` and ``bias`` (or None) are float tensors; ``sigma`` (float64, per output
    channel) is the accumulator's unit ``s_in * s_w``; ``quant`` gives ``(w_int, s_w)`` ready made
    (q/k_proj: one scale per rotary pair)."""

    def __init__(self, weight, bias, W: int, s_in: float, name: str = "", quant=None):
        self.name = name
        self.w_int, self.s_w = quant if quant is not None else quantize_weight(weight, W)
        self.wT = self.w_int.t().contiguous()
        self._cache: dict = {}
        self.s_in = float(s_in)
        self.sigma = self.s_w * self.s_in
        self.bias = bias_codes(bias, self.s_in, self.s_w)
        self.out_features, self.in_features = self.w_int.shape
        #: a bound on the magnitude of every input element (a step's spikes), or None: unknown
        self.in_max: int | None = None

    def __call__(self, spikes: torch.Tensor | None, first: bool, lead: tuple = ()) -> torch.Tensor | None:
        """The step's accumulator increment (int64) or None when nothing arrives; ``lead`` is the
        shape before the feature axis (for the bias at step 0 when no spike arrives)."""
        acc = None if spikes is None else int_matmul(spikes, self.wT, self._cache, self.in_max)
        if first and self.bias is not None:
            acc = self.bias.expand(*lead, -1).clone() if acc is None else acc + self.bias
        return acc


def product_step(a_prev, a_t, b_now, b_t, mul):
    """``dP_t = A_(t-1) b_t + a_t B_t`` (None for a zero increment); ``mul`` is the product
    (matrix product or elementwise) of two integer tensors."""
    out = None
    if b_t is not None:
        out = mul(a_prev, b_t)
    if a_t is not None:
        out = add(out, mul(a_t, b_now))
    return out


class OperatorOnTotals:
    """One nonlinear operator instance on running totals (module docstring).

    ``op``: the operator (a name or record); ``cfg``: its configuration; ``sigma``: the unit of the
    total (float64 scalar or per channel on the last axis); ``weights``: codes (``gamma``, ``beta``)
    for the integer operator; ``real``: the float weights for the float operator; ``ops``:
    ``spikeops`` or ``float``; ``P``: multiplier bits for a non-dyadic ``sigma``.
    """

    def __init__(self, op, cfg, sigma, *, ops: str, P: int, weights=None, real=None, name: str = "",
                 layer: int = 0):
        self.rec = registry.get(op)
        self.cfg, self.name, self.layer, self.ops = cfg, name, layer, ops
        self.sigma = np.asarray(sigma, dtype=np.float64)
        self.requant = Requant(self.sigma * 2.0 ** cfg.in_format.frac, P, site=name)
        self.weights = {k: v for k, v in (weights or {}).items() if v is not None}
        self.real = {k: v for k, v in (real or {}).items() if v is not None}
        self.float_ops = str(ops) == "float"
        self.in_fmt, self.out_fmt = cfg.in_format, cfg.out_format
        self.row = self.rec.shape.is_row
        self.recorder = None
        #: a list to which each step appends ``(dX, mask, dY)`` (:mod:`.stepped`), or None
        self.step_log = None
        self.X = self.Y = None
        self.evaluated = 0  # elements evaluated (activity)
        self.rows_evaluated = 0

    def reset(self, shape):
        self.X = torch.zeros(shape, dtype=torch.int64)
        self.Y = torch.zeros(shape, dtype=torch.int64)
        self.evaluated = self.rows_evaluated = 0
        self._mask = None  # the run's mask as rows, made once

    # -- f on codes / totals ---------------------------------------------------------------------
    def codes(self, X: torch.Tensor) -> torch.Tensor:
        """The operator's input codes for totals ``X``: ``requant(X)`` saturated to the format."""
        return self.requant.codes(X, self.in_fmt.min_code, self.in_fmt.max_code)

    def f(self, X: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """``f(X)`` as output codes (int64) for totals ``X`` (rows on the last axis)."""
        if self.float_ops:
            vals = X.to(torch.float64).numpy() * self.sigma
            kw = {} if mask is None else {"mask": mask.numpy()}
            y = self.rec.reference(vals, self.cfg, **kw, **self.real)
            return torch.from_numpy(quantize(y, self.out_fmt))
        c = self.codes(X)
        return self.golden(c, mask)

    def golden(self, c: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """The integer operator on codes ``c`` (int64) through the back end."""
        from ..operators import get_backend

        if get_backend() is Backend.NUMPY:
            kw = {} if mask is None else {"mask": mask.numpy()}
            return torch.from_numpy(np.asarray(self.rec.run(c.numpy(), self.cfg, **kw, **self.weights),
                                               dtype=np.int64))
        wide = max(self.in_fmt.width, self.out_fmt.width) > 24
        dt = torch.float64 if wide else torch.float32
        x = c.to(dt) * (2.0 ** -self.in_fmt.frac)
        args = [self.weights[k] for k in self.rec.weights if k in self.weights]
        kw = {} if mask is None else {"mask": mask}
        y = fast_golden(self.rec.name, self.cfg, x, *args, **kw)
        return (y * (2.0 ** self.out_fmt.frac)).to(torch.int64)  # exact: y is code * 2**-out_frac

    # -- one step ----------------------------------------------------------------------------------
    def step(self, dX: torch.Tensor | None, mask: torch.Tensor | None = None) -> torch.Tensor | None:
        """Accumulate ``dX`` and return ``f(X_t) - f(X_(t-1))`` (None when nothing changed).
        ``mask`` (bool, broadcastable to the totals, True = valid) for a masked-row operator."""
        dY = self._step(dX, mask)
        if self.step_log is not None:
            self.step_log.append((dX, mask, dY))
        return dY

    def _step(self, dX, mask):
        if dX is None:
            return None
        self.X += dX
        if self.recorder is not None and not self.float_ops:  # the whole total, as the operator sees it
            m = None if mask is None else mask.expand(self.X.shape).numpy()
            self.recorder.record(self.name, self.rec.name, self.layer, self.cfg, self.codes(self.X).numpy(),
                                 mask=m, **self.weights)
        if self.row:
            changed = dX.ne(0).any(-1)
            if not bool(changed.any()):
                return None
            full = bool(changed.all())
            X2 = self.X.reshape(-1, self.X.shape[-1])
            m2 = None
            if mask is not None:
                if self._mask is None or self._mask[0] is not mask:
                    self._mask = (mask, mask.expand(self.X.shape).reshape(-1, self.X.shape[-1]))
                m2 = self._mask[1]
            if full:
                y = self.f(X2, m2)
                self._count(X2.shape[0], X2.numel())
                dY = (y - self.Y.reshape(y.shape)).reshape(self.X.shape)
                self.Y = y.reshape(self.X.shape)
                return dY
            idx = changed.reshape(-1).nonzero().squeeze(1)
            y = self.f(X2.index_select(0, idx), None if m2 is None else m2.index_select(0, idx))
            self._count(len(idx), len(idx) * X2.shape[-1])
            Y2 = self.Y.reshape(-1, self.X.shape[-1])
            d = torch.zeros_like(Y2)
            d.index_copy_(0, idx, y - Y2.index_select(0, idx))
            Y2.index_copy_(0, idx, y)
            return d.reshape(self.X.shape)
        changed = dX.ne(0)
        n = int(changed.sum())
        if n == 0:
            return None
        if 4 * n >= changed.numel():  # most elements changed: evaluate them all (f of an unchanged total
            # is its previous output, so the differences are the same)
            y = self._f_elements(self.X, None)
            dY = y - self.Y
            self.Y = y
            self._count(n, n)
            return dY
        sel = changed.nonzero(as_tuple=True)
        y = self._f_elements(self.X[sel], sel)
        d = torch.zeros_like(self.Y)
        d[sel] = y - self.Y[sel]
        self.Y[sel] = y
        self._count(n, n)
        return d

    def _f_elements(self, X: torch.Tensor, sel) -> torch.Tensor:
        """``f`` elementwise; with a per-channel ``sigma`` the gathered elements take their channel's."""
        if sel is None or self.sigma.ndim == 0 or self.sigma.size == 1:
            return self.f(X, None)
        ch = sel[-1].numpy()
        if self.float_ops:
            vals = X.to(torch.float64).numpy() * self.sigma.reshape(-1)[ch]
            return torch.from_numpy(quantize(self.rec.reference(vals, self.cfg, **self.real), self.out_fmt))
        self.requant._guard(X)
        v = X * self.requant.M.reshape(-1)[torch.from_numpy(ch)]
        if self.requant.G:
            v = (v + (1 << (self.requant.G - 1))) >> self.requant.G
        return self.golden(v.clamp_(self.in_fmt.min_code, self.in_fmt.max_code), None)

    def _count(self, rows, elements):
        self.rows_evaluated += rows
        self.evaluated += elements
