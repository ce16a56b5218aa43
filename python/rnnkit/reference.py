"""The NumPy reference: every cell's forward pass and BPTT, written to be read.

This module is the oracle the C++ kernels are tested against.  It favours clarity over speed: a loop
over time, vectorised over the batch, with PyTorch's equations and parameter layout.

Legend: T timesteps, B batch, I input features, H hidden units.  Sequences are time-major (T, B, .).

    h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh),   act = tanh or relu

The functions have the same signatures, validation and results as ``rnnkit.rnn_forward`` and
``rnnkit.rnn_backward``.
"""

from __future__ import annotations

import numpy as np

from . import _validation as v
from ._cache import RNNCache

__all__ = ["rnn_forward", "rnn_backward"]


def _activation(nonlinearity: str, pre: np.ndarray) -> np.ndarray:
    if nonlinearity == "tanh":
        return np.tanh(pre)
    return np.maximum(pre, 0)  # propagates NaN, as torch.relu does


def _activation_grad(nonlinearity: str, h: np.ndarray) -> np.ndarray:
    """d act / d pre, written in terms of the output h = act(pre)."""
    if nonlinearity == "tanh":
        return 1 - h * h
    return (h > 0).astype(h.dtype)


def rnn_forward(x, h0, w_ih, w_hh, b_ih, b_hh, *, nonlinearity="tanh"):
    """Vanilla RNN forward pass.

    x (T, B, I); h0 (B, H) or None (zeros); w_ih (H, I); w_hh (H, H); b_ih, b_hh (H,) or None.
    Returns y (T, B, H) — every h_t —, h_n (B, H) and the cache ``rnn_backward`` needs.
    """
    x, h0, w_ih, w_hh, b_ih, b_hh = v.rnn_forward_args(x, h0, w_ih, w_hh, b_ih, b_hh, nonlinearity)
    steps, batch, _ = x.shape
    hidden = w_hh.shape[0]
    dtype = x.dtype
    h = np.zeros((batch, hidden), dtype) if h0 is None else h0
    y = np.empty((steps, batch, hidden), dtype)
    for t in range(steps):
        pre = x[t] @ w_ih.T + h @ w_hh.T
        if b_ih is not None:
            pre += b_ih
        if b_hh is not None:
            pre += b_hh
        h = _activation(nonlinearity, pre)
        y[t] = h
    h_n = h.copy()
    cache = RNNCache("numpy", nonlinearity, x, h0, w_ih, w_hh, y, b_ih is not None, b_hh is not None)
    return cache.y, h_n, cache


def rnn_backward(cache, dy, dh_n):
    """BPTT for ``rnn_forward``: the gradients of sum(y * dy) + sum(h_n * dh_n).

    dy (T, B, H) or None, dh_n (B, H) or None (zeros).  Returns (dx, dh0, dw_ih, dw_hh, db_ih, db_hh);
    db_ih / db_hh are None when the forward had no such bias.
    """
    RNNCache.check(cache, "numpy", "rnnkit.reference.rnn_forward")
    x, h0, w_ih, w_hh, y = cache.x, cache.h0, cache.w_ih, cache.w_hh, cache.y
    steps, batch, _ = x.shape
    hidden = w_hh.shape[0]
    dy, dh_n = v.rnn_backward_args(dy, dh_n, steps, batch, hidden, x.dtype)

    dx = np.zeros_like(x)
    dw_ih = np.zeros_like(w_ih)
    dw_hh = np.zeros_like(w_hh)
    db = np.zeros(hidden, x.dtype)
    dh = np.zeros((batch, hidden), x.dtype) if dh_n is None else dh_n.copy()
    for t in reversed(range(steps)):
        if dy is not None:
            dh = dh + dy[t]
        dpre = dh * _activation_grad(cache.nonlinearity, y[t])
        h_prev = y[t - 1] if t > 0 else (h0 if h0 is not None else np.zeros_like(dh))
        dw_ih += dpre.T @ x[t]
        dw_hh += dpre.T @ h_prev
        db += dpre.sum(axis=0)
        dx[t] = dpre @ w_ih
        dh = dpre @ w_hh
    db_ih = db.copy() if cache.has_b_ih else None
    db_hh = db.copy() if cache.has_b_hh else None
    return dx, dh, dw_ih, dw_hh, db_ih, db_hh
