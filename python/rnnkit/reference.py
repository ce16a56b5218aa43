"""The NumPy reference: every cell's forward pass and BPTT, written to be read.

This module is the oracle the C++ kernels are tested against.  It favours clarity over speed: a loop
over time, vectorised over the batch, with PyTorch's equations and parameter layout (rows of the
weights are gate blocks).

Legend: T timesteps, B batch, I input features, H hidden units.  Sequences are time-major (T, B, .).

    vanilla  h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh),    act = tanh or relu
    LSTM     [i | f | g | o] = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh
             i, f, o = sigmoid(.), g = tanh(.);  c_t = f c_{t-1} + i g;  h_t = o tanh(c_t)
    GRU      [r | z | n] blocks of  gx = x_t W_ih^T + b_ih  and  gh = h_{t-1} W_hh^T + b_hh
             r = sigmoid(gx_r + gh_r), z = sigmoid(gx_z + gh_z), n = tanh(gx_n + r gh_n)
             h_t = (1 - z) n + z h_{t-1}

Every backward returns the gradients of sum(y * dy) + sum(h_n * dh_n) [+ sum(c_n * dc_n)].  The
functions have the same signatures, validation and results as ``rnnkit.rnn_forward`` & co.
"""

from __future__ import annotations

import numpy as np

from . import _validation as v
from ._cache import Cache

__all__ = ["gru_backward", "gru_forward", "lstm_backward", "lstm_forward", "rnn_backward", "rnn_forward"]


def _sigmoid(a):
    with np.errstate(over="ignore"):  # exp(-a) overflows to inf for very negative a: sigmoid is 0 there
        return 1 / (1 + np.exp(-a))


def _zeros_if_none(a, shape, dtype):
    return np.zeros(shape, dtype) if a is None else a


def _add_biases(pre, b_ih, b_hh):
    if b_ih is not None:
        pre = pre + b_ih
    if b_hh is not None:
        pre = pre + b_hh
    return pre


def _bias_grads(db_ih, db_hh, cache):
    return (db_ih if cache.has_b_ih else None), (db_hh if cache.has_b_hh else None)


# ---- vanilla -------------------------------------------------------------------------------------

def rnn_forward(x, h0, w_ih, w_hh, b_ih, b_hh, *, nonlinearity="tanh"):
    """Vanilla RNN forward pass.

    x (T, B, I); h0 (B, H) or None (zeros); w_ih (H, I); w_hh (H, H); b_ih, b_hh (H,) or None.
    Returns y (T, B, H) — every h_t —, h_n (B, H) and the cache ``rnn_backward`` needs.
    """
    x, h0, w_ih, w_hh, b_ih, b_hh = v.rnn_forward_args(x, h0, w_ih, w_hh, b_ih, b_hh, nonlinearity)
    steps, batch, _ = x.shape
    hidden = w_hh.shape[1]
    h = _zeros_if_none(h0, (batch, hidden), x.dtype)
    y = np.empty((steps, batch, hidden), x.dtype)
    for t in range(steps):
        pre = _add_biases(x[t] @ w_ih.T + h @ w_hh.T, b_ih, b_hh)
        h = np.tanh(pre) if nonlinearity == "tanh" else np.maximum(pre, 0)  # maximum keeps NaN, as torch
        y[t] = h
    cache = Cache("numpy", "rnn", nonlinearity, x, h0, None, w_ih, w_hh, y, b_ih is not None, b_hh is not None)
    return cache.y, h.copy(), cache


def rnn_backward(cache, dy, dh_n):
    """BPTT for ``rnn_forward``.  dy (T, B, H) or None, dh_n (B, H) or None (zeros).

    Returns (dx, dh0, dw_ih, dw_hh, db_ih, db_hh); db_ih / db_hh are None where the forward had no
    such bias.
    """
    Cache.check(cache, "numpy", "rnn")
    x, w_ih, w_hh, y = cache.x, cache.w_ih, cache.w_hh, cache.y
    steps, batch, _ = x.shape
    hidden = w_hh.shape[1]
    dy, dh_n = v.rnn_backward_args(dy, dh_n, steps, batch, hidden, x.dtype)
    h0 = _zeros_if_none(cache.h0, (batch, hidden), x.dtype)

    dx = np.zeros_like(x)
    dw_ih, dw_hh = np.zeros_like(w_ih), np.zeros_like(w_hh)
    db = np.zeros(hidden, x.dtype)
    dh = _zeros_if_none(dh_n, (batch, hidden), x.dtype).copy()
    for t in reversed(range(steps)):
        if dy is not None:
            dh = dh + dy[t]
        act_grad = 1 - y[t] * y[t] if cache.nonlinearity == "tanh" else (y[t] > 0).astype(x.dtype)
        dpre = dh * act_grad
        h_prev = y[t - 1] if t > 0 else h0
        dw_ih += dpre.T @ x[t]
        dw_hh += dpre.T @ h_prev
        db += dpre.sum(axis=0)
        dx[t] = dpre @ w_ih
        dh = dpre @ w_hh
    return (dx, dh, dw_ih, dw_hh, *_bias_grads(db, db.copy(), cache))


