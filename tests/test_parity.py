"""The C++ kernels against the NumPy reference: every output and every gradient, for every cell, on
every SIMD path this CPU runs, float32 and float64, 1 and 2 threads."""

import numpy as np
import pytest
import rnnkit
from helpers import CELLS, assert_close, backward, forward, gradient_names, make_problem, upstream
from rnnkit import reference

SHAPES = {
    "T1-B1": (1, 1, 4, 8),
    "odd-sizes": (6, 3, 13, 37),
    "batch-1": (9, 1, 7, 33),
    "batch-over-tile": (4, 29, 5, 19),
    "many-chunks": (40, 17, 3, 16),  # T*B > 512 rows: the backward reduces in several chunks
    "large": (5, 8, 64, 256),
}


def check_against_reference(cell, problem, grads, dtype):
    fast_out, fast_cache = forward(rnnkit, cell, problem)
    slow_out, slow_cache = forward(reference, cell, problem)
    for name, got, want in zip(["y", "h_n", "c_n"], fast_out, slow_out):
        assert_close(got, want, dtype, name)
    fast_grads = backward(rnnkit, cell, fast_cache, grads)
    slow_grads = backward(reference, cell, slow_cache, grads)
    assert len(fast_grads) == len(gradient_names(cell))
    for name, got, want in zip(gradient_names(cell), fast_grads, slow_grads):
        assert_close(got, want, dtype, name)
    return fast_out, fast_grads


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("num_threads", [1, 2])
def test_forward_and_backward_match_reference(isa, threads, num_threads, dtype, cell, shape):
    threads(num_threads)
    check_against_reference(cell, make_problem(cell, *shape, dtype), upstream(cell, shape[0], shape[1], shape[3], dtype), dtype)


@pytest.mark.parametrize(("h0", "bias", "gradients"),
                         [(False, False, ("dy", "dh_n", "dc_n")), (True, False, ("dh_n",)), (False, True, ("dy",)),
                          (True, True, ()), (True, True, ("dc_n",))],
                         ids=["no-h0-no-bias", "only-dh_n", "only-dy", "no-gradients", "only-dc_n"])
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_optional_arguments_match_reference(isa, dtype, cell, h0, bias, gradients):
    problem = make_problem(cell, 5, 4, 6, 21, dtype, h0=h0, bias=bias)
    grads = {k: v for k, v in upstream(cell, 5, 4, 21, dtype).items() if k in gradients}
    _, fast_grads = check_against_reference(cell, problem, grads, dtype)
    if not grads:
        assert not any(np.any(g) for g in fast_grads if g is not None)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("missing", ["b_ih", "b_hh"])
def test_one_bias_only_matches_reference(isa, cell, missing):
    problem = make_problem(cell, 3, 2, 4, 9, np.float64)
    problem[missing] = None
    _, grads = check_against_reference(cell, problem, upstream(cell, 3, 2, 9, np.float64), np.float64)
    assert grads[-2 if missing == "b_ih" else -1] is None


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("layout", ["transposed", "negative-strides", "every-other", "read-only", "lists"])
def test_non_contiguous_and_read_only_inputs(isa, cell, layout):
    dtype = np.float64
    problem = make_problem(cell, 4, 3, 5, 11, dtype)
    grads = upstream(cell, 4, 3, 11, dtype)
    want, want_cache = forward(reference, cell, problem)
    want_grads = backward(reference, cell, want_cache, grads)
    if layout == "transposed":
        problem = {k: np.asfortranarray(v) for k, v in problem.items()}
        grads = {k: np.asfortranarray(v) for k, v in grads.items()}
    elif layout == "negative-strides":
        problem = {k: np.flip(np.flip(v).copy()) for k, v in problem.items()}
        grads = {k: np.flip(np.flip(v).copy()) for k, v in grads.items()}
        assert all(s < 0 for s in problem["x"].strides)
    elif layout == "every-other":
        problem = {k: np.repeat(v, 2, axis=-1)[..., ::2] for k, v in problem.items()}
        grads = {k: np.repeat(v, 2, axis=-1)[..., ::2] for k, v in grads.items()}
    elif layout == "read-only":
        for v in [*problem.values(), *grads.values()]:
            v.flags.writeable = False
    elif layout == "lists":
        problem = {k: v.tolist() for k, v in problem.items()}
    got, got_cache = forward(rnnkit, cell, problem)
    for name, g, w in zip(["y", "h_n", "c_n"], got, want):
        assert_close(g, w, dtype, name)
    for name, g, w in zip(gradient_names(cell), backward(rnnkit, cell, got_cache, grads), want_grads):
        assert_close(g, w, dtype, name)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize(("steps", "batch", "inputs", "hidden"),
                         [(0, 3, 4, 5), (4, 0, 4, 5), (4, 3, 0, 5), (4, 3, 4, 0)],
                         ids=["T=0", "B=0", "I=0", "H=0"])
def test_empty_dimensions_are_well_defined(isa, cell, steps, batch, inputs, hidden):
    """T=0 gives h_n = h0 and dh0 = dh_n; B=0, I=0 and H=0 give empty or zero results — as the
    reference, which computes them with plain NumPy algebra."""
    dtype = np.float64
    problem = make_problem(cell, steps, batch, inputs, hidden, dtype)
    grads = upstream(cell, steps, batch, hidden, dtype)
    outputs, grad_values = check_against_reference(cell, problem, grads, dtype)
    assert outputs[0].shape == (steps, batch, hidden)
    if steps == 0:
        np.testing.assert_array_equal(outputs[1], problem["h0"])
        np.testing.assert_array_equal(grad_values[1], grads["dh_n"])


@pytest.mark.parametrize("cell", CELLS)
def test_outputs_have_input_dtype_and_y_is_read_only(cell):
    problem = make_problem(cell, 3, 2, 4, 5, np.float32)
    outputs, cache = forward(rnnkit, cell, problem)
    assert all(o.dtype == np.float32 for o in outputs)
    assert not outputs[0].flags.writeable and all(o.flags.writeable for o in outputs[1:])
    with pytest.raises(ValueError, match="read-only"):
        outputs[0][0] = 0
    grads = backward(rnnkit, cell, cache, {})
    assert all(g.dtype == np.float32 for g in grads)
    assert grads[-1] is not grads[-2]  # each bias gets its own gradient array
