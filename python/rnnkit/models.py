"""The RNN topologies as trainable models, with a Keras/scikit-learn interface.

Every model is built as ``Model(input_size, hidden_size, output_size, *, cell="tanh", num_layers=1,
task="classification", bidirectional=False, vocab_size=None, dtype="float32", backend="cpp",
seed=None)`` (the decoders also take ``end_token=None``) and has ``fit``, ``predict``, ``score``,
``save`` and ``load`` (see ``rnnkit._model.Model``).  The sequence models also take lists of
(T_i, F) sequences of their own lengths, and with ``vocab_size`` token ids (embedded first).

============  =====================  ==================================================================
model         X -> predictions       how
============  =====================  ==================================================================
OneToOne      (N, F) -> (N,)          one recurrent step from a zero state, then a Dense head
OneToMany     (N, F) -> (N, steps)    X sets the initial state (Dense + tanh); each step's output is
                                      fed back as the next input (teacher forcing in fit)
ManyToOne     (N, T, F) -> (N,)       each sequence's last real state through a Dense head
ManyToMany    (N, T, F) -> (N, T)     a Dense head on every step's hidden state
Seq2Seq       (N, T, F) -> (N, steps) an encoder's final state starts a decoder as in OneToMany
============  =====================  ==================================================================

Predictions are labels for task="classification" (targets: integer labels in [0, output_size),
loss: softmax cross-entropy) and values for task="regression" (targets: floats, one or output_size
per output, loss: mean squared error); with output_size > 1 regression outputs keep a last axis of
that size.
"""

from __future__ import annotations

import numpy as np

from . import _core
from . import _validation as v
from ._cells import make_cell
from ._data import Sequences
from ._model import Model, NotFittedError, as_state_tuple, from_state_tuple, one_hot
from .layers import RNN, Dense, check_int
from .streams import GenerationStream, ModelStream

__all__ = ["ManyToMany", "ManyToOne", "Model", "NotFittedError", "OneToMany", "OneToOne", "Seq2Seq"]


class _LayerFactory:
    """Builds a model's layers with its dtype, backend, cell and random stream."""

    def __init__(self, model, rng):
        self.model, self.rng = model, rng

    def rnn(self, input_size, bidirectional=False):
        m = self.model
        # (the model's dropout also drops the head's input, so a single layer is no mistake here)
        return RNN(input_size, m.hidden_size, cell=m.cell, num_layers=m.num_layers, bidirectional=bidirectional,
                   dropout=m.dropout if m.num_layers > 1 else 0.0, init=m.init,
                   unit_forget_bias=m.unit_forget_bias, dtype=m.dtype, backend=m.backend, seed=self.rng)

    def dense(self, input_size, output_size):
        return Dense(input_size, output_size, dtype=self.model.dtype, seed=self.rng)


class OneToOne(Model):
    """X (N, F) -> one output per sample: a single recurrent step (from a zero state), a Dense head.
    With ``vocab_size``, X is (N,) token ids, embedded first."""

    x_ndim = 2
    _no_bidirectional_reason = "it runs one step"

    def _build(self, rng):
        make = _LayerFactory(self, rng)
        return {"rnn": make.rnn(self.input_size), "head": make.dense(self.hidden_size, self.output_size)}

    def _forward(self, x, y):
        hidden, _ = self.layers["rnn"](self._inputs(x)[None], training=self._training())  # (1, N, H): one step
        return self._head(hidden[0])

    def _backward(self, doutputs):
        dhidden = self._head_backward(doutputs)
        dx, _ = self.layers["rnn"].backward(dhidden[None], need_dx=self._needs_dx)
        self._inputs_backward(None if dx is None else dx[0])


