from typing import Any

import numpy as np

from ._typing import Array, ArrayLike

__all__ = ["Plan"]

class Plan:
    cell: str
    input_size: int
    hidden_size: int
    dtype: np.dtype[Any]
    def __init__(self, cell: str, w_ih: ArrayLike, w_hh: ArrayLike, b_ih: ArrayLike | None = None,
                 b_hh: ArrayLike | None = None) -> None: ...
    @property
    def isa(self) -> str: ...
    # (y, h_n), (y, h_n, c_n) for an LSTM, and the cache last with training=True: a tuple of Any, so that
    # each form unpacks.
    def forward(self, x: ArrayLike, h0: ArrayLike | None = None, c0: ArrayLike | None = None, *,
                lengths: ArrayLike | None = None, reverse: bool = False, training: bool = False,
                out: Array | None = None, h_n_out: Array | None = None,
                c_n_out: Array | None = None) -> tuple[Any, ...]: ...
    __call__ = forward
