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


def _packed_rows(lengths):
    """For lengths sorted longest first: the (T·B) padded row of each packed row, in torch's
    PackedSequence order (step t's rows one after another)."""
    steps = int(lengths.max()) if lengths.size else 0
    return np.array([t * len(lengths) + b for t in range(steps) for b in range(len(lengths)) if t < lengths[b]],
                    np.int64)


@pytest.mark.parametrize("lengths", [[7, 7, 5, 3, 3, 1], [7, 7, 7, 7, 7, 7], [4, 4, 2, 2, 1, 1]],
                         ids=["mixed", "all-T", "shorter"])
@pytest.mark.parametrize("cell", ["tanh", "lstm", "gru"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("num_threads", [1, 2])
def test_packed_rows_give_the_padded_layouts_results_bitwise(isa, threads, num_threads, dtype, cell, lengths):
    """x, y, dy and dx as packed rows (N, .) in torch's PackedSequence order (what rnnkit.torch passes
    for a PackedSequence), against the same pass on zero-padded (T, B, .) arrays: both directions at
    once, the training forward, the backward with dx and dy, h0 and the final states — the same bits."""
    from rnnkit import _core
    from rnnkit.functional import SavedPass, run_backward, run_plans
    threads(num_threads)
    lengths = np.array(lengths, np.int64)
    steps, batch = int(lengths.max()), len(lengths)
    rows = _packed_rows(lengths)
    rng = np.random.default_rng(3)
    gates = {"tanh": 1, "lstm": 4, "gru": 3}[cell]
    weights = [[rng.uniform(-0.4, 0.4, shape).astype(dtype) for shape in
                ((gates * H, I), (gates * H, H), (gates * H,), (gates * H,))] for _ in range(2)]
    x_padded = rng.standard_normal((steps, batch, I)).astype(dtype)
    x_padded[np.arange(steps)[:, None] >= lengths[None, :]] = 0
    dy_padded = rng.standard_normal((steps, batch, 2 * H)).astype(dtype)
    dy_padded[np.arange(steps)[:, None] >= lengths[None, :]] = 0
    states0 = [tuple(rng.standard_normal((batch, H)).astype(dtype) for _ in range(2 if cell == "lstm" else 1))
               for _ in range(2)]

    def run(x, dy, out_shape, dx_shape):
        plans = [_core.Plan(cell, *w) for w in weights]
        y = np.empty((*out_shape, 2 * H), dtype)
        _, states_n, saved = run_plans(plans, x, states0, lengths, True, ys=[y[..., :H], y[..., H:]])
        dx = np.empty((*dx_shape, I), dtype)
        grads = run_backward([SavedPass(s, w[:2]) for s, w in zip(saved, weights)], [dy[..., :H], dy[..., H:]],
                             [None, None], dx, batch=batch)
        return y, states_n, dx, grads

    y_pad, states_pad, dx_pad, grads_pad = run(x_padded, dy_padded, (steps, batch), (steps, batch))
    flat = (steps * batch,)
    y_rows, states_rows, dx_rows, grads_rows = run(
        np.ascontiguousarray(x_padded.reshape(-1, I)[rows]), np.ascontiguousarray(dy_padded.reshape(-1, 2 * H)[rows]),
        (len(rows),), (len(rows),))
    np.testing.assert_array_equal(y_rows, y_pad.reshape(*flat, -1)[rows])
    np.testing.assert_array_equal(dx_rows, dx_pad.reshape(*flat, -1)[rows])
    for got, want in zip(states_rows, states_pad):
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)
    for got, want in zip(grads_rows, grads_pad):
        for a, b in zip(got[1:] + tuple(got[0]), want[1:] + tuple(want[0])):
            np.testing.assert_array_equal(a, b)


def test_packed_rows_refuse_what_they_cannot_run():
    from rnnkit import _core
    from rnnkit.functional import run_plans
    w = [np.zeros(s, np.float32) for s in ((H, I), (H, H), (H,), (H,))]
    plan = _core.Plan("tanh", *w)
    x = np.zeros((6, I), np.float32)
    with pytest.raises(ValueError, match="sorted longest first"):
        run_plans([plan], x, [None], np.array([1, 2, 3], np.int64), False)
    with pytest.raises(ValueError, match="need lengths"):
        _core.forward([plan], [False], x, [None], [None], None, False, [np.zeros((6, H), np.float32)],
                      [np.zeros((1, H), np.float32)], [None])
    with pytest.raises(ValueError, match=r"x must have shape \(5, 5\)"):  # N is the lengths' sum
        run_plans([plan], x, [None], np.array([3, 2], np.int64), False)
    with pytest.raises(ValueError, match="negative"):
        run_plans([plan], x, [None], np.array([3, -1], np.int64), False)
