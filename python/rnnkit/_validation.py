"""The one validation boundary in front of the kernels.

Every public entry point (the C++ path in ``functional`` and the NumPy oracle in ``reference``)
turns its arguments into C-contiguous float32/float64 arrays here, and refuses anything else with a
TypeError or ValueError that names the argument, what it got and what was expected.

Dtype rules: arrays (NumPy arrays, or objects that convert to one, such as CPU torch tensors) must be
float32 or float64, all the same.  Nested lists and scalars are data: they take the arrays' dtype
(float64 when every argument is a list).
"""

from __future__ import annotations

import functools
import math
import numbers
import os

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
NONLINEARITIES = ("tanh", "relu")


def fmt_shape(shape) -> str:
    shape = tuple(int(d) for d in shape)
    return "(" + ", ".join(map(str, shape)) + (",)" if len(shape) == 1 else ")")


@functools.cache
def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not available on this platform
        return 1 << 62


def _human(nbytes: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB", "EB"):
        if nbytes < 1024 or unit == "EB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    return ""


def check_allocatable(name: str, shape, itemsize: int) -> None:
    """MemoryError, before anything is allocated, for an array larger than this machine's memory (a
    broadcast view can describe petabytes in a few bytes)."""
    nbytes = math.prod(shape) * itemsize
    if nbytes > _physical_memory():
        raise MemoryError(f"{name} of shape {fmt_shape(shape)} needs {_human(nbytes)}; "
                          f"this machine has {_human(_physical_memory())} of memory")


def _to_array(name: str, value):
    """(array, dtype_is_binding): NumPy arrays and array objects keep their dtype; lists do not."""
    if isinstance(value, np.ma.MaskedArray):
        # np.asarray would silently compute on the masked-out values
        raise TypeError(f"{name} is a masked array; fill it (a.filled(value)) or drop the masked entries first")
    if isinstance(value, np.ndarray):
        check_allocatable(name, value.shape, value.dtype.itemsize)
        if value.dtype.kind == "f" and not value.dtype.isnative:  # big-endian data from a file, say
            value = value.astype(value.dtype.newbyteorder("="))
        return value, True
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be an array of floats, got {type(value).__name__}")
    is_data = isinstance(value, (list, tuple, numbers.Real)) and not isinstance(value, bool)
    if not is_data and not (hasattr(value, "__array__") or hasattr(value, "__array_interface__")):
        raise TypeError(f"{name} must be an array of floats, got {type(value).__name__}")
    try:
        array = np.asarray(value)
    except (ValueError, TypeError, RuntimeError) as exc:
        raise ValueError(f"{name} could not be converted to an array: {exc}") from None
    return array, not is_data


def as_float_arrays(args: dict, optional: tuple = (), dtype=None) -> tuple[dict, np.dtype]:
    """Convert every argument to a C-contiguous array of one float dtype.

    ``args`` maps names to values; names in ``optional`` may be None (kept as None).  ``dtype`` forces
    the dtype (arrays of another dtype are refused) — used by the backward passes, whose dtype is the
    forward's.  Returns the converted arguments and the dtype.
    """
    # Fast path: every argument already a C-contiguous array of one float dtype (the usual case in a
    # training loop) needs no conversion.
    present = [a for a in args.values() if a is not None]
    if present and all(type(a) is np.ndarray and a.flags.c_contiguous for a in present):
        first = present[0].dtype
        if (dtype is None or first == dtype) and first in FLOAT_DTYPES and all(a.dtype == first for a in present):
            if all(args[n] is not None or n in optional for n in args):
                return dict(args), first
    converted: dict = {}
    binding: dict[str, np.dtype] = {}
    for name, value in args.items():
        if value is None:
            if name in optional:
                converted[name] = None
                continue
            raise TypeError(f"{name} must be an array of floats, got None")
        array, is_binding = _to_array(name, value)
        kind = array.dtype.kind
        if is_binding:
            if array.dtype not in FLOAT_DTYPES:
                raise TypeError(f"{name} has dtype {array.dtype}; expected float32 or float64")
            binding[name] = array.dtype
        elif kind not in "fiu":
            raise TypeError(f"{name} must contain real numbers, got an array of dtype {array.dtype}")
        converted[name] = array
    if dtype is not None:
        dtype = np.dtype(dtype)
        wrong = {n: d for n, d in binding.items() if d != dtype}
        if wrong:
            name, got = next(iter(wrong.items()))
            raise TypeError(f"{name} has dtype {got}; expected {dtype} (the dtype of the forward pass)")
    elif binding:
        dtypes = set(binding.values())
        if len(dtypes) > 1:
            listing = ", ".join(f"{n}: {d}" for n, d in binding.items())
            raise TypeError(f"all arrays must have the same dtype (float32 or float64), got {listing}")
        dtype = dtypes.pop()
    else:
        dtype = np.dtype(np.float64)
    for name, array in converted.items():
        if array is not None:
            converted[name] = np.ascontiguousarray(array, dtype=dtype)
    return converted, dtype


def check_ndim(name: str, array: np.ndarray, ndim: int, meaning: str) -> None:
    if array.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions {meaning}, got shape {fmt_shape(array.shape)}")


def check_shape(name: str, array, expected: tuple, why) -> None:
    """``why`` is a string, or a function returning one (so that no message is built on success)."""
    if array is not None and array.shape != tuple(expected):
        reason = why() if callable(why) else why
        raise ValueError(f"{name} has shape {fmt_shape(array.shape)}; expected {fmt_shape(expected)} {reason}")


def check_nonlinearity(nonlinearity) -> str:
    if not isinstance(nonlinearity, str) or nonlinearity not in NONLINEARITIES:
        raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    return nonlinearity


def check_flag(name: str, value) -> bool:
    """A keyword switch such as ``reverse`` or ``training``: True or False (np.bool_ too), nothing else —
    not 0 / 1, not None, not a string (``bool("False")`` is True)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool (True or False), got {type(value).__name__} {value!r}")
    return bool(value)


def check_lengths(lengths, steps: int, batch: int):
    """None, or the sequence lengths as a C-contiguous int64 array of shape (B,), each in [0, T].

    Accepts lists of ints, NumPy arrays of any integer dtype and objects that convert to one (CPU torch
    tensors).  Refuses, with a ValueError naming ``lengths``, another shape, a value outside [0, T], and
    anything that is not integers: floats (even whole-valued ones: 3.0 is more often a mistake than a
    length), NaN, booleans.
    """
    if lengths is None:
        return None
    if isinstance(lengths, np.ma.MaskedArray):
        raise ValueError("lengths is a masked array; expected a (B,) array of integers")
    if isinstance(lengths, (list, tuple)) and len(lengths) == 0:
        array = np.zeros(0, np.int64)  # np.asarray([]) is float64
    else:
        try:
            array = np.asarray(lengths)
        except (ValueError, TypeError, RuntimeError) as exc:
            raise ValueError(f"lengths could not be converted to an array: {exc}") from None
    if array.shape != (batch,):
        raise ValueError(f"lengths has shape {fmt_shape(array.shape)}; expected (B,) = ({batch},), "
                         f"one length per sequence of the batch")
    kind = array.dtype.kind
    if kind == "b":
        raise ValueError("lengths must be integers, got booleans (dtype bool); expected a (B,) array of integers "
                         "in [0, T]")
    if kind == "f" and np.isnan(array).any():
        index = int(np.flatnonzero(np.isnan(array))[0])
        raise ValueError(f"lengths must be integers, got NaN at lengths[{index}]")
    if kind not in "iu":
        hint = " (convert with .astype(np.int64) if the values are whole numbers)" if kind == "f" else ""
        raise ValueError(f"lengths must be integers, got an array of dtype {array.dtype}{hint}")
    bad = np.flatnonzero((array < 0) | (array > steps))  # compared in the array's own dtype: no overflow
    if bad.size:
        index = int(bad[0])
        raise ValueError(f"lengths[{index}] = {int(array[index])} is out of range; "
                         f"expected 0 <= length <= T = {steps}")
    return np.ascontiguousarray(array, dtype=np.int64)


# The cells as the Python side knows them (the kernels' own table is cpp/src/cells.hpp): per layer
# cell name, its kind (which functional forward/backward pair), gate blocks G and states (h[, c]).
CELL_KINDS = {"tanh": "rnn", "relu": "rnn", "lstm": "lstm", "gru": "gru"}
GATES = {"rnn": 1, "lstm": 4, "gru": 3}
STATES = {"rnn": 1, "lstm": 2, "gru": 1}
# Per (t, b): the floats a forward allocates in units of H — y, plus what the backward needs saved
# (LSTM: gates and c_t; GRU: gates and W_hn h + b_hn).
OUTPUT_WIDTH = {"rnn": 1, "lstm": 6, "gru": 5}


def _check_output_size(cell, x, w_hh) -> None:
    """Refuse, before converting any input, a forward whose outputs cannot fit in memory."""
    x_shape, w_shape = getattr(x, "shape", None), getattr(w_hh, "shape", None)
    if x_shape is None or w_shape is None or len(x_shape) != 3 or len(w_shape) != 2:
        return  # (lists are already materialised; wrong ndims are reported later)
    itemsize = getattr(getattr(x, "dtype", None), "itemsize", 8)
    shape = (x_shape[0], x_shape[1], OUTPUT_WIDTH[cell] * w_shape[1])
    check_allocatable(f"the output y{' with what the backward needs' if cell != 'rnn' else ''}", shape, itemsize)


def sequence_forward_args(cell: str, x, states: dict, w_ih, w_hh, b_ih, b_hh):
    """Validated arrays for one direction of a recurrent layer.

    ``cell`` is "rnn", "lstm" or "gru" (G = 1, 4, 3 gate blocks); ``states`` maps the initial-state
    names ("h0", and "c0" for the LSTM) to arrays or None.  Returns (x, states, w_ih, w_hh, b_ih, b_hh)
    as C-contiguous arrays of one float dtype.
    """
    _check_output_size(cell, x, w_hh)
    a, _ = as_float_arrays(
        {"x": x, **states, "w_ih": w_ih, "w_hh": w_hh, "b_ih": b_ih, "b_hh": b_hh},
        optional=(*states, "b_ih", "b_hh"),
    )
    x, w_ih, w_hh = a["x"], a["w_ih"], a["w_hh"]
    check_ndim("x", x, 3, "(T, B, I)")
    check_weights(cell, w_ih, w_hh, a["b_ih"], a["b_hh"], x=x)
    steps, batch, inputs = x.shape
    hidden = w_hh.shape[1]
    for name in states:
        check_shape(name, a[name], (batch, hidden),
                    lambda: f"= (B, H) from x {fmt_shape(x.shape)} and w_hh {fmt_shape(w_hh.shape)}")
    return x, {name: a[name] for name in states}, w_ih, w_hh, a["b_ih"], a["b_hh"]


def check_weights(cell: str, w_ih, w_hh, b_ih, b_hh, x=None) -> None:
    """The shapes of one direction's converted weights for a cell kind ("rnn", "lstm", "gru"): w_ih
    (G*H, I), w_hh (G*H, H), biases (G*H,) or None; I is x's (T, B, I) last axis when x is given."""
    gates = GATES[cell]
    g = "G*H" if gates > 1 else "H"
    check_ndim("w_hh", w_hh, 2, f"({g}, H)")
    check_ndim("w_ih", w_ih, 2, f"({g}, I)")
    hidden = w_hh.shape[1]
    inputs = x.shape[2] if x is not None else w_ih.shape[1]
    gate_note = f" with G = {gates} gate blocks" if gates > 1 else ""
    from_x = f" and x {fmt_shape(x.shape)}" if x is not None else ""
    check_shape("w_hh", w_hh, (gates * hidden, hidden), lambda: f"= ({g}, H){gate_note}")
    check_shape("w_ih", w_ih, (gates * hidden, inputs),
                lambda: f"= ({g}, I){gate_note}, from w_hh {fmt_shape(w_hh.shape)}{from_x}")
    for name, bias in (("b_ih", b_ih), ("b_hh", b_hh)):
        check_shape(name, bias, (gates * hidden,), lambda: f"= ({g},) from w_hh {fmt_shape(w_hh.shape)}")


def rnn_forward_args(x, h0, w_ih, w_hh, b_ih, b_hh, nonlinearity):
    """Validated arrays (x, h0, w_ih, w_hh, b_ih, b_hh) of one dtype, for the vanilla cell."""
    check_nonlinearity(nonlinearity)
    x, states, w_ih, w_hh, b_ih, b_hh = sequence_forward_args("rnn", x, {"h0": h0}, w_ih, w_hh, b_ih, b_hh)
    return x, states["h0"], w_ih, w_hh, b_ih, b_hh


def sequence_backward_args(gradients: dict, steps: int, batch: int, hidden: int, dtype) -> dict:
    """Validated upstream gradients: "dy" (T, B, H) and the final-state ones ("dh_n", "dc_n") (B, H),
    each None or an array of the forward's dtype."""
    a, _ = as_float_arrays(gradients, optional=tuple(gradients), dtype=dtype)
    for name, array in a.items():
        if name == "dy":
            check_shape("dy", array, (steps, batch, hidden), "= (T, B, H), the shape of the forward's y")
        else:
            check_shape(name, array, (batch, hidden), lambda name=name: f"= (B, H), the shape of the forward's {name[1:]}")
    return a


def rnn_backward_args(dy, dh_n, steps: int, batch: int, hidden: int, dtype):
    """Validated (dy, dh_n), each None or an array of the forward's dtype and shape."""
    a = sequence_backward_args({"dy": dy, "dh_n": dh_n}, steps, batch, hidden, dtype)
    return a["dy"], a["dh_n"]


def check_num_threads(n) -> int:
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"num_threads must be an int, got {type(n).__name__}")
    return int(n)


def check_token_ids(name: str, ids: np.ndarray, vocab: int) -> None:
    """Integer token ids all in [0, vocab); else ValueError naming the first one out of range (C
    order) and its position."""
    bad = (ids < 0) | (ids >= vocab)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        index = f"[{', '.join(map(str, where))}]" if where else ""
        raise ValueError(f"{name}{index} = {int(ids[where])} is out of range; token ids must lie in "
                         f"[0, vocab_size) = [0, {vocab})")