class ManyToOne(Model):
    """X (N, T, F), or a list of (T_i, F) sequences -> one output per sequence, from the top layer's
    last real state.  ``bidirectional=True``: the forward direction's last real state beside the
    reverse direction's state after step 0 (torch's ``h_n[-2:]``), concatenated."""

    x_ndim = 3
    can_be_bidirectional = True

    def _build(self, rng):
        make = _LayerFactory(self, rng)
        return {"rnn": make.rnn(self.input_size, self.bidirectional),
                "head": make.dense(self.num_directions * self.hidden_size, self.output_size)}

    def _forward(self, x, y):
        training = self._training()
        _, h_n = self.layers["rnn"](self._inputs(x), lengths=x.lengths, training=training)
        h_n = as_state_tuple(h_n)
        if training:
            self._h_n = h_n  # (for the backward; predictions keep nothing on the model)
        top = h_n[0][-self.num_directions:]  # (D, N, H): the top layer's directions
        return self._head(top[0] if len(top) == 1 else np.concatenate(list(top), axis=-1))

    def stream(self, batch_size=1):
        """Step-by-step inference: ``step(x_t)`` gives the prediction given everything so far (see
        rnnkit.streams.ModelStream)."""
        self._check_built("stream")
        return ModelStream(self, batch_size)

    def _backward(self, doutputs):
        dtop = self._head_backward(doutputs)
        dstates = tuple(np.zeros_like(state) for state in self._h_n)
        hidden, directions = self.hidden_size, self.num_directions
        for d in range(directions):  # only the top layer's final h reaches the head
            dstates[0][d - directions] = dtop[:, d * hidden:(d + 1) * hidden]
        dx, _ = self.layers["rnn"].backward(None, from_state_tuple(dstates), need_dx=self._needs_dx)
        self._inputs_backward(dx)


class ManyToMany(Model):
    """X (N, T, F), or a list of (T_i, F) sequences -> an output per step (sequence labelling, a
    character language model): targets (N, T), or a list of (T_i,) — per real step only, and predict
    returns a list for a list.  ``bidirectional=True`` puts the head on [forward | reverse]."""

    x_ndim = 3
    sequence_targets = True
    can_be_bidirectional = True

    def _build(self, rng):
        make = _LayerFactory(self, rng)
        return {"rnn": make.rnn(self.input_size, self.bidirectional),
                "head": make.dense(self.num_directions * self.hidden_size, self.output_size)}

    def _forward(self, x, y):
        hidden, _ = self.layers["rnn"](self._inputs(x), lengths=x.lengths, training=self._training())  # (T, N, D·H)
        return self._head(hidden)

    def stream(self, batch_size=1):
        """Step-by-step inference: ``step(x_t)`` gives the head's prediction for that step (see
        rnnkit.streams.ModelStream)."""
        self._check_built("stream")
        return ModelStream(self, batch_size)

    def _backward(self, doutputs):
        dx, _ = self.layers["rnn"].backward(self._head_backward(doutputs), need_dx=self._needs_dx)
        self._inputs_backward(dx)


