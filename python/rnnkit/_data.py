"""The models' data inside: inputs and targets as padded batch-first arrays with their lengths.

``Sequences`` holds a whole data set (what ``Model._check_x`` / ``_check_y`` return): ``values``
(N, T, ...) padded to the longest sequence, or (N, ...) for data without a time axis, and
``lengths`` (N,) int64 — None when every sample has all T steps (rectangular data, the old path).
``take(idx)`` gives the ``Batch`` of those samples, time-major as the kernels want it and padded
only to the longest sequence of the batch (which is why fit buckets sequences by length).
"""

from __future__ import annotations

import numpy as np


class Batch:
    """Samples of one batch: ``data`` (T, B, ...) time-major (or (B, ...) without a time axis) and
    ``lengths`` (B,) int64, or None when every row has all T steps."""

    __slots__ = ("data", "lengths", "timed")

    def __init__(self, data: np.ndarray, lengths=None, timed=True):
        self.data = data
        self.lengths = lengths
        self.timed = timed

    @property
    def size(self) -> int:
        """The number of samples B."""
        return self.data.shape[1] if self.timed else self.data.shape[0]

    def mask(self) -> np.ndarray | None:
        """(T, B) True at real steps, or None when every step is real."""
        if self.lengths is None:
            return None
        return np.arange(self.data.shape[0])[:, None] < self.lengths[None, :]

    def count(self) -> int:
        """Real steps (the number of terms of a per-step loss); samples without a time axis."""
        if not self.timed:
            return self.size
        if self.lengths is not None:
            return int(self.lengths.sum())
        return int(np.prod(self.data.shape[:2]))


class Sequences:
    """A data set: ``values`` batch-first, ``lengths`` (N,) or None, ``timed`` (a time axis at 1),
    ``ragged`` (it came as a list: predictions go back as a list)."""

    def __init__(self, values: np.ndarray, lengths=None, *, timed=True, ragged=False):
        self.values = values
        self.lengths = lengths
        self.timed = timed
        self.ragged = ragged

    def __len__(self) -> int:
        return self.values.shape[0]

    @property
    def steps(self) -> int:
        return self.values.shape[1]

    def step_lengths(self) -> np.ndarray:
        """Every sample's length (N,), also for rectangular data."""
        if self.lengths is not None:
            return self.lengths
        return np.full(len(self), self.steps, np.int64)

    def subset(self, idx) -> Sequences:
        """The samples ``idx`` (a slice or indices) as a data set of their own, order kept."""
        lengths = None if self.lengths is None else self.lengths[idx]
        return Sequences(self.values[idx], lengths, timed=self.timed, ragged=self.ragged)

    def take(self, idx) -> Batch:
        """The samples ``idx`` as a time-major batch padded to its own longest sequence."""
        if not self.timed:
            return Batch(self.values[idx], None, timed=False)
        if self.lengths is None:
            return Batch(np.ascontiguousarray(np.swapaxes(self.values[idx], 0, 1)), None)
        lengths = self.lengths[idx]
        longest = int(lengths.max()) if lengths.size else 0
        values = self.values[idx, :longest]  # (one gather: only the steps this batch needs)
        if lengths.size and (lengths == longest).all():
            lengths = None
        return Batch(np.ascontiguousarray(np.swapaxes(values, 0, 1)), lengths)

    def count(self, idx=None) -> int:
        """Real steps of the samples ``idx`` (all by default); samples when there is no time axis."""
        if idx is None:
            n = len(self)
        elif isinstance(idx, slice):
            n = len(range(*idx.indices(len(self))))
        else:
            n = len(idx)
        if not self.timed:
            return n
        if self.lengths is None:
            return n * self.steps
        return int(self.lengths[idx if idx is not None else slice(None)].sum())

    def rows(self) -> list:
        """Each sample's real steps (a list of arrays, views into values)."""
        if not self.timed:
            return list(self.values)
        return [self.values[i, :length] for i, length in enumerate(self.step_lengths())]


def batch_order(rng: np.random.Generator, n: int, batch_size: int, lengths=None, bucket=True) -> list:
    """One epoch's batches: index arrays into the data set.

    Without lengths (or with ``bucket=False``) a permutation cut into consecutive batches.  With
    lengths, the same permutation is cut into pools of 50 batches, each pool is sorted by length
    (stably) and cut into batches, and the batches are shuffled: each batch holds sequences of similar
    length (little padding, so little wasted work), while every epoch still sees a fresh order drawn
    from ``rng`` — reproducible from the model's seed.
    """
    order = rng.permutation(n)
    if lengths is None or not bucket:
        return [order[start:start + batch_size] for start in range(0, n, batch_size)]
    pool = 50 * batch_size
    batches = []
    for start in range(0, n, pool):
        chunk = order[start:start + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]