# ---- LSTM ----------------------------------------------------------------------------------------

def lstm_forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh):
    """LSTM forward pass, gate blocks [i | f | g | o].

    x (T, B, I); h0, c0 (B, H) or None; w_ih (4H, I); w_hh (4H, H); b_ih, b_hh (4H,) or None.
    Returns y (T, B, H), h_n (B, H), c_n (B, H) and the cache ``lstm_backward`` needs.
    """
    x, states, w_ih, w_hh, b_ih, b_hh = v.sequence_forward_args("lstm", x, {"h0": h0, "c0": c0}, w_ih, w_hh, b_ih, b_hh)
    steps, batch, _ = x.shape
    hidden = w_hh.shape[1]
    h = _zeros_if_none(states["h0"], (batch, hidden), x.dtype)
    c = _zeros_if_none(states["c0"], (batch, hidden), x.dtype)
    y = np.empty((steps, batch, hidden), x.dtype)
    gates = np.empty((steps, batch, 4 * hidden), x.dtype)
    cells = np.empty((steps, batch, hidden), x.dtype)
    for t in range(steps):
        pre = _add_biases(x[t] @ w_ih.T + h @ w_hh.T, b_ih, b_hh)
        i, f, g, o = np.split(pre, 4, axis=1)
        i, f, g, o = _sigmoid(i), _sigmoid(f), np.tanh(g), _sigmoid(o)
        c = f * c + i * g
        h = o * np.tanh(c)
        y[t], cells[t] = h, c
        gates[t] = np.concatenate([i, f, g, o], axis=1)
    cache = Cache("numpy", "lstm", None, x, states["h0"], states["c0"], w_ih, w_hh, y,
                  b_ih is not None, b_hh is not None, gates=gates, cells=cells)
    return cache.y, h.copy(), c.copy(), cache


def lstm_backward(cache, dy, dh_n, dc_n):
    """BPTT for ``lstm_forward``.  dy (T, B, H), dh_n and dc_n (B, H): each may be None (zeros).

    Returns (dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh).
    """
    Cache.check(cache, "numpy", "lstm")
    x, w_ih, w_hh, y = cache.x, cache.w_ih, cache.w_hh, cache.y
    steps, batch, _ = x.shape
    hidden = w_hh.shape[1]
    g = v.sequence_backward_args({"dy": dy, "dh_n": dh_n, "dc_n": dc_n}, steps, batch, hidden, x.dtype)
    h0 = _zeros_if_none(cache.h0, (batch, hidden), x.dtype)
    c0 = _zeros_if_none(cache.c0, (batch, hidden), x.dtype)

    dx = np.zeros_like(x)
    dw_ih, dw_hh = np.zeros_like(w_ih), np.zeros_like(w_hh)
    db = np.zeros(4 * hidden, x.dtype)
    dh = _zeros_if_none(g["dh_n"], (batch, hidden), x.dtype).copy()
    dc = _zeros_if_none(g["dc_n"], (batch, hidden), x.dtype).copy()
    for t in reversed(range(steps)):
        if g["dy"] is not None:
            dh = dh + g["dy"][t]
        i, f, gg, o = np.split(cache.gates[t], 4, axis=1)
        tanh_c = np.tanh(cache.cells[t])
        c_prev = cache.cells[t - 1] if t > 0 else c0
        h_prev = y[t - 1] if t > 0 else h0
        dc = dc + dh * o * (1 - tanh_c * tanh_c)
        dpre = np.concatenate([
            dc * gg * i * (1 - i),          # input gate
            dc * c_prev * f * (1 - f),      # forget gate
            dc * i * (1 - gg * gg),         # cell candidate
            dh * tanh_c * o * (1 - o),      # output gate
        ], axis=1)
        dw_ih += dpre.T @ x[t]
        dw_hh += dpre.T @ h_prev
        db += dpre.sum(axis=0)
        dx[t] = dpre @ w_ih
        dh = dpre @ w_hh
        dc = dc * f
    return (dx, dh, dc, dw_ih, dw_hh, *_bias_grads(db, db.copy(), cache))


