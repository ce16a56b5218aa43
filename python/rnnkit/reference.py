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

Options of every forward (keyword-only), with torch's meaning for one direction of one layer:

    lengths   None, or (B,) integers in [0, T], any order: torch's pack_padded_sequence(x, lengths,
              enforce_sorted=False).  Row b runs input steps 0 .. lengths[b]-1; y[t, b] = 0 for
              t >= lengths[b]; h_n[b] (c_n[b]) is the state after row b's last real step, h0[b] (c0[b])
              when lengths[b] = 0.  The backward ignores dy at padded positions, returns dx = 0 there,
              and dh0 = dh_n (dc0 = dc_n) for a row of length 0.
    reverse   True: each row runs from its last real step lengths[b]-1 down to 0 (torch's reverse
              direction of a bidirectional layer); y stays aligned with the input (y[t, b] is the state
              computed at input step t) and h_n is the state after step 0.
    training  False: nothing is saved for the backward, and the cache returned is None.

Every forward loops over steps s = 0 .. T-1; at step s row b is active when s < lengths[b] and reads
input time t = s (t = lengths[b]-1-s with reverse).  Only the active rows' states are updated.
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


def _options(lengths, reverse, training, x):
    """Validated (lengths, reverse, training); lengths as given (None or int64 (B,))."""
    steps, batch, _ = x.shape
    return v.check_lengths(lengths, steps, batch), v.check_flag("reverse", reverse), v.check_flag("training", training)


def _all_lengths(lengths, steps, batch):
    """The lengths the time loop runs on: every row T steps when lengths is None."""
    return np.full(batch, steps, np.int64) if lengths is None else lengths


def _step(s, lengths, reverse):
    """Row mask and input times of step s: (active (B, 1) bool, t (B,) int, rows (B,) int).

    Row b is active when s < lengths[b]; its input time is s, or lengths[b]-1-s with reverse (0 for an
    inactive row, so that indexing stays in range: its values are never used).
    """
    active = s < lengths
    t = lengths - 1 - s if reverse else np.full_like(lengths, s)
    return active[:, None], np.where(active, t, 0), np.arange(lengths.size)


def _previous(s, lengths, reverse, saved, initial):
    """Each row's state before step s: initial at s = 0, else what ``saved`` (T, B, H) holds at the
    input time of step s-1 (for rows inactive at step s it is a stand-in the callers mask out)."""
    if s == 0:
        return initial
    _, t, rows = _step(s - 1, lengths, reverse)
    return saved[t, rows]


def _cache(cell, nonlinearity, x, h0, c0, w_ih, w_hh, y, b_ih, b_hh, lengths, reverse, **saved):
    return Cache("numpy", cell, nonlinearity, x, h0, c0, w_ih, w_hh, y, b_ih is not None, b_hh is not None,
                 lengths=lengths, reverse=reverse, **saved)


# ---- vanilla -------------------------------------------------------------------------------------

def rnn_forward(x, h0, w_ih, w_hh, b_ih, b_hh, *, nonlinearity="tanh", lengths=None, reverse=False, training=True):
    """Vanilla RNN forward pass.

    x (T, B, I); h0 (B, H) or None (zeros); w_ih (H, I); w_hh (H, H); b_ih, b_hh (H,) or None;
    lengths, reverse, training as in the module's docstring.
    Returns y (T, B, H) — every h_t —, h_n (B, H) and the cache ``rnn_backward`` needs (None when not
    training).
    """
    x, h0, w_ih, w_hh, b_ih, b_hh = v.rnn_forward_args(x, h0, w_ih, w_hh, b_ih, b_hh, nonlinearity)
    lengths, reverse, training = _options(lengths, reverse, training, x)
    steps, batch, _ = x.shape
    hidden = w_hh.shape[1]
    run = _all_lengths(lengths, steps, batch)
    h = _zeros_if_none(h0, (batch, hidden), x.dtype)
    y = np.zeros((steps, batch, hidden), x.dtype)
    for s in range(steps):
        active, t, rows = _step(s, run, reverse)
        x_t = np.where(active, x[t, rows], 0)  # padding is never read, even if it holds NaN
        pre = _add_biases(x_t @ w_ih.T + h @ w_hh.T, b_ih, b_hh)
        h_new = np.tanh(pre) if nonlinearity == "tanh" else np.maximum(pre, 0)  # maximum keeps NaN, as torch
        h = np.where(active, h_new, h)
        y[t[active[:, 0]], rows[active[:, 0]]] = h[active[:, 0]]
    if not training:
        return y, h.copy(), None
    cache = _cache("rnn", nonlinearity, x, h0, None, w_ih, w_hh, y, b_ih, b_hh, lengths, reverse)
    return cache.y, h.copy(), cache


