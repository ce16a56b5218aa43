"""The kernels' Python API: validation (``_validation``), output allocation, and dispatch to _core.

Legend: T timesteps, B batch, I input features, H hidden units, G gate blocks (1 vanilla, 4 LSTM,
3 GRU); sequences are time-major (T, B, .).  Weights have PyTorch's layout: w_ih (G*H, I),
w_hh (G*H, H), biases (G*H,).  All arrays are float32 or float64, the same for all (nested lists take
the arrays' dtype).

Every forward takes, as keywords:
- ``lengths``: None, or (B,) integers in [0, T] in any order — torch's
  ``pack_padded_sequence(x, lengths, enforce_sorted=False)``: row b runs steps 0 .. lengths[b]-1,
  y[t, b] is 0 for t >= lengths[b], and h_n[b] (c_n[b]) is the state after the row's last real step
  (h0[b] when its length is 0).  No work is done on padding.
- ``reverse``: run each row from its own last real step down to step 0 (torch's reverse direction);
  y keeps the input's time order.
- ``training``: False saves nothing for the backward (the cache returned is None), and the scratch
  does not grow with T.  A training forward returns y read-only: its cache refers to it.

Each call packs the weights for the kernels once; ``rnnkit.Plan`` keeps them packed across calls.
"""

from __future__ import annotations

import numpy as np

from . import _core
from . import _validation as v
from ._cache import Cache

__all__ = ["gru_backward", "gru_forward", "lstm_backward", "lstm_forward", "rnn_backward", "rnn_forward"]

_PLAN_CELL = {"lstm": "lstm", "gru": "gru"}


def run_plans(plans, x, states0, lengths, training, reverse=None, ys=None):
    """Run one or two directions (``plans``, direction 1 reversed unless ``reverse`` says) over the
    validated x (T, B, I).  ``states0``: per direction a tuple (h0[, c0]) of arrays or None.
    ``ys``: per direction a (T, B, H) output array (a slice of the last axis of one is fine), or None
    to allocate.  Returns (ys, states_n, saved): states_n per direction a tuple (h_n[, c_n]), saved the
    list of _core.Saved (None when not training).  x may also be packed rows (N, I), torch's
    PackedSequence data, with lengths sorted longest first (sequence_forward's packed_rows); then so
    are the ys, (N, H)."""
    rows, batch = (x.shape[:1], len(lengths)) if x.ndim == 2 else (x.shape[:2], x.shape[1])
    hidden, lstm = plans[0].hidden_size, plans[0].cell == "lstm"
    directions = len(plans)
    if reverse is None:
        reverse = [bool(d) for d in range(directions)]
    if ys is None:
        ys = [np.empty((*rows, hidden), x.dtype) for _ in range(directions)]
    h_n = [np.empty((batch, hidden), x.dtype) for _ in range(directions)]
    c_n = [np.empty((batch, hidden), x.dtype) for _ in range(directions)] if lstm else [None] * directions
    h0 = [None if s is None else s[0] for s in states0]
    c0 = [None if s is None or not lstm else s[1] for s in states0]
    saved = _core.forward(plans, reverse, x, h0, c0, lengths, training, ys, h_n, c_n)
    states_n = [(h_n[d], c_n[d]) if lstm else (h_n[d],) for d in range(directions)]
    return ys, states_n, saved


def run_backward(saved, dys, dstates_n, dx, *, dx_accumulate=False, batch=None):
    """BPTT through ``run_plans``' saved directions: dx (T, B, I) — packed rows (N, I) — is filled
    (summed over directions); dx None: no input gradient, and none of its work.  ``batch`` says B
    (needed without dx, and for packed rows).  Returns per direction
    (dstate0, dw_ih, dw_hh, db_ih, db_hh), db_hh a copy-free alias of db_ih for the cells whose two
    bias gradients are equal."""
    first = saved[0]
    lstm, gru = first.cell == "lstm", first.cell == "gru"
    batch = batch if batch is not None else dx.shape[1]  # (packed rows: batch says B)
    dh0s, dc0s, dw_ihs, dw_hhs, db_ihs, db_hhs = [], [], [], [], [], []
    for s in saved:
        w_ih, w_hh = s.weights
        hidden = w_hh.shape[1]
        dtype = w_hh.dtype
        dh0s.append(np.empty((batch, hidden), dtype))
        dc0s.append(np.empty((batch, hidden), dtype) if lstm else None)
        dw_ihs.append(np.empty_like(w_ih))
        dw_hhs.append(np.empty_like(w_hh))
        db_ihs.append(np.empty(w_hh.shape[0], dtype))
        db_hhs.append(np.empty(w_hh.shape[0], dtype) if gru else db_ihs[-1])
    dh_n = [None if d is None else d[0] for d in dstates_n]
    dc_n = [None if d is None or not lstm else d[1] for d in dstates_n]
    _core.backward([s.core for s in saved], dys, dh_n, dc_n, dx, dh0s, dc0s, dw_ihs, dw_hhs, db_ihs, db_hhs,
                   dx_accumulate)
    return [((dh0s[d], dc0s[d]) if lstm else (dh0s[d],), dw_ihs[d], dw_hhs[d], db_ihs[d], db_hhs[d])
            for d in range(len(saved))]


