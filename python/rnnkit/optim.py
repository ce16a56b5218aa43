"""Optimizers, gradient clipping and learning-rate schedules, with torch.optim's update rules.

An optimizer holds a dict of parameters (name -> array, the live arrays a layer or model exposes as
``params``) and updates them in place from a dict of gradients with the same names:

    opt = Adam(model_params, lr=1e-3)
    clip_grad_norm(grads, 5.0)
    opt.step(grads)

``step`` updates every parameter in one call to the compiled core (cpp/src/optim.hpp), which performs
the NumPy formula of each ``_update`` below operation by operation, so its results are bitwise the
NumPy formula's (tests/test_optim_core.py checks that).  Parameters the core cannot take (a
non-contiguous view, a gradient of another dtype) are updated by the NumPy formula itself.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from . import _core
from ._cells import weights_changed

__all__ = ["SGD", "Adam", "CosineLR", "ReduceLROnPlateau", "Schedule", "StepLR", "clip_grad_norm", "fit_optimizer",
           "make_optimizer"]


def _positive(name, value, *, allow_zero=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not np.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'} and finite, got {value}")
    return float(value)


class _Optimizer:
    """The shared part: ``params`` (name -> live array) may be given later with ``bind`` — ``fit``
    binds an optimizer object to its model's parameters — and the per-parameter state is kept by
    name, so that a second ``fit`` with the same optimizer continues where the first stopped."""

    def __init__(self, params: dict | None, lr: float, weight_decay: float = 0.0):
        self.params = None
        if params is not None:
            self.bind(params)
        self.lr = _positive("lr", lr)
        self.weight_decay = _positive("weight_decay", weight_decay, allow_zero=True)

    def bind(self, params: dict) -> "_Optimizer":
        """Update ``params`` (the live arrays); state kept for a name whose shape changed is dropped."""
        if not hasattr(params, "items"):
            raise TypeError(f"params must be a dict of names to arrays, got {type(params).__name__}")
        self.params = params
        return self

    def step(self, grads: dict) -> None:
        if self.params is None:
            raise RuntimeError(f"this {type(self).__name__} has no parameters: give them to the constructor or "
                               "bind(params), or pass it to a model's fit")
        missing = [name for name in self.params if name not in grads]
        if missing:
            raise ValueError(f"grads has no gradient for {missing}")
        for name, param in self.params.items():
            grad = grads[name]
            if grad.shape != param.shape:
                raise ValueError(f"grads[{name!r}] has shape {grad.shape}; expected {param.shape}")
        names = list(self.params)
        if not (CORE_UPDATES and self._core_step(names, [self.params[n] for n in names], [grads[n] for n in names])):
            for name in names:
                self._update(name, self.params[name], grads[name])
        weights_changed()  # the layers' packed inference weights are stale now

    def _core_step(self, names: list, params: list, grads: list) -> bool:
        """Update every parameter in one call to the core; False (nothing changed) when some array
        is not one the core takes."""
        return False

    def _state(self, store: dict, name: str, param, make):
        """Per-parameter state, made afresh for a new name or a parameter of another shape."""
        state = store.get(name)
        if state is None or state[0].shape != param.shape:
            state = store[name] = make()
        return state

    def _update(self, name, param, grad):
        raise NotImplementedError

    # -- state for fit(..., checkpoint=...) --------------------------------------------------------

    def _hyperparameters(self) -> dict:
        return {"weight_decay": self.weight_decay}

    def state_dict(self) -> dict:
        """Everything a resumed fit needs to continue this optimizer bitwise: ``"type"``, ``"lr"``,
        the hyperparameters and counters (JSON-able numbers), and ``"arrays"``: name -> array of the
        per-parameter state (copies)."""
        return {"type": type(self).__name__, "lr": self.lr, **self._hyperparameters(), **self._counters(),
                "arrays": {name: array.copy() for name, array in self._arrays().items()}}

    def load_state_dict(self, state: dict) -> None:
        """Restore what ``state_dict`` returned (the type and hyperparameters must match: ValueError
        naming the first that differs)."""
        if state.get("type") != type(self).__name__:
            raise ValueError(f"the optimizer state is a {state.get('type')}'s, not a {type(self).__name__}'s")
        for key, value in self._hyperparameters().items():
            theirs = state.get(key)
            if (list(theirs) if isinstance(theirs, (tuple, list)) else theirs) != \
                    (list(value) if isinstance(value, (tuple, list)) else value):
                raise ValueError(f"the optimizer state has {key}={theirs!r}; this {type(self).__name__} has "
                                 f"{key}={value!r}")
        self.lr = float(state["lr"])
        self._load(state, {name: np.array(array, copy=True) for name, array in state.get("arrays", {}).items()})

    def _counters(self) -> dict:
        return {}

    def _arrays(self) -> dict:
        return {}

    def _load(self, state: dict, arrays: dict) -> None:
        pass

    def __repr__(self):
        skip = {"params"}
        return f"{type(self).__name__}(" + ", ".join(
            f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_") and k not in skip) + ")"


class SGD(_Optimizer):
    """SGD, torch.optim.SGD's rule: g += weight_decay·p (L2); with momentum, buf = momentum·buf + g
    (buf = g at first) and g = buf, or g + momentum·buf with ``nesterov``; p -= lr·g."""

    def __init__(self, params: dict | None = None, lr: float = 0.01, momentum: float = 0.0, *,
                 nesterov: bool = False, weight_decay: float = 0.0):
        super().__init__(params, lr, weight_decay)
        self.momentum = _positive("momentum", momentum, allow_zero=True)
        if not isinstance(nesterov, (bool, np.bool_)):
            raise TypeError(f"nesterov must be True or False, got {nesterov!r}")
        if nesterov and not self.momentum:
            raise ValueError("nesterov=True needs a momentum > 0 (torch.optim.SGD's rule)")
        self.nesterov = bool(nesterov)
        self._buffers: dict[str, np.ndarray] = {}

    def _update(self, name, param, grad):
        if self.weight_decay:
            grad = grad + param.dtype.type(self.weight_decay) * param
        if self.momentum:
            buf = self._buffers.get(name)
            if buf is None or buf.shape != param.shape:
                buf = self._buffers[name] = grad.astype(param.dtype, copy=True)
            else:
                buf *= self.momentum
                buf += grad
            grad = grad + self.momentum * buf if self.nesterov else buf
        param -= self.lr * grad

    def _core_step(self, names, params, grads):
        first, buffers = [], []
        if self.momentum:
            for name, param in zip(names, params):
                buf = self._buffers.get(name)
                fresh = buf is None or buf.shape != param.shape
                first.append(fresh)
                buffers.append(np.empty_like(param, order="C") if fresh else buf)
        try:
            _core.sgd_step(params, grads, buffers, first, self.lr, self.momentum, self.nesterov, self.weight_decay)
        except (TypeError, ValueError):  # an array the core does not take: it changed nothing
            return False
        for name, buf, fresh in zip(names, buffers, first):
            if fresh:
                self._buffers[name] = buf
        return True

    def _hyperparameters(self):
        return {"momentum": self.momentum, "nesterov": self.nesterov, "weight_decay": self.weight_decay}

    def _arrays(self):
        return {f"buf:{name}": buf for name, buf in self._buffers.items()}

    def _load(self, state, arrays):
        self._buffers = {name[len("buf:"):]: array for name, array in arrays.items() if name.startswith("buf:")}


class Adam(_Optimizer):
    """Adam (Kingma & Ba), torch.optim.Adam's rule with bias correction; ``weight_decay`` > 0 makes
    it AdamW (Loshchilov & Hutter, torch.optim.AdamW's rule): p *= 1 - lr·weight_decay before the
    step, decoupled from the gradient's moments."""

    def __init__(self, params: dict | None = None, lr: float = 1e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8,
                 *, weight_decay: float = 0.0):
        super().__init__(params, lr, weight_decay)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2 or not all(
                isinstance(b, numbers.Real) and 0 <= b < 1 for b in betas):
            raise ValueError(f"betas must be a pair of numbers in [0, 1), got {betas!r}")
        self.betas = (float(betas[0]), float(betas[1]))
        self.eps = _positive("eps", eps)
        self.steps = 0
        self._moments: dict[str, tuple] = {}

    def step(self, grads: dict) -> None:
        self.steps += 1
        super().step(grads)

    def _update(self, name, param, grad):
        beta1, beta2 = self.betas
        mean, square = self._state(self._moments, name, param, lambda: (np.zeros_like(param), np.zeros_like(param)))
        if self.weight_decay:
            param *= param.dtype.type(1 - self.lr * self.weight_decay)
        mean *= beta1
        mean += (1 - beta1) * grad
        square *= beta2
        square += (1 - beta2) * np.square(grad)
        correction1 = 1 - beta1 ** self.steps
        correction2 = 1 - beta2 ** self.steps
        denominator = np.sqrt(square) / np.sqrt(correction2) + self.eps
        param -= (self.lr / correction1) * mean / denominator

    def _core_step(self, names, params, grads):
        means, squares = [], []
        for name, param in zip(names, params):
            state = self._moments.get(name)
            if state is None or state[0].shape != param.shape:
                state = self._moments[name] = (np.zeros_like(param, order="C"), np.zeros_like(param, order="C"))
            means.append(state[0])
            squares.append(state[1])
        beta1, beta2 = self.betas
        try:  # the scalars exactly as _update computes them (in Python floats, i.e. double)
            _core.adam_step(params, grads, means, squares, 1 - self.lr * self.weight_decay if self.weight_decay else 1.0,
                            beta1, beta2, self.lr / (1 - beta1 ** self.steps), float(np.sqrt(1 - beta2 ** self.steps)),
                            self.eps)
        except (TypeError, ValueError):  # an array the core does not take: it changed nothing
            return False
        return True

    def _hyperparameters(self):
        return {"betas": list(self.betas), "eps": self.eps, "weight_decay": self.weight_decay}

    def _counters(self):
        return {"steps": self.steps}

    def _arrays(self):
        arrays = {}
        for name, (mean, square) in self._moments.items():
            arrays[f"mean:{name}"], arrays[f"square:{name}"] = mean, square
        return arrays

    def _load(self, state, arrays):
        self.steps = int(state["steps"])
        self._moments = {name[len("mean:"):]: (array, arrays[f"square:{name[len('mean:'):]}"])
                         for name, array in arrays.items() if name.startswith("mean:")}


# Tests switch this off to run the NumPy formulas the core reproduces.
CORE_UPDATES = True


def grad_norm(grads: dict) -> float:
    """The global L2 norm of all gradients (accumulated in float64; in the core, in a fixed order
    that does not depend on the SIMD path or the thread count)."""
    arrays = list(grads.values())
    if CORE_UPDATES:
        try:
            return math.sqrt(_core.sum_squares(arrays))
        except (TypeError, ValueError):  # not float32/float64 C-contiguous arrays: NumPy's sum
            pass
    return float(np.sqrt(sum(float(np.square(g, dtype=np.float64).sum()) for g in arrays)))


def clip_grad_norm(grads: dict, max_norm: float) -> float:
    """Scale every gradient in place so that their global L2 norm is at most ``max_norm``.

    Returns the norm before clipping (torch.nn.utils.clip_grad_norm_'s rule: the scale is
    max_norm / (norm + 1e-6), applied only when that is below 1).
    """
    max_norm = _positive("max_norm", max_norm)
    total = grad_norm(grads)
    scale = max_norm / (total + 1e-6)
    if scale < 1:
        for grad in grads.values():
            grad *= grad.dtype.type(scale)
    return total


OPTIMIZERS = {"adam": Adam, "sgd": SGD}


def make_optimizer(name, params: dict, lr: float):
    """"adam" or "sgd" (with momentum 0.9, the usual choice for RNNs) over ``params``."""
    if not isinstance(name, str) or name.lower() not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(map(repr, OPTIMIZERS))} or an optimizer object "
                         f"(rnnkit.optim.Adam(...), SGD(...)), got {name!r}")
    if name.lower() == "sgd":
        return SGD(params, lr, momentum=0.9)
    return Adam(params, lr)


