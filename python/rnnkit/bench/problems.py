"""The benchmark's cases and the problems built from them: shapes, torch-layout weights, FLOP counts.

Legend: T timesteps, B batch, I input features, H hidden units, G gates (1 vanilla, 4 LSTM, 3 GRU).
Weights are in PyTorch's layout — w_ih (G·H, I), w_hh (G·H, H), b_ih, b_hh (G·H,), gate blocks
[i | f | g | o] for LSTM and [r | z | n] for GRU — and every adapter converts from it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CELLS = ("tanh", "relu", "lstm", "gru")
GATES = {"tanh": 1, "relu": 1, "lstm": 4, "gru": 3}
MODES = ("forward", "train")  # train = forward + backward
MODE_LABELS = {"forward": "forward", "train": "forward+backward"}


@dataclass(frozen=True)
class Case:
    name: str
    title: str
    steps: int    # T
    batch: int    # B
    inputs: int   # I
    hidden: int   # H
    modes: tuple = MODES
    kind: str = "standard"  # S1-S4 and --shape; else one of V2_KINDS (the kernels-v2 cases, ``kernels_v2``)
    cells: tuple = CELLS    # the cells a kernels-v2 case runs when --cell is not given

    @property
    def shape(self) -> str:
        return f"T={self.steps} B={self.batch} I={self.inputs} H={self.hidden}"


# The cases.  S3 is DeepBench's large vanilla-RNN size.
CASES = (
    Case("S1", "latency", 50, 1, 128, 128, modes=("forward",)),
    Case("S2", "training", 100, 32, 256, 256),
    Case("S3", "large", 50, 16, 1760, 1760),
    Case("S4", "long", 1000, 8, 64, 256),
)

# --quick: the same method on fewer cases, each at its full size, so that its ratios are those of a
# full run (within the spread both print): S1 and S2 (S3 and S4 take most of a full run's time).
QUICK_CASES = CASES[:2]


# The kernels-v2 cases (issue 11).  Each kind has its own implementations (``kernels_v2``) and table.
V2_KINDS = ("ragged", "contention", "per-call", "bidir", "infer")
GATED = ("tanh", "lstm", "gru")  # "each cell" of issue 11 (relu runs tanh's kernel; --cell relu adds it)


def _infer_cases(shapes) -> tuple:
    """Small-batch inference, (B, H, T) each with I = H."""
    return tuple(Case("infer", "small-batch inference", t, b, h, h, modes=("forward",), kind="infer", cells=GATED)
                 for b, h, t in shapes)


V2_CASES = (
    Case("ragged", "ragged batch", 100, 64, 256, 256, modes=("train",), kind="ragged", cells=("tanh", "gru", "lstm")),
    Case("contention", "after a matmul", 50, 1, 128, 128, modes=("forward",), kind="contention", cells=GATED),
    Case("per-call", "per call", 1, 1, 128, 128, modes=("forward",), kind="per-call", cells=("tanh",)),
    Case("bidir", "bidirectional", 50, 1, 128, 128, modes=("forward",), kind="bidir", cells=GATED),
    # B=1 (the bandwidth-bound case): T = 25 and 100 up to H = 1024, T = 25 at H = 2048 (64 MiB of LSTM W_hh a
    # step); B=4: T = 25.  11 shapes × 3 cells, about 4 minutes of the full run on 2 cores.
    *_infer_cases([(b, h, t) for b in (1, 4) for h in (256, 512, 1024, 2048) for t in (25, 100)
                   if t == 25 or (b == 1 and h < 2048)]),
)

# --quick: the kernels-v2 cases at their full sizes, but not the infer sweep (11 shapes, and a bandwidth
# measurement); with the tanh cell only unless --cell is given (``cli.v2_cells``).
QUICK_V2_CASES = tuple(c for c in V2_CASES if c.kind != "infer")
QUICK_V2_CELLS = ("tanh",)


def ragged_lengths(case: Case, seed: int = 11) -> np.ndarray:
    """The ragged case's lengths: uniform in [ceil(T/4), T] (T = 100: [25, 100]) from a fixed seed, (B,) int64."""
    low = max(1, -(-case.steps // 4))
    return np.random.default_rng(seed).integers(low, case.steps + 1, size=case.batch).astype(np.int64)


def flops(cell: str, case: Case, mode: str) -> float:
    """2·T·B·G·H·(I+H) for a forward pass, three times that for forward + backward (padded shape;
    both directions of the bidirectional case)."""
    forward = 2.0 * case.steps * case.batch * GATES[cell] * case.hidden * (case.inputs + case.hidden)
    forward *= 2 if case.kind == "bidir" else 1
    return forward if mode == "forward" else 3.0 * forward


@dataclass(eq=False)
class Problem:
    """One cell on one case: inputs, weights (torch layout), upstream gradient, all float32."""

    cell: str
    case: Case
    x: np.ndarray       # (T, B, I)
    h0: np.ndarray      # (B, H)
    c0: np.ndarray      # (B, H), LSTM only (zeros otherwise, unused)
    w_ih: np.ndarray    # (G·H, I)
    w_hh: np.ndarray    # (G·H, H)
    b_ih: np.ndarray    # (G·H,)
    b_hh: np.ndarray    # (G·H,)
    dy: np.ndarray      # (T, B, H): the gradient of the loss with respect to y
    threads: int = 1

    @property
    def nonlinearity(self) -> str:
        return self.cell if self.cell in ("tanh", "relu") else "tanh"

    @property
    def gates(self) -> int:
        return GATES[self.cell]


def make_problem(cell: str, case: Case, threads: int, seed: int = 0) -> Problem:
    """torch's default initialisation U(-1/sqrt(H), 1/sqrt(H)); x, h0, c0 and dy standard normal.

    With these weights the recurrence is contractive (spectral radius of w_hh about 0.6 for the
    vanilla cell), so float32 implementations agree closely even over S4's 1000 steps.
    """
    rng = np.random.default_rng(seed)
    steps, batch, inputs, hidden, rows = case.steps, case.batch, case.inputs, case.hidden, GATES[cell] * case.hidden
    bound = 1.0 / np.sqrt(hidden)

    def uniform(*shape):
        return rng.uniform(-bound, bound, shape).astype(np.float32)

    def normal(*shape, scale=1.0):
        return (scale * rng.standard_normal(shape)).astype(np.float32)

    return Problem(
        cell=cell, case=case, x=normal(steps, batch, inputs), h0=normal(batch, hidden, scale=0.5),
        c0=normal(batch, hidden, scale=0.5) if cell == "lstm" else np.zeros((batch, hidden), np.float32),
        w_ih=uniform(rows, inputs), w_hh=uniform(rows, hidden), b_ih=uniform(rows), b_hh=uniform(rows),
        dy=normal(steps, batch, hidden), threads=threads,
    )
