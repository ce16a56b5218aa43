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

__all__ = ["SGD", "Adam", "clip_grad_norm", "make_optimizer"]


def _positive(name, value, *, allow_zero=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not np.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'} and finite, got {value}")
    return float(value)


class _Optimizer:
    def __init__(self, params: dict, lr: float):
        if not hasattr(params, "items"):
            raise TypeError(f"params must be a dict of names to arrays, got {type(params).__name__}")
        self.params = params
        self.lr = _positive("lr", lr)

    def step(self, grads: dict) -> None:
        missing = [name for name in self.params if name not in grads]
        if missing:
            raise ValueError(f"grads has no gradient for {missing}")
        for name, param in self.params.items():
            grad = grads[name]
            if grad.shape != param.shape:
                raise ValueError(f"grads[{name!r}] has shape {grad.shape}; expected {param.shape}")
            self._update(name, param, grad)
        weights_changed()  # the layers' packed inference weights are stale now

    def _update(self, name, param, grad):
        raise NotImplementedError


class SGD(_Optimizer):
    """SGD with momentum, torch.optim.SGD's rule: buf = momentum·buf + g (buf = g at first); p -= lr·buf."""

    def __init__(self, params: dict, lr: float = 0.01, momentum: float = 0.0):
        super().__init__(params, lr)
        self.momentum = _positive("momentum", momentum, allow_zero=True)
        self._buffers: dict[str, np.ndarray] = {}

    def _update(self, name, param, grad):
        if self.momentum:
            buf = self._buffers.get(name)
            if buf is None:
                buf = self._buffers[name] = grad.astype(param.dtype, copy=True)
            else:
                buf *= self.momentum
                buf += grad
            grad = buf
        param -= self.lr * grad


class Adam(_Optimizer):
    """Adam (Kingma & Ba), torch.optim.Adam's rule with bias correction."""

    def __init__(self, params: dict, lr: float = 1e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8):
        super().__init__(params, lr)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2 or not all(0 <= b < 1 for b in betas):
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
        if name not in self._moments:
            self._moments[name] = (np.zeros_like(param), np.zeros_like(param))
        mean, square = self._moments[name]
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
        raise ValueError(f"optimizer must be one of {', '.join(map(repr, OPTIMIZERS))}, got {name!r}")
    if name.lower() == "sgd":
        return SGD(params, lr, momentum=0.9)
    return Adam(params, lr)
