"""``rnnkit.Plan``: one cell's weights packed for the kernels once, for many calls.

    plan = rnnkit.Plan("lstm", w_ih, w_hh, b_ih, b_hh)
    y, h_n, c_n = plan.forward(x, h0, c0)                   # inference: nothing saved
    y, h_n, c_n, cache = plan.forward(x, training=True)     # for rnnkit.lstm_backward(cache, ...)

A call through a plan does no packing and allocates nothing beyond its outputs — which it can
write into caller-given arrays (``out=``, ``h_n_out=``, ``c_n_out=``).  The plan's weights are a
**snapshot**: it copies them when it is made, so changing the arrays afterwards changes nothing;
make a new plan after an optimizer step.  One plan may be used from many threads at once.

Legend: T timesteps, B batch, I input features, H hidden units, G gate blocks (1, 4 LSTM, 3 GRU).
"""

from __future__ import annotations

import numpy as np

from . import _core
from . import _validation as v
from ._cache import Cache
from .functional import SavedPass, _ready, cache_fields, run_plans

__all__ = ["Plan"]


CELLS = tuple(v.CELL_KINDS)


class Plan:
    """``Plan(cell, w_ih, w_hh, b_ih=None, b_hh=None)``: cell "tanh", "relu", "lstm" or "gru";
    torch's layout: w_ih (G*H, I), w_hh (G*H, H), biases (G*H,) or None; float32 or float64."""

    def __init__(self, cell, w_ih, w_hh, b_ih=None, b_hh=None):
        if not isinstance(cell, str) or cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(map(repr, CELLS))}, got {cell!r}")
        kind = v.CELL_KINDS[cell]
        weights, _ = v.as_float_arrays({"w_ih": w_ih, "w_hh": w_hh, "b_ih": b_ih, "b_hh": b_hh},
                                       optional=("b_ih", "b_hh"))
        v.check_weights(kind, weights["w_ih"], weights["w_hh"], weights["b_ih"], weights["b_hh"])
        hidden = weights["w_hh"].shape[1]
        self.cell, self._kind = cell, kind
        self.input_size, self.hidden_size = weights["w_ih"].shape[1], hidden
        self.dtype = weights["w_hh"].dtype
        self._has_bias = (weights["b_ih"] is not None, weights["b_hh"] is not None)
        self._core = _core.Plan(cell, weights["w_ih"], weights["w_hh"], weights["b_ih"], weights["b_hh"])
        # (what a training call's cache reports; the kernels use their own copies)
        self._weights = (weights["w_ih"].copy(), weights["w_hh"].copy())

    def __repr__(self):
        return (f"Plan({self.cell!r}, input_size={self.input_size}, hidden_size={self.hidden_size}, "
                f"dtype='{self.dtype}')")

    @property
    def isa(self) -> str:
        """The SIMD path the weights were packed for (the plan keeps using it)."""
        return self._core.isa

    def forward(self, x, h0=None, c0=None, *, lengths=None, reverse=False, training=False, out=None,
                h_n_out=None, c_n_out=None):
        """Run the cell over x (T, B, I), time-major.

        h0, c0 (B, H) or None (zeros; c0 for the LSTM only); lengths, reverse, training as in
        ``rnnkit.rnn_forward``.  ``out``: a (T, B, H) array of the plan's dtype to write y into (a
        slice of the last axis of a C-contiguous array is fine); ``h_n_out``, ``c_n_out``: (B, H)
        arrays for the final states.  Returns (y, h_n) — (y, h_n, c_n) for the LSTM — and, when
        training, the cache for the matching backward (``rnnkit.lstm_backward`` & co.).
        """
        if (type(x) is np.ndarray and lengths is None and out is None and h_n_out is None and c_n_out is None
                and training is False and reverse.__class__ is bool and x.ndim == 3 and x.dtype == self.dtype
                and x.flags.c_contiguous and x.shape[2] == self.input_size and _ready((h0, c0), self.dtype)
                and (self._kind == "lstm" or c0 is None)):
            # The streaming case, checked as cheaply as it can be: the bindings check the rest.
            shape = (x.shape[1], self.hidden_size)
            y = np.empty((x.shape[0], *shape), self.dtype)
            h_n = np.empty(shape, self.dtype)
            c_n = np.empty(shape, self.dtype) if self._kind == "lstm" else None
            try:
                _core.forward([self._core], [reverse], x, [h0], [c0], None, False, [y], [h_n], [c_n])
            except (TypeError, ValueError):
                pass  # the full checks below say what is wrong
            else:
                return (y, h_n) if c_n is None else (y, h_n, c_n)
        states = {"h0": h0, "c0": c0} if self._kind == "lstm" else {"h0": h0}
        if self._kind != "lstm" and c0 is not None:
            raise ValueError(f"c0 is for the LSTM; this plan's cell is {self.cell!r}")
        arrays, _ = v.as_float_arrays({"x": x, **states}, optional=tuple(states), dtype=self.dtype)
        x = arrays["x"]
        v.check_ndim("x", x, 3, "(T, B, I)")
        steps, batch, inputs = x.shape
        if inputs != self.input_size:
            raise ValueError(f"x has {inputs} features (shape {v.fmt_shape(x.shape)}); this plan's input_size is "
                             f"{self.input_size}")
        for name in states:
            v.check_shape(name, arrays[name], (batch, self.hidden_size), f"= (B, H) from x {v.fmt_shape(x.shape)}")
        reverse = v.check_flag("reverse", reverse)
        training = v.check_flag("training", training)
        lengths = v.check_lengths(lengths, steps, batch)
        ys = None if out is None else [self._output("out", out, (steps, batch, self.hidden_size), sequence=True)]
        state0 = tuple(arrays[name] for name in states)
        (y,), (state_n,), saved = run_plans([self._core], x, [state0], lengths, training, reverse=[reverse], ys=ys)
        state_n = list(state_n)
        for i, given in enumerate((h_n_out, c_n_out)[:len(state_n)]):
            if given is not None:
                target = self._output("h_n_out" if i == 0 else "c_n_out", given, (batch, self.hidden_size))
                target[...] = state_n[i]
                state_n[i] = target
        if not training:
            return (y, *state_n)
        w_ih, w_hh = self._weights
        cache = Cache("cpp", self._kind, self.cell if self._kind == "rnn" else None, x, arrays["h0"],
                      arrays.get("c0"), w_ih, w_hh, y, *self._has_bias, lengths=lengths, reverse=reverse,
                      saved=SavedPass(saved[0], (w_ih, w_hh)))
        cache.saved.fields = cache_fields(cache)
        return (y, *state_n, cache)

    __call__ = forward

    def _output(self, name, array, shape, sequence=False):
        if not isinstance(array, np.ndarray):
            raise TypeError(f"{name} must be a numpy array, got {type(array).__name__}")
        if array.dtype != self.dtype:
            raise TypeError(f"{name} has dtype {array.dtype}; this plan's dtype is {self.dtype}")
        v.check_shape(name, array, shape, "(the shape of the output)")
        if not array.flags.writeable:
            raise ValueError(f"{name} must be writable")
        if array.flags.c_contiguous or array.size == 0:
            return array
        if not sequence:
            raise ValueError(f"{name} must be C-contiguous")
        # (T, B, H): evenly spaced rows of contiguous features, as a slice of a wider last axis is
        steps, batch, hidden = shape
        item = array.itemsize
        s0, s1, s2 = array.strides
        rows_ok = batch <= 1 or (s1 >= hidden * item and s1 % item == 0)
        rows_ok = rows_ok and (steps <= 1 or batch <= 1 or s0 == batch * s1)
        rows_ok = rows_ok and not (batch <= 1 and steps > 1 and (s0 < hidden * item or s0 % item))
        if (hidden > 1 and s2 != item) or not rows_ok:
            raise ValueError(f"{name} must be C-contiguous or a slice of the last axis of a C-contiguous array, "
                             f"got strides {array.strides}")
        return array
