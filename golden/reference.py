"""Exact float64 operators: the yardstick the integer model is measured against.

``round_to_grid(y, frac, rounding)`` puts a float result on the operator's output grid the same way
the integer model does: ``sign(y) * floor(|y| * 2**frac + 1/2)`` for ``"nearest"``,
``sign(y) * floor(|y| * 2**frac)`` for ``"floor"`` (the paper's floor for non-negative outputs).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["round_to_grid", "sigmoid", "silu", "gelu_sigmoid", "gelu_erf", "gelu_tanh", "softmax", "rmsnorm",
           "layernorm", "GELU_ALPHA", "GELU_TANH_C"]

#: GELU(x) ~ x * sigmoid(1.702 x)
GELU_ALPHA = 1.702
#: the cubic coefficient of the tanh form of GELU
GELU_TANH_C = 0.044715


def round_to_grid(y, frac: int, rounding: str = "nearest") -> np.ndarray:
    y = np.asarray(y, dtype=np.float64)
    half = 0.5 if rounding == "nearest" else 0.0
    return np.sign(y) * np.floor(np.abs(y) * 2.0 ** frac + half)


def sigmoid(x):
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def silu(x):
    return np.asarray(x, dtype=np.float64) * sigmoid(x)


def gelu_sigmoid(x, alpha: float = GELU_ALPHA):
    x = np.asarray(x, dtype=np.float64)
    return x * sigmoid(alpha * x)


def gelu_erf(x):
    x = np.asarray(x, dtype=np.float64)
    erf = np.vectorize(math.erf, otypes=[np.float64])
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def gelu_tanh(x):
    """``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x**3)))`` (transformers' ``gelu_new``)."""
    x = np.asarray(x, dtype=np.float64)
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + GELU_TANH_C * x ** 3)))


def softmax(x, mask=None):
    """Softmax over the last axis; positions with ``mask == False`` or ``x == -inf`` give exactly 0."""
    x = np.asarray(x, dtype=np.float64)
    valid = ~np.isneginf(x)
    if mask is not None:
        valid &= np.asarray(mask, dtype=bool)
    m = np.max(np.where(valid, x, -np.inf), axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    e = np.where(valid, np.exp(np.where(valid, x, 0.0) - m), 0.0)
    s = e.sum(axis=-1, keepdims=True)
    return np.divide(e, s, out=np.zeros_like(e), where=s > 0)


def rmsnorm(x, gamma=None, eps: float = 1e-5):
    x = np.asarray(x, dtype=np.float64)
    y = x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)
    return y if gamma is None else y * np.asarray(gamma, dtype=np.float64)


def layernorm(x, gamma=None, beta=None, eps: float = 1e-5):
    x = np.asarray(x, dtype=np.float64)
    c = x - x.mean(axis=-1, keepdims=True)
    y = c / np.sqrt(np.mean(c * c, axis=-1, keepdims=True) + eps)
    if gamma is not None:
        y = y * np.asarray(gamma, dtype=np.float64)
    if beta is not None:
        y = y + np.asarray(beta, dtype=np.float64)
    return y
