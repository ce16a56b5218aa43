"""Callbacks for ``fit(..., callbacks=[...])``, with Keras' names and semantics.

fit calls, on each callback that has them (any object will do; ``Callback`` is a base with no-op
hooks), ``on_train_begin(logs)``, ``on_epoch_begin(epoch, logs)``, ``on_batch_end(batch, logs)``,
``on_epoch_end(epoch, logs)`` and ``on_train_end(logs)``; epochs and batches are 0-based, ``logs`` a
dict: "lr" at the start of an epoch; "loss" (the batch's) and "lr" after a batch; "loss", "lr", and
"val_loss", "val_score" with validation data at the end of an epoch (on_train_end gets the last
epoch's).  A callback with ``set_model`` is given the model first.  Setting ``model.stop_training =
True`` ends fit after the current batch (that epoch's history and on_epoch_end still come).  A
callback that raises ends fit with its exception: the weights are those of the last optimizer step,
and on_train_end is not called.

A callback with ``state_dict()`` / ``load_state_dict(state)`` has its state kept in fit's checkpoints
(``fit(checkpoint=PATH)``), so that a resumed fit continues its count: EarlyStopping's best value,
wait and best weights, ModelCheckpoint's best.  ``state_dict`` returns JSON-able numbers, and
NumPy arrays under the key ``"arrays"`` (a dict of name -> array).
"""

from __future__ import annotations

import numbers
import os

import numpy as np

from ._cells import weights_changed
from .optim import monitor_mode

__all__ = ["Callback", "EarlyStopping", "ModelCheckpoint"]


class Callback:
    """Keras' Callback: every hook does nothing; ``self.model`` is the model being fitted."""

    model = None

    def set_model(self, model) -> None:
        self.model = model

    def on_train_begin(self, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_batch_end(self, batch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass


def _monitored(callback, logs: dict) -> float:
    if callback.monitor not in logs:
        raise ValueError(f"{type(callback).__name__} monitors {callback.monitor!r}, which fit does not report; it "
                         f"reports {sorted(logs)} (val_loss and val_score need validation_data or validation_split)")
    return float(logs[callback.monitor])


class _Monitor(Callback):
    """The shared part: a monitored quantity, its direction, and whether a value improves on the best."""

    def __init__(self, monitor, mode, min_delta):
        if not isinstance(monitor, str):
            raise TypeError(f"monitor must be a str such as 'val_loss', got {type(monitor).__name__}")
        if isinstance(min_delta, bool) or not isinstance(min_delta, numbers.Real) or not min_delta >= 0:
            raise ValueError(f"min_delta must be a number >= 0, got {min_delta!r}")
        self.monitor, self.mode, self.min_delta = monitor, mode, float(min_delta)
        self._direction = monitor_mode(monitor, mode)

    @property
    def watches(self):
        """The quantity this callback reads from the epoch's logs (fit checks that it reports it)."""
        return self.monitor

    def _reset(self) -> None:
        self.best = np.inf if self._direction == "min" else -np.inf

    def state_dict(self) -> dict:
        """This callback's progress, for fit's checkpoints."""
        return {"best": float(self.best)}

    def load_state_dict(self, state: dict) -> None:
        self.best = float(state["best"])

    def _improves(self, value: float) -> bool:
        if self._direction == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta


class EarlyStopping(_Monitor):
    """Stop fit when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs
    (Keras 3's rule: ``wait`` counts the epochs since the best; fit stops at the end of an epoch > 0
    where wait >= patience, so patience=0 stops at the first epoch that does not improve).
    ``restore_best_weights``: when fit ends, the best epoch's parameters are copied back into the
    model's arrays in place.  ``stopped_epoch`` (0-based; 0 when it did not stop fit) and
    ``best_epoch`` say what happened."""

    def __init__(self, monitor="val_loss", patience=0, min_delta=0.0, mode="auto", restore_best_weights=False):
        super().__init__(monitor, mode, min_delta)
        if isinstance(patience, bool) or not isinstance(patience, numbers.Integral) or patience < 0:
            raise ValueError(f"patience must be an int >= 0, got {patience!r}")
        self.patience = int(patience)
        self.restore_best_weights = bool(restore_best_weights)
        self.on_train_begin()

    def on_train_begin(self, logs=None):
        self._reset()
        self.wait, self.stopped_epoch, self.best_epoch, self.best_weights = 0, 0, 0, None

    def on_epoch_end(self, epoch, logs=None):
        value = _monitored(self, logs)
        if self.restore_best_weights and self.best_weights is None:
            self._keep(epoch)
        self.wait += 1
        if self._improves(value):
            self.best, self.wait = value, 0
            if self.restore_best_weights:
                self._keep(epoch)
            self.best_epoch = epoch
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def state_dict(self) -> dict:
        state = {"best": float(self.best), "wait": self.wait, "stopped_epoch": self.stopped_epoch,
                 "best_epoch": self.best_epoch}
        if self.best_weights is not None:
            state["arrays"] = {name: array.copy() for name, array in self.best_weights.items()}
        return state

    def load_state_dict(self, state: dict) -> None:
        self.best, self.wait = float(state["best"]), int(state["wait"])
        self.stopped_epoch, self.best_epoch = int(state["stopped_epoch"]), int(state["best_epoch"])
        arrays = state.get("arrays")
        self.best_weights = None if not arrays else {name: np.array(a, copy=True) for name, a in arrays.items()}

    def _keep(self, epoch) -> None:
        self.best_weights = {name: array.copy() for name, array in self.model.params.items()}
        self.best_epoch = epoch

    def on_train_end(self, logs=None):
        if self.restore_best_weights and self.best_weights is not None:
            for name, array in self.model.params.items():
                array[...] = self.best_weights[name]
            weights_changed()  # the layers' packed inference weights are stale now


class ModelCheckpoint(_Monitor):
    """Save the model after every epoch with ``Model.save`` (atomic), or with ``save_best_only``
    only when ``monitor`` improved on its best.  ``path`` may hold ``{epoch}`` (1-based, as Keras
    writes it) and the logs' keys (``{val_loss:.4f}``)."""

    def __init__(self, path, monitor="val_loss", save_best_only=False, mode="auto"):
        super().__init__(monitor, mode, 0.0)
        self.path = os.fspath(path)
        self.save_best_only = bool(save_best_only)
        self._reset()

    @property
    def watches(self):
        return self.monitor if self.save_best_only else None

    def on_train_begin(self, logs=None):
        self._reset()

    def on_epoch_end(self, epoch, logs=None):
        if self.save_best_only:
            value = _monitored(self, logs)
            if not self._improves(value):
                return
            self.best = value
        self.model.save(self.path.format(epoch=epoch + 1, **logs))
