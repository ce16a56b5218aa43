"""The RNN topologies as trainable models, with a Keras/scikit-learn interface.

Every model is built as ``Model(input_size, hidden_size, output_size, *, cell="tanh", num_layers=1,
task="classification", dtype="float32", backend="cpp", seed=None)`` and has ``fit``, ``predict``,
``score``, ``save`` and ``load`` (see ``rnnkit._model.Model``).

============  =====================  ==================================================================
model         X -> predictions       how
============  =====================  ==================================================================
OneToOne      (N, F) -> (N,)          one recurrent step from a zero state, then a Dense head
OneToMany     (N, F) -> (N, steps)    X sets the initial state (Dense + tanh); each step's output is
                                      fed back as the next input (teacher forcing in fit)
ManyToOne     (N, T, F) -> (N,)       the last hidden state through a Dense head
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

from ._cells import make_cell
from ._model import Model, NotFittedError, as_state_tuple, from_state_tuple, one_hot
from .layers import RNN, Dense, check_int

__all__ = ["ManyToMany", "ManyToOne", "Model", "NotFittedError", "OneToMany", "OneToOne", "Seq2Seq"]


class _LayerFactory:
    """Builds a model's layers with its dtype, backend, cell and random stream."""

    def __init__(self, model, rng):
        self.model, self.rng = model, rng

    def rnn(self, input_size):
        m = self.model
        return RNN(input_size, m.hidden_size, cell=m.cell, num_layers=m.num_layers, dtype=m.dtype,
                   backend=m.backend, seed=self.rng)

    def dense(self, input_size, output_size):
        return Dense(input_size, output_size, dtype=self.model.dtype, seed=self.rng)


class OneToOne(Model):
    """X (N, F) -> one output per sample: a single recurrent step (from a zero state), a Dense head."""

    x_ndim = 2

    def _build(self, rng):
        make = _LayerFactory(self, rng)
        return {"rnn": make.rnn(self.input_size), "head": make.dense(self.hidden_size, self.output_size)}

    def _forward(self, x, y):
        hidden, _ = self.layers["rnn"](x[None])  # (1, N, H): one timestep
        return self.layers["head"](hidden[0])

    def _backward(self, doutputs):
        dhidden = self.layers["head"].backward(doutputs)
        self.layers["rnn"].backward(dhidden[None])


class ManyToOne(Model):
    """X (N, T, F) -> one output per sequence, from the last layer's final hidden state."""

    x_ndim = 3

    def _build(self, rng):
        make = _LayerFactory(self, rng)
        return {"rnn": make.rnn(self.input_size), "head": make.dense(self.hidden_size, self.output_size)}

    def _forward(self, x, y):
        _, h_n = self.layers["rnn"](x)
        self._h_n = as_state_tuple(h_n)
        return self.layers["head"](self._h_n[0][-1])

    def _backward(self, doutputs):
        dh_last = self.layers["head"].backward(doutputs)
        dstates = tuple(np.zeros_like(state) for state in self._h_n)
        dstates[0][-1] = dh_last  # only the top layer's h_T reaches the head
        self.layers["rnn"].backward(None, from_state_tuple(dstates))


class ManyToMany(Model):
    """X (N, T, F) -> (N, T): an output per step (sequence labelling, a character language model)."""

    x_ndim = 3
    sequence_targets = True

    def _build(self, rng):
        make = _LayerFactory(self, rng)
        return {"rnn": make.rnn(self.input_size), "head": make.dense(self.hidden_size, self.output_size)}

    def _forward(self, x, y):
        hidden, _ = self.layers["rnn"](x)  # (T, N, H)
        return self.layers["head"](hidden)

    def _backward(self, doutputs):
        self.layers["rnn"].backward(self.layers["head"].backward(doutputs))


