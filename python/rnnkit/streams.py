"""Streams: step-by-step inference over live data, one timestep at a time.

    stream = layer.stream(batch_size=4)        # or model.stream(batch_size=4)
    h_t = stream.step(x_t)                     # x_t (B, I) -> the top layer's h_t (B, H)
    hs = stream.feed(x_chunk)                  # x_chunk (T, B, I) -> every step's h (T, B, H)
    stream.reset(rows=[2])                     # row 2 starts a new session; the others go on
    saved = stream.state; stream.state = saved # every layer's state: save and restore a session

Each row of a stream is an independent session.  A layer's stream (backend "cpp") is ``_core.Stream``:
the weights packed once (the kernels' plans, a snapshot taken when the stream is made), the state of
every row and layer kept inside, and each step run in C++: a large step shares every layer's units
with the kernels' helper threads (bitwise the same results on any number of threads), a small one
runs on the calling thread alone.  A call shorter than about 2^20 multiply-adds keeps the GIL (handing
it over costs more than such a step); a longer one releases it, so that streams in other threads run
meanwhile.  One stream used from two threads at once is serialised by its own lock, never torn.  Feeding a sequence in any chunking gives bitwise the same
outputs (every step takes the same path), and the whole-sequence forward's outputs to rounding (the
step's input projection sums its products in another order than the forward's GEMM: about 1e-6
relative in float32, 1e-15 in float64, measured in tests/test_streams.py).

A bidirectional layer cannot stream (its reverse direction starts from the end of the sequence).

Models: ``ManyToOne.stream()`` and ``ManyToMany.stream()`` give a ``ModelStream`` whose ``step``
returns the head's prediction for that step (for ManyToOne: the prediction given everything so far);
with ``vocab_size``, x_t holds token ids (B,).  ``OneToMany.stream()`` and ``Seq2Seq.stream()`` give a
``GenerationStream``: a Seq2Seq stream's ``step``/``feed`` read source steps into the encoder; ``start``
begins each row's generation (a OneToMany's from its input x, a Seq2Seq's from the encoder's state);
``next()`` generates one output per row, ``generate()`` the rest of each row's sequence, as ``predict``
would.
"""

from __future__ import annotations

import functools
import threading

import numpy as np

from . import _core
from . import _validation as v