def rnn_backward(cache, dy, dh_n):
    """BPTT for ``rnn_forward``.  dy (T, B, H) or None, dh_n (B, H) or None (zeros).

    Returns (dx, dh0, dw_ih, dw_hh, db_ih, db_hh); db_ih / db_hh are None where the forward had no
    such bias.
    """
    Cache.check_trained(cache, "numpy", "rnn")
    x, w_ih, w_hh, y = cache.x, cache.w_ih, cache.w_hh, cache.y
    steps, batch, _ = x.shape
    hidden = w_hh.shape[1]
    dy, dh_n = v.rnn_backward_args(dy, dh_n, steps, batch, hidden, x.dtype)
    run = _all_lengths(cache.lengths, steps, batch)
    h0 = _zeros_if_none(cache.h0, (batch, hidden), x.dtype)

    dx = np.zeros_like(x)
    dw_ih, dw_hh = np.zeros_like(w_ih), np.zeros_like(w_hh)
    db = np.zeros(hidden, x.dtype)
    dh = _zeros_if_none(dh_n, (batch, hidden), x.dtype).copy()
    for s in reversed(range(steps)):
        active, t, rows = _step(s, run, cache.reverse)
        if dy is not None:
            dh = dh + np.where(active, dy[t, rows], 0)
        y_t = y[t, rows]
        act_grad = 1 - y_t * y_t if cache.nonlinearity == "tanh" else (y_t > 0).astype(x.dtype)
        dpre = np.where(active, dh * act_grad, 0)
        h_prev = _previous(s, run, cache.reverse, y, h0)
        dw_ih += dpre.T @ np.where(active, x[t, rows], 0)
        dw_hh += dpre.T @ np.where(active, h_prev, 0)
        db += dpre.sum(axis=0)
        on = active[:, 0]
        dx[t[on], rows[on]] = (dpre @ w_ih)[on]  # padded positions keep dx = 0
        dh = np.where(active, dpre @ w_hh, dh)  # a row not yet started passes dh_n through
    return (dx, dh, dw_ih, dw_hh, *_bias_grads(db, db.copy(), cache))


# ---- LSTM ----------------------------------------------------------------------------------------

def lstm_forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh, *, lengths=None, reverse=False, training=True):
    """LSTM forward pass, gate blocks [i | f | g | o].

    x (T, B, I); h0, c0 (B, H) or None; w_ih (4H, I); w_hh (4H, H); b_ih, b_hh (4H,) or None;
    lengths, reverse, training as in the module's docstring.
    Returns y (T, B, H), h_n (B, H), c_n (B, H) and the cache ``lstm_backward`` needs (None when not
    training).
    """
    x, states, w_ih, w_hh, b_ih, b_hh = v.sequence_forward_args("lstm", x, {"h0": h0, "c0": c0}, w_ih, w_hh, b_ih, b_hh)
    lengths, reverse, training = _options(lengths, reverse, training, x)
    steps, batch, _ = x.shape
    hidden = w_hh.shape[1]
    run = _all_lengths(lengths, steps, batch)
    h = _zeros_if_none(states["h0"], (batch, hidden), x.dtype)
    c = _zeros_if_none(states["c0"], (batch, hidden), x.dtype)
    y = np.zeros((steps, batch, hidden), x.dtype)
    gates = np.zeros((steps, batch, 4 * hidden), x.dtype) if training else None
    cells = np.zeros((steps, batch, hidden), x.dtype) if training else None
    for s in range(steps):
        active, t, rows = _step(s, run, reverse)
        x_t = np.where(active, x[t, rows], 0)
        pre = _add_biases(x_t @ w_ih.T + h @ w_hh.T, b_ih, b_hh)
        i, f, g, o = np.split(pre, 4, axis=1)
        i, f, g, o = _sigmoid(i), _sigmoid(f), np.tanh(g), _sigmoid(o)
        c = np.where(active, f * c + i * g, c)
        h = np.where(active, o * np.tanh(c), h)
        on = active[:, 0]
        y[t[on], rows[on]] = h[on]
        if training:
            cells[t[on], rows[on]] = c[on]
            gates[t[on], rows[on]] = np.concatenate([i, f, g, o], axis=1)[on]
    if not training:
        return y, h.copy(), c.copy(), None
    cache = _cache("lstm", None, x, states["h0"], states["c0"], w_ih, w_hh, y, b_ih, b_hh, lengths, reverse,
                   gates=gates, cells=cells)
    return cache.y, h.copy(), c.copy(), cache


