"""The C++ kernels against the NumPy reference: every output and every gradient, on every SIMD path
this CPU runs, float32 and float64, 1 and 2 threads, tanh and relu."""

import numpy as np
import pytest

import rnnkit
from rnnkit import reference
from helpers import assert_close, make_rnn_problem, upstream_gradients

SHAPES = {
    "T1-B1": (1, 1, 4, 8),
    "odd-sizes": (6, 3, 13, 37),
    "batch-1": (9, 1, 7, 33),
    "batch-over-tile": (4, 29, 5, 19),
    "many-chunks": (40, 17, 3, 16),  # T*B > 512 rows: the backward reduces in several chunks
    "large": (5, 8, 64, 256),
}
GRADIENTS = ["dx", "dh0", "dw_ih", "dw_hh", "db_ih", "db_hh"]


def run_both(problem, nonlinearity, dy, dh_n):
    fast = rnnkit.rnn_forward(**problem, nonlinearity=nonlinearity)
    slow = reference.rnn_forward(**problem, nonlinearity=nonlinearity)
    fast_grads = rnnkit.rnn_backward(fast[2], dy, dh_n)
    slow_grads = reference.rnn_backward(slow[2], dy, dh_n)
    return fast, slow, fast_grads, slow_grads


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("num_threads", [1, 2])
def test_forward_and_backward_match_reference(isa, threads, num_threads, dtype, nonlinearity, shape):
    threads(num_threads)
    problem = make_rnn_problem(*shape, dtype)
    dy, dh_n = upstream_gradients(shape[0], shape[1], shape[3], dtype)
    fast, slow, fast_grads, slow_grads = run_both(problem, nonlinearity, dy, dh_n)
    assert_close(fast[0], slow[0], dtype, "y")
    assert_close(fast[1], slow[1], dtype, "h_n")
    for name, got, want in zip(GRADIENTS, fast_grads, slow_grads):
        assert_close(got, want, dtype, name)


@pytest.mark.parametrize(("h0", "bias", "with_dy", "with_dh_n"),
                         [(False, False, True, True), (True, False, False, True), (False, True, True, False),
                          (True, True, False, False)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_optional_arguments_match_reference(isa, dtype, h0, bias, with_dy, with_dh_n):
    problem = make_rnn_problem(5, 4, 6, 21, dtype, h0=h0, bias=bias)
    dy, dh_n = upstream_gradients(5, 4, 21, dtype)
    dy = dy if with_dy else None
    dh_n = dh_n if with_dh_n else None
    fast, slow, fast_grads, slow_grads = run_both(problem, "tanh", dy, dh_n)
    assert_close(fast[0], slow[0], dtype, "y")
    for name, got, want in zip(GRADIENTS, fast_grads, slow_grads):
        assert_close(got, want, dtype, name)


def test_one_bias_only_matches_reference(isa):
    problem = make_rnn_problem(3, 2, 4, 9, np.float64)
    problem["b_ih"] = None
    dy, dh_n = upstream_gradients(3, 2, 9, np.float64)
    fast, slow, fast_grads, slow_grads = run_both(problem, "relu", dy, dh_n)
    assert_close(fast[0], slow[0], np.float64, "y")
    assert fast_grads[4] is None
    assert_close(fast_grads[5], slow_grads[5], np.float64, "db_hh")


@pytest.mark.parametrize("layout", ["transposed", "negative-strides", "every-other", "read-only", "lists"])
def test_non_contiguous_and_read_only_inputs(isa, layout):
    dtype = np.float64
    problem = make_rnn_problem(4, 3, 5, 11, dtype)
    dy, dh_n = upstream_gradients(4, 3, 11, dtype)
    want = reference.rnn_forward(**problem)
    want_grads = reference.rnn_backward(want[2], dy, dh_n)
    given = dict(problem)
    if layout == "transposed":
        given = {k: np.asfortranarray(v) for k, v in problem.items()}
        dy = np.asfortranarray(dy)
    elif layout == "negative-strides":
        given = {k: np.flip(np.flip(v).copy()) for k, v in problem.items()}
        dy = np.flip(np.flip(dy).copy())
        assert all(s < 0 for s in given["x"].strides)
    elif layout == "every-other":
        given = {k: np.repeat(v, 2, axis=-1)[..., ::2] for k, v in problem.items()}
    elif layout == "read-only":
        for v in given.values():
            v.flags.writeable = False
        dy.flags.writeable = False
    elif layout == "lists":
        given = {k: v.tolist() for k, v in problem.items()}
    got = rnnkit.rnn_forward(**given)
    got_grads = rnnkit.rnn_backward(got[2], dy, dh_n)
    assert_close(got[0], want[0], dtype, "y")
    for name, g, w in zip(GRADIENTS, got_grads, want_grads):
        assert_close(g, w, dtype, name)


@pytest.mark.parametrize(("steps", "batch", "inputs", "hidden"),
                         [(0, 3, 4, 5), (4, 0, 4, 5), (4, 3, 0, 5), (4, 3, 4, 0)],
                         ids=["T=0", "B=0", "I=0", "H=0"])
def test_empty_dimensions_are_well_defined(isa, steps, batch, inputs, hidden):
    """T=0 gives h_n = h0 and dh0 = dh_n; B=0, I=0 and H=0 give empty or zero results — as the
    reference, which computes them with plain NumPy algebra."""
    dtype = np.float64
    problem = make_rnn_problem(steps, batch, inputs, hidden, dtype)
    dy, dh_n = upstream_gradients(steps, batch, hidden, dtype)
    fast, slow, fast_grads, slow_grads = run_both(problem, "tanh", dy, dh_n)
    assert fast[0].shape == (steps, batch, hidden)
    assert_close(fast[0], slow[0], dtype, "y")
    assert_close(fast[1], slow[1], dtype, "h_n")
    for name, got, want in zip(GRADIENTS, fast_grads, slow_grads):
        assert_close(got, want, dtype, name)
    if steps == 0:
        np.testing.assert_array_equal(fast[1], problem["h0"])
        np.testing.assert_array_equal(fast_grads[1], dh_n)


def test_outputs_have_input_dtype_and_y_is_read_only():
    problem = make_rnn_problem(3, 2, 4, 5, np.float32)
    y, h_n, cache = rnnkit.rnn_forward(**problem)
    assert y.dtype == h_n.dtype == np.float32
    assert not y.flags.writeable and h_n.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        y[0] = 0
    grads = rnnkit.rnn_backward(cache, None, None)
    assert all(g.dtype == np.float32 for g in grads)

