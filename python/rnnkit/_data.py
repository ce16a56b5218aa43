"""The models' data inside: inputs and targets as data sets of samples, each batch padded on demand.

``Sequences`` holds a whole data set (what ``Model._check_x`` / ``_check_y`` return), batch-first:

- rectangular data as one array ``values`` (N, T, ...), or (N, ...) without a time axis, and
  ``lengths`` None (every sample has all T steps: the path rectangular arrays always took);
- sequences of their own lengths packed end to end: ``flat`` (Σ T_i, ...) with ``offsets`` (N+1,)
  and ``lengths`` (N,) — never padded as a whole, so one long sequence costs its own length only.

``take(idx)`` gives the ``Batch`` of those samples, time-major as the kernels want it, padded (with
zeros) only to the longest sequence of the batch — which is why fit buckets sequences by length.

Rectangular data may stay out of core: ``values`` is then a ``Rows`` over a ``np.memmap``, an h5py
dataset or any array-like with ``shape``, ``dtype`` and NumPy indexing, and each batch reads only its
own rows (checked as they arrive).
"""

from __future__ import annotations

import zlib

import numpy as np


def out_of_core(value) -> bool:
    """Whether X is data to read batch by batch rather than load: a np.memmap, or an array-like that
    is not an array, a list or a tensor but has a shape, a dtype and indexing (h5py, zarr...)."""
    if isinstance(value, np.memmap):
        return True
    if isinstance(value, (np.ndarray, list, tuple, str, bytes)) or hasattr(value, "detach"):
        return False
    return all(hasattr(value, a) for a in ("shape", "dtype", "__getitem__")) and len(getattr(value, "shape", ())) > 0