def lstm_backward(cache, dy, dh_n, dc_n):
    """BPTT for ``lstm_forward``.  dy (T, B, H), dh_n and dc_n (B, H): each may be None (zeros).

    Returns (dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh).
    """
    Cache.check_trained(cache, "numpy", "lstm")
    x, w_ih, w_hh, y = cache.x, cache.w_ih, cache.w_hh, cache.y
    steps, batch, _ = x.shape
    hidden = w_hh.shape[1]
    g = v.sequence_backward_args({"dy": dy, "dh_n": dh_n, "dc_n": dc_n}, steps, batch, hidden, x.dtype)
    run = _all_lengths(cache.lengths, steps, batch)
    h0 = _zeros_if_none(cache.h0, (batch, hidden), x.dtype)
    c0 = _zeros_if_none(cache.c0, (batch, hidden), x.dtype)

    dx = np.zeros_like(x)
    dw_ih, dw_hh = np.zeros_like(w_ih), np.zeros_like(w_hh)
    db = np.zeros(4 * hidden, x.dtype)
    dh = _zeros_if_none(g["dh_n"], (batch, hidden), x.dtype).copy()
    dc = _zeros_if_none(g["dc_n"], (batch, hidden), x.dtype).copy()
    for s in reversed(range(steps)):
        active, t, rows = _step(s, run, cache.reverse)
        if g["dy"] is not None:
            dh = dh + np.where(active, g["dy"][t, rows], 0)
        i, f, gg, o = np.split(cache.gates[t, rows], 4, axis=1)
        tanh_c = np.tanh(cache.cells[t, rows])
        c_prev = _previous(s, run, cache.reverse, cache.cells, c0)
        h_prev = _previous(s, run, cache.reverse, y, h0)
        dc = np.where(active, dc + dh * o * (1 - tanh_c * tanh_c), dc)
        dpre = np.where(active, np.concatenate([
            dc * gg * i * (1 - i),          # input gate
            dc * c_prev * f * (1 - f),      # forget gate
            dc * i * (1 - gg * gg),         # cell candidate
            dh * tanh_c * o * (1 - o),      # output gate
        ], axis=1), 0)
        dw_ih += dpre.T @ np.where(active, x[t, rows], 0)
        dw_hh += dpre.T @ np.where(active, h_prev, 0)
        db += dpre.sum(axis=0)
        on = active[:, 0]
        dx[t[on], rows[on]] = (dpre @ w_ih)[on]
        dh = np.where(active, dpre @ w_hh, dh)
        dc = np.where(active, dc * f, dc)
    return (dx, dh, dc, dw_ih, dw_hh, *_bias_grads(db, db.copy(), cache))


# ---- GRU -----------------------------------------------------------------------------------------

