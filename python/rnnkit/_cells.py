"""The seam between the layers and the kernels: one direction of one recurrent layer.

A cell runs a time-major sequence x (T, B, I) to y (T, B, H) in one direction, on one backend:

    state_n, saved = cell.forward(x, state0, w_ih, w_hh, b_ih, b_hh, y, reverse=..., backend=...)
    dstate0, dw_ih, dw_hh, db_ih, db_hh = cell.backward(saved, dy, dstate_n, dx, accumulate_dx=...)

- ``state0`` / ``state_n`` / ``dstate0`` / ``dstate_n`` are tuples of ``cell.num_states`` arrays (B, H):
  (h,) for the vanilla cell and the GRU, (h, c) for the LSTM.  ``state0`` and ``dstate_n`` may be
  None (zeros); so may ``dy``.
- ``y`` is written in place.  It and ``dy`` may be a slice of the last axis of a C-contiguous array
  (one half of a bidirectional output): the C++ kernels read and write it without copies.
- ``reverse=True`` runs the recurrence from t = T-1 down to 0 while x and y keep their time order.
- ``dx`` (T, B, I) is overwritten, or added to when ``accumulate_dx`` (the two directions of a
  bidirectional layer share one dx).
- Arrays must already be validated: one float dtype, C-contiguous (except y/dy as above), right shapes.
  The layers validate user input before calling here.

Backends: "cpp" (the kernels in rnnkit._core) and "numpy" (rnnkit.reference; the reverse direction
flips copies, since the reference is written to be read, not to be fast).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _core, reference

BACKENDS = ("cpp", "numpy")


@dataclass
class _Saved:
    """What a forward keeps for its backward (opaque to the layers)."""

    backend: str
    reverse: bool
    x: np.ndarray
    state0: tuple | None
    w_ih: np.ndarray
    w_hh: np.ndarray
    y: np.ndarray
    has_bias: tuple
    extra: object = None  # the reference's cache, or a cell's saved gates


def _flip(a):
    return None if a is None else a[::-1]


class VanillaCell:
    """h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), act = tanh or relu."""

    gates = 1
    num_states = 1

    def __init__(self, nonlinearity: str):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        self.name = nonlinearity

    def forward(self, x, state0, w_ih, w_hh, b_ih, b_hh, y, *, reverse=False, backend="cpp"):
        h0 = None if state0 is None else state0[0]
        batch, hidden = x.shape[1], w_hh.shape[1]
        has_bias = (b_ih is not None, b_hh is not None)
        if backend == "cpp":
            h_n = np.empty((batch, hidden), x.dtype)
            _core.rnn_forward(x, h0, w_ih, w_hh, b_ih, b_hh, y, h_n, self.nonlinearity, reverse)
            extra = None
        elif backend == "numpy":
            xs = _flip(x) if reverse else x
            ys, h_n, extra = reference.rnn_forward(xs, h0, w_ih, w_hh, b_ih, b_hh, nonlinearity=self.nonlinearity)
            y[...] = _flip(ys) if reverse else ys
        else:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        saved = _Saved(backend, reverse, x, state0, w_ih, w_hh, y, has_bias, extra)
        return (h_n,), saved

    def backward(self, saved: _Saved, dy, dstate_n, dx, *, accumulate_dx=False):
        dh_n = None if dstate_n is None else dstate_n[0]
        x, w_ih, w_hh = saved.x, saved.w_ih, saved.w_hh
        batch, hidden = x.shape[1], w_hh.shape[1]
        if saved.backend == "cpp":
            h0 = None if saved.state0 is None else saved.state0[0]
            dh0 = np.empty((batch, hidden), x.dtype)
            dw_ih, dw_hh = np.empty_like(w_ih), np.empty_like(w_hh)
            db = np.empty(hidden, x.dtype)
            _core.rnn_backward(x, h0, w_ih, w_hh, saved.y, dy, dh_n, dx, dh0, dw_ih, dw_hh, db,
                               self.nonlinearity, saved.reverse, accumulate_dx)
        else:
            dys = _flip(dy) if saved.reverse else dy
            dxs, dh0, dw_ih, dw_hh, db_ih, db_hh = reference.rnn_backward(saved.extra, dys, dh_n)
            dxs = _flip(dxs) if saved.reverse else dxs
            if accumulate_dx:
                dx += dxs
            else:
                dx[...] = dxs
            db = db_ih if db_ih is not None else db_hh  # the same gradient for both biases
        db_ih = db if saved.has_bias[0] else None
        db_hh = (db.copy() if saved.has_bias[0] else db) if saved.has_bias[1] else None
        return (dh0,), dw_ih, dw_hh, db_ih, db_hh


def make_cell(cell: str):
    """The cell for a layer's ``cell`` argument: "tanh" or "relu" (more cells arrive with the kernels)."""
    if cell in ("tanh", "relu"):
        return VanillaCell(cell)
    raise ValueError(f"cell must be one of 'tanh', 'relu', got {cell!r}")
