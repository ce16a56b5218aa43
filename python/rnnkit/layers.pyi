from collections.abc import Mapping
from typing import Any, Literal, overload

import numpy as np

from ._typing import Array, ArrayLike, DType, Path, Seed, State
from .streams import _LayerStream

__all__ = ["RNN", "Dense"]

class RNN:
    input_size: int
    hidden_size: int
    num_layers: int
    bidirectional: bool
    batch_first: bool
    dtype: np.dtype[Any]
    backend: str
    cell: str
    dropout: float
    init: str
    unit_forget_bias: bool
    params: dict[str, Array]
    grads: dict[str, Array]
    training: bool
    def __init__(self, input_size: int, hidden_size: int, *, cell: str = "tanh", num_layers: int = 1,
                 bidirectional: bool = False, batch_first: bool = False, dropout: float = 0.0, init: str = "torch",
                 unit_forget_bias: bool = False, dtype: DType = "float32", backend: str = "cpp",
                 seed: Seed = None) -> None: ...
    @property
    def num_directions(self) -> int: ...
    def state_dict(self) -> dict[str, Array]: ...
    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None: ...
    @classmethod
    def from_keras(cls, layer_or_weights: Any, *, cell: str | None = None, batch_first: bool = True,
                   dtype: DType | None = None, backend: str = "cpp") -> RNN: ...
    def to_keras_weights(self, *, use_bias: bool = True) -> list[Any]: ...
    def to_onnx(self, path: Path, **options: Any) -> None: ...
    @classmethod
    def from_onnx(cls, path_or_model: Any, **options: Any) -> RNN: ...
    # (y, h_n); with return_cells=True (y, (h_n, c_n), cells).  h_n is the pair (h_n, c_n) for an LSTM.
    @overload
    def forward(self, x: ArrayLike, h0: Any = None, *, lengths: ArrayLike | None = None, training: bool | None = None,
                return_cells: Literal[False] = False) -> tuple[Array, State]: ...
    @overload
    def forward(self, x: ArrayLike, h0: Any = None, *, lengths: ArrayLike | None = None, training: bool | None = None,
                return_cells: Literal[True]) -> tuple[Array, State, Array]: ...
    __call__ = forward
    @property
    def dropout_masks(self) -> tuple[Array, ...]: ...
    def stream(self, batch_size: int = 1) -> _LayerStream: ...
    def invalidate(self) -> None: ...
    @overload
    def backward(self, dy: ArrayLike | None, dh_n: Any = None, *, need_dx: Literal[True] = True) -> tuple[Array, State]: ...
    @overload
    def backward(self, dy: ArrayLike | None, dh_n: Any = None, *, need_dx: Literal[False]) -> tuple[None, State]: ...

class Dense:
    input_size: int
    output_size: int
    dtype: np.dtype[Any]
    params: dict[str, Array]
    grads: dict[str, Array]
    def __init__(self, input_size: int, output_size: int, *, dtype: DType = "float32", seed: Seed = None) -> None: ...
    def state_dict(self) -> dict[str, Array]: ...
    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None: ...
    def forward(self, x: ArrayLike) -> Array: ...
    __call__ = forward
    def backward(self, dy: ArrayLike) -> Array: ...
