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
import secrets
import sys
import threading
import time
import zipfile
import zlib
from typing import ClassVar

import numpy as np

from . import _validation as v
from ._core import __version__
from ._data import Rows, Sequences, batch_order, out_of_core
from .embedding import Embedding
from .layers import (
    RNN,
    check_backend,
    check_bool,
    check_dropout,
    check_dtype,
    check_init,
    check_int,
    child_rng,
    dropout_mask,
    load_params,
    make_rng,
    to_numpy,
)
from .losses import log_softmax, mse, softmax_cross_entropy
from .optim import Schedule, clip_grad_norm, fit_optimizer, grad_norm
from .sequences import as_sequence_list

TASKS = ("classification", "regression")
_INFERENCE = threading.local()  # .depth > 0: this thread is inside a model's predict/score
_BUSY = threading.Lock()        # guards the models' _predicting and _fitting_thread
FILE_FORMAT = "rnnkit.model/1"
PREDICT_CHUNK = 512  # samples per forward pass in predict/score: bounds memory, keeps GEMMs large
PREDICT_STEPS = 256  # ... and with lengths, at most PREDICT_CHUNK · PREDICT_STEPS padded steps per pass


_BLAS = {"controller": None, "users": 0, "limit": None}
_BLAS_LOCK = threading.Lock()


def _blas_controller():
    """threadpoolctl's view of the loaded BLAS libraries, made once (making one scans the process's
    libraries: about a millisecond, more than a small predict takes), or None without threadpoolctl."""
    if _BLAS["controller"] is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _BLAS["controller"] = False
        else:
            _BLAS["controller"] = ThreadpoolController()
    return _BLAS["controller"] or None


@contextlib.contextmanager
def _one_blas_thread(backend: str):
    """With the C++ kernels, run NumPy's BLAS (the Dense heads: small products) on one thread.

    The kernels' threads and the BLAS library's own threads both spin while they wait for work; a
    training loop alternates between the two every few milliseconds, and on a machine with as many
    cores as threads each pool then keeps taking the cores the other one needs (measured here, 2
    cores: an epoch 3-5x slower).  Uses threadpoolctl when it is installed (it comes with
    scikit-learn); otherwise changes nothing.  The NumPy backend keeps every BLAS thread.  Calls from
    many threads at once share one limit: the first sets it, the last restores it.
    """
    controller = _blas_controller() if backend == "cpp" else None
    if controller is None:
        yield
        return
    with _BLAS_LOCK:
        if _BLAS["users"] == 0:
            _BLAS["limit"] = controller.limit(limits=1, user_api="blas")
        _BLAS["users"] += 1
    try:
        yield
    finally:
        with _BLAS_LOCK:
            _BLAS["users"] -= 1
            if _BLAS["users"] == 0:
                _BLAS["limit"].restore_original_limits()
                _BLAS["limit"] = None


def atomic_write(path, write) -> None:
    """``write(file)`` into a temporary file in ``path``'s folder, fsync it, then rename it over
    ``path`` (atomic on POSIX and Windows) and fsync the folder: readers see the old file or the whole
    new one, never a part; on any failure the temporary file is removed and ``path`` is as it was.
    The file is created as open() would create it (0o666 less the umask)."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    while True:
        temporary = os.path.join(folder, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
        try:  # only if it is new
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    if hasattr(os, "O_DIRECTORY"):  # the rename itself reaches the disk
        with contextlib.suppress(OSError):
            dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)


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

    def __init__(self, model, x, y, opt, clip, weights=None):
        self.model, self.x, self.y, self.opt, self.clip, self.weights = model, x, y, opt, clip, weights

    def batch(self, idx, epoch: int, b: int, batches: int) -> float:
        """Train on the samples ``idx``; returns the batch's mean (or weighted mean) loss."""
        model = self.model
        # Overflow is checked below, with an error that says where: NumPy's warnings on the way there
        # would only repeat it.
        with np.errstate(over="ignore", invalid="ignore"):
            yb = self.y.take(idx)
            weights = None if self.weights is None else self.weights.of(yb, idx)
            loss = model._batch_loss(self.x.take(idx), yb, train=True, weights=weights)
            grads = model._grads()
            norm = clip_grad_norm(grads, self.clip) if self.clip is not None else grad_norm(grads)
        if not (np.isfinite(loss) and np.isfinite(norm)):
            # Stop before the optimizer step: the weights stay those of the last good step.
            raise diverged(epoch, b, batches, loss, norm)
        self.opt.step(grads)
        model.fitted = True
        return loss

    def validate(self, xv, yv) -> tuple:
        total, count, right, truth = self.model._loss_and_score_parts(xv, yv)
        return total / max(count, 1), self.model._score_of(right, truth)

    def end_epoch(self, epoch: int, history: dict) -> str:
        """Anything to do after an epoch; returns text for the epoch's summary line."""
        return ""

    def stopping(self, flag: bool) -> bool:
        """Whether to stop, given this process's ``model.stop_training`` (the ranks agree on it)."""
        return flag


CHECKPOINT_FORMAT = "rnnkit.checkpoint/1"


def _generators(model) -> dict:
    """Every random Generator training draws from, by a stable name: the model's ``_rng`` (the batch
    order) and ``_dropout_rng`` (the head's dropout), and each layer's (its ``_dropout_rng``)."""
    found = {}
    for key, value in vars(model).items():
        if isinstance(value, np.random.Generator):
            found[f"model.{key}"] = value
    for layer, module in model.layers.items():
        for key, value in vars(module).items():
            if isinstance(value, np.random.Generator):
                found[f"{layer}.{key}"] = value
    return found


