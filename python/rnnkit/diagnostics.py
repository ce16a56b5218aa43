"""How far back in time a model's loss still reaches: vanishing and exploding gradients, measured.

``gradient_flow(model, X, y)`` takes a ManyToOne or ManyToMany model (fitted or not) and a data set,
and returns, for every recurrent layer and timestep t, the norm of dL/dh_t: how much the state at step
t — and so everything the model read up to it — still moves the loss.  In a vanilla RNN these norms
typically shrink geometrically with the distance from the steps the loss reads (vanishing gradients:
the model cannot learn what happened long ago) or, with large recurrent weights, grow geometrically
(exploding gradients: training diverges without clipping).

Legend: L layers, T timesteps, N samples, H hidden units, I a layer's input features, O outputs.

The computation is the model's, redone exactly in float64: the model's weights (cast to float64) run
through the NumPy reference's cell equations (``rnnkit.reference``, called one step at a time so that
every step's state is a variable of its own), the model's Dense head and the model's loss, then BPTT
back through the same steps.  dL/dh_t is the total derivative with respect to the layer's output h_t
(the LSTM's cell state c_t held fixed): every path from h_t to the loss, through the later steps of its
layer, the layers above and the head.  ``perturbed_loss`` is the same forward with h_t moved by a
given amount, so that the gradients can be checked against finite differences.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import reference
from ._cells import Cell, make_cell
from .losses import mse, softmax_cross_entropy
from .models import ManyToMany, ManyToOne

__all__ = ["GradientFlow", "gradient_flow", "perturbed_loss", "state_gradients"]


@dataclass(frozen=True)
class GradientFlow:
    """What ``gradient_flow`` measures on one data set.

    - ``norms`` (L, T) float64: ``norms[l, t]`` is the mean over the N samples of ||dL/dh_t||, the L2
      norm over the H units of one sample's h_t of layer l (layer 0 reads X).  L is the model's loss
      on the whole data set — a mean, as fit's: over the N samples (ManyToOne) or the N·T labels or
      N·T·O values (ManyToMany) — so each sample's gradient carries that 1/N (1/(N·T)...) factor;
      the shape over t, which is what these diagnostics are for, does not depend on it.
    - ``per_sample`` (L, T, N): the norms before the mean over samples.
    - ``steps`` (T,): 0 .. T-1; ``distance`` (T,): T-1-t, the steps from the last one.  For ManyToOne
      the head reads only the last step, so ``distance`` is how far into the past h_t lies from the
      prediction; for ManyToMany (a loss term at every step) it is the distance from the last step.
    - ``loss``: the model's loss on the data set (float64).
    """

    norms: np.ndarray
    per_sample: np.ndarray
    steps: np.ndarray
    distance: np.ndarray
    loss: float


@dataclass(frozen=True)
class _Problem:
    """A model and a data set, made ready: float64 weights, time-major data."""

    cell: Cell
    layers: list          # per layer (w_ih (G·H, I), w_hh (G·H, H), b_ih (G·H,), b_hh (G·H,))
    head: tuple           # (weight (O, H), bias (O,))
    inputs: np.ndarray    # (T, N, I): X, or the embedding of its token ids
    targets: np.ndarray   # labels (N,) / (T, N) int64, or values (N, O) / (T, N, O) float64
    per_step: bool        # the head reads every step (ManyToMany), else only the last (ManyToOne)
    classify: bool


def _prepare(model, X, y) -> _Problem:
    """Check the model and the data (with the model's own checks) and convert them."""
    if not isinstance(model, (ManyToOne, ManyToMany)):
        raise TypeError(f"gradient_flow takes a ManyToOne or ManyToMany model (a recurrent layer reading X step by "
                        f"step into a Dense head), got a {type(model).__name__}")
    if model.bidirectional:
        raise ValueError("gradient_flow follows the loss's gradient back in time through unidirectional layers; this "
                         "model is bidirectional, and its reverse direction carries the gradient forward in time as "
                         "well, so there is no single distance into the past to measure it against")
    model._check_built("gradient_flow")  # (sizes left to the first fit: no weights yet)
    expected = {"rnn", "head"} | ({"embed"} if model.vocab_size is not None else set())
    if set(model.layers) != expected:  # a topology grown new parts: the forward below would not be the model's
        raise TypeError(f"gradient_flow knows a {type(model).__name__} of layers {sorted(expected)}; this one has "
                        f"{sorted(model.layers)}")
    x = model._check_x(X)
    if len(x) == 0:
        raise ValueError("gradient_flow needs at least one sample")
    if x.lengths is not None:
        raise ValueError("gradient_flow takes rectangular X: (N, T, F), or (N, T) token ids, sequences of one length "
                         "(so that step t lies at the same distance from the end in every sample); this X holds "
                         "sequences of different lengths: measure each length on its own")
    targets = model._check_y(y, x)
    everyone = np.arange(len(x))
    data = x.take(everyone).data  # (T, N, F), or (T, N) ids
    if model.vocab_size is not None:
        data = model.layers["embed"].params["weight"][data]
    rnn, head = model.layers["rnn"], model.layers["head"]
    targets = targets.take(everyone).data
    return _Problem(
        cell=make_cell(model.cell),
        layers=[[w.astype(np.float64) for w in rnn._weights(layer, 0)] for layer in range(rnn.num_layers)],
        head=(head.params["weight"].astype(np.float64), head.params["bias"].astype(np.float64)),
        inputs=np.ascontiguousarray(data, dtype=np.float64),
        targets=targets if model.task == "classification" else targets.astype(np.float64),
        per_step=isinstance(model, ManyToMany),
        classify=model.task == "classification",
    )


# ---- one step of the reference, forward and backward -------------------------------------------

def _step_forward(cell: Cell, x_t, state, weights):
    """One step from ``state`` ((h,) or (h, c), each (N, H); None: zeros) on x_t (1, N, I): the new
    state and the reference's cache of the step."""
    h = None if state is None else state[0]
    if cell.kind == "rnn":
        _, h, cache = reference.rnn_forward(x_t, h, *weights, nonlinearity=cell.name)
        return (h,), cache
    if cell.kind == "lstm":
        c = None if state is None else state[1]
        _, h, c, cache = reference.lstm_forward(x_t, h, c, *weights)
        return (h, c), cache
    _, h, cache = reference.gru_forward(x_t, h, *weights)
    return (h,), cache


def _step_backward(cell: Cell, cache, dh, dstate):
    """BPTT through one step: dh (N, H) is dL/dh_t, ``dstate`` what reaches the step's other states
    from later steps (the LSTM's dL/dc_t; None: zeros).  Returns (dx_t (N, I), dstate_{t-1}): the
    gradient reaching the step's input, and the previous state's ((dh,) or (dh, dc)) through this step."""
    if cell.kind == "lstm":
        dc = None if dstate is None else dstate[1]
        dx, dh_prev, dc_prev, *_ = reference.lstm_backward(cache, None, dh, dc)
        return dx[0], (dh_prev, dc_prev)
    backward = reference.rnn_backward if cell.kind == "rnn" else reference.gru_backward
    dx, dh_prev, *_ = backward(cache, None, dh)
    return dx[0], (dh_prev,)


# ---- the whole model ------------------------------------------------------------------------------

def _forward(problem: _Problem, perturb=None):
    """The layers one step at a time, then the head and the loss.

    ``perturb``: None, or (layer, t, delta (N, H)): delta is added to that layer's h_t as soon as it is
    computed (c_t unchanged), so the later steps, the layer above and the head all read the moved state.
    Returns (loss, dL/d(top layer's h_t) through the head alone (T, N, H), caches [layer][t]).
    """
    layer_input = problem.inputs
    steps = layer_input.shape[0]
    caches = []
    for index, weights in enumerate(problem.layers):
        state, layer_caches = None, []
        outputs = np.empty((steps, layer_input.shape[1], weights[1].shape[1]))
        for t in range(steps):
            state, cache = _step_forward(problem.cell, layer_input[t:t + 1], state, weights)
            if perturb is not None and (perturb[0], perturb[1]) == (index, t):
                state = (state[0] + perturb[2], *state[1:])
            outputs[t] = state[0]
            layer_caches.append(cache)
        caches.append(layer_caches)
        layer_input = outputs
    weight, bias = problem.head
    read = layer_input if problem.per_step else layer_input[-1]
    loss_fn = softmax_cross_entropy if problem.classify else mse
    loss, doutputs = loss_fn(read @ weight.T + bias, problem.targets)
    dtop = doutputs @ weight
    if not problem.per_step:  # (ManyToOne: only the last step reaches the head)
        dtop = np.concatenate([np.zeros_like(layer_input[:-1]), dtop[None]])
    return loss, dtop, caches


def _backward(problem: _Problem, caches, dtop) -> np.ndarray:
    """dL/dh_t (L, T, N, H) for every layer and step, the top layer first, each from its last step."""
    steps, batch, hidden = dtop.shape
    gradients = np.empty((len(problem.layers), steps, batch, hidden))
    d_output = dtop  # what reaches the current layer's every h_t from above (the head, or the next layer)
    for index in reversed(range(len(problem.layers))):
        d_input = np.empty(problem.inputs.shape if index == 0 else (steps, batch, hidden))
        dstate = None
        for t in reversed(range(steps)):
            dh = d_output[t] if dstate is None else d_output[t] + dstate[0]
            gradients[index, t] = dh
            d_input[t], dstate = _step_backward(problem.cell, caches[index][t], dh, dstate)
        d_output = d_input
    return gradients


def state_gradients(model, X, y) -> tuple:
    """(loss, gradients): the model's loss on X, y and dL/dh_t for every layer and step, (L, T, N, H)
    float64 (see the module docstring).  Holds L·T·N·H floats: for large data, ``gradient_flow`` on a
    sample of it.  X, y and the model as for ``gradient_flow``."""
    problem = _prepare(model, X, y)
    loss, dtop, caches = _forward(problem)
    return loss, _backward(problem, caches, dtop)


def perturbed_loss(model, X, y, layer: int, t: int, delta) -> float:
    """The model's loss on X, y (float64, as ``gradient_flow`` computes it) with ``delta`` (N, H) added
    to h_t of ``layer`` in the forward pass: central differences of it give dL/dh_t independently of
    the backward pass."""
    problem = _prepare(model, X, y)
    delta = np.asarray(delta, dtype=np.float64)
    return _forward(problem, perturb=(layer, t, delta))[0]


def gradient_flow(model, X, y) -> GradientFlow:
    """For each layer and timestep, the mean over samples of ||dL/dh_t||: see ``GradientFlow``.

    ``model``: a ManyToOne or ManyToMany, fitted or not, unidirectional (TypeError for the other
    topologies, ValueError when bidirectional).  X (N, T, F) floats, or (N, T) token ids when the model
    has ``vocab_size`` — sequences of one length; y the targets, as ``fit`` takes them.  The loss is
    the one fit minimises as predict and score run the model: without dropout, and unweighted (no
    class_weight or sample_weight).  A model whose sizes are left to the first fit has no weights
    before it: NotFittedError.
    """
    loss, gradients = state_gradients(model, X, y)
    per_sample = np.linalg.norm(gradients, axis=-1)  # (L, T, N)
    steps = np.arange(per_sample.shape[1])
    return GradientFlow(norms=per_sample.mean(axis=-1), per_sample=per_sample, steps=steps,
                        distance=steps[::-1].copy(), loss=float(loss))