class SavedPass:
    """One direction's _core.Saved with the weights it was made from (for the gradients' shapes)."""

    __slots__ = ("cell", "core", "fields", "weights")

    def __init__(self, core, weights):
        self.core, self.weights, self.cell = core, weights, core.cell
        self.fields = None  # the Cache's fields as the forward left them (functional API)


_CACHE_FIELDS = ("x", "y", "h0", "c0", "w_ih", "w_hh", "gates", "cells", "hidden_n", "lengths")


def cache_fields(cache):
    """The Cache's fields, in _CACHE_FIELDS' order, as the forward leaves them."""
    return (cache.x, cache.y, cache.h0, cache.c0, cache.w_ih, cache.w_hh, cache.gates, cache.cells, cache.hidden_n,
            cache.lengths)


def _check_unchanged(cache):
    """The backward runs on what the kernels saved; a Cache whose fields were replaced since would
    describe another pass, so it is refused rather than half-used."""
    saved = cache.saved
    if not isinstance(saved, SavedPass) or saved.fields is None or any(
            getattr(cache, name) is not kept for name, kept in zip(_CACHE_FIELDS, saved.fields)):
        raise TypeError("cache was changed after the forward; pass the cache the forward returned, unchanged")


def _ready(arrays, dtype) -> bool:
    """Every array already C-contiguous, of one float dtype: the kernels take them as they are."""
    for a in arrays:
        if a is not None and (type(a) is not np.ndarray or a.dtype != dtype or not a.flags.c_contiguous):
            return False
    return True


def _forward(kind, cell_name, x, states, w_ih, w_hh, b_ih, b_hh, lengths, reverse, training):
    # The common case — NumPy arrays as the kernels want them, no lengths — skips the Python checks:
    # the bindings check the same structure, and on any complaint the full checks below run to
    # give their message.
    if (lengths is None and type(x) is np.ndarray and reverse.__class__ is bool and training.__class__ is bool
            and x.dtype in v.FLOAT_DTYPES and _ready((x, w_ih, w_hh, b_ih, b_hh, *states.values()), x.dtype)):
        try:
            y, h_n, c_n, saved = _core.functional_forward(cell_name, x, states["h0"], states.get("c0"), w_ih, w_hh,
                                                          b_ih, b_hh, None, reverse, training)
        except (TypeError, ValueError):
            pass  # the checks below say what is wrong
        else:
            return _finish(kind, cell_name, x, states, w_ih, w_hh, b_ih, b_hh, None, reverse, y,
                           (h_n, c_n) if kind == "lstm" else (h_n,), saved)
    x, s, w_ih, w_hh, b_ih, b_hh = v.sequence_forward_args(kind, x, states, w_ih, w_hh, b_ih, b_hh)
    reverse = v.check_flag("reverse", reverse)
    training = v.check_flag("training", training)
    lengths = v.check_lengths(lengths, x.shape[0], x.shape[1])
    plan = _core.Plan(cell_name, w_ih, w_hh, b_ih, b_hh)
    state0 = tuple(s[name] for name in states)
    (y,), (state_n,), saved = run_plans([plan], x, [state0], lengths, training, reverse=[reverse])
    return _finish(kind, cell_name, x, s, w_ih, w_hh, b_ih, b_hh, lengths, reverse, y, state_n,
                   None if saved is None else saved[0])


def _finish(kind, cell_name, x, states, w_ih, w_hh, b_ih, b_hh, lengths, reverse, y, state_n, saved):
    cache = None
    if saved is not None:
        cache = Cache("cpp", kind, cell_name if kind == "rnn" else None, x, states["h0"], states.get("c0"), w_ih,
                      w_hh, y, b_ih is not None, b_hh is not None, lengths=lengths, reverse=reverse,
                      saved=SavedPass(saved, (w_ih, w_hh)))
        cache.saved.fields = cache_fields(cache)
    return y, state_n, cache