def fit_optimizer(previous, optimizer, params: dict, lr):
    """The optimizer of a fit: an optimizer object as given (bound to ``params``); a name makes one
    with ``lr`` (default 1e-3) — or, when the model's previous fit used one of that name, continues it
    (its moments and step count, as Keras' second fit does) with the new ``lr``."""
    if isinstance(optimizer, _Optimizer):
        if lr is not None:
            raise ValueError(f"lr={lr!r} was given beside an optimizer object; give the learning rate to the "
                             f"optimizer ({type(optimizer).__name__}(lr=...)) instead")
        return optimizer.bind(params)
    lr = 1e-3 if lr is None else lr
    if isinstance(optimizer, str) and isinstance(previous, OPTIMIZERS.get(optimizer.lower(), ())) \
            and getattr(previous, "_from_name", False):
        previous.lr = _positive("lr", lr)
        return previous.bind(params)
    opt = make_optimizer(optimizer, params, lr)
    opt._from_name = True
    return opt


# -- learning-rate schedules (fit(..., schedule=...)) ------------------------------------------------

class Schedule:
    """A learning-rate schedule for ``fit(..., schedule=...)``: ``lr(epoch, base_lr)`` is the lr of
    0-based ``epoch`` of a fit whose optimizer had ``base_lr`` when it began.  ``start(base_lr)`` is
    called when a fit begins and ``epoch_end(epoch, logs)`` after each epoch (``logs``: "loss", and
    "val_loss", "val_score" with validation data) — only ReduceLROnPlateau needs them."""

    def start(self, base_lr: float) -> None:
        pass

    def lr(self, epoch: int, base_lr: float) -> float:
        raise NotImplementedError

    def epoch_end(self, epoch: int, logs: dict) -> None:
        pass

    def state_dict(self) -> dict:
        """The schedule's running state (its attributes whose names begin with "_", JSON-able numbers),
        for fit(..., checkpoint=...); the stateless schedules have none."""
        return {k: (float(v) if isinstance(v, (float, np.floating)) else v)
                for k, v in vars(self).items() if k.startswith("_")}

    def load_state_dict(self, state: dict) -> None:
        for key, value in state.items():
            setattr(self, key, value)

    def __repr__(self):
        return f"{type(self).__name__}(" + ", ".join(
            f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_")) + ")"


