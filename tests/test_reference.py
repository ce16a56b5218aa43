"""The oracle checks itself: its gradients against central finite differences in float64."""

import numpy as np
import pytest

from rnnkit import reference
from helpers import make_rnn_problem, upstream_gradients

NAMES = ["x", "h0", "w_ih", "w_hh", "b_ih", "b_hh"]


def loss(problem, dy, dh_n, nonlinearity):
    y, h_n, _ = reference.rnn_forward(**problem, nonlinearity=nonlinearity)
    return float(np.sum(y * dy) + np.sum(h_n * dh_n))


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize(("steps", "batch", "inputs", "hidden"), [(1, 1, 1, 1), (4, 3, 5, 6)], ids=["tiny", "small"])
def test_reference_gradients_match_finite_differences(nonlinearity, steps, batch, inputs, hidden):
    problem = make_rnn_problem(steps, batch, inputs, hidden, np.float64, seed=3)
    dy, dh_n = upstream_gradients(steps, batch, hidden, np.float64)
    _, _, cache = reference.rnn_forward(**problem, nonlinearity=nonlinearity)
    grads = dict(zip(NAMES, reference.rnn_backward(cache, dy, dh_n)))
    eps = 1e-6
    for name in NAMES:
        value = problem[name]
        numeric = np.zeros_like(value)
        for index in np.ndindex(value.shape):
            saved = value[index]
            value[index] = saved + eps
            up = loss(problem, dy, dh_n, nonlinearity)
            value[index] = saved - eps
            down = loss(problem, dy, dh_n, nonlinearity)
            value[index] = saved
            numeric[index] = (up - down) / (2 * eps)
        np.testing.assert_allclose(grads[name], numeric, rtol=1e-6, atol=1e-7, err_msg=name)


def test_reference_backward_without_optional_arguments_matches_zeros():
    problem = make_rnn_problem(3, 2, 4, 5, np.float64, h0=False, bias=False)
    y, h_n, cache = reference.rnn_forward(**problem)
    dx, dh0, dw_ih, dw_hh, db_ih, db_hh = reference.rnn_backward(cache, None, None)
    assert db_ih is None and db_hh is None
    for g in (dx, dh0, dw_ih, dw_hh):
        assert not g.any()
    # dy given only through dh_n equals dy that is zero except at the last step
    _, dh_n = upstream_gradients(3, 2, 5, np.float64)
    dy = np.zeros_like(y)
    dy[-1] = dh_n
    a = reference.rnn_backward(cache, None, dh_n)
    b = reference.rnn_backward(cache, dy, None)
    for ga, gb in zip(a[:4], b[:4]):
        np.testing.assert_allclose(ga, gb, rtol=1e-13, atol=1e-13)


def test_reference_matches_its_equation_at_one_step():
    problem = make_rnn_problem(1, 2, 3, 4, np.float64)
    y, h_n, _ = reference.rnn_forward(**problem, nonlinearity="relu")
    p = problem
    expected = np.maximum(p["x"][0] @ p["w_ih"].T + p["b_ih"] + p["h0"] @ p["w_hh"].T + p["b_hh"], 0)
    np.testing.assert_allclose(y[0], expected, rtol=1e-14)
    np.testing.assert_array_equal(h_n, y[0])
