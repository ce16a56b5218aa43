"""Losses for the models: each returns (loss, gradient of the loss with respect to its first input).

Both are means, as torch's and Keras's defaults are: over every label for the cross-entropy, over
every element for the mean squared error.
"""

from __future__ import annotations

import numpy as np

from . import _validation as v

__all__ = ["log_softmax", "mse", "softmax", "softmax_cross_entropy"]


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """log softmax over the last axis, computed stably (the row maximum is subtracted first)."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis: class probabilities from logits (..., C)."""
    return np.exp(log_softmax(logits))


def softmax_cross_entropy(logits, labels):
    """Mean softmax cross-entropy of integer labels: -mean(log softmax(logits)[label]).

    logits (..., C) float; labels (...) integers in [0, C).  Returns (loss: float, dlogits), dlogits
    with the shape and dtype of logits.  Never overflows: it works on log-probabilities.
    """
    logits = np.asarray(logits)
    labels = np.asarray(labels)
    if logits.ndim < 1 or labels.shape != logits.shape[:-1]:
        raise ValueError(f"labels has shape {v.fmt_shape(labels.shape)}; expected {v.fmt_shape(logits.shape[:-1])}, "
                         f"the shape of logits {v.fmt_shape(logits.shape)} without its last (class) axis")
    if labels.dtype.kind not in "iu":
        raise TypeError(f"labels must be integers, got dtype {labels.dtype}")
    classes = logits.shape[-1]
    if labels.size and (labels.min() < 0 or labels.max() >= classes):
        raise ValueError(f"labels must lie in [0, {classes}), got values from {labels.min()} to {labels.max()}")
    count = max(labels.size, 1)
    log_probs = log_softmax(logits).reshape(-1, classes)
    rows = np.arange(log_probs.shape[0])
    flat = labels.reshape(-1)
    loss = -float(log_probs[rows, flat].sum(dtype=np.float64)) / count
    dlogits = np.exp(log_probs)
    dlogits[rows, flat] -= 1
    dlogits /= count
    return loss, dlogits.reshape(logits.shape)


def mse(predictions, targets):
    """Mean squared error mean((predictions - targets)²).  Returns (loss: float, dpredictions)."""
    predictions = np.asarray(predictions)
    targets = np.asarray(targets)
    if predictions.shape != targets.shape:
        raise ValueError(f"targets has shape {v.fmt_shape(targets.shape)}; expected {v.fmt_shape(predictions.shape)}, "
                         "the shape of predictions")
    error = predictions - targets
    count = max(error.size, 1)
    loss = float(np.square(error, dtype=np.float64).sum()) / count
    return loss, (2.0 / count) * error
