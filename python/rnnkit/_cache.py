"""What a forward pass keeps for its backward pass."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class RNNCache:
    """The vanilla cell's forward state, opaque to users: pass it back to the matching backward.

    It holds references, not copies, to x, h0 and the weights: changing those arrays in place before
    the backward pass changes the gradients.  y, which it also holds, is returned read-only for that
    reason (``y.copy()`` gives a writable one).
    """

    backend: str          # "cpp" or "numpy": which forward made it
    nonlinearity: str
    x: np.ndarray         # (T, B, I)
    h0: np.ndarray | None  # (B, H)
    w_ih: np.ndarray      # (H, I)
    w_hh: np.ndarray      # (H, H)
    y: np.ndarray         # (T, B, H): every h_t; the backward needs h_{t-1} and act'(h_t)
    has_b_ih: bool
    has_b_hh: bool

    def __post_init__(self):
        self.y.flags.writeable = False

    @staticmethod
    def check(cache, backend: str, producer: str) -> None:
        if not isinstance(cache, RNNCache):
            raise TypeError(f"cache must be the third value returned by {producer}, got {type(cache).__name__}")
        if cache.backend != backend:
            other = "rnnkit.rnn_forward" if cache.backend == "cpp" else "rnnkit.reference.rnn_forward"
            raise TypeError(f"cache was made by {other}; this backward pass needs one from {producer}")