__all__ = ["GenerationStream", "ModelStream", "NumpyStream", "layer_stream"]


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
    snapshot taken when the stream is made.  On the cpp backend a step is one C++ call: the token
    lookup, every layer, the head and its argmax."""

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
        embed = model.layers.get("embed")
        self._table = None if embed is None else np.ascontiguousarray(embed.params["weight"]).copy()
        self._classify = model.task == "classification"
        self._one_value = model.task == "regression" and model.output_size == 1
        self.dtype = model.dtype
        self._fused = rnn.backend == "cpp"
        if self._fused:  # the lookup, the layers, the head and its argmax in one C++ call a step
            self._layer = _core.Stream(_plans(rnn), self.batch_size, np.ascontiguousarray(self._w),
                                       np.ascontiguousarray(self._b), self._classify, self._table)
            if not self._one_value:  # the stream's own methods: no Python call around a step
                self.step, self.feed = self._layer.step, self._layer.feed
        else:
            self._layer = rnn.stream(self.batch_size)

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
        """Float inputs for the NumPy layer stream (embedded ids; the C++ stream embeds its own)."""
        if self._table is None or self._fused:
            return x
        return _embed(name, x, sequence, self._table, self.batch_size)

    def _predict(self, out):
        if not self._fused:
            out = out @ self._w.T + self._b
            if self._classify:
                return out.argmax(axis=-1)
        return out[..., 0] if self._one_value else out

    def step(self, x_t):
        return self._predict(self._layer.step(self._inputs("x_t", x_t, False)))

    def feed(self, x_chunk):
        return self._predict(self._layer.feed(self._inputs("x_chunk", x_chunk, True)))


def _locked(method):
    @functools.wraps(method)
    def call(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)
    return call


class GenerationStream:
    """A OneToMany or Seq2Seq model, step by step (see ``model.stream``).  Each row is a session:

    - Seq2Seq: ``step(x_t)`` / ``feed(x_chunk)`` read source steps into the encoder — (B, F) floats or
      (B,) token ids per step, or (T, …) for a chunk — and return the encoder's top h, (B, H) or
      (T, B, H); ``start(rows=None)`` starts those rows' generation from the encoder's state.
    - OneToMany: ``start(x, rows=None)`` starts generation from x (B, F), or (B,) ids with vocab_size
      (x holds one entry per row started).
    - ``next()``: one generated output per row, fed back as the next input: labels (B,) — -1 for a row
      that is not generating (never started, or stopped at its end token) — or values (B, O), (B,)
      when O is 1 (NaN for a row not started).
    - ``generate(max_steps=None)``: the rest of every generating row's sequence, ``max_steps`` at most
      (default: the longest target fit saw), in one C++ call; returned as ``predict`` returns it: with
      an end token a list of B label sequences (the end token left out; empty for a row not
      generating), else (B, max_steps) labels or values.
    - ``reset(rows=None)``: those rows start afresh (no source read, not generating).
    - ``state``: a dict of copies ("encoder" (Seq2Seq), "decoder", "input", "going"), and settable.

    ``start`` then ``generate`` gives ``predict``'s sequences for the same inputs (to rounding: the
    encoder runs step by step here).  The weights are a snapshot taken when the stream is made."""

    def __init__(self, model, batch_size):
        from .layers import check_int
        self.model_class = type(model).__name__
        self.batch_size = check_int("batch_size", batch_size)
        if model.bidirectional:
            raise ValueError(f"this {self.model_class} is bidirectional and cannot stream: its encoder's reverse "
                             "direction reads each source from its end; predict on whole sources instead")
        self._seq2seq = "encoder" in model.layers
        decoder, head = model.layers["decoder"], model.layers["head"]
        for name in ("encoder", "decoder"):
            if name in model.layers and model.layers[name].backend != "cpp":
                raise ValueError(f"a {self.model_class} streams on the cpp backend; this one's {name} has "
                                 f"backend={model.layers[name].backend!r}")
        w, b = (np.ascontiguousarray(head.params[k]).copy() for k in ("weight", "bias"))
        self._decoder = _core.Stream(_plans(decoder), self.batch_size, w, b)
        embed = model.layers.get("embed")
        self._table = None if embed is None else np.ascontiguousarray(embed.params["weight"]).copy()
        self._encoder = None
        if self._seq2seq:  # (token ids are looked up in C++, step by step)
            self._encoder = _core.Stream(_plans(model.layers["encoder"]), self.batch_size, None, None, False,
                                         self._table)
        else:
            init = model.layers["init"]
            self._init_w, self._init_b = init.params["weight"].copy(), init.params["bias"].copy()
            self._num_states = model._num_states
        self._vocab, self.dtype = model.vocab_size, model.dtype
        self.input_size, self.output_size = model.input_size, model.output_size
        self.num_layers, self.hidden_size = model.num_layers, model.hidden_size
        self._classify = model.task == "classification"
        self.end_token, self.max_steps = model.end_token, model.steps
        self._lstm = decoder._cell.num_states == 2
        self._input = np.zeros((self.batch_size, self.output_size), self.dtype)  # the next step's input
        self._going = np.zeros(self.batch_size, bool)
        self._lock = threading.RLock()  # one stream from two threads at once: serialised, never torn

    # -- the source -------------------------------------------------------------------------------

    def _source_only(self, what):
        if not self._seq2seq:
            raise TypeError(f"a OneToMany stream has no source to {what}: start(x) begins each row's generation "
                            "from its input")

    @_locked
    def step(self, x_t):
        """Seq2Seq: one source step into the encoder -> the encoder's top h_t."""
        self._source_only("step through")
        return self._encoder.step(x_t)

    @_locked
    def feed(self, x_chunk):
        """Seq2Seq: source steps (T, B, …) into the encoder -> every step's top h."""
        self._source_only("feed")
        return self._encoder.feed(x_chunk)

    # -- generation -------------------------------------------------------------------------------

    @_locked
    def start(self, x=None, rows=None):
        """Start generating in ``rows`` (default: all): a Seq2Seq's decoder from the encoder's state, a
        OneToMany's from its input x (one entry per row started)."""
        picked = list(range(self.batch_size)) if rows is None else _check_rows(rows, self.batch_size)
        state = self._decoder.state
        parts = list(state) if self._lstm else [state]
        if self._seq2seq:
            if x is not None:
                raise TypeError("a Seq2Seq stream starts from its encoder's state: call start() without x, after "
                                "feeding the source with step or feed")
            encoder = self._encoder.state
            sources = list(encoder) if self._lstm else [encoder]
            for part, source in zip(parts, sources):
                part[:, picked] = source[:, picked]
        else:
            if x is None:
                raise TypeError("a OneToMany stream starts from an input: start(x) with x (B, F), or (B,) token ids")
            h0 = np.tanh(self._start_inputs(x, len(picked)) @ self._init_w.T + self._init_b)
            h0 = h0.reshape(len(picked), self._num_states, self.num_layers, self.hidden_size)
            for s, part in enumerate(parts):
                part[:, picked] = h0[:, s].transpose(1, 0, 2)
        self._decoder.state = tuple(parts) if self._lstm else parts[0]
        self._input[picked] = 0
        self._going[picked] = True

    def _start_inputs(self, x, rows):
        if self._table is not None:
            ids = np.asarray(x)
            if ids.dtype.kind not in "iu":
                raise TypeError(f"x must hold integer token ids for a model with vocab_size={self._vocab}, got dtype "
                                f"{ids.dtype}")
            if ids.shape != (rows,):
                raise ValueError(f"x has shape {v.fmt_shape(ids.shape)}; expected ({rows},): one token id per row "
                                 "started")
            v.check_token_ids("x", ids, self._vocab)
            return self._table[ids]
        if not isinstance(x, np.ndarray):
            raise TypeError(f"x must be a numpy array, got {type(x).__name__}")
        if x.dtype.kind not in "fiu":
            raise TypeError(f"x must hold numbers, got dtype {x.dtype}")
        if x.shape != (rows, self.input_size):
            raise ValueError(f"x has shape {v.fmt_shape(x.shape)}; expected ({rows}, {self.input_size}): one input "
                             "per row started")
        return x.astype(self.dtype, copy=False)

    @_locked
    def next(self):
        """One generated output per row (see the class)."""
        out = self._decoder.generate(1, self._classify, -1 if self.end_token is None else self.end_token,
                                     self._input, self._going)[0]
        self._feed_back(out)
        if self._classify:
            if self.end_token is not None:
                self._going &= out != self.end_token
            return out
        out = np.where(self._going[:, None], out, np.nan).astype(self.dtype, copy=False)
        return out[:, 0] if self.output_size == 1 else out

    def _feed_back(self, last):
        """The next step's input from the last outputs: its labels one-hot (none for -1), or its values."""
        if not self._classify:
            self._input[:] = last
            return
        self._input[:] = 0
        live = np.flatnonzero(last >= 0)
        self._input[live, last[live]] = 1

    @_locked
    def generate(self, max_steps=None):
        """The rest of every generating row's sequence (see the class)."""
        from .layers import check_int
        steps = self.max_steps if max_steps is None else check_int("max_steps", max_steps)
        if steps is None:
            raise ValueError("max_steps is needed: this model has not been fitted, so it has no default")
        end = -1 if self.end_token is None else self.end_token
        out = self._decoder.generate(steps, self._classify, end, self._input, self._going)  # (steps, B[, O])
        if steps:
            self._feed_back(out[-1])
        if not self._classify:
            out = np.where(self._going[None, :, None], out, np.nan).astype(self.dtype, copy=False)
            out = out.transpose(1, 0, 2)
            return out[..., 0] if self.output_size == 1 else out
        if self.end_token is None:
            return out.T.copy()
        sequences = []
        for b, row in enumerate(out.T):  # a generating row's labels up to (without) its end token
            ends = np.flatnonzero((row == self.end_token) | (row < 0))
            sequences.append(np.ascontiguousarray(row[:ends[0]] if ends.size else row))
            self._going[b] &= not (ends.size and row[ends[0]] == self.end_token)
        return sequences

    # -- sessions ---------------------------------------------------------------------------------

    @_locked
    def reset(self, rows=None):
        picked = list(range(self.batch_size)) if rows is None else _check_rows(rows, self.batch_size)
        if self._encoder is not None:
            self._encoder.reset(picked)
        self._decoder.reset(picked)
        self._input[picked] = 0
        self._going[picked] = False

    @property
    @_locked
    def state(self):
        state = {"decoder": self._decoder.state, "input": self._input.copy(), "going": self._going.copy()}
        if self._encoder is not None:
            state["encoder"] = self._encoder.state
        return state

    @state.setter
    @_locked
    def state(self, value):
        want = {"decoder", "input", "going"} | ({"encoder"} if self._encoder is not None else set())
        if not isinstance(value, dict) or set(value) != want:
            raise TypeError(f"state must be a dict with the keys {sorted(want)} (as the state property gives), got "
                            f"{sorted(value) if isinstance(value, dict) else type(value).__name__}")
        inputs, going = value["input"], value["going"]
        if not isinstance(inputs, np.ndarray) or inputs.dtype != np.dtype(self.dtype):
            raise TypeError(f"state['input'] must be a {self.dtype} array, got {getattr(inputs, 'dtype', type(inputs).__name__)}")
        v.check_shape("state['input']", inputs, (self.batch_size, self.output_size), "(B, output_size)")
        if not isinstance(going, np.ndarray) or going.dtype != np.bool_:
            raise TypeError(f"state['going'] must be a bool array, got {getattr(going, 'dtype', type(going).__name__)}")
        v.check_shape("state['going']", going, (self.batch_size,), "(B,)")
        old_decoder = self._decoder.state  # (restored if the encoder's part is refused)
        self._decoder.state = value["decoder"]
        if self._encoder is not None:
            try:
                self._encoder.state = value["encoder"]
            except (TypeError, ValueError):
                self._decoder.state = old_decoder
                raise
        self._input, self._going = inputs.copy(), going.copy()


def _embed(name, x, sequence, table, batch):
    """The rows of ``table`` that token ids x name: (B,) a step, (T, B) a chunk; (), (T,) when B is 1."""
    vocab = table.shape[0]
    ids = np.asarray(x)
    base = 1 if sequence else 0
    if ids.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integer token ids for a model with vocab_size={vocab}, got dtype {ids.dtype}")
    squeezed = batch == 1 and ids.ndim == base
    if ids.ndim != base + (0 if squeezed else 1) or (not squeezed and ids.shape[base] != batch):
        raise ValueError(f"{name} has shape {v.fmt_shape(ids.shape)}; expected {'(T, B)' if sequence else '(B,)'} "
                         f"token ids with B = {batch}")
    v.check_token_ids(name, ids, vocab)
    return np.ascontiguousarray(table[ids])
