"""The oracle checks itself: its gradients against central finite differences in float64."""

import numpy as np
import pytest
from helpers import (
    CELLS,
    backward,
    forward,
    gradient_names,
    make_problem,
    numeric_gradient,
    reference_loss,
    upstream,
)
from rnnkit import reference

loss = reference_loss


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize(("steps", "batch", "inputs", "hidden"), [(1, 1, 1, 1), (4, 3, 5, 6)], ids=["tiny", "small"])
def test_reference_gradients_match_finite_differences(cell, steps, batch, inputs, hidden):
    problem = make_problem(cell, steps, batch, inputs, hidden, np.float64, seed=3, scale=2.0)
    grads = upstream(cell, steps, batch, hidden, np.float64)
    _, cache = forward(reference, cell, problem)
    analytic = dict(zip(gradient_names(cell), backward(reference, cell, cache, grads)))
    for name, value in problem.items():
        numeric = numeric_gradient(lambda: loss(cell, problem, grads), value)
        np.testing.assert_allclose(analytic["d" + name], numeric, rtol=1e-6, atol=1e-7, err_msg=f"{cell} d{name}")


@pytest.mark.parametrize("cell", CELLS)
def test_reference_backward_without_optional_arguments(cell):
    problem = make_problem(cell, 3, 2, 4, 5, np.float64, h0=False, bias=False)
    outputs, cache = forward(reference, cell, problem)
    grads = backward(reference, cell, cache, {})
    assert grads[-1] is None and grads[-2] is None
    for g in grads[:-2]:
        assert not g.any()
    # a gradient given through dh_n equals dy that is zero except at the last step
    dh_n = upstream(cell, 3, 2, 5, np.float64)["dh_n"]
    dy = np.zeros_like(outputs[0])
    dy[-1] = dh_n
    for a, b in zip(backward(reference, cell, cache, {"dh_n": dh_n}), backward(reference, cell, cache, {"dy": dy})):
        if a is not None:
            np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13)


def sigmoid(a):
    return 1 / (1 + np.exp(-a))


def test_reference_matches_the_equations_at_one_step():
    """One step written out by hand for each cell, independently of the reference's own code."""
    for cell in CELLS:
        p = make_problem(cell, 1, 2, 3, 4, np.float64, scale=2.0)
        outputs, _ = forward(reference, cell, p)
        x, h, w_ih, w_hh, b_ih, b_hh = p["x"][0], p["h0"], p["w_ih"], p["w_hh"], p["b_ih"], p["b_hh"]
        if cell in ("tanh", "relu"):
            pre = x @ w_ih.T + b_ih + h @ w_hh.T + b_hh
            expected = np.tanh(pre) if cell == "tanh" else np.maximum(pre, 0)
        elif cell == "lstm":
            i, f, g, o = np.split(x @ w_ih.T + b_ih + h @ w_hh.T + b_hh, 4, axis=1)
            c = sigmoid(f) * p["c0"] + sigmoid(i) * np.tanh(g)
            expected = sigmoid(o) * np.tanh(c)
            np.testing.assert_allclose(outputs[2], c, rtol=1e-13)
        else:
            xr, xz, xn = np.split(x @ w_ih.T + b_ih, 3, axis=1)
            hr, hz, hn = np.split(h @ w_hh.T + b_hh, 3, axis=1)
            r, z = sigmoid(xr + hr), sigmoid(xz + hz)
            expected = (1 - z) * np.tanh(xn + r * hn) + z * h
        np.testing.assert_allclose(outputs[0][0], expected, rtol=1e-13, err_msg=cell)
        np.testing.assert_array_equal(outputs[1], outputs[0][0])
