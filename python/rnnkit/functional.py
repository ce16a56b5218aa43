"""The kernels' Python API: validation (``_validation``), output allocation, and dispatch to _core.

Legend: T timesteps, B batch, I input features, H hidden units, G gate blocks (1 vanilla, 4 LSTM,
3 GRU); sequences are time-major (T, B, .).  Weights have PyTorch's layout: w_ih (G*H, I),
w_hh (G*H, H), biases (G*H,).  All arrays are float32 or float64, the same for all (nested lists take
the arrays' dtype).  Every forward returns y read-only: its cache refers to it.
"""

from __future__ import annotations

import numpy as np

from . import _core
from . import _validation as v
from ._cache import Cache

__all__ = ["gru_backward", "gru_forward", "lstm_backward", "lstm_forward", "rnn_backward", "rnn_forward"]


def _empty_grads(cache):
    x, w_ih, w_hh = cache.x, cache.w_ih, cache.w_hh
    return np.empty_like(x), np.empty_like(w_ih), np.empty_like(w_hh), np.empty(w_hh.shape[0], x.dtype)


def _bias_grads(cache, db_ih, db_hh):
    """Each bias its own array (None where the forward had none)."""
    if cache.has_b_ih and cache.has_b_hh and db_hh is db_ih:
        db_hh = db_ih.copy()
    return (db_ih if cache.has_b_ih else None), (db_hh if cache.has_b_hh else None)


def rnn_forward(x, h0, w_ih, w_hh, b_ih, b_hh, *, nonlinearity="tanh"):
    """Vanilla RNN forward pass, PyTorch's equations: h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh).

    x (T, B, I); h0 (B, H) or None for zeros; w_ih (H, I); w_hh (H, H); b_ih, b_hh (H,) or None;
    nonlinearity "tanh" or "relu".  Returns y (T, B, H) — every hidden state, read-only —, h_n (B, H)
    and the cache to pass to ``rnn_backward``.
    """
    x, h0, w_ih, w_hh, b_ih, b_hh = v.rnn_forward_args(x, h0, w_ih, w_hh, b_ih, b_hh, nonlinearity)
    steps, batch, _ = x.shape
    hidden = w_hh.shape[1]
    y = np.empty((steps, batch, hidden), x.dtype)
    h_n = np.empty((batch, hidden), x.dtype)
    _core.rnn_forward(x, h0, w_ih, w_hh, b_ih, b_hh, y, h_n, nonlinearity, False)
    cache = Cache("cpp", "rnn", nonlinearity, x, h0, None, w_ih, w_hh, y, b_ih is not None, b_hh is not None)
    return y, h_n, cache


def rnn_backward(cache, dy, dh_n):
    """Backpropagation through time for ``rnn_forward``: the gradients of sum(y*dy) + sum(h_n*dh_n).

    dy (T, B, H) and dh_n (B, H) may be None (zeros) and must have the forward's dtype.  Returns
    (dx, dh0, dw_ih, dw_hh, db_ih, db_hh); db_ih / db_hh are None where the forward had no such bias.
    """
    Cache.check(cache, "cpp", "rnn")
    steps, batch, _ = cache.x.shape
    hidden = cache.w_hh.shape[1]
    dy, dh_n = v.rnn_backward_args(dy, dh_n, steps, batch, hidden, cache.x.dtype)
    dx, dw_ih, dw_hh, db = _empty_grads(cache)
    dh0 = np.empty((batch, hidden), cache.x.dtype)
    _core.rnn_backward(cache.x, cache.h0, cache.w_ih, cache.w_hh, cache.y, dy, dh_n, dx, dh0, dw_ih, dw_hh, db,
                       cache.nonlinearity, False, False)
    return (dx, dh0, dw_ih, dw_hh, *_bias_grads(cache, db, db))


