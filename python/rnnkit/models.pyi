# Model is defined in rnnkit._model; this stub declares it here, where the public API has it.
from collections.abc import Iterable, Mapping
from typing import Any, Callable

import numpy as np
from typing_extensions import Self

from ._typing import Array, ArrayLike, DType, Path, Seed
from .callbacks import Callback
from .optim import Schedule, _Optimizer
from .streams import GenerationStream, ModelStream

__all__ = ["ManyToMany", "ManyToOne", "Model", "NotFittedError", "OneToMany", "OneToOne", "Seq2Seq"]

class NotFittedError(ValueError, AttributeError): ...

class Model:
    x_ndim: int
    sequence_targets: bool
    generates: bool
    can_be_bidirectional: bool
    input_size: int | None
    hidden_size: int
    output_size: int | None
    cell: str
    num_layers: int
    task: str
    bidirectional: bool
    vocab_size: int | None
    dropout: float
    init: str
    unit_forget_bias: bool
    dtype: np.dtype[Any]
    backend: str
    seed: Seed
    layers: dict[str, Any]  # "rnn", "head", "embed", ...: RNN, Dense and Embedding layers
    fitted: bool
    steps: int | None
    stop_training: bool
    # after fit: {"loss": [...], "time": [...], and "val_loss", "val_score", "lr", ... as fit recorded}
    history_: dict[str, list[float]]
    optimizer_: _Optimizer
    def __init__(self, input_size: int | None, hidden_size: int, output_size: int | None, *, cell: str = "tanh",
                 num_layers: int = 1, task: str = "classification", bidirectional: bool = False,
                 vocab_size: int | None = None, dropout: float = 0.0, init: str = "torch",
                 unit_forget_bias: bool = False, dtype: DType = "float32", backend: str = "cpp",
                 seed: Seed = None) -> None: ...
    @property
    def num_directions(self) -> int: ...
    def get_params(self, deep: bool = True) -> dict[str, Any]: ...
    def set_params(self, **params: Any) -> Self: ...
    @property
    def n_features_in_(self) -> int: ...
    @property
    def classes_(self) -> Array: ...
    def predict_proba(self, X: ArrayLike) -> Array: ...
    @property
    def params(self) -> dict[str, Array]: ...
    # (Y, or y= as scikit-learn names it)
    def fit(self, X: ArrayLike, Y: ArrayLike | None = None, *, y: ArrayLike | None = None, epochs: int = 10,
            batch_size: int = 32, lr: float | None = None, optimizer: str | _Optimizer = "adam",
            clip: float | None = 5.0, validation_data: tuple[ArrayLike, ArrayLike] | None = None,
            bucket: bool = True, verbose: int = 1, comm: Any = None,
            schedule: Schedule | Callable[[int], float] | None = None, callbacks: Iterable[Callback] | None = None,
            validation_split: float = 0.0, shuffle: bool = True, class_weight: Mapping[Any, float] | None = None,
            sample_weight: ArrayLike | None = None, checkpoint: Path | None = None,
            checkpoint_every: int | None = None) -> Self: ...
    def stream(self, batch_size: int = 1) -> ModelStream | GenerationStream: ...
    # labels or values: an array, or (ManyToMany, Seq2Seq) a list of arrays when X is a list
    def predict(self, X: ArrayLike) -> Any: ...
    def score(self, X: ArrayLike, Y: ArrayLike | None = None, *, y: ArrayLike | None = None) -> float: ...
    def to_onnx(self, path: Path, **options: Any) -> None: ...
    def save(self, path: Path) -> None: ...
    @classmethod
    def load(cls, path: Path) -> Model: ...

class OneToOne(Model):
    def predict(self, X: ArrayLike) -> Array: ...

class ManyToOne(Model):
    def stream(self, batch_size: int = 1) -> ModelStream: ...
    def predict(self, X: ArrayLike) -> Array: ...

class ManyToMany(Model):
    def stream(self, batch_size: int = 1) -> ModelStream: ...

class _Decoder(Model):
    end_token: int | None
    def __init__(self, input_size: int | None, hidden_size: int, output_size: int | None, *,
                 end_token: int | None = None, **options: Any) -> None: ...
    def stream(self, batch_size: int = 1) -> GenerationStream: ...
    # (N, max_steps) without an end token, else a list of label arrays of their own lengths
    def predict(self, X: ArrayLike, max_steps: int | None = None, *, steps: int | None = None) -> Any: ...

class OneToMany(_Decoder): ...
class Seq2Seq(_Decoder): ...
