"""What every topology model shares: argument and data checks, the training loop, predict/score,
save/load.  The topologies themselves are in ``models.py``.

Data is batch-first at the API (X (N, F) or (N, T, F), like Keras and scikit-learn) and converted
once, on entry, to the kernels' time-major layout (T, N, F); targets that have a time axis likewise.
"""

from __future__ import annotations

import contextlib
import json
import numbers
import os
import sys
import time
import zipfile
import zlib
from typing import ClassVar

import numpy as np

from . import _validation as v
from ._core import __version__
from .layers import (
    RNN,
    check_backend,
    check_dtype,
    check_int,
    load_params,
    make_rng,
    to_numpy,
)
from .losses import mse, softmax_cross_entropy
from .optim import clip_grad_norm, grad_norm, make_optimizer

TASKS = ("classification", "regression")
FILE_FORMAT = "rnnkit.model/1"
PREDICT_CHUNK = 512  # samples per forward pass in predict/score: bounds memory, keeps GEMMs large


def _one_blas_thread(backend: str):
    """With the C++ kernels, run NumPy's BLAS (the Dense heads: small products) on one thread.

    The kernels' OpenMP threads and the BLAS library's own threads both spin while they wait for
    work; a training loop alternates between the two every few milliseconds, and on a machine with
    as many cores as threads each pool then keeps taking the cores the other one needs (measured
    here, 2 cores: an epoch 3-5x slower).  Uses threadpoolctl when it is installed (it comes with
    scikit-learn); otherwise changes nothing.  The NumPy backend keeps every BLAS thread.
    """
    if backend != "cpp":
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def diverged(epoch: int, batch: int, batches: int, loss: float, norm: float) -> FloatingPointError:
    """The error fit raises when a batch's loss or gradient norm is not finite (0-based epoch, batch)."""
    what = f"the loss is {loss}" if not np.isfinite(loss) else f"the gradient norm is {norm}"
    return FloatingPointError(
        f"training diverged at epoch {epoch + 1}, batch {batch + 1} of {batches}: {what}; the weights are "
        f"those after the last good step.  Lower lr, clip the gradients (clip=...), or scale the inputs "
        f"and targets.")


class _LocalSteps:
    """Model._train's work per batch, in this process: forward, backward, the divergence check, the
    optimizer step (rnnkit.distributed has the same three methods over MPI ranks)."""

    def __init__(self, model, x, y, opt, clip):
        self.model, self.x, self.y, self.opt, self.clip = model, x, y, opt, clip

    def batch(self, idx, epoch: int, b: int, batches: int) -> float:
        """Train on the samples ``idx``; returns the batch's mean loss."""
        model = self.model
        # Overflow is checked below, with an error that says where: NumPy's warnings on the way there
        # would only repeat it.
        with np.errstate(over="ignore", invalid="ignore"):
            loss = model._batch_loss(np.take(self.x, idx, model._x_axis), np.take(self.y, idx, model._y_axis),
                                     train=True)
            grads = model._grads()
            norm = clip_grad_norm(grads, self.clip) if self.clip is not None else grad_norm(grads)
        if not (np.isfinite(loss) and np.isfinite(norm)):
            # Stop before the optimizer step: the weights stay those of the last good step.
            raise diverged(epoch, b, batches, loss, norm)
        self.opt.step(grads)
        model.fitted = True
        return loss

    def validate(self, xv, yv) -> tuple:
        model = self.model
        return model._mean_loss(model._x_internal(xv), model._y_internal(yv)), model._score_checked(xv, yv)

    def end_epoch(self, epoch: int, history: dict) -> str:
        """Anything to do after an epoch; returns text for the epoch's summary line."""
        return ""


class NotFittedError(ValueError, AttributeError):
    """predict/score called on a model that has not been fitted (as scikit-learn's NotFittedError)."""