def lstm_forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh):
    """LSTM forward pass, PyTorch's equations and gate order [i | f | g | o].

    x (T, B, I); h0, c0 (B, H) or None for zeros; w_ih (4H, I); w_hh (4H, H); b_ih, b_hh (4H,) or
    None.  Returns y (T, B, H) read-only, h_n (B, H), c_n (B, H) and the cache for ``lstm_backward``.
    """
    x, s, w_ih, w_hh, b_ih, b_hh = v.sequence_forward_args("lstm", x, {"h0": h0, "c0": c0}, w_ih, w_hh, b_ih, b_hh)
    steps, batch, _ = x.shape
    hidden = w_hh.shape[1]
    y = np.empty((steps, batch, hidden), x.dtype)
    h_n, c_n = np.empty((batch, hidden), x.dtype), np.empty((batch, hidden), x.dtype)
    gates = np.empty((steps, batch, 4 * hidden), x.dtype)
    cells = np.empty((steps, batch, hidden), x.dtype)
    _core.lstm_forward(x, s["h0"], s["c0"], w_ih, w_hh, b_ih, b_hh, y, h_n, c_n, gates, cells, False)
    cache = Cache("cpp", "lstm", None, x, s["h0"], s["c0"], w_ih, w_hh, y, b_ih is not None, b_hh is not None,
                  gates=gates, cells=cells)
    return y, h_n, c_n, cache


def lstm_backward(cache, dy, dh_n, dc_n):
    """BPTT for ``lstm_forward``: gradients of sum(y*dy) + sum(h_n*dh_n) + sum(c_n*dc_n).

    dy (T, B, H), dh_n and dc_n (B, H) may be None (zeros).  Returns
    (dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh).
    """
    Cache.check(cache, "cpp", "lstm")
    steps, batch, _ = cache.x.shape
    hidden = cache.w_hh.shape[1]
    g = v.sequence_backward_args({"dy": dy, "dh_n": dh_n, "dc_n": dc_n}, steps, batch, hidden, cache.x.dtype)
    dx, dw_ih, dw_hh, db = _empty_grads(cache)
    dh0, dc0 = np.empty((batch, hidden), cache.x.dtype), np.empty((batch, hidden), cache.x.dtype)
    _core.lstm_backward(cache.x, cache.h0, cache.c0, cache.w_ih, cache.w_hh, cache.y, cache.gates, cache.cells,
                        g["dy"], g["dh_n"], g["dc_n"], dx, dh0, dc0, dw_ih, dw_hh, db, False, False)
    return (dx, dh0, dc0, dw_ih, dw_hh, *_bias_grads(cache, db, db))


def gru_forward(x, h0, w_ih, w_hh, b_ih, b_hh):
    """GRU forward pass, PyTorch's equations and gate order [r | z | n] (reset applied to W_hn h + b_hn).

    x (T, B, I); h0 (B, H) or None for zeros; w_ih (3H, I); w_hh (3H, H); b_ih, b_hh (3H,) or None.
    Returns y (T, B, H) read-only, h_n (B, H) and the cache for ``gru_backward``.
    """
    x, s, w_ih, w_hh, b_ih, b_hh = v.sequence_forward_args("gru", x, {"h0": h0}, w_ih, w_hh, b_ih, b_hh)
    steps, batch, _ = x.shape
    hidden = w_hh.shape[1]
    y = np.empty((steps, batch, hidden), x.dtype)
    h_n = np.empty((batch, hidden), x.dtype)
    gates = np.empty((steps, batch, 3 * hidden), x.dtype)
    hidden_n = np.empty((steps, batch, hidden), x.dtype)
    _core.gru_forward(x, s["h0"], w_ih, w_hh, b_ih, b_hh, y, h_n, gates, hidden_n, False)
    cache = Cache("cpp", "gru", None, x, s["h0"], None, w_ih, w_hh, y, b_ih is not None, b_hh is not None,
                  gates=gates, hidden_n=hidden_n)
    return y, h_n, cache


def gru_backward(cache, dy, dh_n):
    """BPTT for ``gru_forward``: gradients of sum(y*dy) + sum(h_n*dh_n).

    dy (T, B, H) and dh_n (B, H) may be None (zeros).  Returns (dx, dh0, dw_ih, dw_hh, db_ih, db_hh).
    """
    Cache.check(cache, "cpp", "gru")
    steps, batch, _ = cache.x.shape
    hidden = cache.w_hh.shape[1]
    dy, dh_n = v.rnn_backward_args(dy, dh_n, steps, batch, hidden, cache.x.dtype)
    dx, dw_ih, dw_hh, db_ih = _empty_grads(cache)
    db_hh = np.empty_like(db_ih)
    dh0 = np.empty((batch, hidden), cache.x.dtype)
    _core.gru_backward(cache.x, cache.h0, cache.w_ih, cache.w_hh, cache.y, cache.gates, cache.hidden_n, dy, dh_n,
                       dx, dh0, dw_ih, dw_hh, db_ih, db_hh, False, False)
    return (dx, dh0, dw_ih, dw_hh, *_bias_grads(cache, db_ih, db_hh))
