"""Streams: step-by-step inference over live data, one timestep at a time.

    stream = layer.stream(batch_size=4)        # or model.stream(batch_size=4)
    h_t = stream.step(x_t)                     # x_t (B, I) -> the top layer's h_t (B, H)
    hs = stream.feed(x_chunk)                  # x_chunk (T, B, I) -> every step's h (T, B, H)
    stream.reset(rows=[2])                     # row 2 starts a new session; the others go on
    saved = stream.state; stream.state = saved # every layer's state: save and restore a session

Each row of a stream is an independent session.  A layer's stream (backend "cpp") is ``_core.Stream``:
the weights packed once (the kernels' plans, a snapshot taken when the stream is made), the state of
every row and layer kept inside, and each step run in C++ on the calling thread with the GIL released
— so many streams in many threads run at once.  One stream used from two threads at once is
serialised by its own lock, never torn.  Feeding a sequence in any chunking gives bitwise the same
outputs (every step takes the same path), and the whole-sequence forward's outputs to rounding (the
step's input projection sums its products in another order than the forward's GEMM: about 1e-6
relative in float32, 1e-15 in float64, measured in tests/test_streams.py).

A bidirectional layer cannot stream (its reverse direction starts from the end of the sequence).

Models: ``ManyToOne.stream()`` and ``ManyToMany.stream()`` give a ``ModelStream`` whose ``step``
returns the head's prediction for that step (for ManyToOne: the prediction given everything so far);
with ``vocab_size``, x_t holds token ids (B,).
"""

from __future__ import annotations

import numpy as np

from . import _core
from . import _validation as v

__all__ = ["ModelStream", "NumpyStream", "layer_stream"]


def _check_streamable(layer) -> None:
    if layer.bidirectional:
        raise ValueError("a bidirectional layer cannot stream: its reverse direction reads each sequence from its "
                         "end, which a stream has not seen yet; run it on whole sequences (layer(x)) instead")


def _plans(layer) -> list:
    """Each layer's weights packed for the kernels (snapshots)."""
    return [layer._cell.plan(*layer._weights(i, 0)) for i in range(layer.num_layers)]


def layer_stream(layer, batch_size):
    """The stream of an rnnkit.RNN (see RNN.stream)."""
    from .layers import check_int
    _check_streamable(layer)
    batch_size = check_int("batch_size", batch_size)
    if layer.backend == "cpp":
        return _core.Stream(_plans(layer), batch_size)
    weights = [tuple(a.copy() for a in layer._weights(i, 0)) for i in range(layer.num_layers)]
    return NumpyStream(layer._cell, weights, batch_size, layer.dtype)


class NumpyStream:
    """The stream of a layer on backend="numpy": the same interface as ``_core.Stream``, each step
    computed by rnnkit.reference."""

    def __init__(self, cell, weights, batch_size, dtype):
        self._cell, self.cell = cell, cell.name
        self.dtype, self.batch_size = str(np.dtype(dtype)), batch_size
        self._weights = weights
        self.num_layers = len(weights)
        self.input_size, self.hidden_size = weights[0][0].shape[1], weights[0][1].shape[1]
        self._lstm = cell.num_states == 2
        self.reset()

    def reset(self, rows=None):
        shape = (self.num_layers, self.batch_size, self.hidden_size)
        if rows is None:
            self._h = np.zeros(shape, self.dtype)
            self._c = np.zeros(shape, self.dtype) if self._lstm else None
            return
        picked = _check_rows(rows, self.batch_size)
        self._h[:, picked] = 0
        if self._lstm:
            self._c[:, picked] = 0

    @property
    def state(self):
        return (self._h.copy(), self._c.copy()) if self._lstm else self._h.copy()

    @state.setter
    def state(self, value):
        shape = (self.num_layers, self.batch_size, self.hidden_size)
        parts = value if self._lstm else (value,)
        if self._lstm and (not isinstance(value, (tuple, list)) or len(value) != 2):
            raise TypeError("state must be a pair (h, c) of (num_layers, B, H) arrays for an LSTM stream")
        arrays = []
        for i, part in enumerate(parts):
            name = "state" if not self._lstm else ("state[0] (h)", "state[1] (c)")[i]
            if not isinstance(part, np.ndarray) or part.dtype != np.dtype(self.dtype):
                raise TypeError(f"{name} must be a {self.dtype} array, got "
                                f"{getattr(part, 'dtype', type(part).__name__)}")
            v.check_shape(name, part, shape, "(num_layers, B, H)")
            arrays.append(part.copy())
        self._h = arrays[0]
        if self._lstm:
            self._c = arrays[1]

    def _input(self, name, x, sequence):
        base = 1 if sequence else 0
        if not isinstance(x, np.ndarray):
            raise TypeError(f"{name} must be a numpy array, got {type(x).__name__}")
        if x.dtype != np.dtype(self.dtype):
            raise TypeError(f"{name} has dtype {x.dtype}; this stream's dtype is {self.dtype}")
        squeezed = self.batch_size == 1 and x.ndim == base + 1
        ok = x.ndim == base + (1 if squeezed else 2) and x.shape[-1] == self.input_size and (
            squeezed or x.shape[base] == self.batch_size)
        if not ok:
            raise ValueError(f"{name} has shape {v.fmt_shape(x.shape)}; expected "
                             f"{'(T, B, I)' if sequence else '(B, I)'} with B = {self.batch_size}, I = {self.input_size}")
        return x, squeezed

    def _run(self, x):
        """x (T, B, I) -> (T, B, H), the state carried."""
        layer_input = x
        for layer, weights in enumerate(self._weights):
            out = np.empty((x.shape[0], self.batch_size, self.hidden_size), self.dtype)
            states0 = (self._h[layer], self._c[layer]) if self._lstm else (self._h[layer],)
            (states_n,), _ = self._cell.forward(layer_input, [states0], [weights], out, training=False,
                                                backend="numpy")
            self._h[layer] = states_n[0]
            if self._lstm:
                self._c[layer] = states_n[1]
            layer_input = out
        return layer_input

    def step(self, x_t):
        x, squeezed = self._input("x_t", x_t, False)
        out = self._run(x.reshape(1, self.batch_size, self.input_size))[0]
        return out[0] if squeezed else out

    def feed(self, x_chunk):
        x, squeezed = self._input("x_chunk", x_chunk, True)
        out = self._run(x.reshape(x.shape[0], self.batch_size, self.input_size))
        return out[:, 0] if squeezed else out


