"""The one validation boundary in front of the kernels.

Every public entry point (the C++ path in ``functional`` and the NumPy oracle in ``reference``)
turns its arguments into C-contiguous float32/float64 arrays here, and refuses anything else with a
TypeError or ValueError that names the argument, what it got and what was expected.

Dtype rules: arrays (NumPy arrays, or objects that convert to one, such as CPU torch tensors) must be
float32 or float64, all the same.  Nested lists and scalars are data: they take the arrays' dtype
(float64 when every argument is a list).
"""

from __future__ import annotations

import numbers

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
NONLINEARITIES = ("tanh", "relu")


def fmt_shape(shape) -> str:
    shape = tuple(int(d) for d in shape)
    return "(" + ", ".join(map(str, shape)) + (",)" if len(shape) == 1 else ")")


def _to_array(name: str, value):
    """(array, dtype_is_binding): NumPy arrays and array objects keep their dtype; lists do not."""
    if isinstance(value, np.ndarray):
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


def check_shape(name: str, array, expected: tuple, why: str) -> None:
    if array is not None and tuple(array.shape) != tuple(expected):
        raise ValueError(f"{name} has shape {fmt_shape(array.shape)}; expected {fmt_shape(expected)} {why}")


def check_nonlinearity(nonlinearity) -> str:
    if not isinstance(nonlinearity, str) or nonlinearity not in NONLINEARITIES:
        raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    return nonlinearity


def rnn_forward_args(x, h0, w_ih, w_hh, b_ih, b_hh, nonlinearity):
    """Validated arrays (x, h0, w_ih, w_hh, b_ih, b_hh) of one dtype, for the vanilla cell."""
    check_nonlinearity(nonlinearity)
    a, _ = as_float_arrays(
        {"x": x, "h0": h0, "w_ih": w_ih, "w_hh": w_hh, "b_ih": b_ih, "b_hh": b_hh},
        optional=("h0", "b_ih", "b_hh"),
    )
    x, w_ih, w_hh = a["x"], a["w_ih"], a["w_hh"]
    check_ndim("x", x, 3, "(T, B, I)")
    check_ndim("w_hh", w_hh, 2, "(H, H)")
    check_ndim("w_ih", w_ih, 2, "(H, I)")
    steps, batch, inputs = x.shape
    hidden = w_hh.shape[0]
    check_shape("w_hh", w_hh, (hidden, hidden), "(w_hh must be square: (H, H))")
    check_shape("w_ih", w_ih, (hidden, inputs), f"(H, I) from w_hh {fmt_shape(w_hh.shape)} and x {fmt_shape(x.shape)}")
    check_shape("h0", a["h0"], (batch, hidden), f"(B, H) from x {fmt_shape(x.shape)} and w_hh {fmt_shape(w_hh.shape)}")
    check_shape("b_ih", a["b_ih"], (hidden,), f"(H,) from w_hh {fmt_shape(w_hh.shape)}")
    check_shape("b_hh", a["b_hh"], (hidden,), f"(H,) from w_hh {fmt_shape(w_hh.shape)}")
    return x, a["h0"], w_ih, w_hh, a["b_ih"], a["b_hh"]


def rnn_backward_args(dy, dh_n, steps: int, batch: int, hidden: int, dtype):
    """Validated (dy, dh_n), each None or an array of the forward's dtype and shape."""
    a, _ = as_float_arrays({"dy": dy, "dh_n": dh_n}, optional=("dy", "dh_n"), dtype=dtype)
    check_shape("dy", a["dy"], (steps, batch, hidden), "(T, B, H), the shape of the forward's y")
    check_shape("dh_n", a["dh_n"], (batch, hidden), "(B, H), the shape of the forward's h_n")
    return a["dy"], a["dh_n"]


def check_num_threads(n) -> int:
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"num_threads must be an int, got {type(n).__name__}")
    return int(n)
