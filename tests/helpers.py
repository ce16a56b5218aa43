"""Helpers shared by the tests: problems for every cell, and one way to call each API."""

import numpy as np

TOLERANCE = {np.float32: 1e-4, np.float64: 1e-10}
CELLS = ("tanh", "relu", "lstm", "gru")
GATES = {"tanh": 1, "relu": 1, "lstm": 4, "gru": 3}
STATES = {"tanh": ("h0",), "relu": ("h0",), "lstm": ("h0", "c0"), "gru": ("h0",)}


def assert_close(got, want, dtype, what=""):
    """Max-abs error relative to the reference tensor's max-abs, at the dtype's tolerance."""
    if want is None:
        assert got is None, f"{what}: expected None"
        return
    got = np.asarray(got)
    want = np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    assert got.dtype == np.dtype(dtype), f"{what}: dtype {got.dtype} != {np.dtype(dtype)}"
    scale = max(float(np.max(np.abs(want), initial=0.0)), 1e-30)
    error = float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64)), initial=0.0))
    assert error <= TOLERANCE[dtype] * scale, f"{what}: max error {error:.3g} > {TOLERANCE[dtype]:.0e} x {scale:.3g}"


def numeric_gradient(function, array, eps=1e-6):
    """Central differences of the scalar function() with respect to every element of array (changed in
    place and restored)."""
    grad = np.zeros_like(array)
    for index in np.ndindex(array.shape):
        saved = array[index]
        array[index] = saved + eps
        up = function()
        array[index] = saved - eps
        down = function()
        array[index] = saved
        grad[index] = (up - down) / (2 * eps)
    return grad


def make_problem(cell, steps, batch, inputs, hidden, dtype, *, seed=0, h0=True, bias=True, scale=1.0):
    """Keyword arguments for the cell's forward: random x and states, torch-style weights
    U(-1/sqrt(H), 1/sqrt(H)) times scale."""
    rng = np.random.default_rng(seed)
    bound = scale / np.sqrt(max(hidden, 1))
    rows = GATES[cell] * hidden

    def uniform(*shape):
        return rng.uniform(-bound, bound, shape).astype(dtype)

    problem = {"x": rng.standard_normal((steps, batch, inputs)).astype(dtype)}
    for name in STATES[cell]:
        problem[name] = rng.standard_normal((batch, hidden)).astype(dtype) if h0 else None
    problem.update(w_ih=uniform(rows, inputs), w_hh=uniform(rows, hidden),
                   b_ih=uniform(rows) if bias else None, b_hh=uniform(rows) if bias else None)
    return problem


def make_rnn_problem(steps, batch, inputs, hidden, dtype, **kwargs):
    return make_problem("tanh", steps, batch, inputs, hidden, dtype, **kwargs)


def upstream(cell, steps, batch, hidden, dtype, seed=1):
    """The gradients flowing into the backward: dy, dh_n (and dc_n for the LSTM)."""
    rng = np.random.default_rng(seed)
    grads = {"dy": rng.standard_normal((steps, batch, hidden)).astype(dtype),
             "dh_n": rng.standard_normal((batch, hidden)).astype(dtype)}
    if cell == "lstm":
        grads["dc_n"] = rng.standard_normal((batch, hidden)).astype(dtype)
    return grads


def upstream_gradients(steps, batch, hidden, dtype, seed=1):
    g = upstream("tanh", steps, batch, hidden, dtype, seed)
    return g["dy"], g["dh_n"]


def forward(api, cell, problem):
    """(outputs, cache): outputs are (y, h_n) or (y, h_n, c_n)."""
    if cell == "lstm":
        *outputs, cache = api.lstm_forward(**problem)
    elif cell == "gru":
        *outputs, cache = api.gru_forward(**problem)
    else:
        *outputs, cache = api.rnn_forward(**problem, nonlinearity=cell)
    return tuple(outputs), cache


def backward(api, cell, cache, grads):
    """The backward's gradients, in the API's order."""
    if cell == "lstm":
        return api.lstm_backward(cache, grads.get("dy"), grads.get("dh_n"), grads.get("dc_n"))
    if cell == "gru":
        return api.gru_backward(cache, grads.get("dy"), grads.get("dh_n"))
    return api.rnn_backward(cache, grads.get("dy"), grads.get("dh_n"))


def gradient_names(cell):
    states = ["dh0", "dc0"] if cell == "lstm" else ["dh0"]
    return ["dx", *states, "dw_ih", "dw_hh", "db_ih", "db_hh"]


def reference_loss(cell, problem, grads):
    """sum(y*dy) + sum(h_n*dh_n) [+ sum(c_n*dc_n)] of the reference forward: what the backward's
    gradients are gradients of (for central differences)."""
    from rnnkit import reference

    outputs, _ = forward(reference, cell, problem)
    total = np.sum(outputs[0] * grads["dy"]) + np.sum(outputs[1] * grads["dh_n"])
    if cell == "lstm":
        total += np.sum(outputs[2] * grads["dc_n"])
    return float(total)
