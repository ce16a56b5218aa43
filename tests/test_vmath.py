"""The kernels' vectorised exp, tanh and sigmoid against libm (NumPy in extended precision), on
every SIMD path: the maximum errors the README documents, NaN, infinities, zeros and subnormals."""

import numpy as np
import pytest
import rnnkit
from rnnkit import _core

# Maximum error in units in the last place, as documented in the README (measured: exp 1.02,
# tanh 1.27, sigmoid 2.06 over the samples below, on every path: avx512, avx2 and scalar).
MAX_ULP = {"exp": 1.5, "tanh": 2.0, "sigmoid": 2.5}


def exact(function, x):
    x = x.astype(np.longdouble)
    with np.errstate(over="ignore"):
        if function == "exp":
            return np.exp(x)
        if function == "tanh":
            return np.tanh(x)
        return 1 / (1 + np.exp(-x))


def samples(dtype):
    rng = np.random.default_rng(7)
    finfo = np.finfo(dtype)
    top = float(np.log(finfo.max)) + 2
    values = np.concatenate([
        rng.uniform(-1, 1, 50_000), rng.uniform(-12, 12, 50_000), rng.uniform(-top, top, 50_000),
        np.linspace(-0.7, 0.7, 20_001),
    ]).astype(dtype)
    # and the whole float range: random bit patterns are uniform over the representable numbers,
    # subnormals and the largest finite values of both signs included
    bits = np.uint32 if dtype == np.float32 else np.uint64
    patterns = rng.integers(0, np.iinfo(bits).max, 100_000, dtype=bits, endpoint=True).view(dtype)
    return np.concatenate([values, patterns[np.isfinite(patterns)]])


@pytest.mark.parametrize("function", ["exp", "tanh", "sigmoid"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_error_in_ulps_is_bounded(isa, dtype, function):
    x = samples(dtype)
    got = _core.vector_math(function, x).astype(np.longdouble)
    want = exact(function, x)
    with np.errstate(over="ignore"):
        finite = np.isfinite(want.astype(dtype))
    spacing = np.maximum(np.spacing(np.abs(want[finite]).astype(dtype)), np.finfo(dtype).smallest_subnormal)
    ulps = np.abs(got[finite] - want[finite]) / spacing.astype(np.longdouble)
    assert float(ulps.max()) <= MAX_ULP[function], f"worst at x={x[finite][np.argmax(ulps)]!r}"
    # where the true value overflows, so does ours
    assert np.all(np.isinf(got[~finite]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_special_values(isa, dtype):
    f = np.finfo(dtype)
    x = np.array([np.nan, np.inf, -np.inf, 0.0, f.smallest_subnormal, -f.smallest_subnormal, f.max, -f.max], dtype)
    exp = _core.vector_math("exp", x)
    tanh = _core.vector_math("tanh", x)
    sigmoid = _core.vector_math("sigmoid", x)
    np.testing.assert_array_equal(exp, np.array([np.nan, np.inf, 0, 1, 1, 1, np.inf, 0], dtype))
    np.testing.assert_array_equal(tanh, np.array([np.nan, 1, -1, 0, f.smallest_subnormal, -f.smallest_subnormal, 1, -1], dtype))
    np.testing.assert_array_equal(sigmoid, np.array([np.nan, 1, 0, 0.5, 0.5, 0.5, 1, 0], dtype))


def test_subnormal_results_of_exp_are_rounded_once(isa):
    x = np.array([-740.0, -744.0, -745.0], np.float64)
    np.testing.assert_array_equal(_core.vector_math("exp", x), np.exp(x))
    assert rnnkit.simd_isa() == isa
