"""Sequences of their own lengths: ``pad_sequences`` turns a list of them into one padded array and
its lengths, the form ``RNN.forward(x, lengths=...)`` and the kernels take.

    x, lengths = rnnkit.pad_sequences([np.ones((3, 2)), np.ones((5, 2))])   # x (2, 5, 2), lengths [3 5]
"""

from __future__ import annotations

import numpy as np

from . import _validation as v

__all__ = ["pad_sequences"]


def _to_numpy(value):
    """Torch tensors become NumPy arrays (what layers.to_numpy does, without importing the layers)."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        return value.detach().cpu().numpy()
    return value


def as_sequence_list(name: str, seqs) -> list:
    """The items of a list or tuple of sequences as NumPy arrays of at least one dimension."""
    if isinstance(seqs, np.ndarray) or not isinstance(seqs, (list, tuple)):
        raise TypeError(f"{name} must be a list or tuple of arrays (one per sequence), got {type(seqs).__name__}")
    arrays = []
    for i, seq in enumerate(seqs):
        seq = _to_numpy(seq)
        if isinstance(seq, (str, bytes)) or seq is None:
            raise TypeError(f"{name}[{i}] must be an array of numbers, got {type(seq).__name__}")
        if isinstance(seq, (list, tuple)) and len(seq) == 0:
            array = np.zeros(0)  # an empty sequence: its dtype comes from the others
        else:
            try:
                array = np.asarray(seq)
            except (ValueError, TypeError) as exc:
                raise ValueError(f"{name}[{i}] could not be converted to an array: {exc}") from None
        if array.dtype.kind not in "biuf":
            raise TypeError(f"{name}[{i}] must contain real numbers, got an array of dtype {array.dtype}")
        if array.ndim == 0:
            raise ValueError(f"{name}[{i}] is a scalar; each sequence must have a first (time) axis")
        arrays.append(array)
    return arrays


def pad_sequences(seqs, *, batch_first=True, padding_value=0.0, dtype=None):
    """Pad a list of sequences (T_i, ...) to one array; returns ``(x, lengths)``.

    ``x`` is (N, T_max, ...) — (T_max, N, ...) with ``batch_first=False`` — where T_max is the
    longest sequence, each sequence's steps first and ``padding_value`` after; ``lengths`` is the
    (N,) int64 array of the T_i.  Every sequence must have the same trailing shape (its features).
    ``dtype`` defaults to the sequences' common dtype (as ``numpy.result_type``; an empty sequence
    does not take part).  Sequences may be NumPy arrays, nested lists or CPU torch tensors.
    Like ``torch.nn.utils.rnn.pad_sequence`` (which returns no lengths) and
    ``keras.utils.pad_sequences`` with ``padding="post"`` (which truncates; this never does).
    """
    if not isinstance(batch_first, (bool, np.bool_)):
        raise TypeError(f"batch_first must be a bool, got {type(batch_first).__name__}")
    arrays = as_sequence_list("seqs", seqs)
    if not arrays:
        raise ValueError("seqs is empty; pad_sequences needs at least one sequence (to know the feature shape)")
    # (an empty list or 1-D array is an empty sequence of any feature shape)
    shaped = [i for i, a in enumerate(arrays) if not (a.size == 0 and a.ndim == 1)]
    first = shaped[0] if shaped else 0
    features = arrays[first].shape[1:]
    for i in shaped:
        if arrays[i].shape[1:] != features:
            raise ValueError(f"seqs[{i}] has shape {v.fmt_shape(arrays[i].shape)} and seqs[{first}] has shape "
                             f"{v.fmt_shape(arrays[first].shape)}: every sequence needs the same shape after its "
                             f"first (time) axis, {v.fmt_shape(features)}")
    if dtype is None:
        dtypes = [a.dtype for a in arrays if a.size]
        out_dtype = np.result_type(*dtypes) if dtypes else np.dtype(np.float64)
    else:
        try:
            out_dtype = np.dtype(dtype)
        except TypeError:
            raise TypeError(f"dtype must be a NumPy dtype or None, got {dtype!r}") from None
        if out_dtype.kind not in "biuf":
            raise TypeError(f"dtype must be a numeric dtype, got {out_dtype}")
    lengths = np.array([a.shape[0] for a in arrays], np.int64)
    steps = int(lengths.max())
    v.check_allocatable("the padded array", (len(arrays), steps, *features), out_dtype.itemsize)
    try:
        x = np.full((len(arrays), steps, *features), padding_value, dtype=out_dtype)
    except (ValueError, TypeError, OverflowError) as exc:
        raise ValueError(f"padding_value {padding_value!r} does not fit dtype {out_dtype}: {exc}") from None
    for i, array in enumerate(arrays):
        if array.shape[0]:
            x[i, :array.shape[0]] = array
    if not batch_first:
        x = np.ascontiguousarray(np.swapaxes(x, 0, 1))
    return x, lengths
