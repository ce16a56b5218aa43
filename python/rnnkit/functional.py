"""The kernels' Python API: validation (``_validation``), output allocation, and dispatch to _core.

Legend: T timesteps, B batch, I input features, H hidden units; sequences are time-major (T, B, .).
"""

from __future__ import annotations

import numpy as np

from . import _core
from . import _validation as v
from ._cache import RNNCache

__all__ = ["rnn_forward", "rnn_backward"]


def rnn_forward(x, h0, w_ih, w_hh, b_ih, b_hh, *, nonlinearity="tanh"):
    """Vanilla RNN forward pass, PyTorch's equations: h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh).

    Parameters
    ----------
    x : array-like (T, B, I), time-major
    h0 : array-like (B, H) or None for zeros
    w_ih : (H, I);  w_hh : (H, H);  b_ih, b_hh : (H,) or None
    nonlinearity : "tanh" or "relu"

    All arrays are float32 or float64, the same for all (lists take the arrays' dtype).

    Returns
    -------
    y : (T, B, H) every hidden state, read-only (the cache refers to it)
    h_n : (B, H) the last hidden state
    cache : pass it to ``rnn_backward``
    """
    x, h0, w_ih, w_hh, b_ih, b_hh = v.rnn_forward_args(x, h0, w_ih, w_hh, b_ih, b_hh, nonlinearity)
    steps, batch, _ = x.shape
    hidden = w_hh.shape[0]
    y = np.empty((steps, batch, hidden), x.dtype)
    h_n = np.empty((batch, hidden), x.dtype)
    _core.rnn_forward(x, h0, w_ih, w_hh, b_ih, b_hh, y, h_n, nonlinearity, False)
    cache = RNNCache("cpp", nonlinearity, x, h0, w_ih, w_hh, y, b_ih is not None, b_hh is not None)
    return y, h_n, cache


def rnn_backward(cache, dy, dh_n):
    """Backpropagation through time for ``rnn_forward``.

    Gradients of sum(y * dy) + sum(h_n * dh_n); dy (T, B, H) and dh_n (B, H) may be None (zeros) and
    must have the forward's dtype.  Returns (dx, dh0, dw_ih, dw_hh, db_ih, db_hh); db_ih / db_hh are
    None when the forward had no such bias.
    """
    RNNCache.check(cache, "cpp", "rnnkit.rnn_forward")
    x, y = cache.x, cache.y
    steps, batch, _ = x.shape
    hidden = cache.w_hh.shape[0]
    dy, dh_n = v.rnn_backward_args(dy, dh_n, steps, batch, hidden, x.dtype)
    dx = np.empty_like(x)
    dh0 = np.empty((batch, hidden), x.dtype)
    dw_ih = np.empty_like(cache.w_ih)
    dw_hh = np.empty_like(cache.w_hh)
    db = np.empty(hidden, x.dtype)
    _core.rnn_backward(x, cache.h0, cache.w_ih, cache.w_hh, y, dy, dh_n, dx, dh0, dw_ih, dw_hh, db,
                       cache.nonlinearity, False, False)
    db_ih = db if cache.has_b_ih else None
    db_hh = (db.copy() if cache.has_b_ih else db) if cache.has_b_hh else None
    return dx, dh0, dw_ih, dw_hh, db_ih, db_hh
