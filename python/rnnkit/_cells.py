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
    extra: dict  # the C++ path's saved gates/cells, or the reference's cache


def _flip(a):
    return None if a is None else a[::-1]


def _state(states, i):
    return None if states is None else states[i]


class Cell:
    """One cell kind: "tanh" / "relu" (vanilla), "lstm" or "gru"."""

    def __init__(self, name: str):
        if name not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(map(repr, CELLS))}, got {name!r}")
        self.name = name
        self.kind = name if name in ("lstm", "gru") else "rnn"
        self.gates = {"rnn": 1, "lstm": 4, "gru": 3}[self.kind]
        self.num_states = 2 if self.kind == "lstm" else 1

    def __repr__(self):
        return f"Cell({self.name!r})"

    # ---- forward ----------------------------------------------------------------------------------
    def forward(self, x, state0, w_ih, w_hh, b_ih, b_hh, y, *, reverse=False, backend="cpp"):
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        h0, c0 = _state(state0, 0), (_state(state0, 1) if self.kind == "lstm" else None)
        if backend == "cpp":
            states, extra = self._forward_cpp(x, h0, c0, w_ih, w_hh, b_ih, b_hh, y, reverse)
        else:
            states, extra = self._forward_numpy(x, h0, c0, w_ih, w_hh, b_ih, b_hh, y, reverse)
        saved = _Saved(backend, reverse, x, state0, w_ih, w_hh, y, (b_ih is not None, b_hh is not None), extra)
        return states, saved

    def _forward_cpp(self, x, h0, c0, w_ih, w_hh, b_ih, b_hh, y, reverse):
        steps, batch = x.shape[:2]
        hidden = w_hh.shape[1]

        def new(*shape):
            return np.empty(shape, x.dtype)

        h_n = new(batch, hidden)
        if self.kind == "rnn":
            _core.rnn_forward(x, h0, w_ih, w_hh, b_ih, b_hh, y, h_n, self.name, reverse)
            return (h_n,), {}
        if self.kind == "lstm":
            c_n, gates, cells = new(batch, hidden), new(steps, batch, 4 * hidden), new(steps, batch, hidden)
            _core.lstm_forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh, y, h_n, c_n, gates, cells, reverse)
            return (h_n, c_n), {"gates": gates, "cells": cells}
        gates, hidden_n = new(steps, batch, 3 * hidden), new(steps, batch, hidden)
        _core.gru_forward(x, h0, w_ih, w_hh, b_ih, b_hh, y, h_n, gates, hidden_n, reverse)
        return (h_n,), {"gates": gates, "hidden_n": hidden_n}

    def _forward_numpy(self, x, h0, c0, w_ih, w_hh, b_ih, b_hh, y, reverse):
        xs = _flip(x) if reverse else x
        if self.kind == "rnn":
            ys, h_n, cache = reference.rnn_forward(xs, h0, w_ih, w_hh, b_ih, b_hh, nonlinearity=self.name)
            states = (h_n,)
        elif self.kind == "lstm":
            ys, h_n, c_n, cache = reference.lstm_forward(xs, h0, c0, w_ih, w_hh, b_ih, b_hh)
            states = (h_n, c_n)
        else:
            ys, h_n, cache = reference.gru_forward(xs, h0, w_ih, w_hh, b_ih, b_hh)
            states = (h_n,)
        y[...] = _flip(ys) if reverse else ys
        return states, {"cache": cache}

    # ---- backward ---------------------------------------------------------------------------------
    def backward(self, saved: _Saved, dy, dstate_n, dx, *, accumulate_dx=False):
        dh_n, dc_n = _state(dstate_n, 0), (_state(dstate_n, 1) if self.kind == "lstm" else None)
        if saved.backend == "cpp":
            dstate0, dw_ih, dw_hh, db_ih, db_hh = self._backward_cpp(saved, dy, dh_n, dc_n, dx, accumulate_dx)
        else:
            dstate0, dw_ih, dw_hh, db_ih, db_hh = self._backward_numpy(saved, dy, dh_n, dc_n, dx, accumulate_dx)
        if saved.has_bias[0] and saved.has_bias[1] and db_hh is db_ih:
            db_hh = db_ih.copy()
        return (dstate0, dw_ih, dw_hh, db_ih if saved.has_bias[0] else None,
                db_hh if saved.has_bias[1] else None)

    def _backward_cpp(self, saved, dy, dh_n, dc_n, dx, accumulate_dx):
        x, w_ih, w_hh, e = saved.x, saved.w_ih, saved.w_hh, saved.extra
        batch, hidden = x.shape[1], w_hh.shape[1]
        h0 = _state(saved.state0, 0)
        dh0 = np.empty((batch, hidden), x.dtype)
        dw_ih, dw_hh = np.empty_like(w_ih), np.empty_like(w_hh)
        db = np.empty(w_hh.shape[0], x.dtype)
        if self.kind == "rnn":
            _core.rnn_backward(x, h0, w_ih, w_hh, saved.y, dy, dh_n, dx, dh0, dw_ih, dw_hh, db,
                               self.name, saved.reverse, accumulate_dx)
            return (dh0,), dw_ih, dw_hh, db, db
        if self.kind == "lstm":
            dc0 = np.empty((batch, hidden), x.dtype)
            _core.lstm_backward(x, h0, _state(saved.state0, 1), w_ih, w_hh, saved.y, e["gates"], e["cells"], dy,
                                dh_n, dc_n, dx, dh0, dc0, dw_ih, dw_hh, db, saved.reverse, accumulate_dx)
            return (dh0, dc0), dw_ih, dw_hh, db, db
        db_hh = np.empty_like(db)
        _core.gru_backward(x, h0, w_ih, w_hh, saved.y, e["gates"], e["hidden_n"], dy, dh_n, dx, dh0, dw_ih, dw_hh,
                           db, db_hh, saved.reverse, accumulate_dx)
        return (dh0,), dw_ih, dw_hh, db, db_hh

    def _backward_numpy(self, saved, dy, dh_n, dc_n, dx, accumulate_dx):
        cache = saved.extra["cache"]
        dys = _flip(dy) if saved.reverse else dy
        if self.kind == "rnn":
            dxs, dh0, dw_ih, dw_hh, db_ih, db_hh = reference.rnn_backward(cache, dys, dh_n)
            dstate0 = (dh0,)
        elif self.kind == "lstm":
            dxs, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh = reference.lstm_backward(cache, dys, dh_n, dc_n)
            dstate0 = (dh0, dc0)
        else:
            dxs, dh0, dw_ih, dw_hh, db_ih, db_hh = reference.gru_backward(cache, dys, dh_n)
            dstate0 = (dh0,)
        dxs = _flip(dxs) if saved.reverse else dxs
        if accumulate_dx:
            dx += dxs
        else:
            dx[...] = dxs
        # (the reference gives None for an absent bias; the layer wants the gradient either way)
        db_ih = db_ih if db_ih is not None else db_hh
        db_hh = db_hh if db_hh is not None else db_ih
        if db_ih is None:
            db_ih = db_hh = np.zeros(saved.w_hh.shape[0], saved.x.dtype)
        return dstate0, dw_ih, dw_hh, db_ih, db_hh


CELLS = ("tanh", "relu", "lstm", "gru")


def make_cell(cell: str) -> Cell:
    """The cell for a layer's ``cell`` argument: "tanh", "relu", "lstm" or "gru"."""
    if not isinstance(cell, str):
        raise TypeError(f"cell must be a str, got {type(cell).__name__}")
    return Cell(cell)