def _count(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


class StepLR(Schedule):
    """torch.optim.lr_scheduler.StepLR: lr = base_lr · gamma ** (epoch // step_size)."""

    def __init__(self, step_size: int, gamma: float = 0.1):
        self.step_size = _count("step_size", step_size, 1)
        self.gamma = _positive("gamma", gamma, allow_zero=True)

    def lr(self, epoch, base_lr):
        return base_lr * self.gamma ** (epoch // self.step_size)


class CosineLR(Schedule):
    """Linear warmup, then cosine annealing to ``min_lr``:

        epoch < W:  lr = base_lr · (epoch + 1) / W                      (W = warmup_epochs)
        else:       lr = min_lr + (base_lr - min_lr) · (1 + cos(π · p)) / 2,  p = min(1, (epoch - W) / (E - W))

    with E = total_epochs: base_lr at epoch W, min_lr from epoch E on (torch's CosineAnnealingLR
    with T_max = E - W after the warmup)."""

    def __init__(self, total_epochs: int, warmup_epochs: int = 0, min_lr: float = 0.0):
        self.total_epochs = _count("total_epochs", total_epochs, 1)
        self.warmup_epochs = _count("warmup_epochs", warmup_epochs, 0)
        if self.warmup_epochs >= self.total_epochs:
            raise ValueError(f"warmup_epochs ({warmup_epochs}) must be less than total_epochs ({total_epochs})")
        self.min_lr = _positive("min_lr", min_lr, allow_zero=True)

    def lr(self, epoch, base_lr):
        warmup = self.warmup_epochs
        if epoch < warmup:
            return base_lr * (epoch + 1) / warmup
        progress = min(1.0, (epoch - warmup) / (self.total_epochs - warmup))
        return self.min_lr + (base_lr - self.min_lr) * (1 + np.cos(np.pi * progress)) / 2


def monitor_mode(monitor: str, mode: str) -> str:
    """"min" or "max" for a monitored quantity; "auto": "max" for scores and accuracies, else "min"."""
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        return "max" if monitor.endswith(("score", "acc", "accuracy")) else "min"
    return mode


class ReduceLROnPlateau(Schedule):
    """Keras' ReduceLROnPlateau: when ``monitor`` has not improved by more than ``min_delta`` for
    ``patience`` epochs, lr = max(lr · factor, min_lr) from the next epoch on (then ``cooldown``
    epochs before counting again).  The lr starts at the optimizer's at the start of each fit."""

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10, min_lr: float = 0.0, *,
                 mode: str = "auto", min_delta: float = 1e-4, cooldown: int = 0):
        if not isinstance(monitor, str):
            raise TypeError(f"monitor must be a str such as 'val_loss', got {type(monitor).__name__}")
        self.monitor = monitor
        self.factor = _positive("factor", factor)
        if self.factor >= 1:
            raise ValueError(f"factor must be < 1 (it reduces the lr), got {factor}")
        self.patience = _count("patience", patience, 0)
        self.min_lr = _positive("min_lr", min_lr, allow_zero=True)
        self.mode = monitor_mode(monitor, mode)
        self.min_delta = _positive("min_delta", min_delta, allow_zero=True)
        self.cooldown = _count("cooldown", cooldown, 0)
        self.start(None)

    def start(self, base_lr):
        self._lr = base_lr
        self._best = np.inf if self.mode == "min" else -np.inf
        self._wait = self._cooling = 0

    def lr(self, epoch, base_lr):
        return self._lr

    def epoch_end(self, epoch, logs):
        current = logs[self.monitor]
        better = current < self._best - self.min_delta if self.mode == "min" else current > self._best + self.min_delta
        if self._cooling > 0:
            self._cooling -= 1
            self._wait = 0
        if better:
            self._best, self._wait = current, 0
        elif self._cooling == 0:
            self._wait += 1
            if self._wait >= self.patience and self._lr > self.min_lr:
                self._lr = max(self._lr * self.factor, self.min_lr)
                self._cooling, self._wait = self.cooldown, 0
