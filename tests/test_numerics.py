"""Long sequences, saturation and overflow: finite where the mathematics is finite, inf where it
overflows, and never undefined behaviour (the sanitizer build runs these too)."""

import numpy as np
import pytest
import rnnkit
from helpers import CELLS, backward, forward, make_problem, upstream


@pytest.mark.parametrize("cell", ["tanh", "lstm", "gru"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_ten_thousand_saturated_steps_stay_finite(isa, cell, dtype):
    steps, batch, inputs, hidden = 10_000, 2, 3, 8
    problem = make_problem(cell, steps, batch, inputs, hidden, dtype, scale=30.0)  # weights far into saturation
    problem["x"] = problem["x"] * 100
    outputs, cache = forward(rnnkit, cell, problem)
    grads = backward(rnnkit, cell, cache, upstream(cell, steps, batch, hidden, dtype))
    for array in (*outputs, *grads):
        assert np.all(np.isfinite(array))
    # tanh and o * tanh(c) lie in [-1, 1]; the GRU's h_t is a convex combination of tanh and h_{t-1}
    bound = max(1.0, float(np.abs(problem["h0"]).max())) if cell == "gru" else 1.0
    assert np.all(np.abs(outputs[0]) <= bound)


def test_relu_that_overflows_gives_inf(isa):
    """h_t = relu(2 h_{t-1} + 1) doubles until it overflows float32 (after ~128 steps), then stays inf."""
    x = np.zeros((200, 1, 1), np.float32)
    y, h_n, cache = rnnkit.rnn_forward(x, np.ones((1, 1), np.float32), np.zeros((1, 1), np.float32),
                                       np.full((1, 1), 2, np.float32), np.ones(1, np.float32), None,
                                       nonlinearity="relu")
    assert np.isfinite(y[100]).all() and y[100, 0, 0] > 1e30
    assert np.isinf(y[-1]).all() and np.isinf(h_n).all() and (y[-1] > 0).all()
    grads = rnnkit.rnn_backward(cache, None, np.ones((1, 1), np.float32))
    assert np.isinf(grads[3]).all()  # dW_hh sums dpre * h_prev with h_prev = inf


@pytest.mark.parametrize("cell", CELLS)
def test_nan_inputs_propagate_instead_of_vanishing(cell):
    problem = make_problem(cell, 3, 2, 4, 5, np.float64)
    problem["x"][1, 0, 0] = np.nan
    outputs, _ = forward(rnnkit, cell, problem)
    assert np.isnan(outputs[0][1:, 0]).all()       # the poisoned sequence, from step 1 on
    assert np.isfinite(outputs[0][:, 1]).all()     # the other sequence is untouched