def _backward(kind, cache, gradients: dict):
    Cache.check_trained(cache, "cpp", kind)
    _check_unchanged(cache)
    steps, batch, _ = cache.x.shape
    hidden = cache.w_hh.shape[1]
    g = v.sequence_backward_args(gradients, steps, batch, hidden, cache.x.dtype)
    dx = np.empty_like(cache.x)
    dstate_n = (g["dh_n"], g.get("dc_n")) if kind == "lstm" else (g["dh_n"],)
    ((dstate0, dw_ih, dw_hh, db_ih, db_hh),) = run_backward([cache.saved], [g["dy"]], [dstate_n], dx)
    if db_hh is db_ih:
        db_hh = db_ih.copy() if cache.has_b_ih else db_ih
    return (dx, *dstate0, dw_ih, dw_hh, db_ih if cache.has_b_ih else None, db_hh if cache.has_b_hh else None)


def rnn_forward(x, h0, w_ih, w_hh, b_ih, b_hh, *, nonlinearity="tanh", lengths=None, reverse=False, training=True):
    """Vanilla RNN forward pass, PyTorch's equations: h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh).

    x (T, B, I); h0 (B, H) or None for zeros; w_ih (H, I); w_hh (H, H); b_ih, b_hh (H,) or None;
    nonlinearity "tanh" or "relu"; lengths, reverse, training as in the module docstring.  Returns
    y (T, B, H) — every hidden state —, h_n (B, H) and the cache to pass to ``rnn_backward`` (None when
    not training).
    """
    v.check_nonlinearity(nonlinearity)
    y, (h_n,), cache = _forward("rnn", nonlinearity, x, {"h0": h0}, w_ih, w_hh, b_ih, b_hh, lengths, reverse, training)
    return y, h_n, cache


def rnn_backward(cache, dy, dh_n):
    """Backpropagation through time for ``rnn_forward``: the gradients of sum(y*dy) + sum(h_n*dh_n).

    dy (T, B, H) and dh_n (B, H) may be None (zeros) and must have the forward's dtype; dy at padding
    is ignored.  Returns (dx, dh0, dw_ih, dw_hh, db_ih, db_hh); dx is 0 at padding; db_ih / db_hh are
    None where the forward had no such bias.
    """
    return _backward("rnn", cache, {"dy": dy, "dh_n": dh_n})


def lstm_forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh, *, lengths=None, reverse=False, training=True):
    """LSTM forward pass, PyTorch's equations and gate order [i | f | g | o].

    x (T, B, I); h0, c0 (B, H) or None for zeros; w_ih (4H, I); w_hh (4H, H); b_ih, b_hh (4H,) or
    None.  Returns y (T, B, H), h_n (B, H), c_n (B, H) and the cache for ``lstm_backward``.
    """
    y, (h_n, c_n), cache = _forward("lstm", "lstm", x, {"h0": h0, "c0": c0}, w_ih, w_hh, b_ih, b_hh, lengths,
                                    reverse, training)
    return y, h_n, c_n, cache


def lstm_backward(cache, dy, dh_n, dc_n):
    """BPTT for ``lstm_forward``: gradients of sum(y*dy) + sum(h_n*dh_n) + sum(c_n*dc_n).

    dy (T, B, H), dh_n and dc_n (B, H) may be None (zeros).  Returns
    (dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh).
    """
    return _backward("lstm", cache, {"dy": dy, "dh_n": dh_n, "dc_n": dc_n})


def gru_forward(x, h0, w_ih, w_hh, b_ih, b_hh, *, lengths=None, reverse=False, training=True):
    """GRU forward pass, PyTorch's equations and gate order [r | z | n] (reset applied to W_hn h + b_hn).

    x (T, B, I); h0 (B, H) or None for zeros; w_ih (3H, I); w_hh (3H, H); b_ih, b_hh (3H,) or None.
    Returns y (T, B, H), h_n (B, H) and the cache for ``gru_backward``.
    """
    y, (h_n,), cache = _forward("gru", "gru", x, {"h0": h0}, w_ih, w_hh, b_ih, b_hh, lengths, reverse, training)
    return y, h_n, cache


def gru_backward(cache, dy, dh_n):
    """BPTT for ``gru_forward``: gradients of sum(y*dy) + sum(h_n*dh_n).

    dy (T, B, H) and dh_n (B, H) may be None (zeros).  Returns (dx, dh0, dw_ih, dw_hh, db_ih, db_hh).
    """
    return _backward("gru", cache, {"dy": dy, "dh_n": dh_n})
