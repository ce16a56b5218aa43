"""The interface between the harness and an implementation: ``Runner`` and ``Unavailable``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np


class Unavailable(Exception):
    """An implementation cannot run here; the message says why ("torch not installed", ...)."""


def _nothing() -> None:
    return None


@dataclass
class Runner:
    """One implementation set up on one problem.

    ``forward`` and ``train`` are the calls that are timed; ``output`` and ``gradients`` turn their
    results into NumPy arrays in rnnkit's layout for validation, outside the timing.
    """

    forward: Callable[[], Any]                         # one forward pass
    output: Callable[[Any], np.ndarray]                # forward's result -> y (T, B, H)
    train: Callable[[], Any] | None = None             # forward + backward; None: forward only
    gradients: Callable[[Any], dict] | None = None     # train's result -> {"dx": ..., "dw_ih": ...}
    enter: Callable[[], None] = _nothing               # run before each block (sets thread counts)


GRADIENT_NAMES = ("dx", "dw_ih", "dw_hh", "db_ih", "db_hh")


def gradients_from_tuple(result) -> dict:
    """rnnkit's backward returns (dx, dh0, [dc0,] dw_ih, dw_hh, db_ih, db_hh): dx first, weights last."""
    return {"dx": result[0], "dw_ih": result[-4], "dw_hh": result[-3], "db_ih": result[-2], "db_hh": result[-1]}


def reorder_gates(array: np.ndarray, order: tuple, hidden: int) -> np.ndarray:
    """The gate blocks of a (G·H, ...) array, block k of the result being block order[k] of ``array``."""
    return np.ascontiguousarray(np.concatenate([array[k * hidden:(k + 1) * hidden] for k in order]))
