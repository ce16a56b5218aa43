"""Helpers shared by the tests."""

import numpy as np

TOLERANCE = {np.float32: 1e-4, np.float64: 1e-10}


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


def make_rnn_problem(steps, batch, inputs, hidden, dtype, *, seed=0, h0=True, bias=True, scale=1.0):
    """Random inputs with torch-style weights U(-1/sqrt(H), 1/sqrt(H)), scaled."""
    rng = np.random.default_rng(seed)
    bound = scale / np.sqrt(max(hidden, 1))

    def uniform(*shape):
        return rng.uniform(-bound, bound, shape).astype(dtype)

    return {
        "x": rng.standard_normal((steps, batch, inputs)).astype(dtype),
        "h0": rng.standard_normal((batch, hidden)).astype(dtype) if h0 else None,
        "w_ih": uniform(hidden, inputs),
        "w_hh": uniform(hidden, hidden),
        "b_ih": uniform(hidden) if bias else None,
        "b_hh": uniform(hidden) if bias else None,
    }


def upstream_gradients(steps, batch, hidden, dtype, seed=1):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((steps, batch, hidden)).astype(dtype),
            rng.standard_normal((batch, hidden)).astype(dtype))
