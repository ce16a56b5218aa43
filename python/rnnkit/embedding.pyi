from collections.abc import Mapping
from typing import Any

import numpy as np

from ._typing import Array, ArrayLike, DType, Seed

__all__ = ["Embedding"]

class Embedding:
    num_embeddings: int
    embedding_dim: int
    padding_idx: int | None
    dtype: np.dtype[Any]
    params: dict[str, Array]
    grads: dict[str, Array]
    def __init__(self, num_embeddings: int, embedding_dim: int, *, padding_idx: int | None = None,
                 dtype: DType = "float32", seed: Seed = None) -> None: ...
    def state_dict(self) -> dict[str, Array]: ...
    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None: ...
    def forward(self, ids: ArrayLike) -> Array: ...
    __call__ = forward
    def backward(self, dy: ArrayLike) -> None: ...
