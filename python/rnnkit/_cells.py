"""The seam between the layers and the kernels: one recurrent layer, all its directions at once.

    states_n, saved = cell.forward(x, states0, weights, out, lengths=..., training=..., backend=..., plans=...)
    results = cell.backward(saved, d_out, dstates_n, dx)

- ``x`` (T, B, I) time-major, validated; ``out`` (T, B, D·H) is written in place, direction d in its
  slice d·H:(d+1)·H (the C++ kernels write the slices without copies); direction 1 runs in reverse.
- ``states0`` / ``states_n`` / ``dstates_n``: per direction a tuple of ``cell.num_states`` arrays
  (B, H) — (h,) for the vanilla cell and the GRU, (h, c) for the LSTM — or None (zeros).
- ``weights``: per direction (w_ih, w_hh, b_ih, b_hh).  ``plans``: per direction a ready _core.Plan
  (inference with packed weights kept between calls), or None to pack them for this call.
- ``lengths``: None or the validated (B,) int64 array; ``training=False`` saves nothing (saved None).
- ``backward`` fills dx (T, B, I) (overwritten) and returns per direction
  (dstate0, dw_ih, dw_hh, db_ih, db_hh).

Backends: "cpp" (the kernels in rnnkit._core: both directions run at once, in one team) and "numpy"
(rnnkit.reference, one direction after the other).
"""

from __future__ import annotations

import numpy as np

from . import _core, reference
from . import _validation as v
from .functional import SavedPass, run_backward, run_plans

BACKENDS = ("cpp", "numpy")

# Bumped by every optimizer step and load_state_dict: layers repack the weights they keep for
# inference when it has moved.
_weights_version = [0]


def weights_changed() -> None:
    _weights_version[0] += 1


def weights_version() -> int:
    return _weights_version[0]
CELLS = tuple(v.CELL_KINDS)


class Cell:
    """One cell kind: "tanh" / "relu" (vanilla), "lstm" or "gru"."""

    def __init__(self, name: str):
        if name not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(map(repr, CELLS))}, got {name!r}")
        self.name = name
        self.kind = v.CELL_KINDS[name]
        self.gates = v.GATES[self.kind]
        self.num_states = v.STATES[self.kind]

    def __repr__(self):
        return f"Cell({self.name!r})"

    def plan(self, w_ih, w_hh, b_ih, b_hh):
        """The weights of one direction packed for the kernels (a snapshot)."""
        return _core.Plan(self.name, w_ih, w_hh, b_ih, b_hh)

    # ---- forward ----------------------------------------------------------------------------------
    def forward(self, x, states0, weights, out, *, lengths=None, training=True, backend="cpp", plans=None):
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        directions = len(weights)
        hidden = weights[0][1].shape[1]
        halves = [out[..., d * hidden:(d + 1) * hidden] for d in range(directions)] if directions > 1 else [out]
        if states0 is None:
            states0 = [None] * directions
        if backend == "cpp":
            if plans is None:
                plans = [self.plan(*w) for w in weights]
            _, states_n, saved = run_plans(plans, x, states0, lengths, training, ys=halves)
            if saved is not None:
                saved = ("cpp", [SavedPass(s, w[:2]) for s, w in zip(saved, weights)], weights)
            return states_n, saved
        states_n, caches = [], []
        for d in range(directions):
            h0 = None if states0[d] is None else states0[d][0]
            c0 = None if states0[d] is None or self.kind != "lstm" else states0[d][1]
            options = {"lengths": lengths, "reverse": bool(d), "training": training}
            if self.kind == "rnn":
                y, h_n, cache = reference.rnn_forward(x, h0, *weights[d], nonlinearity=self.name, **options)
                states_n.append((h_n,))
            elif self.kind == "lstm":
                y, h_n, c_n, cache = reference.lstm_forward(x, h0, c0, *weights[d], **options)
                states_n.append((h_n, c_n))
            else:
                y, h_n, cache = reference.gru_forward(x, h0, *weights[d], **options)
                states_n.append((h_n,))
            halves[d][...] = y
            caches.append(cache)
        return states_n, (("numpy", caches, weights) if training else None)

    # ---- backward ---------------------------------------------------------------------------------
    def backward(self, saved, d_out, dstates_n, dx, batch=None):
        """dx (T, B, I) is filled; None (then ``batch`` says B): no input gradient is wanted."""
        backend, passes, weights = saved
        directions = len(passes)
        hidden = weights[0][1].shape[1]
        if dstates_n is None:
            dstates_n = [None] * directions
        if d_out is None or directions == 1:
            dys = [d_out] * directions
        else:
            dys = [d_out[..., d * hidden:(d + 1) * hidden] for d in range(directions)]
        if backend == "cpp":
            results = run_backward(passes, dys, dstates_n, dx, batch=batch)
        else:
            results = []
            if dx is None:  # (the reference computes it anyway)
                dx = np.empty(passes[0].x.shape, weights[0][1].dtype)
            dx[...] = 0
            for d, cache in enumerate(passes):
                dh_n = None if dstates_n[d] is None else dstates_n[d][0]
                if self.kind == "rnn":
                    dxs, dh0, dw_ih, dw_hh, db_ih, db_hh = reference.rnn_backward(cache, dys[d], dh_n)
                    dstate0 = (dh0,)
                elif self.kind == "lstm":
                    dc_n = None if dstates_n[d] is None else dstates_n[d][1]
                    dxs, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh = reference.lstm_backward(cache, dys[d], dh_n, dc_n)
                    dstate0 = (dh0, dc0)
                else:
                    dxs, dh0, dw_ih, dw_hh, db_ih, db_hh = reference.gru_backward(cache, dys[d], dh_n)
                    dstate0 = (dh0,)
                dx += dxs
                results.append((dstate0, dw_ih, dw_hh, db_ih, db_hh))
        out = []
        for d, (dstate0, dw_ih, dw_hh, db_ih, db_hh) in enumerate(results):
            # (the layer wants both bias gradients, each its own array, also for an absent bias)
            db_ih = db_ih if db_ih is not None else db_hh
            db_hh = db_hh if db_hh is not None else db_ih
            if db_ih is None:
                db_ih = db_hh = np.zeros(weights[d][1].shape[0], weights[d][1].dtype)
            if db_hh is db_ih:
                db_hh = db_ih.copy()
            out.append((dstate0, dw_ih, dw_hh, db_ih, db_hh))
        return out


def make_cell(cell: str) -> Cell:
    """The cell for a layer's ``cell`` argument: "tanh", "relu", "lstm" or "gru"."""
    if not isinstance(cell, str):
        raise TypeError(f"cell must be a str, got {type(cell).__name__}")
    return Cell(cell)
