from typing import Any

from ._typing import Path
from .models import Model

__all__ = ["Callback", "EarlyStopping", "ModelCheckpoint"]

class Callback:
    model: Model | None
    def set_model(self, model: Model) -> None: ...
    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None: ...
    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None: ...
    def on_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None: ...
    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None: ...
    def on_train_end(self, logs: dict[str, Any] | None = None) -> None: ...

class _Monitor(Callback):
    monitor: str
    mode: str
    min_delta: float
    best: float
    def __init__(self, monitor: str, mode: str, min_delta: float) -> None: ...

class EarlyStopping(_Monitor):
    patience: int
    restore_best_weights: bool
    best_epoch: int
    stopped_epoch: int
    def __init__(self, monitor: str = "val_loss", patience: int = 0, min_delta: float = 0.0, mode: str = "auto",
                 restore_best_weights: bool = False) -> None: ...

class ModelCheckpoint(_Monitor):
    path: Path
    save_best_only: bool
    def __init__(self, path: Path, monitor: str = "val_loss", save_best_only: bool = False,
                 mode: str = "auto") -> None: ...