class _Decoder(Model):
    """A recurrent decoder whose input at step t is its output at step t-1 (zeros at t = 0): the
    previous label one-hot for classification, the previous values for regression.  Training feeds
    the true previous target (teacher forcing); ``predict`` feeds back its own (greedy) predictions,
    one step at a time through the decoder's packed weights (the kernels' plans).

    ``end_token`` (classification): a label in [0, output_size) that ends a sequence.  fit cuts each
    target after its first end token, or appends one where it has none, and trains on it like any
    other label; predict stops each sequence at its end token (or at ``max_steps``) and returns a
    list of sequences of their own lengths, without the end token.
    Subclasses provide the initial state: ``_initial_state(x)`` and ``_initial_state_backward``.
    """

    sequence_targets = True
    generates = True

    def __init__(self, input_size, hidden_size, output_size, *, end_token=None, **options):
        super().__init__(input_size, hidden_size, output_size, **options)
        self._given["end_token"] = end_token
        if end_token is not None:
            if self.task != "classification":
                raise ValueError(f"end_token is for task='classification' (a label that ends a sequence); this "
                                 f"model has task={self.task!r}")
            end_token = check_int("end_token", end_token, minimum=0)
            if self.output_size is not None and end_token >= self.output_size:
                raise ValueError(f"end_token = {end_token} is out of range; it must be a label in [0, output_size) "
                                 f"= [0, {self.output_size})")
        self.end_token = end_token

    def _init_args(self) -> dict:
        return {**super()._init_args(), "end_token": self.end_token}

    def _decoder_layers(self, make):
        return {"decoder": make.rnn(self.output_size), "head": make.dense(self.hidden_size, self.output_size)}

    def _check_y_steps(self, y, x, name):
        """Targets of their own lengths; with an end token, cut after the first one or appended."""
        if self.end_token is not None:
            rows = []
            for row in y.rows():
                ends = np.flatnonzero(row == self.end_token)
                rows.append(row[:ends[0] + 1] if ends.size else np.append(row, self.end_token))
            return Sequences.from_rows(rows, np.int64, (), ragged=y.ragged)
        empty = np.flatnonzero(y.step_lengths() == 0)
        if empty.size:
            raise ValueError(f"{name}[{int(empty[0])}] is empty: every target needs at least one step (or give the "
                             f"model an end_token, which ends every target)" if y.lengths is not None else
                             f"{name} has shape {v.fmt_shape(y.values.shape)}: at least one target step is needed")
        return y

    def _bucket_lengths(self, x, y):
        return x.lengths if x.timed and x.lengths is not None else y.lengths

    def _feedback(self, outputs_or_targets, from_targets: bool):
        """The next decoder input (…, output_size) from targets or from the head's outputs."""
        if self.task == "regression":
            return outputs_or_targets
        labels = outputs_or_targets if from_targets else outputs_or_targets.argmax(axis=-1)
        return one_hot(labels, self.output_size, self.dtype)

    def _forward(self, x, y):
        steps, batch = y.data.shape[:2]
        inputs = np.zeros((steps, batch, self.output_size), self.dtype)
        inputs[1:] = self._feedback(y.data[:-1], from_targets=True)
        hidden, _ = self.layers["decoder"](inputs, from_state_tuple(self._initial_state(x)), lengths=y.lengths,
                                           training=self._training())
        return self._head(hidden)

    def _backward(self, doutputs):
        dhidden = self._head_backward(doutputs)
        _, dstate0 = self.layers["decoder"].backward(dhidden, need_dx=False)  # (its inputs learn nothing)
        self._initial_state_backward(as_state_tuple(dstate0))

    STREAM_ROWS = 16  # batches up to this many rows generate through a _core.Stream (one call a step)

    def _predict_batch(self, x, steps):
        """Greedy generation of ``steps`` steps, time-major (steps, B[, O]); with an end token, a
        row's labels after its end token are -1 and it no longer runs.  Small batches run the whole
        greedy loop in one C++ call (a stream of the decoder's plans and the head, on this thread:
        ``_core.Stream.generate``); larger ones run each layer's step on the kernels' threads."""
        decoder, head = self.layers["decoder"], self.layers["head"]
        layers, batch = decoder.num_layers, x.size
        classify = self.task == "classification"
        weights = [[decoder._weights(layer, 0)] for layer in range(layers)]
        cpp = decoder.backend == "cpp"
        plans = decoder._stream_plans() if cpp else None
        initial = self._initial_state(x)  # S arrays (L, B, H)
        if cpp and batch <= self.STREAM_ROWS:
            stream = _core.Stream(plans, batch, np.ascontiguousarray(head.params["weight"]),
                                  np.ascontiguousarray(head.params["bias"]))
            initial = [np.ascontiguousarray(s) for s in initial]
            stream.state = tuple(initial) if len(initial) > 1 else initial[0]
            return stream.generate(steps, classify, -1 if self.end_token is None else self.end_token)
        out = (np.full((steps, batch), -1, np.int64) if classify
               else np.zeros((steps, batch, self.output_size), self.dtype))
        w_head, b_head = head.params["weight"].T, head.params["bias"]
        rows = np.arange(batch)  # the rows still generating
        step_input = np.zeros((batch, self.output_size), self.dtype)
        eye = np.eye(self.output_size, dtype=self.dtype)  # the one-hot feedback of each label
        cell = decoder._cell
        states = [tuple(np.ascontiguousarray(s[layer]) for s in initial) for layer in range(layers)]

        def advance(inputs):
            layer_input = inputs[None]
            for layer in range(layers):
                hidden = np.empty((1, inputs.shape[0], self.hidden_size), self.dtype)
                (states[layer],), _ = cell.forward(layer_input, [states[layer]], weights[layer], hidden,
                                                   training=False, backend=decoder.backend,
                                                   plans=None if plans is None else [plans[layer]])
                layer_input = hidden
            return layer_input[0]

        def drop(going):
            states[:] = [tuple(s[going] for s in state) for state in states]
        for t in range(steps):
            outputs = advance(step_input) @ w_head + b_head
            if not classify:
                out[t, rows] = outputs
                step_input = np.ascontiguousarray(outputs)
                continue
            labels = outputs.argmax(axis=-1)
            out[t, rows] = labels
            if self.end_token is not None:
                going = labels != self.end_token
                if not going.all():
                    rows, labels = rows[going], labels[going]
                    if not rows.size:
                        break
                    drop(going)
            step_input = eye[labels]
        return out

    def stream(self, batch_size=1):
        """Generation step by step (see rnnkit.streams.GenerationStream): a Seq2Seq's step/feed read
        the source, start() begins generating, next() gives one output per row, generate() the rest."""
        self._check_built("stream")
        return GenerationStream(self, batch_size)

    def _predictions(self, x, steps):
        if self.end_token is None:
            return super()._predictions(x, steps)
        sequences = [None] * len(x)
        for idx, pred in self._predict_chunks(x, steps):
            for i, row in zip(idx, pred.T):  # each row's labels up to (without) its end token
                ends = np.flatnonzero((row == self.end_token) | (row < 0))
                sequences[i] = np.ascontiguousarray(row[:ends[0]] if ends.size else row)
        return sequences

    def predict(self, X, max_steps=None, *, steps=None):
        """Generate up to ``max_steps`` outputs per sample (default: the longest target ``fit`` saw,
        its end token counted): greedy decoding, each prediction the next input.  Without an end
        token, exactly ``max_steps`` per sample: (N, max_steps) labels or values.  With one, a list of
        label sequences of their own lengths, each stopped at its end token (which is left out).
        (``steps=`` is the old name of ``max_steps``.)"""
        self._check_fitted("predict")
        if steps is not None:
            if max_steps is not None:
                raise TypeError("give max_steps or steps (its old name), not both")
            max_steps = steps
        max_steps = self.steps if max_steps is None else check_int("max_steps", max_steps)
        return self._predictions(self._check_x(X), max_steps)


