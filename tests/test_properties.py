"""Property-based tests: random shapes (zeros included), dtypes, memory layouts (transposed, negative
strides, every other element, read-only, nested lists) and None-ness, for every cell.  Every call
either matches the reference or raises one of the documented exceptions."""

import numpy as np
import rnnkit
from helpers import CELLS, STATES, assert_close, backward, forward, gradient_names, make_problem, upstream
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rnnkit import reference

ALLOWED = (TypeError, ValueError, MemoryError, OverflowError)
LAYOUTS = ["contiguous", "fortran", "negative-strides", "every-other", "read-only", "list"]
SETTINGS = settings(max_examples=120, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def relayout(array, layout):
    """The same values in another memory layout."""
    if array is None:
        return None
    if layout == "fortran":
        return np.asfortranarray(array)
    if layout == "negative-strides":
        return np.flip(np.flip(array).copy()) if array.ndim else array
    if layout == "every-other":
        return np.repeat(array, 2, axis=-1)[..., ::2] if array.ndim else array
    if layout == "read-only":
        out = array.copy()
        out.flags.writeable = False
        return out
    if layout == "list":  # (an empty array's shape cannot survive the trip: [] is (0,))
        return array.tolist() if array.size else array
    return array


@st.composite
def cases(draw):
    cell = draw(st.sampled_from(CELLS))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    shape = tuple(draw(st.integers(0, hi)) for hi in (6, 5, 7, 9))
    problem = make_problem(cell, *shape, dtype, seed=draw(st.integers(0, 2**16)),
                           h0=draw(st.booleans()), bias=draw(st.booleans()), scale=draw(st.sampled_from([0.5, 1, 3])))
    grads = {k: v for k, v in upstream(cell, shape[0], shape[1], shape[3], dtype).items() if draw(st.booleans())}
    layouts = {name: draw(st.sampled_from(LAYOUTS)) for name in [*problem, *grads]}
    if all(layouts[n] == "list" for n in problem):  # all-list input would be float64 by definition
        layouts["x"] = "contiguous"
    return cell, dtype, problem, grads, layouts


@SETTINGS
@given(cases())
def test_every_valid_input_matches_the_reference(case):
    cell, dtype, problem, grads, layouts = case
    want, want_cache = forward(reference, cell, problem)
    want_grads = backward(reference, cell, want_cache, grads)
    given_problem = {k: relayout(v, layouts[k]) for k, v in problem.items()}
    given_grads = {k: relayout(v, layouts[k]) if layouts[k] != "list" else v for k, v in grads.items()}
    got, got_cache = forward(rnnkit, cell, given_problem)
    for name, g, w in zip(["y", "h_n", "c_n"], got, want):
        assert_close(g, w, dtype, name)
    for name, g, w in zip(gradient_names(cell), backward(rnnkit, cell, got_cache, given_grads), want_grads):
        assert_close(g, w, dtype, name)


BAD_VALUES = st.one_of(
    st.none(), st.integers(-3, 3), st.text(max_size=3), st.just({}),
    st.sampled_from([np.int32, np.int64, np.bool_, np.complex128, np.float16, object, np.uint8]).map(
        lambda d: np.zeros((2, 3), dtype=d)),
    st.lists(st.integers(0, 4), min_size=0, max_size=4).map(lambda s: np.zeros(s, np.float64)),
    st.just(np.broadcast_to(np.float64(1), (10**7, 10**7))),
    st.just([[1.0, 2.0], [3.0]]),
)


@SETTINGS
@given(st.sampled_from(CELLS), st.data())
def test_any_corrupted_argument_is_refused_or_harmless(cell, data):
    """Replace one argument of a valid call by something arbitrary: the call raises one of the
    documented exceptions, or — where the replacement is still valid data — matches the reference."""
    problem = make_problem(cell, 3, 2, 4, 5, np.float64)
    name = data.draw(st.sampled_from(list(problem)))
    problem[name] = data.draw(BAD_VALUES)
    try:
        got, _ = forward(rnnkit, cell, problem)
    except ALLOWED:
        return
    want, _ = forward(reference, cell, problem)  # accepted: then the oracle accepts it too
    for g, w in zip(got, want):
        assert_close(g, w, np.float64)


def test_states_names_cover_every_cell():
    assert set(STATES) == set(CELLS)
