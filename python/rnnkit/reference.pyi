from typing import Literal, overload

from ._cache import Cache
from ._typing import Array, ArrayLike

__all__ = ["gru_backward", "gru_forward", "lstm_backward", "lstm_forward", "rnn_backward", "rnn_forward"]

# The forwards return the cache for the backward, or None with training=False: overloads on the flag let a
# type checker know which, so the common `y, h_n, cache = rnn_forward(...); rnn_backward(cache, ...)` checks.

@overload
def rnn_forward(x: ArrayLike, h0: ArrayLike | None, w_ih: ArrayLike, w_hh: ArrayLike, b_ih: ArrayLike | None,
                b_hh: ArrayLike | None, *, nonlinearity: str = "tanh", lengths: ArrayLike | None = None,
                reverse: bool = False, training: Literal[True] = True) -> tuple[Array, Array, Cache]: ...
@overload
def rnn_forward(x: ArrayLike, h0: ArrayLike | None, w_ih: ArrayLike, w_hh: ArrayLike, b_ih: ArrayLike | None,
                b_hh: ArrayLike | None, *, nonlinearity: str = "tanh", lengths: ArrayLike | None = None,
                reverse: bool = False, training: Literal[False]) -> tuple[Array, Array, None]: ...
@overload
def rnn_forward(x: ArrayLike, h0: ArrayLike | None, w_ih: ArrayLike, w_hh: ArrayLike, b_ih: ArrayLike | None,
                b_hh: ArrayLike | None, *, nonlinearity: str = "tanh", lengths: ArrayLike | None = None,
                reverse: bool = False, training: bool) -> tuple[Array, Array, Cache | None]: ...
def rnn_backward(cache: Cache, dy: ArrayLike | None,
                 dh_n: ArrayLike | None) -> tuple[Array, Array, Array, Array, Array | None, Array | None]: ...
@overload
def lstm_forward(x: ArrayLike, h0: ArrayLike | None, c0: ArrayLike | None, w_ih: ArrayLike, w_hh: ArrayLike,
                 b_ih: ArrayLike | None, b_hh: ArrayLike | None, *, lengths: ArrayLike | None = None,
                 reverse: bool = False, training: Literal[True] = True) -> tuple[Array, Array, Array, Cache]: ...
@overload
def lstm_forward(x: ArrayLike, h0: ArrayLike | None, c0: ArrayLike | None, w_ih: ArrayLike, w_hh: ArrayLike,
                 b_ih: ArrayLike | None, b_hh: ArrayLike | None, *, lengths: ArrayLike | None = None,
                 reverse: bool = False, training: Literal[False]) -> tuple[Array, Array, Array, None]: ...
@overload
def lstm_forward(x: ArrayLike, h0: ArrayLike | None, c0: ArrayLike | None, w_ih: ArrayLike, w_hh: ArrayLike,
                 b_ih: ArrayLike | None, b_hh: ArrayLike | None, *, lengths: ArrayLike | None = None,
                 reverse: bool = False, training: bool) -> tuple[Array, Array, Array, Cache | None]: ...
def lstm_backward(cache: Cache, dy: ArrayLike | None, dh_n: ArrayLike | None, dc_n: ArrayLike | None
                  ) -> tuple[Array, Array, Array, Array, Array, Array | None, Array | None]: ...
@overload
def gru_forward(x: ArrayLike, h0: ArrayLike | None, w_ih: ArrayLike, w_hh: ArrayLike, b_ih: ArrayLike | None,
                b_hh: ArrayLike | None, *, lengths: ArrayLike | None = None, reverse: bool = False,
                training: Literal[True] = True) -> tuple[Array, Array, Cache]: ...
@overload
def gru_forward(x: ArrayLike, h0: ArrayLike | None, w_ih: ArrayLike, w_hh: ArrayLike, b_ih: ArrayLike | None,
                b_hh: ArrayLike | None, *, lengths: ArrayLike | None = None, reverse: bool = False,
                training: Literal[False]) -> tuple[Array, Array, None]: ...
@overload
def gru_forward(x: ArrayLike, h0: ArrayLike | None, w_ih: ArrayLike, w_hh: ArrayLike, b_ih: ArrayLike | None,
                b_hh: ArrayLike | None, *, lengths: ArrayLike | None = None, reverse: bool = False,
                training: bool) -> tuple[Array, Array, Cache | None]: ...
def gru_backward(cache: Cache, dy: ArrayLike | None,
                 dh_n: ArrayLike | None) -> tuple[Array, Array, Array, Array, Array | None, Array | None]: ...