def _check_rows(rows, batch):
    picked = []
    for r in rows:
        if isinstance(r, bool) or not isinstance(r, (int, np.integer)):
            raise TypeError("rows must be None or a list of row indices (ints)")
        if not -batch <= r < batch:
            raise ValueError(f"rows holds {r}; rows must lie in [0, B) = [0, {batch})")
        picked.append(int(r) % batch)
    return picked


class ModelStream:
    """A ManyToOne or ManyToMany model, step by step: ``step(x_t)`` -> the head's prediction for that
    step — labels (B,) for classification, values (B,) or (B, O) for regression; without the batch
    axis when B is 1 and x_t came without it.  x_t is (B, F) floats, or (B,) token ids for a model
    with vocab_size.  ``feed``, ``reset`` and ``state`` as the layer's stream's.  The weights are a
    snapshot taken when the stream is made."""

    def __init__(self, model, batch_size):
        from .layers import check_int
        self.model_class = type(model).__name__
        self.batch_size = check_int("batch_size", batch_size)
        rnn = model.layers["rnn"]
        if model.bidirectional:
            raise ValueError(f"this {self.model_class} is bidirectional and cannot stream: its reverse direction reads "
                             "each sequence from its end; predict on whole sequences instead")
        head = model.layers["head"]
        self._w, self._b = head.params["weight"].copy(), head.params["bias"].copy()
        # the cpp backend computes the head in the same C++ call as the step (no GIL hand-over between)
        self._fused = rnn.backend == "cpp"
        if self._fused:
            self._layer = _core.Stream(_plans(rnn), self.batch_size, self._w, self._b)
        else:
            self._layer = rnn.stream(self.batch_size)
        embed = model.layers.get("embed")
        self._table = None if embed is None else embed.params["weight"].copy()
        self._vocab = model.vocab_size
        self._classify = model.task == "classification"
        self._one_value = model.task == "regression" and model.output_size == 1
        self.dtype = model.dtype

    # the layer stream's state handling, as is
    def reset(self, rows=None):
        self._layer.reset(rows)

    @property
    def state(self):
        return self._layer.state

    @state.setter
    def state(self, value):
        self._layer.state = value

    def _inputs(self, name, x, sequence):
        """Float inputs for the layer stream (embedded ids), and whether the batch axis was left out."""
        base = 1 if sequence else 0
        if self._table is None:
            return x, None
        ids = np.asarray(x)
        if ids.dtype.kind not in "iu":
            raise TypeError(f"{name} must hold integer token ids for a model with vocab_size={self._vocab}, got dtype "
                            f"{ids.dtype}")
        squeezed = self.batch_size == 1 and ids.ndim == base
        if ids.ndim != base + (0 if squeezed else 1) or (not squeezed and ids.shape[base] != self.batch_size):
            raise ValueError(f"{name} has shape {v.fmt_shape(ids.shape)}; expected "
                             f"{'(T, B)' if sequence else '(B,)'} token ids with B = {self.batch_size}")
        bad = (ids < 0) | (ids >= self._vocab)
        if bad.any():
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(f"{name}{list(where)} = {int(ids[where])} is out of range; token ids must lie in "
                             f"[0, vocab_size) = [0, {self._vocab})")
        return np.ascontiguousarray(self._table[ids]), squeezed

    def _predict(self, h):
        out = h if self._fused else h @ self._w.T + self._b
        if self._classify:
            return out.argmax(axis=-1)
        return out[..., 0] if self._one_value else out

    def step(self, x_t):
        x, squeezed = self._inputs("x_t", x_t, False)
        return self._predict(self._layer.step(x))

    def feed(self, x_chunk):
        x, squeezed = self._inputs("x_chunk", x_chunk, True)
        return self._predict(self._layer.feed(x))
