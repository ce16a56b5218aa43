"""The kernels' lengths, reverse and inference mode against the NumPy reference: every SIMD path this
CPU runs, float32 and float64, 1 and 2 threads, every cell; lengths with 0, T, all equal and unsorted."""

import numpy as np
import pytest
import rnnkit
from helpers import CELLS, assert_close, backward, forward, gradient_names, make_problem, upstream
from rnnkit import reference

LENGTHS = {
    "mixed": [5, 0, 7, 3, 7, 1],   # unsorted, with 0 and T
    "all-T": [7, 7, 7, 7, 7, 7],
    "all-equal": [4, 4, 4, 4, 4, 4],
    "all-zero": [0, 0, 0, 0, 0, 0],
    "one-step": [1, 2, 1, 1, 3, 1],
}
T, B, I, H = 7, 6, 5, 19


def call_forward(api, cell, problem, **options):
    return forward(api, cell, {**problem, **options})


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("lengths", LENGTHS.values(), ids=LENGTHS.keys())
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("num_threads", [1, 2])
def test_lengths_and_reverse_match_reference(isa, threads, num_threads, dtype, cell, lengths, reverse):
    threads(num_threads)
    problem = make_problem(cell, T, B, I, H, dtype)
    grads = upstream(cell, T, B, H, dtype)
    lengths = np.array(lengths)
    fast, fast_cache = call_forward(rnnkit, cell, problem, lengths=lengths, reverse=reverse)
    slow, slow_cache = call_forward(reference, cell, problem, lengths=lengths, reverse=reverse)
    for name, got, want in zip(["y", "h_n", "c_n"], fast, slow):
        assert_close(got, want, dtype, name)
    padding = np.arange(T)[:, None] >= lengths[None, :]
    assert not np.any(fast[0][padding]), "y must be 0 at padding"
    fast_grads = backward(rnnkit, cell, fast_cache, grads)
    slow_grads = backward(reference, cell, slow_cache, grads)
    for name, got, want in zip(gradient_names(cell), fast_grads, slow_grads):
        assert_close(got, want, dtype, name)
    assert not np.any(fast_grads[0][padding]), "dx must be 0 at padding"
    # inference: the same outputs, nothing saved
    infer, cache = call_forward(rnnkit, cell, problem, lengths=lengths, reverse=reverse, training=False)
    assert cache is None
    for name, got, want in zip(["y", "h_n", "c_n"], infer, fast):
        np.testing.assert_array_equal(got, want, err_msg=name)


@pytest.mark.parametrize("cell", CELLS)
def test_lengths_all_T_is_bitwise_no_lengths(isa, cell):
    problem = make_problem(cell, T, B, I, H, np.float32)
    grads = upstream(cell, T, B, H, np.float32)
    plain, plain_cache = call_forward(rnnkit, cell, problem)
    full, full_cache = call_forward(rnnkit, cell, problem, lengths=[T] * B)
    for got, want in zip(full + backward(rnnkit, cell, full_cache, grads),
                         plain + backward(rnnkit, cell, plain_cache, grads)):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("cell", CELLS)
def test_padding_is_never_read(isa, cell):
    """NaN in x and dy at padded positions changes nothing: no work is done on padding."""
    lengths = np.array(LENGTHS["mixed"])
    problem = make_problem(cell, T, B, I, H, np.float64)
    grads = upstream(cell, T, B, H, np.float64)
    want, want_cache = call_forward(rnnkit, cell, problem, lengths=lengths, reverse=True)
    want_grads = backward(rnnkit, cell, want_cache, grads)
    padding = np.arange(T)[:, None] >= lengths[None, :]
    problem["x"] = problem["x"].copy()
    problem["x"][padding] = np.nan
    grads["dy"] = grads["dy"].copy()
    grads["dy"][padding] = np.nan
    got, got_cache = call_forward(rnnkit, cell, problem, lengths=lengths, reverse=True)
    got_grads = backward(rnnkit, cell, got_cache, grads)
    for g, w in zip(got + got_grads, want + want_grads):
        if w is not None:
            np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("cell", CELLS)
def test_inference_long_sequence_matches_training_forward(isa, cell):
    """Inference runs the input projection a chunk at a time (here many chunks): same results."""
    steps, batch = 300, 4  # 1200 rows: three chunks of ~512
    problem = make_problem(cell, steps, batch, 8, 24, np.float32)
    lengths = np.array([300, 17, 299, 150])
    for kwargs in ({}, {"lengths": lengths}, {"lengths": lengths, "reverse": True}, {"reverse": True}):
        want, _ = call_forward(rnnkit, cell, problem, **kwargs)
        got, cache = call_forward(rnnkit, cell, problem, training=False, **kwargs)
        assert cache is None
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("cell", CELLS)
def test_backward_of_an_inference_forward_says_why_it_cannot(cell):
    problem = make_problem(cell, 3, 2, 4, 5, np.float32)
    _, cache = call_forward(rnnkit, cell, problem, training=False)
    with pytest.raises(ValueError, match="training=False"):
        backward(rnnkit, cell, cache, {})