class OneToMany(_Decoder):
    """X (N, F) -> (N, steps): X sets the initial state (h0 = tanh(Dense(X)), for every layer and
    state), then each step's output is fed back as the next input ("captioning").  With
    ``vocab_size``, X is (N,) ids, embedded first."""

    x_ndim = 2
    _no_bidirectional_reason = "its decoder generates one step after the other"

    def _build(self, rng):
        make = _LayerFactory(self, rng)
        self._num_states = make_cell(self.cell).num_states
        size = self._num_states * self.num_layers * self.hidden_size
        return {"init": make.dense(self.input_size, size),
                **self._decoder_layers(make)}

    def _initial_state(self, x):
        batch = x.size
        h0 = np.tanh(self.layers["init"](self._inputs(x)))  # (N, S·L·H)
        if self._training():
            self._h0 = h0  # (for the backward)
        states = h0.reshape(batch, self._num_states, self.num_layers, self.hidden_size)
        return tuple(np.ascontiguousarray(states[:, s].transpose(1, 0, 2)) for s in range(self._num_states))

    def _initial_state_backward(self, dstates):
        dh0 = np.stack([d.transpose(1, 0, 2) for d in dstates], axis=1).reshape(self._h0.shape)
        self._inputs_backward(self.layers["init"].backward(dh0 * (1 - self._h0 * self._h0)))


class Seq2Seq(_Decoder):
    """X (N, T_in, F), or a list of (T_i, F) sources -> (N, T_out), T_out independent of T_in: an
    encoder RNN reads X, its final states (every layer) start the decoder, which generates the
    outputs as in OneToMany.  Sources and targets may both be lists of their own lengths.
    ``bidirectional=True`` makes the encoder bidirectional; the decoder starts from the sum of its
    two directions' final states, layer by layer (the decoder itself runs forward only)."""

    x_ndim = 3
    can_be_bidirectional = True

    def _build(self, rng):
        make = _LayerFactory(self, rng)
        return {"encoder": make.rnn(self.input_size, self.bidirectional), **self._decoder_layers(make)}

    def _initial_state(self, x):
        _, h_n = self.layers["encoder"](self._inputs(x), lengths=x.lengths, training=self._training())
        states = as_state_tuple(h_n)  # S arrays (L·D, B, H), layer by layer, forward before reverse
        if self.bidirectional:
            states = tuple(s[0::2] + s[1::2] for s in states)
        return states

    def _initial_state_backward(self, dstates):
        if self.bidirectional:  # both directions of a layer receive its gradient
            dstates = tuple(np.repeat(d, 2, axis=0) for d in dstates)
        dx, _ = self.layers["encoder"].backward(None, from_state_tuple(dstates), need_dx=self._needs_dx)
        self._inputs_backward(dx)
