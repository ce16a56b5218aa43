"""Optimizers and gradient clipping, with torch.optim's update rules.

An optimizer holds a dict of parameters (name -> array, the live arrays a layer or model exposes as
``params``) and updates them in place from a dict of gradients with the same names:

    opt = Adam(model_params, lr=1e-3)
    clip_grad_norm(grads, 5.0)
    opt.step(grads)
"""

from __future__ import annotations

import numbers

import numpy as np

from ._cells import weights_changed

__all__ = ["SGD", "Adam", "clip_grad_norm", "fit_optimizer", "make_optimizer"]


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
            self._update(name, param, grad)
        weights_changed()  # the layers' packed inference weights are stale now

    def _state(self, store: dict, name: str, param, make):
        """Per-parameter state, made afresh for a new name or a parameter of another shape."""
        state = store.get(name)
        if state is None or state[0].shape != param.shape:
            state = store[name] = make()
        return state

    def _update(self, name, param, grad):
        raise NotImplementedError

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


def grad_norm(grads: dict) -> float:
    """The global L2 norm of all gradients (accumulated in float64)."""
    return float(np.sqrt(sum(float(np.square(g, dtype=np.float64).sum()) for g in grads.values())))


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