def as_state_tuple(states) -> tuple:
    """The layers return one array (h) or a pair (h, c); the models work on tuples."""
    return states if isinstance(states, tuple) else (states,)


def from_state_tuple(states: tuple):
    return states[0] if len(states) == 1 else states


def one_hot(labels: np.ndarray, classes: int, dtype) -> np.ndarray:
    return np.eye(classes, dtype=dtype)[labels]


def r2_score(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """R² pooled over outputs: 1 - Σ(y - ŷ)² / Σ(y - ȳ)², ȳ the per-output mean over samples
    (scikit-learn's r2_score with multioutput="variance_weighted"; its default for one output)."""
    n = y_true.shape[0]
    y_true = y_true.reshape(n, -1).astype(np.float64)
    y_pred = y_pred.reshape(n, -1).astype(np.float64)
    residual = np.square(y_true - y_pred).sum()
    total = np.square(y_true - y_true.mean(axis=0)).sum()
    if total == 0:
        return 1.0 if residual == 0 else 0.0
    return float(1 - residual / total)


def _progress(total: int, description: str, verbose: int):
    """A tqdm bar over the batches of one epoch when verbose == 1 and tqdm is installed, else None."""
    if verbose != 1:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=description, unit="batch", leave=True, file=sys.stderr, dynamic_ncols=True)