# ---- GRU -----------------------------------------------------------------------------------------

def gru_forward(x, h0, w_ih, w_hh, b_ih, b_hh):
    """GRU forward pass, gate blocks [r | z | n]; the reset gate multiplies W_hn h + b_hn (torch).

    x (T, B, I); h0 (B, H) or None; w_ih (3H, I); w_hh (3H, H); b_ih, b_hh (3H,) or None.
    Returns y (T, B, H), h_n (B, H) and the cache ``gru_backward`` needs.
    """
    x, states, w_ih, w_hh, b_ih, b_hh = v.sequence_forward_args("gru", x, {"h0": h0}, w_ih, w_hh, b_ih, b_hh)
    steps, batch, _ = x.shape
    hidden = w_hh.shape[1]
    h = _zeros_if_none(states["h0"], (batch, hidden), x.dtype)
    y = np.empty((steps, batch, hidden), x.dtype)
    gates = np.empty((steps, batch, 3 * hidden), x.dtype)
    hidden_n = np.empty((steps, batch, hidden), x.dtype)
    for t in range(steps):
        gx = _add_biases(x[t] @ w_ih.T, b_ih, None)
        gh = _add_biases(h @ w_hh.T, None, b_hh)
        gx_r, gx_z, gx_n = np.split(gx, 3, axis=1)
        gh_r, gh_z, gh_n = np.split(gh, 3, axis=1)
        r = _sigmoid(gx_r + gh_r)
        z = _sigmoid(gx_z + gh_z)
        n = np.tanh(gx_n + r * gh_n)
        h = (1 - z) * n + z * h
        y[t], hidden_n[t] = h, gh_n
        gates[t] = np.concatenate([r, z, n], axis=1)
    cache = Cache("numpy", "gru", None, x, states["h0"], None, w_ih, w_hh, y,
                  b_ih is not None, b_hh is not None, gates=gates, hidden_n=hidden_n)
    return cache.y, h.copy(), cache


def gru_backward(cache, dy, dh_n):
    """BPTT for ``gru_forward``.  dy (T, B, H) and dh_n (B, H) may be None (zeros).

    Returns (dx, dh0, dw_ih, dw_hh, db_ih, db_hh); unlike the other cells, db_ih and db_hh differ
    (in the n block, where b_hn sits inside the reset gate's product).
    """
    Cache.check(cache, "numpy", "gru")
    x, w_ih, w_hh, y = cache.x, cache.w_ih, cache.w_hh, cache.y
    steps, batch, _ = x.shape
    hidden = w_hh.shape[1]
    dy, dh_n = v.rnn_backward_args(dy, dh_n, steps, batch, hidden, x.dtype)
    h0 = _zeros_if_none(cache.h0, (batch, hidden), x.dtype)

    dx = np.zeros_like(x)
    dw_ih, dw_hh = np.zeros_like(w_ih), np.zeros_like(w_hh)
    db_ih, db_hh = np.zeros(3 * hidden, x.dtype), np.zeros(3 * hidden, x.dtype)
    dh = _zeros_if_none(dh_n, (batch, hidden), x.dtype).copy()
    for t in reversed(range(steps)):
        if dy is not None:
            dh = dh + dy[t]
        r, z, n = np.split(cache.gates[t], 3, axis=1)
        gh_n = cache.hidden_n[t]
        h_prev = y[t - 1] if t > 0 else h0
        dpre_n = dh * (1 - z) * (1 - n * n)          # gradient of gx_n + r * gh_n
        dpre_r = dpre_n * gh_n * r * (1 - r)
        dpre_z = dh * (h_prev - n) * z * (1 - z)
        dgx = np.concatenate([dpre_r, dpre_z, dpre_n], axis=1)          # input side
        dgh = np.concatenate([dpre_r, dpre_z, dpre_n * r], axis=1)      # hidden side
        dw_ih += dgx.T @ x[t]
        dw_hh += dgh.T @ h_prev
        db_ih += dgx.sum(axis=0)
        db_hh += dgh.sum(axis=0)
        dx[t] = dgx @ w_ih
        dh = dh * z + dgh @ w_hh
    return (dx, dh, dw_ih, dw_hh, *_bias_grads(db_ih, db_hh, cache))