class Rows:
    """Rows ``start`` .. ``stop`` of an out-of-core array-like ``source`` (N, ...), read on demand.

    Indexing with an index array reads those rows only — in increasing order and once each, as h5py
    requires, then put in the asked order — converted to ``dtype`` and passed through ``check(rows,
    index)`` (which refuses NaN, out-of-range ids... naming the row of ``source``).  ``view(slice)`` is
    a part of it, read nothing (validation_split)."""

    def __init__(self, source, dtype, check, name="X", start=0, stop=None):
        self.source, self.dtype, self.check, self.name = source, np.dtype(dtype), check, name
        self.start = start
        self.stop = int(source.shape[0]) if stop is None else stop
        self.reads = 0  # rows read so far (tests and the docs' claim: only the batches' rows)

    @property
    def shape(self) -> tuple:
        return (self.stop - self.start, *(int(d) for d in self.source.shape[1:]))

    @property
    def ndim(self) -> int:
        return len(self.source.shape)

    def __len__(self) -> int:
        return self.stop - self.start

    def view(self, part: slice) -> Rows:
        start, stop, step = part.indices(len(self))
        if step != 1:
            raise ValueError("a part of out-of-core data must be a contiguous range")
        rows = Rows(self.source, self.dtype, self.check, self.name, self.start + start, self.start + max(stop, start))
        return rows

    def __getitem__(self, idx) -> np.ndarray:
        if isinstance(idx, slice):
            idx = np.arange(*idx.indices(len(self)))
        idx = np.asarray(idx, np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"rows {idx.min()}..{idx.max()} of {len(self)}")
        wanted = idx + self.start
        unique, inverse = np.unique(wanted, return_inverse=True)
        if unique.size == 0:
            data = np.empty((0, *self.shape[1:]), self.dtype)
        elif unique.size == unique[-1] - unique[0] + 1:  # a contiguous run: one slice read
            data = np.asarray(self.source[int(unique[0]):int(unique[-1]) + 1])
        else:
            data = np.asarray(self.source[unique] if isinstance(self.source, np.ndarray) else self.source[list(unique)])
        self.reads += int(unique.size)
        data = data.astype(self.dtype, copy=False)
        self.check(data, unique)
        return data[inverse.reshape(-1)]

    def crc(self) -> int:
        """A CRC-32 of the first and the last 64 rows (what rnnkit.distributed and checkpoints compare
        of out-of-core data: reading it all would defeat the purpose)."""
        n = len(self)
        head = self[np.arange(min(n, 64))]
        tail = self[np.arange(max(n - 64, 0), n)]
        crc = zlib.crc32(memoryview(np.ascontiguousarray(head)).cast("B"))
        return zlib.crc32(memoryview(np.ascontiguousarray(tail)).cast("B"), crc)


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
    """A data set; see the module docstring.  ``ragged``: it came as a list of sequences
    (predictions of one per step then go back as a list)."""

    def __init__(self, values: np.ndarray, *, timed=True, ragged=False):
        self.values = values  # rectangular storage (None when packed)
        self.flat = self.offsets = self.lengths = None
        self.timed = timed
        self.ragged = ragged

    @classmethod
    def from_rows(cls, rows: list, dtype, feature_shape: tuple, ragged=True) -> Sequences:
        """Sequences (T_i, *feature_shape) of one dtype, packed end to end (stacked when all have
        one length: rectangular storage, the rectangular path)."""
        lengths = np.array([len(r) for r in rows], np.int64)
        if len(rows) and (lengths == lengths[0]).all():
            values = np.empty((len(rows), int(lengths[0]), *feature_shape), dtype)
            for i, row in enumerate(rows):
                values[i] = row
            return cls(values, ragged=ragged)
        data = cls(None, ragged=ragged)
        data.lengths = lengths
        data.offsets = np.zeros(len(rows) + 1, np.int64)
        np.cumsum(lengths, out=data.offsets[1:])
        data.flat = np.empty((int(data.offsets[-1]), *feature_shape), dtype)
        for i, row in enumerate(rows):
            data.flat[data.offsets[i]:data.offsets[i + 1]] = row
        return data

    @classmethod
    def from_padded(cls, values: np.ndarray, lengths) -> Sequences:
        """The real steps of a padded batch-first array, given each sample's length."""
        if lengths is None:
            return cls(values)
        return cls.from_rows([values[i, :n] for i, n in enumerate(lengths)], values.dtype, values.shape[2:])

    # -- what a data set is ---------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.lengths) if self.values is None else self.values.shape[0]

    @property
    def dtype(self):
        return (self.flat if self.values is None else self.values).dtype

    @property
    def feature_shape(self) -> tuple:
        if self.values is None:
            return self.flat.shape[1:]
        return self.values.shape[2:] if self.timed else self.values.shape[1:]

    @property
    def steps(self) -> int:
        """The longest sequence (T of rectangular data)."""
        if self.values is None:
            return int(self.lengths.max()) if len(self.lengths) else 0
        return self.values.shape[1]

    def step_lengths(self) -> np.ndarray:
        """Every sample's length (N,), also for rectangular data."""
        if self.lengths is not None:
            return self.lengths
        return np.full(len(self), self.steps, np.int64)

    def row(self, i: int) -> np.ndarray:
        """Sample i's real steps (a view)."""
        if self.values is None:
            return self.flat[self.offsets[i]:self.offsets[i + 1]]
        return self.values[[i]][0] if isinstance(self.values, Rows) else self.values[i]

    def rows(self) -> list:
        return [self.row(i) for i in range(len(self))]

    def real(self) -> np.ndarray:
        """Every real step of every sample, sample after sample: (Σ T_i, ...); rectangular timed
        data (N·T, ...); data without a time axis as it is."""
        if self.values is None:
            return self.flat
        if isinstance(self.values, Rows):
            return Sequences(self.values[np.arange(len(self))], timed=self.timed).real()
        if not self.timed:
            return self.values
        return self.values.reshape(-1, *self.feature_shape)

    def describe(self, name: str) -> str:
        """Shape, dtype and a CRC-32 of the contents (rnnkit.distributed compares them across ranks)."""
        if isinstance(self.values, Rows):
            return (f"{name} of shape {self.values.shape} ({self.dtype}) read from disk, CRC-32 of its first and "
                    f"last rows {self.values.crc():#010x}")
        arrays = [self.values] if self.values is not None else [self.flat, self.lengths]
        crc = 0
        for array in arrays:
            crc = zlib.crc32(memoryview(np.ascontiguousarray(array)).cast("B"), crc)
        if self.values is not None:
            return f"{name} of shape {self.values.shape} ({self.dtype}), CRC-32 {crc:#010x}"
        return (f"{name} of {len(self)} sequences of {self.flat.shape[0]} steps in all, features "
                f"{self.feature_shape} ({self.dtype}), CRC-32 {crc:#010x}")

    # -- parts of it ----------------------------------------------------------------------------------

    def subset(self, idx) -> Sequences:
        """The samples ``idx`` (a slice or indices) as a data set of their own, order kept."""
        if isinstance(self.values, Rows):
            return Sequences(self.values.view(idx), timed=self.timed, ragged=self.ragged)
        if self.values is not None:
            return Sequences(self.values[idx], timed=self.timed, ragged=self.ragged)
        picked = np.arange(len(self))[idx]
        return Sequences.from_rows([self.row(i) for i in picked], self.dtype, self.feature_shape, self.ragged)

    def take(self, idx) -> Batch:
        """The samples ``idx`` as a time-major batch padded (with zeros) to its own longest sequence."""
        if not self.timed:
            return Batch(self.values[idx], None, timed=False)
        if self.values is not None:
            return Batch(np.ascontiguousarray(np.swapaxes(self.values[idx], 0, 1)), None)
        lengths = self.lengths[idx]
        longest = int(lengths.max()) if lengths.size else 0
        steps = np.arange(longest)[:, None]
        # one gather, time-major: step t of row b is flat[offset_b + t] (the last real step, for the
        # padding, which is then zeroed)
        index = self.offsets[idx][None, :] + np.minimum(steps, np.maximum(lengths[None, :] - 1, 0))
        data = self.flat[index] if self.flat.shape[0] else np.zeros((longest, len(lengths), *self.feature_shape),
                                                                     self.dtype)
        padding = steps >= lengths[None, :]
        if padding.any():
            data[padding] = 0
            return Batch(data, lengths)
        return Batch(data, None)

    def padded(self) -> np.ndarray:
        """The whole data set as one batch-first array padded with zeros to the longest sequence
        (for small data and tests: the models themselves pad one batch at a time)."""
        if self.values is not None:
            return self.values[np.arange(len(self))] if isinstance(self.values, Rows) else self.values
        return np.ascontiguousarray(np.swapaxes(self.take(np.arange(len(self))).data, 0, 1))

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