def gru_forward(x, h0, w_ih, w_hh, b_ih, b_hh, *, lengths=None, reverse=False, training=True):
    """GRU forward pass, gate blocks [r | z | n]; the reset gate multiplies W_hn h + b_hn (torch).

    x (T, B, I); h0 (B, H) or None; w_ih (3H, I); w_hh (3H, H); b_ih, b_hh (3H,) or None;
    lengths, reverse, training as in the module's docstring.
    Returns y (T, B, H), h_n (B, H) and the cache ``gru_backward`` needs (None when not training).
    """
    x, states, w_ih, w_hh, b_ih, b_hh = v.sequence_forward_args("gru", x, {"h0": h0}, w_ih, w_hh, b_ih, b_hh)
    lengths, reverse, training = _options(lengths, reverse, training, x)
    steps, batch, _ = x.shape
    hidden = w_hh.shape[1]
    run = _all_lengths(lengths, steps, batch)
    h = _zeros_if_none(states["h0"], (batch, hidden), x.dtype)
    y = np.zeros((steps, batch, hidden), x.dtype)
    gates = np.zeros((steps, batch, 3 * hidden), x.dtype) if training else None
    hidden_n = np.zeros((steps, batch, hidden), x.dtype) if training else None
    for s in range(steps):
        active, t, rows = _step(s, run, reverse)
        x_t = np.where(active, x[t, rows], 0)
        gx = _add_biases(x_t @ w_ih.T, b_ih, None)
        gh = _add_biases(h @ w_hh.T, None, b_hh)
        gx_r, gx_z, gx_n = np.split(gx, 3, axis=1)
        gh_r, gh_z, gh_n = np.split(gh, 3, axis=1)
        r = _sigmoid(gx_r + gh_r)
        z = _sigmoid(gx_z + gh_z)
        n = np.tanh(gx_n + r * gh_n)
        h = np.where(active, (1 - z) * n + z * h, h)
        on = active[:, 0]
        y[t[on], rows[on]] = h[on]
        if training:
            hidden_n[t[on], rows[on]] = gh_n[on]
            gates[t[on], rows[on]] = np.concatenate([r, z, n], axis=1)[on]
    if not training:
        return y, h.copy(), None
    cache = _cache("gru", None, x, states["h0"], None, w_ih, w_hh, y, b_ih, b_hh, lengths, reverse,
                   gates=gates, hidden_n=hidden_n)
    return cache.y, h.copy(), cache


def gru_backward(cache, dy, dh_n):
    """BPTT for ``gru_forward``.  dy (T, B, H) and dh_n (B, H) may be None (zeros).

    Returns (dx, dh0, dw_ih, dw_hh, db_ih, db_hh); unlike the other cells, db_ih and db_hh differ
    (in the n block, where b_hn sits inside the reset gate's product).
    """
    Cache.check_trained(cache, "numpy", "gru")
    x, w_ih, w_hh, y = cache.x, cache.w_ih, cache.w_hh, cache.y
    steps, batch, _ = x.shape
    hidden = w_hh.shape[1]
    dy, dh_n = v.rnn_backward_args(dy, dh_n, steps, batch, hidden, x.dtype)
    run = _all_lengths(cache.lengths, steps, batch)
    h0 = _zeros_if_none(cache.h0, (batch, hidden), x.dtype)

    dx = np.zeros_like(x)
    dw_ih, dw_hh = np.zeros_like(w_ih), np.zeros_like(w_hh)
    db_ih, db_hh = np.zeros(3 * hidden, x.dtype), np.zeros(3 * hidden, x.dtype)
    dh = _zeros_if_none(dh_n, (batch, hidden), x.dtype).copy()
    for s in reversed(range(steps)):
        active, t, rows = _step(s, run, cache.reverse)
        if dy is not None:
            dh = dh + np.where(active, dy[t, rows], 0)
        r, z, n = np.split(cache.gates[t, rows], 3, axis=1)
        gh_n = cache.hidden_n[t, rows]
        h_prev = _previous(s, run, cache.reverse, y, h0)
        dpre_n = dh * (1 - z) * (1 - n * n)          # gradient of gx_n + r * gh_n
        dpre_r = dpre_n * gh_n * r * (1 - r)
        dpre_z = dh * (h_prev - n) * z * (1 - z)
        dgx = np.where(active, np.concatenate([dpre_r, dpre_z, dpre_n], axis=1), 0)          # input side
        dgh = np.where(active, np.concatenate([dpre_r, dpre_z, dpre_n * r], axis=1), 0)      # hidden side
        dw_ih += dgx.T @ np.where(active, x[t, rows], 0)
        dw_hh += dgh.T @ np.where(active, h_prev, 0)
        db_ih += dgx.sum(axis=0)
        db_hh += dgh.sum(axis=0)
        on = active[:, 0]
        dx[t[on], rows[on]] = (dgx @ w_ih)[on]
        dh = np.where(active, dh * z + dgh @ w_hh, dh)
    return (dx, dh, dw_ih, dw_hh, *_bias_grads(db_ih, db_hh, cache))
