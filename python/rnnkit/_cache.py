"""What a forward pass keeps for its backward pass."""

from __future__ import annotations

PRODUCERS = {
    ("cpp", "rnn"): "rnnkit.rnn_forward",
    ("cpp", "lstm"): "rnnkit.lstm_forward",
    ("cpp", "gru"): "rnnkit.gru_forward",
    ("numpy", "rnn"): "rnnkit.reference.rnn_forward",
    ("numpy", "lstm"): "rnnkit.reference.lstm_forward",
    ("numpy", "gru"): "rnnkit.reference.gru_forward",
}


class Cache:
    """A forward pass's state, opaque to users: pass it back to the matching backward.

    It holds references, not copies, to x, the initial states and the weights: changing those arrays
    in place before the backward pass changes the gradients.  y, which it also holds, is returned
    read-only for that reason (``y.copy()`` gives a writable one).

    Fields: backend ("cpp" or "numpy": which implementation made it); cell ("rnn", "lstm", "gru");
    nonlinearity (the vanilla cell's "tanh" / "relu", else None); x (T, B, I); h0, c0 (B, H) or None;
    w_ih (G*H, I); w_hh (G*H, H); y (T, B, H), every h_t; has_b_ih, has_b_hh; and what the backward
    cannot recompute cheaply (DESIGN.md): gates (T, B, G*H) the gate activations (LSTM, GRU), cells
    (T, B, H) every c_t (LSTM), hidden_n (T, B, H) every W_hn h_{t-1} + b_hn (GRU).  Saved per input
    time step t, so aligned with x and y; at padded positions (t >= lengths[b]) they hold zeros.

    The forward's options: lengths, None (every sequence has T steps) or the (B,) int64 array of
    sequence lengths (row b ran steps 0 .. lengths[b]-1); reverse, a bool (True: each row ran from its
    last real step down to 0).  saved: an opaque object a backend may keep for its backward (the C++
    kernels' own buffers), None for the reference.

    A forward run with training=False makes no Cache at all (it returns None in its place);
    ``check_trained`` tells whoever passes that None to a backward why it cannot be used.
    """

    # A plain class with slots: it is made on every forward call, and a frozen dataclass costs ~2 us.
    __slots__ = (
        "backend",
        "c0",
        "cell",
        "cells",
        "gates",
        "h0",
        "has_b_hh",
        "has_b_ih",
        "hidden_n",
        "lengths",
        "nonlinearity",
        "reverse",
        "saved",
        "w_hh",
        "w_ih",
        "x",
        "y",
    )

    def __init__(self, backend, cell, nonlinearity, x, h0, c0, w_ih, w_hh, y, has_b_ih, has_b_hh,
                 gates=None, cells=None, hidden_n=None, lengths=None, reverse=False, saved=None):
        self.backend, self.cell, self.nonlinearity = backend, cell, nonlinearity
        self.x, self.h0, self.c0, self.w_ih, self.w_hh, self.y = x, h0, c0, w_ih, w_hh, y
        self.has_b_ih, self.has_b_hh = has_b_ih, has_b_hh
        self.gates, self.cells, self.hidden_n = gates, cells, hidden_n
        self.lengths, self.reverse, self.saved = lengths, reverse, saved
        y.flags.writeable = False

    def __repr__(self):
        return f"<rnnkit {self.cell} cache from backend {self.backend!r}, x {self.x.shape}>"

    @staticmethod
    def check_trained(cache, backend: str, cell: str) -> None:
        """``check`` for a forward that has a ``training`` switch: a None cache is a ValueError that
        says why (the forward ran with training=False), anything else that is not the right Cache a
        TypeError, as in ``check``."""
        if cache is None:
            raise ValueError(f"cache is None: the forward ({PRODUCERS[(backend, cell)]}) ran with training=False, "
                             "which saves nothing for the backward; run it with training=True")
        Cache.check(cache, backend, cell)

    @staticmethod
    def check(cache, backend: str, cell: str) -> None:
        producer = PRODUCERS[(backend, cell)]
        if not isinstance(cache, Cache):
            raise TypeError(f"cache must be the last value returned by {producer}, got {type(cache).__name__}")
        if (cache.backend, cache.cell) != (backend, cell):
            made_by = PRODUCERS[(cache.backend, cache.cell)]
            raise TypeError(f"cache was made by {made_by}; this backward pass needs one from {producer}")