class _Decoder(Model):
    """A recurrent decoder whose input at step t is its output at step t-1 (zeros at t = 0): the
    previous label one-hot for classification, the previous values for regression.  Training feeds
    the true previous target (teacher forcing); ``predict`` feeds back its own (greedy) predictions.
    Subclasses provide the initial state: ``_initial_state(x)`` and ``_initial_state_backward``."""

    sequence_targets = True
    generates = True

    def _decoder_layers(self, make):
        return {"decoder": make.rnn(self.output_size), "head": make.dense(self.hidden_size, self.output_size)}

    def _feedback(self, outputs_or_targets, from_targets: bool):
        """The next decoder input (…, output_size) from targets or from the head's outputs."""
        if self.task == "regression":
            return outputs_or_targets
        labels = outputs_or_targets if from_targets else outputs_or_targets.argmax(axis=-1)
        return one_hot(labels, self.output_size, self.dtype)

    def _forward(self, x, y):
        steps, batch = y.shape[:2]
        inputs = np.zeros((steps, batch, self.output_size), self.dtype)
        inputs[1:] = self._feedback(y[:-1], from_targets=True)
        hidden, _ = self.layers["decoder"](inputs, from_state_tuple(self._initial_state(x)))
        return self.layers["head"](hidden)

    def _backward(self, doutputs):
        dhidden = self.layers["head"].backward(doutputs)
        _, dstate0 = self.layers["decoder"].backward(dhidden)
        self._initial_state_backward(as_state_tuple(dstate0))

    def _outputs(self, x, steps):
        state = from_state_tuple(self._initial_state(x))
        batch = x.shape[self._x_axis]
        outputs = np.empty((steps, batch, self.output_size), self.dtype)
        step_input = np.zeros((1, batch, self.output_size), self.dtype)
        for t in range(steps):
            hidden, state = self.layers["decoder"](step_input, state)
            outputs[t] = self.layers["head"](hidden[0])
            step_input = self._feedback(outputs[t], from_targets=False)[None]
        return outputs

    def predict(self, X, steps=None):
        """Generate ``steps`` outputs per sample (default: as many as the targets in ``fit`` had):
        (N, steps) labels or values (greedy decoding: each prediction is the next input)."""
        self._check_fitted("predict")
        steps = self.steps if steps is None else check_int("steps", steps)
        return self._predict_checked(self._check_x(X), steps)


class OneToMany(_Decoder):
    """X (N, F) -> (N, steps): X sets the initial state (h0 = tanh(Dense(X)), for every layer and
    state), then each step's output is fed back as the next input ("captioning")."""

    x_ndim = 2

    def _build(self, rng):
        make = _LayerFactory(self, rng)
        self._num_states = make_cell(self.cell).num_states
        size = self._num_states * self.num_layers * self.hidden_size
        return {"init": make.dense(self.input_size, size),
                **self._decoder_layers(make)}

    def _initial_state(self, x):
        batch = x.shape[0]
        self._h0 = np.tanh(self.layers["init"](x))  # (N, S·L·H)
        states = self._h0.reshape(batch, self._num_states, self.num_layers, self.hidden_size)
        return tuple(np.ascontiguousarray(states[:, s].transpose(1, 0, 2)) for s in range(self._num_states))

    def _initial_state_backward(self, dstates):
        dh0 = np.stack([d.transpose(1, 0, 2) for d in dstates], axis=1).reshape(self._h0.shape)
        self.layers["init"].backward(dh0 * (1 - self._h0 * self._h0))


class Seq2Seq(_Decoder):
    """X (N, T_in, F) -> (N, T_out), T_out independent of T_in: an encoder RNN reads X, its final
    states (every layer) start the decoder, which generates the outputs as in OneToMany."""

    x_ndim = 3

    def _build(self, rng):
        make = _LayerFactory(self, rng)
        return {"encoder": make.rnn(self.input_size), **self._decoder_layers(make)}

    def _initial_state(self, x):
        _, h_n = self.layers["encoder"](x)
        return as_state_tuple(h_n)

    def _initial_state_backward(self, dstates):
        self.layers["encoder"].backward(None, from_state_tuple(dstates))
