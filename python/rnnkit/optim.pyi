from collections.abc import Mapping
from typing import Any

from ._typing import Array

__all__ = ["SGD", "Adam", "CosineLR", "ReduceLROnPlateau", "Schedule", "StepLR", "clip_grad_norm", "fit_optimizer",
           "make_optimizer"]

class _Optimizer:
    params: dict[str, Array] | None
    lr: float
    weight_decay: float
    def __init__(self, params: dict[str, Array] | None, lr: float, weight_decay: float = 0.0) -> None: ...
    def bind(self, params: dict[str, Array]) -> _Optimizer: ...
    def step(self, grads: Mapping[str, Array]) -> None: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...

class SGD(_Optimizer):
    momentum: float
    nesterov: bool
    def __init__(self, params: dict[str, Array] | None = None, lr: float = 0.01, momentum: float = 0.0, *,
                 nesterov: bool = False, weight_decay: float = 0.0) -> None: ...

class Adam(_Optimizer):
    betas: tuple[float, float]
    eps: float
    steps: int
    def __init__(self, params: dict[str, Array] | None = None, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, *,
                 weight_decay: float = 0.0) -> None: ...

def clip_grad_norm(grads: Mapping[str, Array], max_norm: float) -> float: ...
def make_optimizer(name: str, params: dict[str, Array], lr: float) -> _Optimizer: ...
def fit_optimizer(previous: _Optimizer | None, optimizer: str | _Optimizer, params: dict[str, Array],
                  lr: float | None) -> _Optimizer: ...

class Schedule:
    def start(self, base_lr: float) -> None: ...
    def lr(self, epoch: int, base_lr: float) -> float: ...
    def epoch_end(self, epoch: int, logs: Mapping[str, Any]) -> None: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...

class StepLR(Schedule):
    step_size: int
    gamma: float
    def __init__(self, step_size: int, gamma: float = 0.1) -> None: ...

class CosineLR(Schedule):
    total_epochs: int
    warmup_epochs: int
    min_lr: float
    def __init__(self, total_epochs: int, warmup_epochs: int = 0, min_lr: float = 0.0) -> None: ...

class ReduceLROnPlateau(Schedule):
    monitor: str
    factor: float
    patience: int
    min_lr: float
    mode: str
    min_delta: float
    cooldown: int
    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10, min_lr: float = 0.0, *,
                 mode: str = "auto", min_delta: float = 1e-4, cooldown: int = 0) -> None: ...