class Model:
    """Base class of the topology models (not instantiated directly).

    Subclasses set ``x_ndim`` (2: X (N, F); 3: X (N, T, F)), ``sequence_targets`` (targets per
    step: Y (N, T)), and implement ``_build(rng)``, ``_forward(x, y)`` and ``_backward(doutputs)``;
    decoders also override ``_outputs(x, steps)``.  Everything inside works time-major.
    """

    x_ndim = 2
    sequence_targets = False
    generates = False  # predict(X, steps) generates a free number of steps (OneToMany, Seq2Seq)
    _registry: ClassVar[dict[str, type]] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        Model._registry[cls.__name__] = cls

    def __init__(self, input_size, hidden_size, output_size, *, cell="tanh", num_layers=1,
                 task="classification", dtype="float32", backend="cpp", seed=None):
        if type(self) is Model:
            raise TypeError("Model is a base class: use OneToOne, OneToMany, ManyToOne, ManyToMany or Seq2Seq")
        if task not in TASKS:
            raise ValueError(f"task must be 'classification' or 'regression', got {task!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
            raise TypeError(f"seed must be None or an int, got {type(seed).__name__}")
        self.input_size = check_int("input_size", input_size)
        self.hidden_size = check_int("hidden_size", hidden_size)
        self.output_size = check_int("output_size", output_size)
        self.num_layers = check_int("num_layers", num_layers)
        self.dtype = check_dtype(dtype)
        self.backend = check_backend(backend)
        self.task = task
        self.cell = cell
        self.seed = None if seed is None else int(seed)
        self._rng = make_rng(self.seed)
        self.layers = self._build(self._rng)
        self.fitted = False
        self.steps = None  # targets per sample seen by fit (the decoders' default for predict)

    def _init_args(self) -> dict:
        return {"input_size": self.input_size, "hidden_size": self.hidden_size, "output_size": self.output_size,
                "cell": self.cell, "num_layers": self.num_layers, "task": self.task, "dtype": str(self.dtype),
                "backend": self.backend, "seed": self.seed}

    def __repr__(self):
        args = self._init_args()
        head = ", ".join(str(args.pop(k)) for k in ("input_size", "hidden_size", "output_size"))
        return f"{type(self).__name__}({head}, " + ", ".join(f"{k}={v!r}" for k, v in args.items()) + ")"

    @property
    def params(self) -> dict:
        """Every parameter, live, named "<layer>.<torch name>" (e.g. "rnn.weight_ih_l0")."""
        return {f"{layer}.{name}": array for layer, module in self.layers.items()
                for name, array in module.params.items()}

    def _grads(self) -> dict:
        return {f"{layer}.{name}": array for layer, module in self.layers.items()
                for name, array in module.grads.items()}

    # -- hooks --------------------------------------------------------------------------------------

    def _build(self, rng) -> dict:
        raise NotImplementedError

    def _forward(self, x, y):
        """Outputs (logits or values) for a batch; ``y`` (the targets) for teacher forcing."""
        raise NotImplementedError

    def _backward(self, doutputs) -> None:
        raise NotImplementedError

    def _outputs(self, x, steps):
        """Outputs for prediction: by default the training forward, which needs no targets."""
        return self._forward(x, None)

    # -- data checks --------------------------------------------------------------------------------

    def _as_array(self, name, value) -> np.ndarray:
        value = to_numpy(value)
        if isinstance(value, (str, bytes)) or value is None:
            raise TypeError(f"{name} must be an array of numbers, got {type(value).__name__}")
        try:
            array = np.asarray(value)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{name} could not be converted to an array: {exc}") from None
        if array.dtype.kind not in "biuf":
            raise TypeError(f"{name} must contain real numbers, got an array of dtype {array.dtype}")
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            bad = np.argwhere(~np.isfinite(array))[0]
            raise ValueError(f"{name} contains NaN or Inf (first at index {tuple(int(i) for i in bad)})")
        return array

    def _check_x(self, X, name="X") -> np.ndarray:
        """X as a C-contiguous array of the model's dtype, batch-first, shape checked."""
        x = self._as_array(name, X)
        layout = "(N, F)" if self.x_ndim == 2 else "(N, T, F)"
        if x.ndim != self.x_ndim:
            hint = " (add a last axis of size 1 for one feature per step)" if self.x_ndim == 3 and x.ndim == 2 else ""
            raise ValueError(f"{name} has shape {v.fmt_shape(x.shape)}; {type(self).__name__} expects {self.x_ndim} "
                             f"dimensions {layout}{hint}")
        if x.shape[-1] != self.input_size:
            raise ValueError(f"{name} has {x.shape[-1]} features (shape {v.fmt_shape(x.shape)}); this model's "
                             f"input_size is {self.input_size}")
        if self.x_ndim == 3 and x.shape[1] == 0:
            raise ValueError(f"{name} has shape {v.fmt_shape(x.shape)}: sequences need at least one timestep")
        return np.ascontiguousarray(x, dtype=self.dtype)

    def _check_y(self, Y, x, name="Y") -> np.ndarray:
        """Targets, batch-first: int64 labels (N[, T]) or values (N[, T], output_size)."""
        y = self._as_array(name, Y)
        n = x.shape[0]
        seq = self.sequence_targets
        layout = "(N, T)" if seq else "(N,)"
        if self.task == "regression":
            full = "(N, T, output_size)" if seq else "(N, output_size)"
            layout = f"{full}" + (f" or {layout}" if self.output_size == 1 else "")
        base_ndim = 2 if seq else 1
        ok_ndim = {base_ndim} if self.task == "classification" else {base_ndim + 1} | (
            {base_ndim} if self.output_size == 1 else set())
        if y.ndim not in ok_ndim:
            raise ValueError(f"{name} has shape {v.fmt_shape(y.shape)}; {type(self).__name__} expects {name} of shape "
                             f"{layout} for task={self.task!r}")
        if y.shape[0] != n:
            raise ValueError(f"X and {name} have different numbers of samples: {n} and {y.shape[0]} (shapes "
                             f"{v.fmt_shape(x.shape)} and {v.fmt_shape(y.shape)})")
        if seq and not self.generates and y.shape[1] != x.shape[1]:
            raise ValueError(f"{name} has {y.shape[1]} timesteps and X has {x.shape[1]} (shapes {v.fmt_shape(y.shape)} "
                             f"and {v.fmt_shape(x.shape)}); {type(self).__name__} predicts one output per input step")
        if seq and y.shape[1] == 0:
            raise ValueError(f"{name} has shape {v.fmt_shape(y.shape)}: at least one target step is needed")
        if self.task == "regression":
            if y.ndim == base_ndim:
                y = y[..., None]
            if y.shape[-1] != self.output_size:
                raise ValueError(f"{name} has shape {v.fmt_shape(y.shape)}; its last axis must be output_size = "
                                 f"{self.output_size}")
            return np.ascontiguousarray(y, dtype=self.dtype)
        if y.dtype.kind == "f" and not np.array_equal(y, np.round(y)):
            raise ValueError(f"{name} must hold integer class labels for task='classification', got non-integer "
                             f"values (dtype {y.dtype})")
        if y.size and (y.min() < 0 or y.max() >= self.output_size):
            raise ValueError(f"{name} holds labels from {y.min():g} to {y.max():g}; labels must lie in "
                             f"[0, output_size) = [0, {self.output_size})")
        return y.astype(np.int64)

    def _check_fitted(self, what: str) -> None:
        if not self.fitted:
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet: call fit(X, Y) before {what}")

    # -- layouts: batch-first outside, time-major inside ----------------------------------------------

    def _x_internal(self, x):
        return np.ascontiguousarray(x.transpose(1, 0, 2)) if x.ndim == 3 else x

    def _y_internal(self, y):
        return np.ascontiguousarray(np.swapaxes(y, 0, 1)) if self.sequence_targets else y

    @property
    def _x_axis(self):
        return 1 if self.x_ndim == 3 else 0

    @property
    def _y_axis(self):
        return 1 if self.sequence_targets else 0

    def _loss(self, outputs, y):
        if self.task == "classification":
            return softmax_cross_entropy(outputs, y)
        return mse(outputs, y)

    def _batch_loss(self, x, y, train: bool) -> float:
        outputs = self._forward(x, y)
        loss, doutputs = self._loss(outputs, y)
        if train:
            self._backward(doutputs)
        return loss

    def _mean_loss(self, x, y) -> float:
        n = x.shape[self._x_axis]
        total = 0.0
        for start in range(0, n, PREDICT_CHUNK):
            idx = np.arange(start, min(start + PREDICT_CHUNK, n))
            xb, yb = np.take(x, idx, self._x_axis), np.take(y, idx, self._y_axis)
            with self._inference():
                total += self._batch_loss(xb, yb, train=False) * len(idx)
        return total / n

    # -- the public API -----------------------------------------------------------------------------

    def fit(self, X, Y, *, epochs=10, batch_size=32, lr=1e-3, optimizer="adam", clip=5.0,
            validation_data=None, verbose=1, comm=None) -> dict:
        """Train on X, Y with mini-batches (reshuffled each epoch from the model's seed).

        Returns the history, lists with one entry per epoch: "loss" (the mean training loss) and
        "time" (seconds of training, validation excluded), plus "val_loss" and "val_score" (accuracy
        or R², as ``score``) when ``validation_data=(X_val, Y_val)``.
        ``clip`` is the maximum global gradient norm (None: no clipping); ``optimizer`` is "adam" or
        "sgd" (momentum 0.9).  ``verbose``: 0 silent, 1 a progress bar per epoch (tqdm), 2 a line per
        epoch.  Calling fit again continues from the current weights.
        ``comm`` (an mpi4py communicator, every rank passing the same X and Y) trains data-parallel
        over its ranks, to the same losses: see ``rnnkit.distributed``.
        """
        if comm is not None:  # mpi4py is imported only here, only when a communicator is given
            from . import distributed
            return distributed.fit(self, X, Y, comm=comm, epochs=epochs, batch_size=batch_size, lr=lr,
                                   optimizer=optimizer, clip=clip, validation_data=validation_data, verbose=verbose)
        return self._fit(X, Y, epochs, batch_size, lr, optimizer, clip, validation_data, verbose, self._train)

    def _fit(self, X, Y, epochs, batch_size, lr, optimizer, clip, validation_data, verbose, train) -> dict:
        """fit's checks and set-up, then ``train(x, y, opt, history, epochs, batch_size, clip, validation,
        verbose)``: ``self._train``, or rnnkit.distributed's loop."""
        epochs = check_int("epochs", epochs)
        batch_size = check_int("batch_size", batch_size)
        if clip is not None and (isinstance(clip, bool) or not isinstance(clip, numbers.Real) or not clip > 0):
            raise ValueError(f"clip must be None or a number > 0, got {clip!r}")
        if isinstance(verbose, bool):
            verbose = int(verbose)
        if verbose not in (0, 1, 2):
            raise ValueError(f"verbose must be 0, 1 or 2, got {verbose!r}")
        x_in = self._check_x(X)
        y_in = self._check_y(Y, x_in)
        if x_in.shape[0] == 0:
            raise ValueError(f"X has shape {v.fmt_shape(x_in.shape)}: fit needs at least one sample")
        validation = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise TypeError("validation_data must be a pair (X_val, Y_val)")
            xv = self._check_x(validation_data[0], "X_val")
            validation = (xv, self._check_y(validation_data[1], xv, "Y_val"))
        opt = make_optimizer(optimizer, self.params, lr)

        x, y = self._x_internal(x_in), self._y_internal(y_in)
        if self.generates:
            self.steps = int(y_in.shape[1])
        history: dict[str, list] = {"loss": [], "time": []}
        if validation is not None:
            history.update(val_loss=[], val_score=[])
        with _one_blas_thread(self.backend):
            train(x, y, opt, history, epochs, batch_size, clip, validation, verbose)
        return history

    def _train(self, x, y, opt, history, epochs, batch_size, clip, validation, verbose, steps=None):
        """The training loop: epochs of batches in a fresh order from the model's generator, the
        progress bar, the history.  ``steps`` does each batch's work, the validation and the end of an
        epoch: ``_LocalSteps`` (this process) unless rnnkit.distributed passes its own."""
        steps = steps or _LocalSteps(self, x, y, opt, clip)
        n = x.shape[self._x_axis]
        batches = -(-n // batch_size)
        for epoch in range(epochs):
            started = time.perf_counter()
            order = self._rng.permutation(n)
            bar = _progress(batches, f"epoch {epoch + 1}/{epochs}", verbose)
            total = 0.0
            for b in range(batches):
                idx = order[b * batch_size:(b + 1) * batch_size]
                total += steps.batch(idx, epoch, b, batches) * len(idx)
                if bar is not None:
                    bar.update()
                    if b % 8 == 0 or b == batches - 1:
                        bar.set_postfix(loss=f"{total / min((b + 1) * batch_size, n):.4f}", refresh=False)
            history["loss"].append(total / n)
            history["time"].append(time.perf_counter() - started)
            self.fitted = True
            summary = f"loss={history['loss'][-1]:.4f}"
            if validation is not None:
                val_loss, val_score = steps.validate(*validation)
                history["val_loss"].append(val_loss)
                history["val_score"].append(val_score)
                summary += f" val_loss={val_loss:.4f} val_score={val_score:.4f}"
            summary += steps.end_epoch(epoch, history)
            if bar is not None:
                bar.set_postfix_str(summary)
                bar.close()
            elif verbose:
                print(f"epoch {epoch + 1}/{epochs} {history['time'][-1]:.2f}s {summary}", file=sys.stderr)

    @contextlib.contextmanager
    def _inference(self):
        """The recurrent layers run in inference mode (nothing saved, weights kept packed)."""
        layers = [layer for layer in self.layers.values() if isinstance(layer, RNN)]
        before = [layer.training for layer in layers]
        for layer in layers:
            layer.training = False
        try:
            yield
        finally:
            for layer, mode in zip(layers, before):
                layer.training = mode

    def _predict_checked(self, x, steps):
        """Predictions for checked, batch-first x: labels or values, batch-first."""
        n = x.shape[0]
        with _one_blas_thread(self.backend), self._inference():
            outputs = [self._outputs(self._x_internal(x[start:start + PREDICT_CHUNK]), steps)
                       for start in range(0, max(n, 1), PREDICT_CHUNK)]
        out = np.concatenate(outputs, axis=self._y_axis)
        if self.task == "classification":
            out = out.argmax(axis=-1)
        elif self.output_size == 1:
            out = out[..., 0]
        return np.ascontiguousarray(np.swapaxes(out, 0, 1)) if self.sequence_targets else out

    def predict(self, X):
        """Labels (classification) or values (regression) for X; see the class docstring for shapes."""
        self._check_fitted("predict")
        return self._predict_checked(self._check_x(X), self.steps)

    def _score_checked(self, x, y) -> float:
        pred = self._predict_checked(x, y.shape[1] if self.generates else self.steps)
        if self.task == "classification":
            return float(np.mean(pred == y)) if y.size else float("nan")
        return r2_score(y, pred.reshape(y.shape))

    def score(self, X, Y) -> float:
        """Accuracy (classification: the fraction of labels predicted right, over every step) or R²."""
        self._check_fitted("score")
        x = self._check_x(X)
        return self._score_checked(x, self._check_y(Y, x))

    def save(self, path) -> None:
        """Write the model to ``path`` (used as given) as one .npz: the weights plus a JSON config."""
        config = {"format": FILE_FORMAT, "class": type(self).__name__, "init": self._init_args(),
                  "fitted": self.fitted, "steps": self.steps, "rnnkit_version": __version__}
        arrays = {f"param:{name}": array for name, array in self.params.items()}
        with open(path, "wb") as file:
            np.savez(file, config=np.array(json.dumps(config)), **arrays)

    @classmethod
    def load(cls, path):
        """Restore a model written by ``save``; ``Model.load`` returns whichever topology it holds.

        A file that is not one — truncated, corrupted, of another format, or whose arrays do not
        match its config — raises ValueError (TypeError for a file holding another topology).
        """
        name = repr(os.fspath(path))
        try:
            # (opened here, not by np.load, so that the file is closed on every failure too)
            with open(path, "rb") as file, np.load(file, allow_pickle=False) as data:
                if not hasattr(data, "files") or "config" not in data.files:
                    raise ValueError(f"{name} is not an rnnkit model file (it has no config)")
                config = json.loads(str(data["config"]))
                if not isinstance(config, dict) or config.get("format") != FILE_FORMAT:
                    found = config.get("format") if isinstance(config, dict) else None
                    raise ValueError(f"{name} has format {found!r}; this rnnkit reads {FILE_FORMAT!r}")
                model_cls = Model._registry.get(config.get("class"))
                if model_cls is None or not issubclass(model_cls, cls):
                    raise TypeError(f"{name} holds a {config.get('class')}, not a {cls.__name__}")
                model = model_cls(**config["init"])
                weights = {k[len("param:"):]: data[k] for k in data.files if k.startswith("param:")}
                fitted, steps = bool(config["fitted"]), config["steps"]
        except (FileNotFoundError, IsADirectoryError, PermissionError):
            raise
        except (ValueError, TypeError) as exc:
            if name in str(exc):  # our own message already names the file
                raise
            raise ValueError(f"{name} is not a readable rnnkit model file: {exc}") from None
        except (OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error, json.JSONDecodeError) as exc:
            raise ValueError(f"{name} is not a readable rnnkit model file: {type(exc).__name__}: {exc}") from None
        load_params(model.params, weights, f"a {model_cls.__name__} with these sizes")
        model.fitted = fitted
        model.steps = steps
        return model