class _Checkpoint:
    """fit(..., checkpoint=path): one .npz written atomically (``atomic_write``) after every epoch, and
    every ``every`` batches, holding all that a later fit needs to continue bitwise, and read back
    by the fit that finds it.

    The file: a JSON string ``checkpoint`` (format, fingerprint, position, history, random states,
    optimizer scalars, schedule state, the callbacks' states) and arrays ``param:<name>`` (the
    weights), ``opt:<key>`` (the optimizer's per-parameter state), ``callback<i>:<name>`` (a
    callback's arrays: EarlyStopping's best weights) and ``order`` (the current epoch's batches,
    concatenated, cut at ``order_ends``).
    """

    def __init__(self, path, every, model, fingerprint: dict, comm=None):
        self.path, self.every, self.model, self.fingerprint = os.fspath(path), every, model, fingerprint
        self.comm = comm  # a data-parallel fit's communicator: rank 0 reads and writes for every rank

    # -- reading ------------------------------------------------------------------------------------

    def read(self):
        """The checkpoint's (config, arrays), or None when there is no file; ValueError for a file that
        is not one or was written by another model or configuration (naming what differs).  Under MPI
        (a collective call): rank 0's file, sent to every rank, and its refusal raised on every rank."""
        if self.comm is None:
            return self._read()
        found = error = None
        if self.comm.Get_rank() == 0:
            try:
                found = self._read()
            except ValueError as exc:
                error = exc
        message = self.comm.bcast(None if error is None else str(error), root=0)
        if message is not None:
            error = error if error is not None else ValueError(f"rank 0 refused the checkpoint: {message}")
            error.rnnkit_all_ranks = True  # every rank raises it: no MPI_Abort (see rnnkit.distributed)
            raise error
        return self.comm.bcast(found, root=0)

    def _read(self):
        name = repr(self.path)
        if not os.path.exists(self.path):
            return None
        try:
            with open(self.path, "rb") as file, np.load(file, allow_pickle=False) as data:
                if not hasattr(data, "files") or "checkpoint" not in data.files:
                    raise ValueError(f"{name} is not an rnnkit checkpoint (it has no checkpoint record)")
                config = json.loads(str(data["checkpoint"]))
                arrays = {key: data[key] for key in data.files if key != "checkpoint"}
        except ValueError as exc:
            if name in str(exc):
                raise
            raise ValueError(f"{name} is not a readable rnnkit checkpoint: {exc}") from None
        except (OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
            raise ValueError(f"{name} is not a readable rnnkit checkpoint: {type(exc).__name__}: {exc}") from None
        if not isinstance(config, dict) or config.get("format") != CHECKPOINT_FORMAT:
            found = config.get("format") if isinstance(config, dict) else None
            raise ValueError(f"{name} has format {found!r}; this rnnkit reads checkpoints of format "
                             f"{CHECKPOINT_FORMAT!r}")
        theirs = config.get("fingerprint", {})
        for key in [*self.fingerprint, *(k for k in theirs if k not in self.fingerprint)]:  # the model first
            if theirs.get(key) != self.fingerprint.get(key):
                raise ValueError(f"the checkpoint {name} was written by another model or fit: its {key} is "
                                 f"{theirs.get(key)!r}, this fit's is {self.fingerprint.get(key)!r}; delete the "
                                 f"file or pass another checkpoint path to start afresh")
        return config, arrays

    def restore(self, config: dict, arrays: dict, opt, loop, history: dict) -> dict:
        """Put the checkpoint's state into the model, the optimizer, the schedule and ``history``;
        returns its position."""
        model = self.model
        weights = {k[len("param:"):]: a for k, a in arrays.items() if k.startswith("param:")}
        load_params(model.params, weights, f"this {type(model).__name__}")
        state = dict(config["optimizer"])
        state["arrays"] = {k[len("opt:"):]: a for k, a in arrays.items() if k.startswith("opt:")}
        opt.load_state_dict(state)
        generators = _generators(model)
        states = config["random"]
        if sorted(states) != sorted(generators):
            raise ValueError(f"the checkpoint {self.path!r} has random states for {sorted(states)}; this model "
                             f"draws from {sorted(generators)}")
        for key, generator in generators.items():
            generator.bit_generator.state = states[key]
        if isinstance(loop.schedule, Schedule) and config.get("schedule") is not None:
            loop.schedule.load_state_dict(config["schedule"])
        for i, (kind, state) in enumerate(config.get("callbacks", [])):
            callback = loop.callbacks[i] if i < len(loop.callbacks) else None
            if state is None or callback is None or type(callback).__qualname__ != kind \
                    or not hasattr(callback, "load_state_dict"):
                continue  # (a callback added or changed since: it starts afresh)
            prefix = f"callback{i}:"
            state = dict(state)
            found = {k[len(prefix):]: a for k, a in arrays.items() if k.startswith(prefix)}
            if found:
                state["arrays"] = found
            callback.load_state_dict(state)
        loop.base_lr = config["base_lr"]
        for key, values in config["history"].items():
            history[key] = list(values)
        model.fitted = bool(config["fitted"])
        position = dict(config["position"])
        if "order" in arrays:
            ends = arrays["order_ends"]
            order = arrays["order"]
            position["batches"] = [order[start:end] for start, end in zip(np.concatenate([[0], ends[:-1]]), ends)]
        return position

    # -- writing ------------------------------------------------------------------------------------

    def write(self, opt, loop, history: dict, position: dict, batches=None) -> None:
        """Write the state now: ``position`` holds "epoch" (the epoch under way, or the next one),
        "batch" (the batches of it done), "total", "seen", "elapsed" (its running sums) and
        "finished"; ``batches``: the epoch's batches when some are done."""
        model = self.model
        state = opt.state_dict()
        opt_arrays = state.pop("arrays")
        config = {
            "format": CHECKPOINT_FORMAT, "rnnkit_version": __version__, "fingerprint": self.fingerprint,
            "position": position, "history": history, "fitted": bool(model.fitted),
            "optimizer": state, "base_lr": loop.base_lr,
            "schedule": loop.schedule.state_dict() if isinstance(loop.schedule, Schedule) else None,
            "random": {key: g.bit_generator.state for key, g in _generators(model).items()},
        }
        arrays = {f"param:{name}": array for name, array in model.params.items()}
        arrays.update({f"opt:{name}": array for name, array in opt_arrays.items()})
        callbacks = []
        for i, callback in enumerate(loop.callbacks):
            state = dict(callback.state_dict()) if hasattr(callback, "state_dict") else None
            if state is not None:
                arrays.update({f"callback{i}:{name}": a for name, a in state.pop("arrays", {}).items()})
            callbacks.append([type(callback).__qualname__, state])
        config["callbacks"] = callbacks
        if batches is not None:
            arrays["order"] = np.concatenate(batches) if batches else np.zeros(0, np.int64)
            arrays["order_ends"] = np.cumsum([len(b) for b in batches], dtype=np.int64)
        text = json.dumps(config, default=_json_number)
        if self.comm is None or self.comm.Get_rank() == 0:  # (every rank holds the same state)
            atomic_write(self.path, lambda file: _write_checkpoint(file, text, arrays))


def _json_number(value):
    """NumPy scalars in the checkpoint's JSON (Python's json writes floats with repr: exact)."""
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _write_checkpoint(file, text: str, arrays: dict) -> None:
    np.savez(file, checkpoint=np.array(text), **arrays)


class _InOrder:
    """A stand-in for the model's generator that does not shuffle: batch_order with it cuts the
    samples in order (bucketed by length, pool by pool, when it buckets) and keeps the batches in
    order — fit(shuffle=False) — without drawing from the model's generator."""

    @staticmethod
    def permutation(n):
        return np.arange(n)


_IN_ORDER = _InOrder()


class _Weights:
    """The per-target weights of a weighted fit: ``sample`` (N,) times ``table[label]`` (class_weight
    as a (output_size,) table), either may be None.  ``totals`` (N,): each sample's weights summed over
    its real targets (a batch's weight, which the epoch's loss averages by)."""

    def __init__(self, y: Sequences, sample, table):
        self.sample, self.table = sample, table
        if table is None:
            totals = y.step_lengths().astype(np.float64) if y.timed else np.ones(len(y))
        elif y.values is not None:
            per_target = table[y.values]
            totals = per_target.reshape(len(y), -1).sum(axis=1)
        else:
            owner = np.repeat(np.arange(len(y)), y.lengths)
            totals = np.bincount(owner, weights=table[y.flat], minlength=len(y))
        self.totals = totals if sample is None else totals * sample

    def of(self, yb, idx) -> np.ndarray:
        """The batch's weights, one per target: (B,), or (T, B) for targets with a time axis."""
        if self.table is not None:  # classification: labels (B,) or (T, B)
            weights = self.table[yb.data]
            return weights if self.sample is None else weights * self.sample[idx]
        # sample weights alone: each sample's, repeated over its steps
        return np.broadcast_to(self.sample[idx], yb.data.shape[:2] if yb.timed else yb.data.shape[:1])

    def subset(self, idx) -> "_Weights":
        part = object.__new__(_Weights)
        part.table, part.totals = self.table, self.totals[idx]
        part.sample = None if self.sample is None else self.sample[idx]
        return part


class _Loop:
    """What fit does around the batches besides training: the order of the batches (``shuffle``), the
    weights, the learning-rate schedule and the callbacks.  The defaults do nothing."""

    def __init__(self, shuffle=True, weights=None, schedule=None, callbacks=()):
        self.shuffle, self.weights, self.schedule, self.callbacks = shuffle, weights, schedule, list(callbacks)
        self.base_lr = None
        self.batch_callbacks = [c for c in self.callbacks if hasattr(c, "on_batch_end")]

    def _call(self, hook: str, *args) -> None:
        for callback in self.callbacks:
            method = getattr(callback, hook, None)
            if method is not None:
                method(*args)

    def train_begin(self, model, opt) -> None:
        self.base_lr = opt.lr
        if isinstance(self.schedule, Schedule):
            self.schedule.start(opt.lr)
        for callback in self.callbacks:
            if hasattr(callback, "set_model"):
                callback.set_model(model)
        self._call("on_train_begin", {})

    def epoch_begin(self, epoch: int, opt) -> None:
        if self.schedule is not None:
            schedule = self.schedule
            value = schedule.lr(epoch, self.base_lr) if isinstance(schedule, Schedule) else schedule(epoch)
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(f"the schedule {schedule!r} returned {value!r} for epoch {epoch}; a learning "
                                f"rate must be a number")
            if not (np.isfinite(value) and value >= 0):
                raise ValueError(f"the schedule {schedule!r} returned lr={float(value)!r} for epoch {epoch} "
                                 f"(0-based); a learning rate must be finite and >= 0")
            opt.lr = float(value)
        if self.callbacks:
            self._call("on_epoch_begin", epoch, {"lr": opt.lr})

    def batch_end(self, b: int, loss: float, opt) -> None:
        logs = {"loss": loss, "lr": opt.lr}
        for callback in self.batch_callbacks:
            callback.on_batch_end(b, logs)

    def epoch_end(self, epoch: int, logs: dict) -> None:
        if isinstance(self.schedule, Schedule):
            self.schedule.epoch_end(epoch, logs)
        self._call("on_epoch_end", epoch, logs)

    def train_end(self, logs: dict) -> None:
        self._call("on_train_end", logs)


def _check_not_iterator(name, value) -> None:
    """A generator or iterator would become a 0-d object array: say what to pass instead."""
    if hasattr(value, "__next__") or (hasattr(value, "__iter__") and not hasattr(value, "__len__")
                                      and not isinstance(value, np.ndarray)):
        raise TypeError(f"{name} must be an array or a list of sequences, got {type(value).__name__} (an iterator: "
                        f"pass list({name}))")


def _refuse_sparse(name, value) -> None:
    """scipy.sparse matrices and arrays: refused by name (they would become 0-d object arrays)."""
    if hasattr(value, "tocsr") and hasattr(value, "nnz"):
        raise TypeError(f"{name} is a scipy sparse {type(value).__name__}: sparse input is not supported; rnnkit's "
                        f"kernels take dense arrays (pass {name}.toarray())")


def _targets(Y, y):
    """fit's and score's targets, given as Y (positionally) or as ``y=`` (scikit-learn's keyword)."""
    if y is not None:
        if Y is not None:
            raise TypeError("the targets were given twice (Y and y=): give them once")
        return y
    return Y


def _shape_of(value) -> tuple:
    """The shape of an array-like without calling NumPy functions on it (an object with only
    __array__ refuses them)."""
    shape = getattr(value, "shape", None)
    if isinstance(shape, tuple):
        return shape
    try:
        return np.asarray(value).shape
    except (ValueError, TypeError):
        return (len(value),) if hasattr(value, "__len__") else ()


def _is_rectangular(items) -> bool:
    """Whether a list of samples is one rectangular array (nested lists of equal lengths), not a list of
    sequences: a list holding arrays or tensors is always taken as sequences of their own lengths."""
    sizes = set()
    for item in items:
        if isinstance(item, np.ndarray) or hasattr(item, "detach"):
            return False
        if not isinstance(item, (list, tuple)):
            return True  # scalars: the array path says what is wrong
        sizes.add(len(item))
    return len(sizes) <= 1


def _check_callbacks(callbacks) -> list:
    """fit's callbacks as a list (None: none)."""
    if callbacks is None:
        return []
    if not isinstance(callbacks, (list, tuple)):
        raise TypeError(f"callbacks must be a list of callback objects, got {type(callbacks).__name__}")
    hooks = ("on_train_begin", "on_epoch_begin", "on_batch_end", "on_epoch_end", "on_train_end")
    for i, callback in enumerate(callbacks):
        if not any(hasattr(callback, hook) for hook in hooks):
            raise TypeError(f"callbacks[{i}] ({type(callback).__name__}) has none of the hooks {', '.join(hooks)}")
    return list(callbacks)


def _check_split(validation_split, validation_data) -> float:
    """validation_split as a float in [0, 1), refused beside validation_data."""
    if isinstance(validation_split, bool) or not isinstance(validation_split, numbers.Real) \
            or not 0 <= validation_split < 1:
        raise ValueError(f"validation_split must be a number in [0, 1), got {validation_split!r}")
    if validation_split and validation_data is not None:
        raise ValueError("give validation_data or validation_split, not both")
    return float(validation_split)


class NotFittedError(ValueError, AttributeError):
    """predict/score called on a model that has not been fitted (as scikit-learn's NotFittedError).
    In a program that has imported scikit-learn, the error raised is also an instance of
    ``sklearn.exceptions.NotFittedError`` (without scikit-learn, nothing imports it)."""


def _not_fitted(message: str) -> NotFittedError:
    """A NotFittedError — of a subclass that is scikit-learn's too when scikit-learn is loaded."""
    sklearn = sys.modules.get("sklearn.exceptions")
    if sklearn is None:
        return NotFittedError(message)
    global _SKLEARN_NOT_FITTED
    if _SKLEARN_NOT_FITTED is None or not issubclass(_SKLEARN_NOT_FITTED, sklearn.NotFittedError):
        _SKLEARN_NOT_FITTED = type("NotFittedError", (NotFittedError, sklearn.NotFittedError),
                                   {"__module__": __name__, "__doc__": NotFittedError.__doc__})
    return _SKLEARN_NOT_FITTED(message)


_SKLEARN_NOT_FITTED = None


def as_state_tuple(states) -> tuple:
    """The layers return one array (h) or a pair (h, c); the models work on tuples."""
    return states if isinstance(states, tuple) else (states,)


def from_state_tuple(states: tuple):
    return states[0] if len(states) == 1 else states


def one_hot(labels: np.ndarray, classes: int, dtype) -> np.ndarray:
    return np.eye(classes, dtype=dtype)[labels]


def r2_from_residual(residual: float, y_true: np.ndarray) -> float:
    """R² = 1 - residual / Σ(y - ȳ)², ȳ the per-column mean of y_true (rows, k)."""
    total = np.square(y_true - y_true.mean(axis=0)).sum()
    if total == 0:
        return 1.0 if residual == 0 else 0.0
    return float(1 - residual / total)


def r2_score(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """R² pooled over outputs: 1 - Σ(y - ŷ)² / Σ(y - ȳ)², ȳ the per-output mean over samples
    (scikit-learn's r2_score with multioutput="variance_weighted"; its default for one output)."""
    n = y_true.shape[0]
    y_true = y_true.reshape(n, -1).astype(np.float64)
    residual = float(np.square(y_true - y_pred.reshape(n, -1).astype(np.float64)).sum())
    return r2_from_residual(residual, y_true)


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
    step: Y (N, T)), ``can_be_bidirectional``, and implement ``_build(rng)``, ``_forward(x, y)``
    and ``_backward(doutputs)`` on ``_data.Batch`` objects (time-major data and its lengths);
    decoders also implement ``_generate(x, steps)``.
    """

    x_ndim = 2
    sequence_targets = False
    generates = False  # predict(X, max_steps) generates a free number of steps (OneToMany, Seq2Seq)
    can_be_bidirectional = False
    _registry: ClassVar[dict[str, type]] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        Model._registry[cls.__name__] = cls

    def __init__(self, input_size, hidden_size, output_size, *, cell="tanh", num_layers=1,
                 task="classification", bidirectional=False, vocab_size=None, dropout=0.0, init="torch",
                 unit_forget_bias=False, dtype="float32", backend="cpp", seed=None):
        if type(self) is Model:
            raise TypeError("Model is a base class: use OneToOne, OneToMany, ManyToOne, ManyToMany or Seq2Seq")
        # the constructor's arguments as given, for get_params (scikit-learn's clone checks identity)
        self._given = {"input_size": input_size, "hidden_size": hidden_size, "output_size": output_size,
                       "cell": cell, "num_layers": num_layers, "task": task, "bidirectional": bidirectional,
                       "vocab_size": vocab_size, "dropout": dropout, "init": init,
                       "unit_forget_bias": unit_forget_bias, "dtype": dtype, "backend": backend, "seed": seed}
        if task not in TASKS:
            raise ValueError(f"task must be 'classification' or 'regression', got {task!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
            raise TypeError(f"seed must be None or an int, got {type(seed).__name__}")
        # input_size / output_size None: taken from the data by the first fit (as scikit-learn's
        # estimators do); the layers are built then
        self.input_size = None if input_size is None else check_int("input_size", input_size)
        self.hidden_size = check_int("hidden_size", hidden_size)
        self.output_size = None if output_size is None else check_int("output_size", output_size)
        self.num_layers = check_int("num_layers", num_layers)
        self.bidirectional = check_bool("bidirectional", bidirectional)
        if self.bidirectional and not self.can_be_bidirectional:
            raise ValueError(f"{type(self).__name__} cannot be bidirectional: "
                             + self._no_bidirectional_reason + "; bidirectional=True is for ManyToOne, ManyToMany and "
                             "the encoder of Seq2Seq")
        self.vocab_size = None if vocab_size is None else check_int("vocab_size", vocab_size)
        if self.vocab_size is not None and self.input_size is None:
            raise ValueError("vocab_size needs input_size (the embedding's size): it cannot be read from token ids")
        self.dropout = check_dropout(dropout)
        self.init = check_init(init)
        self.unit_forget_bias = check_bool("unit_forget_bias", unit_forget_bias)
        self.dtype = check_dtype(dtype)
        self.backend = check_backend(backend)
        self.task = task
        self.cell = cell
        self.seed = None if seed is None else int(seed)
        self._rng = make_rng(self.seed)
        self._predicting, self._fitting_thread = 0, None  # (see _inference and _fitting)
        self.layers: dict = {}
        self._head_mask = None
        if self.input_size is not None and self.output_size is not None:
            self._build_layers()
        self.fitted = False
        self.steps = None  # the decoders: the longest target seen by fit (predict's default max_steps)
        self._classes = None  # OneToOne, ManyToOne: the labels fit saw, when not 0 … output_size-1

    _no_bidirectional_reason = "it has no sequence to read both ways"

    # State that is not a constructor argument lives in private attributes behind these names, so
    # that an instance's public attributes are its parameters (scikit-learn's convention, which
    # check_no_attributes_set_in_init and check_dont_overwrite_parameters check).
    layers = property(lambda self: self._layers, lambda self, value: setattr(self, "_layers", value),
                      doc="The model's layers by name ({'rnn': RNN, 'head': Dense, ...}); empty until built.")
    fitted = property(lambda self: self._fitted, lambda self, value: setattr(self, "_fitted", bool(value)),
                      doc="Whether fit has trained the model (or load restored a fitted one).")
    steps = property(lambda self: self._steps, lambda self, value: setattr(self, "_steps", value),
                     doc="The decoders: the longest target fit saw (predict's default max_steps).")
    # (None when built without them, until the first fit takes them from the data)
    input_size = property(lambda self: self._input_size, lambda self, value: setattr(self, "_input_size", value),
                          doc="Features per step (the embedding's size with vocab_size).")
    output_size = property(lambda self: self._output_size, lambda self, value: setattr(self, "_output_size", value),
                           doc="Classes (classification) or values per output (regression).")
    stop_training = property(lambda self: getattr(self, "_stop_training", False),
                             lambda self, value: setattr(self, "_stop_training", bool(value)),
                             doc="Set True from a callback to end fit after the current batch (Keras').")

    def _build_layers(self) -> None:
        self.layers = self._build(self._rng)
        if self.vocab_size is not None:  # the token ids' embedding comes first
            embed = Embedding(self.vocab_size, self.input_size, dtype=self.dtype, seed=self._rng)
            self.layers = {"embed": embed, **self.layers}
        self._dropout_rng = child_rng(self._rng)  # the head input's dropout (spawned: draws nothing)

    def _check_built(self, what: str) -> None:
        if not self.layers:
            raise _not_fitted(f"this {type(self).__name__} has no layers yet (input_size or output_size is None: "
                                 f"the first fit takes them from the data); call fit(X, Y) before {what}")

    def _infer_sizes(self, X, Y) -> None:
        """The first fit of a model built with input_size or output_size None: the sizes from the data."""
        X, Y = to_numpy(X), to_numpy(Y)
        _refuse_sparse("X", X)
        _refuse_sparse("Y", Y)
        if Y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None (fit(X, y))")
        if self.input_size is None:
            first = np.asarray(X[0]) if isinstance(X, (list, tuple)) and len(X) and self.x_ndim == 3 else None
            shape = first.shape if first is not None else _shape_of(X)
            want = self.x_ndim - (1 if first is not None else 0)
            if len(shape) != want or shape[-1] < 1:
                raise ValueError(f"X has shape {v.fmt_shape(shape)}; {type(self).__name__} expects "
                                 f"{'(N, F)' if self.x_ndim == 2 else '(N, T, F), or a list of (T_i, F) arrays'} "
                                 f"to take input_size = F from")
            self.input_size = int(shape[-1])
        if self.output_size is None:
            rows = [np.asarray(r) for r in Y] if isinstance(Y, (list, tuple)) and self.sequence_targets else None
            if self.task == "classification":
                labels = np.concatenate([r.reshape(-1) for r in rows]) if rows else np.asarray(Y).reshape(-1)
                if labels.size == 0:
                    raise ValueError("Y has no labels to take output_size from")
                if self.sequence_targets:  # labels are the outputs' indices: 0 … the largest
                    if labels.dtype.kind not in "iu" and not (labels.dtype.kind == "f" and
                                                              np.array_equal(labels, np.round(labels))):
                        raise ValueError(f"Y must hold integer class labels for task='classification', got dtype "
                                         f"{labels.dtype}")
                    end = getattr(self, "end_token", None)
                    self.output_size = int(max(labels.max(), -1 if end is None else end)) + 1
                else:  # every distinct label is a class (classes_)
                    self.output_size = len(np.unique(labels))
            else:
                shape = rows[0].shape if rows else _shape_of(Y)
                base = 1 if rows else (2 if self.sequence_targets else 1)
                self.output_size = 1 if len(shape) <= base else int(shape[-1])
        self._build_layers()

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def _init_args(self) -> dict:
        return {"input_size": self.input_size, "hidden_size": self.hidden_size, "output_size": self.output_size,
                "cell": self.cell, "num_layers": self.num_layers, "task": self.task,
                "bidirectional": self.bidirectional, "vocab_size": self.vocab_size, "dropout": self.dropout,
                "init": self.init, "unit_forget_bias": self.unit_forget_bias, "dtype": str(self.dtype),
                "backend": self.backend, "seed": self.seed}

    def __repr__(self):
        args = self._init_args()
        head = ", ".join(str(args.pop(k)) for k in ("input_size", "hidden_size", "output_size"))
        defaults = {"bidirectional": False, "vocab_size": None, "end_token": None, "dropout": 0.0, "init": "torch",
                    "unit_forget_bias": False}
        return f"{type(self).__name__}({head}, " + ", ".join(
            f"{k}={v!r}" for k, v in args.items() if k not in defaults or v != defaults[k]) + ")"

    # -- scikit-learn's estimator API (scikit-learn itself is not needed) ---------------------------

    def get_params(self, deep=True) -> dict:
        """The constructor's arguments, as given (``sklearn.base.clone`` rebuilds the model from them)."""
        return dict(self._given)

    def set_params(self, **params) -> "Model":
        """Change constructor arguments: the model is rebuilt from them (fresh weights from its seed,
        not fitted), as an unfitted scikit-learn estimator would be.  Returns the model."""
        unknown = sorted(set(params) - set(self._given))
        if unknown:
            raise ValueError(f"invalid parameter(s) {unknown} for {type(self).__name__}; its parameters are "
                             f"{sorted(self._given)}")
        self.__init__(**{**self._given, **params})
        return self

    @property
    def _estimator_type(self) -> str:
        return "classifier" if self.task == "classification" else "regressor"

    def __sklearn_tags__(self):
        """scikit-learn's tags (called by scikit-learn only, so it is imported only then)."""
        from sklearn.utils import ClassifierTags, RegressorTags, Tags, TargetTags
        classify = self.task == "classification"
        tags = Tags(estimator_type=self._estimator_type,
                    target_tags=TargetTags(required=True, multi_output=self.sequence_targets))
        if classify:
            tags.classifier_tags = ClassifierTags(multi_class=True, multi_label=False)
        else:
            tags.regressor_tags = RegressorTags()
        tags.input_tags.two_d_array = self.x_ndim == 2 and self.vocab_size is None
        tags.input_tags.three_d_array = self.x_ndim == 3
        tags.input_tags.allow_nan = False
        tags.non_deterministic = False
        return tags

    @property
    def n_features_in_(self) -> int:
        """The number of features of X that fit saw (input_size; 1 token id with vocab_size)."""
        self._check_fitted("n_features_in_")
        return 1 if self.vocab_size is not None else self.input_size

    @property
    def classes_(self) -> np.ndarray:
        """The class labels, in the order of the outputs (classification): 0 … output_size-1, or for
        OneToOne and ManyToOne the labels fit saw, sorted (strings too) when they were not those."""
        if self.task != "classification":
            raise AttributeError(f"a {type(self).__name__} with task='regression' has no classes_")
        classes = getattr(self, "_classes", None)
        return np.arange(self.output_size) if classes is None else classes.copy()

    def _learn_classes(self, Y) -> None:
        """fit: OneToOne and ManyToOne learn their label set from Y when it is not 0 … output_size-1."""
        if self.task != "classification" or self.sequence_targets or (self.fitted and self._classes is not None):
            # (a fitted model keeps the classes it learnt; new labels are refused by _encode_labels)
            return
        labels = np.asarray(to_numpy(Y))
        if labels.ndim != 1 or labels.dtype == object and not all(isinstance(v, str) for v in labels):
            self._classes = None
            return  # (the checks that follow say what is wrong)
        if labels.dtype.kind in "fc" and (not np.isfinite(labels).all() or not np.array_equal(labels, np.round(labels))):
            self._classes = None  # continuous targets: refused as labels next (as scikit-learn does)
            return
        classes = np.unique(labels)
        if labels.dtype.kind in "iubf":
            if labels.size == 0 or (labels.min() >= 0 and labels.max() < self.output_size) \
                    or len(classes) != self.output_size:
                self._classes = None  # the labels are the outputs' indices (or out of range: refused next)
                return
        if len(classes) != self.output_size:
            raise ValueError(f"Y holds {len(classes)} classes ({', '.join(map(repr, classes[:5].tolist()))}"
                             f"{', …' if len(classes) > 5 else ''}); labels other than 0 … output_size-1 are mapped "
                             f"to the outputs in sorted order, so output_size must be {len(classes)}, not "
                             f"{self.output_size}")
        self._classes = classes

    def _encode_labels(self, name, Y):
        """Labels given in classes_ -> the outputs' indices (OneToOne and ManyToOne with classes_)."""
        classes = getattr(self, "_classes", None)
        if classes is None or self.task != "classification" or self.sequence_targets:
            return Y
        labels = np.asarray(to_numpy(Y))
        if labels.ndim != 1:
            raise ValueError(f"{name} has shape {v.fmt_shape(labels.shape)}; {type(self).__name__} expects {name} of "
                             f"shape (N,)")
        index = np.searchsorted(classes, labels)
        index = np.minimum(index, len(classes) - 1)
        unknown = np.flatnonzero(classes[index] != labels)
        if unknown.size:
            i = int(unknown[0])
            raise ValueError(f"{name}[{i}] = {labels[i].item()!r} is not one of the classes fit saw "
                             f"({', '.join(map(repr, classes.tolist()))})")
        return index.astype(np.int64)

    def _decode_labels(self, labels):
        classes = getattr(self, "_classes", None)
        return labels if classes is None else classes[labels]

    def predict_proba(self, X):
        """Class probabilities (the head's softmax; classification, not the decoders): (N, output_size)
        for OneToOne and ManyToOne, (N, T, output_size) or a list of (T_i, output_size) for ManyToMany,
        the columns in the order of ``classes_``."""
        if self.task != "classification":
            raise AttributeError(f"a {type(self).__name__} with task='regression' has no predict_proba")
        if self.generates:
            raise TypeError(f"{type(self).__name__} generates its sequences greedily and has no predict_proba")
        self._check_fitted("predict_proba")
        x = self._check_x(X)
        as_list = self.sequence_targets and x.ragged
        rows, out = [None] * len(x), None
        with _one_blas_thread(self.backend), self._inference():
            for idx in self._chunks(x):
                batch = x.take(idx)
                logits = self._forward(batch, None).astype(np.float64)
                logits -= logits.max(axis=-1, keepdims=True)
                p = np.exp(logits)
                p /= p.sum(axis=-1, keepdims=True)
                p = p.astype(self.dtype)
                if self.sequence_targets:
                    p = np.swapaxes(p, 0, 1)
                if as_list:
                    for i, row in zip(idx, p):
                        rows[i] = np.ascontiguousarray(row[:x.step_lengths()[i]])
                    continue
                if out is None:
                    out = np.empty((len(x), *p.shape[1:]), p.dtype)
                out[idx] = p
        if as_list:
            return rows
        return out if out is not None else np.zeros((0, self.output_size), self.dtype)

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

    def _head(self, features):
        """The head on its input features — after dropout in training forwards (``dropout``)."""
        if self._training():  # (inference keeps nothing on the model: many threads may predict)
            self._head_mask = None if not self.dropout else dropout_mask(
                self._dropout_rng, self.dropout, features.shape, self.dtype)
            if self._head_mask is not None:
                features = features * self._head_mask
        return self.layers["head"](features)

    def _head_backward(self, doutputs):
        dfeatures = self.layers["head"].backward(doutputs)
        return dfeatures if self._head_mask is None else dfeatures * self._head_mask

    def _inputs(self, x):
        """The batch's float inputs: the data itself, or the embedding of its token ids."""
        if self.vocab_size is None:
            return x.data
        return self.layers["embed"](x.data)

    @property
    def _needs_dx(self) -> bool:
        """Whether the recurrent layer's backward must give dx: only an embedding below it learns from it."""
        return self.vocab_size is not None

    def _inputs_backward(self, dx) -> None:
        if self.vocab_size is not None:
            self.layers["embed"].backward(dx)

    # -- data checks --------------------------------------------------------------------------------

    def _as_array(self, name, value) -> np.ndarray:
        value = to_numpy(value)
        _refuse_sparse(name, value)
        if value is None and name.startswith("Y"):
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None")
        if isinstance(value, (str, bytes)) or value is None:
            raise TypeError(f"{name} must be an array of numbers, got {type(value).__name__}")
        try:
            array = np.asarray(value)
        except (ValueError, TypeError) as exc:
            hint = ""
            if isinstance(value, (list, tuple)) and self.x_ndim == 3 and name.startswith("X"):
                hint = " (sequences of different lengths go in a list of arrays, one per sequence)"
            raise ValueError(f"{name} could not be converted to an array: {exc}{hint}") from None
        if array.dtype == object and array.size and not any(isinstance(a, str) for a in array.flat):
            # numbers held as Python objects (pandas' object columns): as float64, or refused naming
            # what is not a number (NumPy's own message: "float() argument must be a string or a real
            # number, not 'dict'")
            try:
                array = array.astype(np.float64)
            except (TypeError, ValueError) as exc:
                raise TypeError(f"{name} has dtype object and holds something that is not a number: {exc}") from None
        if array.dtype.kind == "c":
            raise ValueError(f"{name} has dtype {array.dtype}: Complex data not supported (rnnkit takes real "
                             f"numbers)")
        if array.dtype.kind not in "biuf":
            raise TypeError(f"{name} must contain real numbers, got an array of dtype {array.dtype}")
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            bad = np.argwhere(~np.isfinite(array))[0]
            raise ValueError(f"{name} contains NaN or Inf (first at index {tuple(int(i) for i in bad)})")
        return array

    def _check_ids(self, name, ids: np.ndarray) -> np.ndarray:
        """Token ids: integers in [0, vocab_size)."""
        if ids.dtype.kind not in "iu":
            raise TypeError(f"{name} must hold integer token ids for a model with vocab_size={self.vocab_size}, "
                            f"got dtype {ids.dtype}" + (" (float input needs a model without vocab_size)"
                                                        if ids.dtype.kind == "f" else ""))
        v.check_token_ids(name, ids, self.vocab_size)
        return ids.astype(np.int64)

    def _check_x(self, X, name="X") -> Sequences:
        """X as the model's data set: batch-first, padded, with lengths (see _data.Sequences).

        Rectangular arrays (N, F) / (N, T, F) as before; for the sequence models also a list of
        (T_i, F) arrays; with vocab_size, integer ids (N,) / (N, T) or a list of (T_i,) id sequences.
        """
        X = to_numpy(X)
        _refuse_sparse(name, X)
        _check_not_iterator(name, X)
        timed = self.x_ndim == 3
        if out_of_core(X):
            return self._check_rows_x(X, name)
        if timed and isinstance(X, (list, tuple)) and len(X) == 0:  # no sequences: predict gives none
            shape = (0, 1) if self.vocab_size is not None else (0, 1, self.input_size)
            return Sequences(np.zeros(shape, np.int64 if self.vocab_size is not None else self.dtype), ragged=True)
        if timed and isinstance(X, (list, tuple)) and not _is_rectangular(X):
            return self._check_ragged_x(X, name)
        x = self._as_array(name, X)
        feature_ndim = 0 if self.vocab_size is not None else 1
        ndim = self.x_ndim - 1 + feature_ndim
        if self.vocab_size is not None:
            layout = "(N,) of token ids" if not timed else "(N, T) of token ids, or a list of (T_i,) id sequences"
        else:
            layout = "(N, F)" if not timed else "(N, T, F), or a list of (T_i, F) arrays"
        if x.ndim != ndim:
            hint = ""
            if self.vocab_size is None and timed and x.ndim == 2:
                hint = (" (add a last axis of size 1 for one feature per step, or construct the model with "
                        "vocab_size= for token ids)")
            elif x.ndim == ndim - 1:
                hint = (f". Reshape your data: {name}.reshape(-1, 1) if it has a single feature, "
                        f"{name}.reshape(1, -1) if it is a single sample")
            raise ValueError(f"{name} has shape {v.fmt_shape(x.shape)}; {type(self).__name__} expects {ndim} "
                             f"dimensions {layout}{hint}")
        if self.vocab_size is not None:
            values = self._check_ids(name, x)
        else:
            if x.shape[-1] != self.input_size:
                empty = (f"; 0 feature(s) (shape={x.shape}) while a minimum of 1 is required."
                         if x.shape[-1] == 0 else "")
                raise ValueError(f"{name} has {x.shape[-1]} features, but {type(self).__name__} is expecting "
                                 f"{self.input_size} features as input (its input_size; {name} has shape "
                                 f"{v.fmt_shape(x.shape)}){empty}")
            values = np.ascontiguousarray(x, dtype=self.dtype)
        if timed and x.shape[1] == 0:
            raise ValueError(f"{name} has shape {v.fmt_shape(x.shape)}: sequences need at least one timestep")
        return Sequences(values, timed=timed)

    def _check_rows_x(self, X, name) -> Sequences:
        """Out-of-core X (a np.memmap, an h5py dataset...): its shape and dtype checked now, its rows
        as each batch reads them (see _data.Rows)."""
        timed = self.x_ndim == 3
        shape = tuple(int(d) for d in X.shape)
        dtype = np.dtype(X.dtype)
        ids = self.vocab_size is not None
        ndim = self.x_ndim - (1 if ids else 0)
        layout = ("(N, T) of token ids" if timed else "(N,) of token ids") if ids else (
            "(N, T, F)" if timed else "(N, F)")
        if len(shape) != ndim:
            raise ValueError(f"{name} has shape {v.fmt_shape(shape)}; {type(self).__name__} expects {ndim} dimensions "
                             f"{layout} (out-of-core data is read as a rectangular array)")
        if ids and dtype.kind not in "iu":
            raise TypeError(f"{name} must hold integer token ids for a model with vocab_size={self.vocab_size}, got "
                            f"dtype {dtype}")
        if dtype.kind not in "biuf":
            raise TypeError(f"{name} must contain real numbers, got an array of dtype {dtype}")
        if not ids and shape[-1] != self.input_size:
            raise ValueError(f"{name} has {shape[-1]} features, but {type(self).__name__} is expecting "
                             f"{self.input_size} features as input (its input_size; {name} has shape "
                             f"{v.fmt_shape(shape)})")
        if timed and shape[1] == 0:
            raise ValueError(f"{name} has shape {v.fmt_shape(shape)}: sequences need at least one timestep")

        def check(rows: np.ndarray, index: np.ndarray) -> None:
            if ids:
                bad = (rows < 0) | (rows >= self.vocab_size)
                if bad.any():
                    where = np.argwhere(bad)[0]
                    position = ", ".join(map(str, (int(index[where[0]]), *map(int, where[1:]))))
                    raise ValueError(f"{name}[{position}] = {int(rows[tuple(where)])} is out of range; token ids must "
                                     f"lie in [0, vocab_size) = [0, {self.vocab_size})")
            elif rows.dtype.kind == "f" and not np.isfinite(rows).all():
                where = np.argwhere(~np.isfinite(rows))[0]
                position = ", ".join(map(str, (int(index[where[0]]), *map(int, where[1:]))))
                raise ValueError(f"{name} contains NaN or Inf (first at index ({position}), read by this batch)")

        return Sequences(Rows(X, np.int64 if ids else self.dtype, check, name), timed=timed)

    def _check_ragged_x(self, X, name) -> Sequences:
        seqs = as_sequence_list(name, X)
        ids = self.vocab_size is not None
        rows = []
        for i, seq in enumerate(seqs):
            item = f"{name}[{i}]"
            if ids:
                if seq.ndim != 1:
                    raise ValueError(f"{item} has shape {v.fmt_shape(seq.shape)}; a model with vocab_size takes "
                                     f"each sequence as a (T_i,) array of token ids")
                seq = self._check_ids(item, seq) if seq.size else seq.astype(np.int64)
            else:
                if seq.ndim != 2:
                    hint = ""
                    if seq.ndim == 1:
                        hint = (" (for one feature per step reshape it to (T_i, 1); token ids need a model "
                                "built with vocab_size=)")
                    raise ValueError(f"{item} has shape {v.fmt_shape(seq.shape)}; {type(self).__name__} takes each "
                                     f"sequence as a (T_i, F) array{hint}")
                if seq.shape[1] != self.input_size:
                    raise ValueError(f"{item} has {seq.shape[1]} features (shape {v.fmt_shape(seq.shape)}); every "
                                     f"sequence needs input_size = {self.input_size}")
                if seq.dtype.kind == "f" and not np.isfinite(seq).all():
                    bad = np.argwhere(~np.isfinite(seq))[0]
                    raise ValueError(f"{item} contains NaN or Inf (first at index {tuple(int(i) for i in bad)})")
            if seq.shape[0] == 0:
                raise ValueError(f"{item} is empty (shape {v.fmt_shape(seq.shape)}): {type(self).__name__} needs "
                                 f"at least one step per sequence")
            rows.append(seq)
        return Sequences.from_rows(rows, np.int64 if ids else self.dtype, () if ids else (self.input_size,))

    def _check_y(self, Y, x: Sequences, name="Y") -> Sequences:
        """Targets as a data set: labels (int64) or values, batch-first, padded, with lengths."""
        Y = self._encode_labels(name, to_numpy(Y))
        _check_not_iterator(name, Y)
        n = len(x)
        if not self.sequence_targets:
            y = self._check_y_array(name, self._as_array(name, Y), base_ndim=1)
            if y.shape[0] != n:
                raise ValueError(f"X and {name} have different numbers of samples: {n} and {y.shape[0]}")
            return Sequences(y, timed=False)
        if isinstance(Y, (list, tuple)) and not _is_rectangular(Y):
            rows = [self._check_y_array(f"{name}[{i}]", self._as_array(f"{name}[{i}]", row), base_ndim=1)
                    for i, row in enumerate(as_sequence_list(name, Y))]
            if len(rows) != n:
                raise ValueError(f"X and {name} have different numbers of samples: {n} and {len(rows)}")
            classify = self.task == "classification"
            y = Sequences.from_rows(rows, np.int64 if classify else self.dtype, () if classify else (self.output_size,))
        else:
            array = self._check_y_array(name, self._as_array(name, Y), base_ndim=2)
            if array.shape[0] != n:
                raise ValueError(f"X and {name} have different numbers of samples: {n} and {array.shape[0]} (shapes "
                                 f"{v.fmt_shape(x.values.shape) if x.values is not None else f'({n} sequences)'} "
                                 f"and {v.fmt_shape(array.shape)})")
            y = Sequences(array)
        return self._check_y_steps(y, x, name)

    def _check_y_steps(self, y: Sequences, x: Sequences, name) -> Sequences:
        """ManyToMany: one target per input step (the decoders override this)."""
        if y.steps == 0:
            raise ValueError(f"{name} has {len(y)} target sequences of no step: at least one target step is needed")
        if x.lengths is None and y.lengths is None and y.steps != x.steps:
            raise ValueError(f"{name} has {y.steps} timesteps and X has {x.steps} (shapes "
                             f"{v.fmt_shape(y.values.shape)} and {v.fmt_shape(x.values.shape)}); "
                             f"{type(self).__name__} predicts one output per input step")
        if y.lengths is None and x.lengths is not None and y.steps == x.steps:
            # a padded target array beside sequences of their own lengths: the padding is not a target
            return Sequences.from_padded(y.values, x.lengths)
        want, got = x.step_lengths(), y.step_lengths()
        bad = np.flatnonzero(got != want)
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"{name}[{i}] has {int(got[i])} steps and X[{i}] has {int(want[i])}; "
                             f"{type(self).__name__} predicts one output per input step, so every target sequence "
                             f"must be as long as its input")
        return y

    def _check_y_array(self, name, y: np.ndarray, base_ndim: int) -> np.ndarray:
        """One array of targets: ``base_ndim`` leading axes (samples, or steps, or both) of int64
        labels, or of values with a last axis of output_size (which may be left out when it is 1)."""
        lead = "(T_i" if "[" in name else {1: "(N", 2: "(N, T"}[base_ndim]
        layout = f"{lead},)" if base_ndim == 1 or "[" in name else f"{lead})"
        if self.task == "regression":
            full = f"{lead}, output_size)"
            layout = full + (f" or {layout}" if self.output_size == 1 else "")
        ok_ndim = {base_ndim} if self.task == "classification" else {base_ndim + 1} | (
            {base_ndim} if self.output_size == 1 else set())
        if y.ndim not in ok_ndim:
            hint = ", or a list of (T_i,) target sequences" if base_ndim == 2 and "[" not in name else ""
            raise ValueError(f"{name} has shape {v.fmt_shape(y.shape)}; {type(self).__name__} expects {name} of shape "
                             f"{layout} for task={self.task!r}{hint}")
        if self.task == "regression":
            if y.ndim == base_ndim:
                y = y[..., None]
            if y.shape[-1] != self.output_size:
                raise ValueError(f"{name} has shape {v.fmt_shape(y.shape)}; its last axis must be output_size = "
                                 f"{self.output_size}")
            return np.ascontiguousarray(y, dtype=self.dtype)
        if y.dtype.kind == "f" and not np.isfinite(y).all():
            raise ValueError(f"{name} holds NaN or Inf; class labels must be finite")
        if y.dtype.kind == "f" and not np.array_equal(y, np.round(y)):
            raise ValueError(f"{name} must hold integer class labels for task='classification', got non-integer "
                             f"values (dtype {y.dtype}): a continuous target (use task='regression')")
        if y.size and (y.min() < 0 or y.max() >= self.output_size):
            other = "" if self.sequence_targets else (f", or be any {self.output_size} distinct labels (mapped to the "
                                                      f"outputs in sorted order: classes_)")
            raise ValueError(f"{name} holds labels from {y.min():g} to {y.max():g}; labels must lie in "
                             f"[0, output_size) = [0, {self.output_size}){other}")
        return y.astype(np.int64)

    def _check_fitted(self, what: str) -> None:
        if not self.fitted:
            raise _not_fitted(f"this {type(self).__name__} is not fitted yet: call fit(X, Y) before {what}")

    # -- losses -------------------------------------------------------------------------------------

    def _loss(self, outputs, y, weights=None):
        """The batch's mean loss over its real targets, and its gradient (zero at the padding); with
        ``weights`` (one per target, shaped as y's target axes) the weighted mean (see _weighted_loss)."""
        mask = y.mask()
        if weights is not None:
            if mask is None:
                classes = outputs.shape[-1]
                targets = y.data.reshape(-1) if self.task == "classification" else y.data.reshape(-1, classes)
                loss, dflat = self._weighted_loss(outputs.reshape(-1, classes), targets, weights.reshape(-1))
                return loss, dflat.reshape(outputs.shape)
            loss, dreal = self._weighted_loss(outputs[mask], y.data[mask], weights[mask])
        else:
            loss_fn = softmax_cross_entropy if self.task == "classification" else mse
            if mask is None:
                return loss_fn(outputs, y.data)
            loss, dreal = loss_fn(outputs[mask], y.data[mask])
        doutputs = np.zeros_like(outputs)
        doutputs[mask] = dreal
        return loss, doutputs

    def _weighted_loss(self, outputs, targets, weights):
        """Σ w_i · loss_i / Σ w_i over the targets i, and its gradient: outputs (M, C) logits with
        labels (M,), or (M, k) values with targets (M, k) (loss_i the mean of its k squared errors, so
        that weights of one give the unweighted loss); weights (M,).  All weights zero: loss 0."""
        total = float(np.sum(weights, dtype=np.float64))
        scale = np.asarray(weights, np.float64) / total if total > 0 else np.zeros(len(targets))
        if self.task == "classification":
            log_probs = log_softmax(outputs)
            rows = np.arange(len(targets))
            loss = -float(np.dot(log_probs[rows, targets].astype(np.float64), scale))
            doutputs = np.exp(log_probs)
            doutputs[rows, targets] -= 1
        else:
            k = outputs.shape[-1]
            error = outputs - targets
            loss = float(np.dot(np.square(error, dtype=np.float64).sum(axis=-1), scale)) / k
            doutputs = (2.0 / k) * error
        doutputs *= scale[:, None].astype(outputs.dtype)
        return loss, doutputs

    def _batch_loss(self, x, y, train: bool, weights=None) -> float:
        outputs = self._forward(x, y)
        loss, doutputs = self._loss(outputs, y) if weights is None else self._loss(outputs, y, weights)
        if train:
            self._backward(doutputs)
        return loss

    def _chunks(self, x: Sequences) -> list:
        """The samples of a data set in chunks for inference: PREDICT_CHUNK at a time in order, or for
        sequences of their own lengths, sorted by length and cut so that no chunk pads more than
        PREDICT_CHUNK · PREDICT_STEPS steps (one long sequence does not pad a whole chunk to itself)."""
        n = len(x)
        if not x.timed or x.lengths is None:
            return [np.arange(start, min(start + PREDICT_CHUNK, n)) for start in range(0, n, PREDICT_CHUNK)]
        order = np.argsort(x.lengths, kind="stable")
        sorted_lengths = x.lengths[order]
        chunks, start = [], 0
        while start < n:
            # ascending lengths: a chunk's longest is its last; rows · longest must fit the budget
            rows = np.arange(1, min(PREDICT_CHUNK, n - start) + 1)
            fits = rows * np.maximum(sorted_lengths[start:start + len(rows)], 1) <= PREDICT_CHUNK * PREDICT_STEPS
            take = max(1, int(np.argmin(fits)) if not fits.all() else len(rows))
            chunks.append(order[start:start + take])
            start += take
        return chunks

    def _loss_sum(self, x: Sequences, y: Sequences) -> tuple:
        """(Σ loss · real targets, real targets) over the data set, in inference mode."""
        total, count = 0.0, 0
        with self._inference():
            for idx in self._chunks(x):
                yb = y.take(idx)
                total += self._batch_loss(x.take(idx), yb, train=False) * yb.count()
                count += yb.count()
        return total, count

    def _mean_loss(self, x: Sequences, y: Sequences) -> float:
        total, count = self._loss_sum(x, y)
        return total / max(count, 1)

    # -- the public API -----------------------------------------------------------------------------

    def fit(self, X, Y=None, *, y=None, epochs=10, batch_size=32, lr=None, optimizer="adam", clip=5.0,
            validation_data=None, bucket=True, verbose=1, comm=None, schedule=None, callbacks=None,
            validation_split=0.0, shuffle=True, class_weight=None, sample_weight=None, checkpoint=None,
            checkpoint_every=None) -> "Model":
        """Train on X, Y (or y=, scikit-learn's keyword) with mini-batches (reshuffled each epoch from the model's seed).

        Returns the model itself (as scikit-learn's fit does); ``model.history_`` is the history,
        lists with one entry per epoch: "loss" (the mean training loss) and "time" (seconds of
        training, validation excluded), plus "val_loss" and "val_score" (accuracy or R², as
        ``score``) when ``validation_data=(X_val, Y_val)``, and "lr" (the learning rate each epoch
        used) with a ``schedule``.
        ``clip`` is the maximum global gradient norm (None: no clipping).  ``optimizer`` is "adam" or
        "sgd" (momentum 0.9) with learning rate ``lr`` (default 1e-3), or an optimizer object
        (``rnnkit.optim.Adam(lr=..., betas=..., weight_decay=...)``, ``SGD(lr=..., momentum=...,
        nesterov=..., weight_decay=...)``), which carries its own lr.  A second fit continues the
        optimizer's state (its moments and step count), as Keras does: the same object, or the same
        name as before (with the lr given now); ``model.optimizer_`` is the optimizer of the last fit.  ``bucket`` (on by default; it changes nothing for rectangular data):
        each batch takes sequences of similar length, so that little of it is padding — the order
        stays a seeded shuffle.  ``verbose``: 0 silent, 1 a progress bar per epoch (tqdm), 2 a line
        per epoch.  Calling fit again continues from the current weights.
        ``comm`` (an mpi4py communicator, every rank passing the same X and Y) trains data-parallel
        over its ranks, to the same losses: see ``rnnkit.distributed``.

        ``schedule``: the learning rate per epoch — ``rnnkit.optim.StepLR``, ``CosineLR``,
        ``ReduceLROnPlateau`` (relative to the optimizer's lr when fit begins), or any callable
        ``f(epoch) -> lr`` (0-based epochs of this fit), set before each epoch; the optimizer keeps
        the last epoch's lr afterwards (as Keras' and torch's do).  ``callbacks``: objects with any of
        Keras' hooks (see ``rnnkit.callbacks``); one may end fit with ``model.stop_training = True``.
        ``validation_split`` (Keras): the last fraction of the samples, taken before shuffling, is the
        validation data (not with ``validation_data``).  ``shuffle=False``: the batches in the data's
        order, every epoch (by length within pools of 50 batches when ``bucket`` sorts sequences).
        ``class_weight`` ({label: weight}, classification; labels left out weigh 1) and
        ``sample_weight`` ((N,) non-negative) weight each real target: a batch's loss is
        Σ w_i · loss_i / Σ w_i over its real targets (a weighted mean, not Keras' Σ w_i · loss_i / N),
        w_i = sample_weight[sample] · class_weight[label], and the epoch's "loss" averages the batches
        by their weights Σ w_i; the validation loss is not weighted.

        ``checkpoint`` (a path): after every epoch, and every ``checkpoint_every`` batches when given,
        write (atomically: a crash leaves the previous file) all that is needed to continue exactly —
        weights, optimizer state and lr, every random state, the epoch and batch reached with the
        epoch's batch order, the history, the schedule's state.  A fit given a path that holds such a
        file resumes from it and ends with the weights an uninterrupted fit reaches, bitwise; when that
        file is of a finished fit, fit only loads its state.  A file from another model or other data
        or options is refused (ValueError naming what differs).  The file stays when fit ends.  The
        callbacks' own state (EarlyStopping's patience count...) is in it for the callbacks that have
        ``state_dict``/``load_state_dict`` (rnnkit's own do).  With ``comm``, rank 0 writes the file and
        every rank resumes from it (rank 0 reads it and sends it to the others: only rank 0 needs it).
        """
        Y = _targets(Y, y)
        options = {"schedule": schedule, "callbacks": callbacks, "validation_split": validation_split,
                   "shuffle": shuffle, "class_weight": class_weight, "sample_weight": sample_weight,
                   "checkpoint": checkpoint, "checkpoint_every": checkpoint_every}
        if comm is not None:  # mpi4py is imported only here, only when a communicator is given
            from . import distributed
            return distributed.fit(self, X, Y, comm=comm, epochs=epochs, batch_size=batch_size, lr=lr,
                                   optimizer=optimizer, clip=clip, validation_data=validation_data, bucket=bucket,
                                   verbose=verbose, **options)
        return self._fit(X, Y, epochs, batch_size, lr, optimizer, clip, validation_data, bucket, verbose,
                         self._train, **options)

    def _fit(self, X, Y, epochs, batch_size, lr, optimizer, clip, validation_data, bucket, verbose, train,
             schedule=None, callbacks=None, validation_split=0.0, shuffle=True, class_weight=None,
             sample_weight=None, checkpoint=None, checkpoint_every=None) -> "Model":
        """fit's checks and set-up, then ``train(x, y, opt, history, epochs, batch_size, clip, validation,
        bucket, verbose, loop=...)``: ``self._train``, or rnnkit.distributed's loop."""
        epochs = check_int("epochs", epochs)
        batch_size = check_int("batch_size", batch_size)
        if clip is not None and (isinstance(clip, bool) or not isinstance(clip, numbers.Real) or not clip > 0):
            raise ValueError(f"clip must be None or a number > 0, got {clip!r}")
        bucket = check_bool("bucket", bucket)
        shuffle = check_bool("shuffle", shuffle)
        if isinstance(verbose, bool):
            verbose = int(verbose)
        if verbose not in (0, 1, 2):
            raise ValueError(f"verbose must be 0, 1 or 2, got {verbose!r}")
        if schedule is not None and not isinstance(schedule, Schedule) and not callable(schedule):
            raise TypeError(f"schedule must be an rnnkit.optim schedule (StepLR, CosineLR, ReduceLROnPlateau) or a "
                            f"callable f(epoch) -> lr, got {type(schedule).__name__}")
        callbacks = _check_callbacks(callbacks)
        split = _check_split(validation_split, validation_data)
        if checkpoint is not None:
            if not isinstance(checkpoint, (str, os.PathLike)):
                raise TypeError(f"checkpoint must be a path (str or os.PathLike), got {type(checkpoint).__name__}")
        if checkpoint_every is not None:
            if checkpoint is None:
                raise ValueError("checkpoint_every needs checkpoint=PATH")
            checkpoint_every = check_int("checkpoint_every", checkpoint_every)
        if not self.layers:
            self._infer_sizes(X, Y)
        x = self._check_x(X)
        if len(x) == 0:
            raise ValueError(f"X has shape {v.fmt_shape(_shape_of(X))}: fit needs at least one sample (0 sample(s) "
                             f"while a minimum of 1 is required)")
        self._learn_classes(Y)
        y = self._check_y(Y, x)
        sample_weight = self._check_sample_weight(sample_weight, len(x))
        table = self._class_weight_table(class_weight)
        weights = None if sample_weight is None and table is None else _Weights(y, sample_weight, table)
        validation = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise TypeError("validation_data must be a pair (X_val, Y_val)")
            xv = self._check_x(validation_data[0], "X_val")
            validation = (xv, self._check_y(validation_data[1], xv, "Y_val"))
        elif split:
            keep = int(np.floor(len(x) * (1 - split)))  # Keras' cut
            if keep == 0 or keep == len(x):
                raise ValueError(f"validation_split={validation_split!r} of {len(x)} samples leaves "
                                 f"{'no training' if keep == 0 else 'no validation'} samples")
            validation = (x.subset(slice(keep, None)), y.subset(slice(keep, None)))
            x, y = x.subset(slice(0, keep)), y.subset(slice(0, keep))
            weights = None if weights is None else weights.subset(slice(0, keep))
        opt = fit_optimizer(getattr(self, "optimizer_", None), optimizer, self.params, lr)
        self.optimizer_ = opt
        loop = _Loop(shuffle, weights, schedule, callbacks)
        for item in [schedule, *callbacks]:  # a monitored quantity fit will not report: said now, not after an epoch
            monitor = item.watches if hasattr(item, "watches") else getattr(item, "monitor", None)
            reported = ("loss", "lr") + (("val_loss", "val_score") if validation is not None else ())
            if isinstance(monitor, str) and monitor not in reported:
                raise ValueError(f"{type(item).__name__} monitors {monitor!r}, which this fit does not report; it "
                                 f"reports {list(reported)} (val_loss and val_score need validation_data or "
                                 f"validation_split)")

        if self.generates:
            self.steps = int(y.steps)
        history: dict[str, list] = {"loss": [], "time": []}
        if validation is not None:
            history.update(val_loss=[], val_score=[])
        if schedule is not None:
            history["lr"] = []
        self.history_ = history  # (filled epoch by epoch: an interrupted fit leaves what it did)
        with _one_blas_thread(self.backend), self._fitting():
            if checkpoint is None:
                train(x, y, opt, history, epochs, batch_size, clip, validation, bucket, verbose, loop=loop)
            else:
                fingerprint = self._fingerprint(x, y, opt, epochs, batch_size, clip, validation, bucket, loop)
                comm = None if train == self._train else train.__self__.comm  # (rnnkit.distributed's _Trainer)
                train(x, y, opt, history, epochs, batch_size, clip, validation, bucket, verbose, loop=loop,
                      checkpoint=_Checkpoint(checkpoint, checkpoint_every, self, fingerprint, comm))
        return self

    def _fingerprint(self, x, y, opt, epochs, batch_size, clip, validation, bucket, loop) -> dict:
        """What a checkpoint must have been written with to be resumed by this fit."""
        crc = 0
        if loop.weights is not None:
            for array in (loop.weights.totals, loop.weights.table):
                if array is not None:
                    crc = zlib.crc32(memoryview(np.ascontiguousarray(array)).cast("B"), crc)
        state = opt.state_dict()
        state.pop("arrays")
        state.pop("steps", None)
        schedule = loop.schedule
        return {
            "model": f"{type(self).__name__}({self._init_args()})",
            "X": x.describe("X"), "Y": y.describe("Y"),
            "validation data": "none" if validation is None else
            f"{validation[0].describe('X_val')} and {validation[1].describe('Y_val')}",
            "epochs": epochs, "batch_size": batch_size, "clip": clip, "bucket": bucket, "shuffle": loop.shuffle,
            "optimizer": repr(sorted(state.items())),
            "weights": "none" if loop.weights is None else f"CRC-32 {crc:#010x}",
            "schedule": repr(schedule) if schedule is None or isinstance(schedule, Schedule) else
            f"{type(schedule).__qualname__} {getattr(schedule, '__qualname__', '')}",
        }

    def _check_sample_weight(self, sample_weight, n: int):
        """sample_weight as (n,) float64 of finite numbers >= 0, or None."""
        if sample_weight is None:
            return None
        weights = to_numpy(sample_weight)
        try:
            weights = np.asarray(weights, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"sample_weight must be an array of numbers, one per sample: {exc}") from None
        if weights.shape != (n,):
            raise ValueError(f"sample_weight has shape {v.fmt_shape(weights.shape)}; it needs one weight per sample "
                             f"of X: shape ({n},)")
        bad = np.flatnonzero(~np.isfinite(weights) | (weights < 0))
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"sample_weight[{i}] = {weights[i]:g}; sample weights must be finite and >= 0")
        if not weights.any():
            raise ValueError("sample_weight: the sample weights are all zero; there is nothing to train on")
        return weights

    def _class_weight_table(self, class_weight):
        """class_weight {label: weight} as a (output_size,) float64 table (1 for labels left out), or None."""
        if class_weight is None:
            return None
        if self.task != "classification":
            raise ValueError(f"class_weight is for task='classification'; this {type(self).__name__} has task="
                             f"{self.task!r} (use sample_weight)")
        if not hasattr(class_weight, "items"):
            raise TypeError(f"class_weight must be a dict {{label: weight}}, got {type(class_weight).__name__}")
        index = {label: i for i, label in enumerate(self.classes_.tolist())}
        unknown = [label for label in class_weight if (label.item() if hasattr(label, "item") else label) not in index]
        if unknown:
            raise ValueError(f"class_weight has labels that are not classes of this model: {unknown!r}; its classes "
                             f"are {list(index)[:20]}{' …' if len(index) > 20 else ''}")
        table = np.ones(self.output_size)
        for label, weight in class_weight.items():
            if isinstance(weight, bool) or not isinstance(weight, numbers.Real) or not (np.isfinite(weight)
                                                                                       and weight >= 0):
                raise ValueError(f"class_weight[{label!r}] = {weight!r}; class weights must be finite numbers >= 0")
            table[index[label.item() if hasattr(label, "item") else label]] = float(weight)
        return table

    def _bucket_lengths(self, x: Sequences, y: Sequences):
        """The lengths fit buckets by: the inputs', or the targets' when the inputs have no time axis."""
        return x.lengths if x.timed else y.lengths

    def _train(self, x, y, opt, history, epochs, batch_size, clip, validation, bucket, verbose, steps=None,
               loop=None, checkpoint=None):
        """The training loop: epochs of batches in a fresh order from the model's generator, the
        progress bar, the history, and ``loop``'s schedule and callbacks.  ``steps`` does each batch's
        work, the validation and the end of an epoch: ``_LocalSteps`` (this process) unless
        rnnkit.distributed passes its own.  ``checkpoint`` (a _Checkpoint): resume from its file when
        there is one, and write it after every epoch (and every ``checkpoint.every`` batches)."""
        loop = loop or _Loop()
        steps = steps or _LocalSteps(self, x, y, opt, clip, loop.weights)
        n = len(x)
        lengths = self._bucket_lengths(x, y)
        order = self._rng if loop.shuffle else _IN_ORDER
        weighted = loop.weights is not None
        self.stop_training = False
        found = checkpoint.read() if checkpoint is not None else None
        if found is not None and found[0]["position"]["finished"]:
            checkpoint.restore(*found, opt, loop, history)  # a finished run: its state, nothing more
            return
        loop.train_begin(self, opt)
        start = {"epoch": 0, "batch": 0, "total": 0.0, "seen": 0, "elapsed": 0.0}
        if found is not None:
            start = checkpoint.restore(*found, opt, loop, history)
        logs = {}
        for epoch in range(start["epoch"], epochs):
            loop.epoch_begin(epoch, opt)
            started = time.perf_counter()
            resumed = epoch == start["epoch"] and start["batch"] > 0
            if resumed:  # the epoch's batches as they were drawn; the generator's state is after the draw
                batches, first = start["batches"], start["batch"]
                total, seen, started = start["total"], start["seen"], started - start["elapsed"]
            else:
                batches, first = batch_order(order, n, batch_size, lengths, bucket), 0
                total, seen = 0.0, 0
            bar = _progress(len(batches), f"epoch {epoch + 1}/{epochs}", verbose)
            if bar is not None and first:
                bar.update(first)
            for b in range(first, len(batches)):
                idx = batches[b]
                count = float(loop.weights.totals[idx].sum()) if weighted else y.count(idx)
                loss = steps.batch(idx, epoch, b, len(batches))
                total += loss * count
                seen += count
                if bar is not None:
                    bar.update()
                    if b % 8 == 0 or b == len(batches) - 1:
                        bar.set_postfix(loss=f"{total / max(seen, 1):.4f}", refresh=False)
                if loop.batch_callbacks:
                    loop.batch_end(b, loss, opt)
                    if steps.stopping(self.stop_training):
                        self.stop_training = True
                        break
                if checkpoint is not None and checkpoint.every and (b + 1) % checkpoint.every == 0 \
                        and b + 1 < len(batches):
                    checkpoint.write(opt, loop, history, {
                        "epoch": epoch, "batch": b + 1, "total": total, "seen": seen,
                        "elapsed": time.perf_counter() - started, "finished": False}, batches)
            history["loss"].append(total / max(seen, 1) if not weighted else total / seen if seen > 0 else 0.0)
            history["time"].append(time.perf_counter() - started)
            if loop.schedule is not None:
                history["lr"].append(opt.lr)
            self.fitted = True
            summary = f"loss={history['loss'][-1]:.4f}"
            logs = {"loss": history["loss"][-1]}
            if validation is not None:
                val_loss, val_score = steps.validate(*validation)
                history["val_loss"].append(val_loss)
                history["val_score"].append(val_score)
                logs.update(val_loss=val_loss, val_score=val_score)
                summary += f" val_loss={val_loss:.4f} val_score={val_score:.4f}"
            summary += steps.end_epoch(epoch, history)
            if loop.schedule is not None:
                summary += f" lr={opt.lr:.3g}"
            if bar is not None:
                bar.set_postfix_str(summary)
                bar.close()
            elif verbose:
                print(f"epoch {epoch + 1}/{epochs} {history['time'][-1]:.2f}s {summary}", file=sys.stderr)
            logs["lr"] = opt.lr
            loop.epoch_end(epoch, logs)
            stop = bool(loop.callbacks) and steps.stopping(self.stop_training)
            if checkpoint is not None:
                checkpoint.write(opt, loop, history, {
                    "epoch": epoch + 1, "batch": 0, "total": 0.0, "seen": 0, "elapsed": 0.0,
                    "finished": stop or epoch + 1 == epochs})
            if stop:
                self.stop_training = True
                break
        loop.train_end(logs)

    @contextlib.contextmanager
    def _inference(self):
        """Predictions on this thread: the layers run in inference mode (nothing saved, nothing kept on
        the model, weights kept packed), so that many threads may predict with one model at once.  A
        fit running in another thread is refused: its weights change under the prediction."""
        me = threading.get_ident()
        with _BUSY:
            fitting = getattr(self, "_fitting_thread", None)
            if fitting is not None and fitting != me:
                raise RuntimeError(f"this {type(self).__name__} is being trained by fit in another thread; predict or "
                                   f"score after fit returns (or on a copy: Model.load of a saved model)")
            self._predicting = getattr(self, "_predicting", 0) + 1
        _INFERENCE.depth = getattr(_INFERENCE, "depth", 0) + 1
        try:
            yield
        finally:
            _INFERENCE.depth -= 1
            with _BUSY:
                self._predicting -= 1

    @contextlib.contextmanager
    def _fitting(self):
        """fit on this thread; refused while another thread predicts with the model or fits it."""
        me = threading.get_ident()
        with _BUSY:
            if getattr(self, "_fitting_thread", None) is not None:
                raise RuntimeError(f"this {type(self).__name__} is already being trained by fit in another thread")
            if getattr(self, "_predicting", 0):
                raise RuntimeError(f"this {type(self).__name__} is predicting in another thread; fit after its "
                                   f"predict/score calls return")
            self._fitting_thread = me
        try:
            yield
        finally:
            with _BUSY:
                self._fitting_thread = None

    @staticmethod
    def _training() -> bool:
        """Whether the layers save what a backward needs: not inside predictions on this thread."""
        return getattr(_INFERENCE, "depth", 0) == 0

    def stream(self, batch_size=1):
        """Step-by-step inference (ManyToOne, ManyToMany, OneToMany and Seq2Seq; see rnnkit.streams)."""
        raise TypeError(f"{type(self).__name__} has no stream: it maps one input to one output, with no sequence to "
                        f"step through; streams are for ManyToOne, ManyToMany, OneToMany and Seq2Seq")

    # -- predictions --------------------------------------------------------------------------------

    def _predict_batch(self, x, steps):
        """Predictions for one batch, time-major like the targets: labels (int64) or values; a
        decoder's steps after its end token hold -1."""
        out = self._forward(x, None)
        if self.task == "classification":
            return out.argmax(axis=-1)
        return out

    def _predict_chunks(self, x: Sequences, steps):
        """(indices, predictions of _predict_batch) for each chunk of PREDICT_CHUNK samples."""
        with _one_blas_thread(self.backend), self._inference():
            for idx in self._chunks(x):
                yield idx, self._predict_batch(x.take(idx), steps)

    def _predictions(self, x: Sequences, steps):
        """What predict returns: an array (N[, T][, O]), or for per-step outputs of sequences given as
        a list, a list of (T_i[, O]) arrays."""
        one_value = self.task == "regression" and self.output_size == 1
        as_list = self.sequence_targets and x.ragged and not self.generates
        rows, out = [None] * len(x), None
        for idx, pred in self._predict_chunks(x, steps):
            if self.sequence_targets:
                pred = np.swapaxes(pred, 0, 1)  # batch-first
            pred = pred[..., 0] if one_value else pred
            if as_list:  # rows padded to their chunk's longest
                for i, row in zip(idx, pred):
                    rows[i] = np.ascontiguousarray(row[:x.step_lengths()[i]])
                continue
            if out is None:
                out = np.empty((len(x), *pred.shape[1:]), pred.dtype)
            out[idx] = pred
        if as_list:
            return rows
        if out is None:  # no samples
            shape = (0,) if not self.sequence_targets else (0, steps or 0)
            tail = () if self.task == "classification" or one_value else (self.output_size,)
            return np.zeros(shape + tail, np.int64 if self.task == "classification" else self.dtype)
        return out

    def predict(self, X):
        """Labels (classification) or values (regression) for X; see the class docstring for shapes."""
        self._check_fitted("predict")
        out = self._predictions(self._check_x(X), self.steps)
        return self._decode_labels(out) if self.task == "classification" and not self.sequence_targets else out

    def _real_targets(self, y: Sequences) -> np.ndarray:
        """The real targets: as given for rectangular data ((N, T·k) float64 rows for regression, to
        pool R² per output and step), every real step of every sample with lengths."""
        values = y.values if y.values is not None else y.real()
        if self.task == "regression":
            return values.reshape(values.shape[0], -1).astype(np.float64)
        return values

    def _score_parts(self, x: Sequences, y: Sequences, predictions=None) -> tuple:
        """Over the real targets of the data set: (right labels, labels) for classification, or
        (Σ squared residuals, the targets as (rows, k) float64) for regression.  ``predictions``:
        the (indices, predictions) of every chunk when already made (default: predict's)."""
        right = 0
        if predictions is None:
            predictions = self._predict_chunks(x, y.steps if self.generates else self.steps)
        for idx, pred in predictions:
            truth = y.take(idx)
            if self.sequence_targets:
                steps = truth.data.shape[0]
                if pred.shape[0] < steps:  # (a decoder asked for fewer steps than the targets have)
                    fill = np.full((steps - pred.shape[0], *pred.shape[1:]), -1, pred.dtype)
                    pred = np.concatenate([pred, fill])
                pred = pred[:steps]
                mask = truth.mask()
                if mask is not None:
                    pred, truth = pred[mask], truth.data[mask]
                else:
                    truth = truth.data
            else:
                truth = truth.data
            if self.task == "classification":
                right += int(np.count_nonzero(pred == truth))
            else:
                right += float(np.square(truth.astype(np.float64) - pred.reshape(truth.shape)).sum())
        if self.task == "classification":
            return right, y.count()
        return right, self._real_targets(y)

    def _loss_and_score_parts(self, x: Sequences, y: Sequences) -> tuple:
        """(Σ loss · real targets, real targets, *_score_parts) of a data set (fit's validation).  A
        model whose predictions are its outputs' argmax or values gets both from one forward per
        chunk; a decoder's loss (teacher-forced) and score (from its own generation) need two."""
        if self.generates or type(self)._predict_batch is not Model._predict_batch:
            return (*self._loss_sum(x, y), *self._score_parts(x, y))
        sums = [0.0, 0]

        def predictions():
            with self._inference():
                for idx in self._chunks(x):
                    yb = y.take(idx)
                    outputs = self._forward(x.take(idx), yb)
                    sums[0] += self._loss(outputs, yb)[0] * yb.count()  # as _loss_sum
                    sums[1] += yb.count()
                    yield idx, outputs.argmax(axis=-1) if self.task == "classification" else outputs

        right, truth = self._score_parts(x, y, predictions())
        return sums[0], sums[1], right, truth

    def _score_of(self, right, total) -> float:
        """The score from _score_parts' two numbers."""
        if self.task == "classification":
            return right / total if total else float("nan")
        return r2_from_residual(right, total)

    def _score_checked(self, x: Sequences, y: Sequences) -> float:
        return self._score_of(*self._score_parts(x, y))

    def score(self, X, Y=None, *, y=None) -> float:
        """Accuracy (classification: the fraction of labels predicted right, over every real step) or R².
        (The targets may also be given as ``y=``, scikit-learn's name.)"""
        Y = _targets(Y, y)
        self._check_fitted("score")
        x = self._check_x(X)
        return self._score_checked(x, self._check_y(Y, x))

    def to_onnx(self, path, **options) -> None:
        """Write the model (embedding, recurrent nodes, head; the decoders' greedy generation as a
        Loop) as an ONNX graph that ONNX Runtime runs to predict's results; see ``rnnkit._onnx``."""
        self._check_built("to_onnx")
        from ._onnx import export_model
        return export_model(self, path, **options)

    def save(self, path) -> None:
        """Write the model to ``path`` (used as given) as one .npz: the weights plus a JSON config.
        Atomic: written to a temporary file beside it, flushed to disk, then renamed over ``path``, so
        that a crash at any moment leaves either the previous file or the new one, never half of one."""
        config = {"format": FILE_FORMAT, "class": type(self).__name__, "init": self._init_args(),
                  "fitted": self.fitted, "steps": self.steps, "rnnkit_version": __version__,
                  "classes": None if self._classes is None else self._classes.tolist()}
        arrays = {f"param:{name}": array for name, array in self.params.items()}
        atomic_write(path, lambda file: np.savez(file, config=np.array(json.dumps(config)), **arrays))

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
                fitted, steps, classes = bool(config["fitted"]), config["steps"], config.get("classes")
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
        model._classes = None if classes is None else np.array(classes)
        return model
