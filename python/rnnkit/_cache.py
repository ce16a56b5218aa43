"""What a forward pass keeps for its backward pass."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PRODUCERS = {
    ("cpp", "rnn"): "rnnkit.rnn_forward",
    ("cpp", "lstm"): "rnnkit.lstm_forward",
    ("cpp", "gru"): "rnnkit.gru_forward",
    ("numpy", "rnn"): "rnnkit.reference.rnn_forward",
    ("numpy", "lstm"): "rnnkit.reference.lstm_forward",
    ("numpy", "gru"): "rnnkit.reference.gru_forward",
}


@dataclass(frozen=True, eq=False)
class Cache:
    """A forward pass's state, opaque to users: pass it back to the matching backward.

    It holds references, not copies, to x, the initial states and the weights: changing those arrays
    in place before the backward pass changes the gradients.  y, which it also holds, is returned
    read-only for that reason (``y.copy()`` gives a writable one).
    """

    backend: str           # "cpp" or "numpy": which implementation made it
    cell: str              # "rnn", "lstm" or "gru"
    nonlinearity: str | None  # the vanilla cell's "tanh" / "relu"
    x: np.ndarray          # (T, B, I)
    h0: np.ndarray | None  # (B, H)
    c0: np.ndarray | None  # (B, H), LSTM
    w_ih: np.ndarray       # (G*H, I)
    w_hh: np.ndarray       # (G*H, H)
    y: np.ndarray          # (T, B, H): every h_t
    has_b_ih: bool
    has_b_hh: bool
    # What the backward cannot recompute cheaply (DESIGN.md):
    gates: np.ndarray | None = None     # (T, B, G*H) gate activations, LSTM and GRU
    cells: np.ndarray | None = None     # (T, B, H) every c_t, LSTM
    hidden_n: np.ndarray | None = None  # (T, B, H) every W_hn h_{t-1} + b_hn, GRU

    def __post_init__(self):
        self.y.flags.writeable = False

    @staticmethod
    def check(cache, backend: str, cell: str) -> None:
        producer = PRODUCERS[(backend, cell)]
        if not isinstance(cache, Cache):
            raise TypeError(f"cache must be the last value returned by {producer}, got {type(cache).__name__}")
        if (cache.backend, cache.cell) != (backend, cell):
            made_by = PRODUCERS[(cache.backend, cache.cell)]
            raise TypeError(f"cache was made by {made_by}; this backward pass needs one from {producer}")
