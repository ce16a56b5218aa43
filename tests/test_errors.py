"""Bad input is refused with a TypeError or ValueError that names the argument, what it got and what
was expected — by the C++ path and the reference alike."""

import re

import numpy as np
import pytest
import rnnkit
from helpers import CELLS, STATES, make_problem, make_rnn_problem
from helpers import backward as run_backward
from helpers import forward as run_forward
from rnnkit import reference

BACKENDS = {"cpp": rnnkit, "numpy": reference}


@pytest.fixture(params=BACKENDS.keys())
def api(request):
    return BACKENDS[request.param]


def good(dtype=np.float32):
    return make_rnn_problem(4, 3, 5, 6, dtype)


def call(api, **changes):
    problem = {**good(), **changes}
    return api.rnn_forward(**problem)


@pytest.mark.parametrize(("name", "value", "pattern"), [
    ("x", np.zeros((4, 3), np.float32), r"x must have 3 dimensions \(T, B, I\), got shape \(4, 3\)"),
    ("w_hh", np.zeros((6,), np.float32), r"w_hh must have 2 dimensions \(H, H\), got shape \(6,\)"),
    ("w_ih", np.zeros((6, 5, 1), np.float32), r"w_ih must have 2 dimensions \(H, I\), got shape \(6, 5, 1\)"),
    ("w_hh", np.zeros((6, 7), np.float32), r"w_hh has shape \(6, 7\); expected \(7, 7\) = \(H, H\)"),
    ("w_ih", np.zeros((7, 5), np.float32), r"w_ih has shape \(7, 5\); expected \(6, 5\)"),
    ("w_ih", np.zeros((6, 4), np.float32), r"w_ih has shape \(6, 4\); expected \(6, 5\)"),
    ("h0", np.zeros((2, 6), np.float32), r"h0 has shape \(2, 6\); expected \(3, 6\)"),
    ("h0", np.zeros((3, 5), np.float32), r"h0 has shape \(3, 5\); expected \(3, 6\)"),
    ("h0", np.zeros((1, 3, 6), np.float32), r"h0 has shape \(1, 3, 6\); expected \(3, 6\)"),
    ("b_ih", np.zeros((5,), np.float32), r"b_ih has shape \(5,\); expected \(6,\)"),
    ("b_hh", np.zeros((6, 1), np.float32), r"b_hh has shape \(6, 1\); expected \(6,\)"),
    ("x", [[[1.0, 2.0]], [[3.0]]], r"x could not be converted to an array"),
])
def test_shape_errors_name_the_argument(api, name, value, pattern):
    with pytest.raises(ValueError, match=pattern):
        call(api, **{name: value})


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.bool_, np.complex64, np.float16, object, "U3"],
                         ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", ["x", "h0", "w_ih", "w_hh", "b_ih", "b_hh"])
def test_non_float_arrays_are_refused(api, name, dtype):
    problem = good(np.float64)
    bad = problem[name].astype(dtype)
    with pytest.raises(TypeError, match=re.escape(name)):
        api.rnn_forward(**{**problem, name: bad})


def test_mixed_dtypes_are_refused(api):
    problem = good(np.float32)
    problem["w_hh"] = problem["w_hh"].astype(np.float64)
    with pytest.raises(TypeError, match=r"same dtype .*w_hh: float64"):
        api.rnn_forward(**problem)


@pytest.mark.parametrize("name", ["x", "w_ih", "w_hh"])
def test_none_for_a_required_array_is_refused(api, name):
    with pytest.raises(TypeError, match=f"{name} must be an array of floats, got None"):
        call(api, **{name: None})


@pytest.mark.parametrize("value", ["abc", {"a": 1}, object()], ids=["str", "dict", "object"])
def test_non_arrays_are_refused(api, value):
    with pytest.raises(TypeError, match="x must be an array of floats"):
        call(api, x=value)


def test_nested_lists_of_floats_take_the_arrays_dtype(api):
    problem = good(np.float32)
    problem["x"] = problem["x"].tolist()
    y, _, _ = api.rnn_forward(**problem)
    assert y.dtype == np.float32


@pytest.mark.parametrize("value", ["sigmoid", "TANH", None, 1])
def test_unknown_nonlinearity_is_refused(api, value):
    with pytest.raises(ValueError, match="nonlinearity must be 'tanh' or 'relu'"):
        api.rnn_forward(**good(), nonlinearity=value)


def test_astronomically_large_broadcast_input_is_refused_before_anything_is_allocated(api):
    x = np.broadcast_to(np.float64(0.0), (10**6, 10**6, 4))  # 29 TB described by 8 bytes
    problem = good(np.float64)
    with pytest.raises(MemoryError, match=r"of shape \(1000000, 1000000, .*\) needs .* TB; this machine has"):
        api.rnn_forward(x, None, np.zeros((6, 4)), problem["w_hh"], None, None)


def test_an_input_larger_than_memory_is_named(api):
    x = np.broadcast_to(np.float32(0.0), (10**3, 10**3, 10**7))  # y (1000, 1000, 6) would fit
    w_ih = np.broadcast_to(np.float32(0.0), (6, 10**7))
    with pytest.raises(MemoryError, match=r"x of shape \(1000, 1000, 10000000\) needs 36.4 TB"):
        api.rnn_forward(x, None, w_ih, np.zeros((6, 6), np.float32), None, None)


@pytest.mark.parametrize(("cell", "width"), [("tanh", 64), ("lstm", 6 * 64), ("gru", 5 * 64)])
def test_outputs_larger_than_memory_are_refused_before_anything_is_allocated(api, cell, width):
    x = np.broadcast_to(np.float32(0.0), (10**6, 10**3, 1))  # fits, but y (T, B, 64) needs 238 GB
    problem = {**make_problem(cell, 1, 1, 1, 64, np.float32), "x": x}
    for name in STATES[cell]:
        problem[name] = None
    with pytest.raises(MemoryError, match=rf"the output y.* of shape \(1000000, 1000, {width}\) needs"):
        run_forward(api, cell, problem)


# ---- backward ---------------------------------------------------------------------------------------

def forward(api, dtype=np.float32):
    return api.rnn_forward(**good(dtype))


@pytest.mark.parametrize("cache", [{}, (1, 2), "cache"], ids=["dict", "tuple", "str"])
def test_backward_refuses_something_that_is_not_a_cache(api, cache):
    with pytest.raises(TypeError, match="cache must be the last value returned by"):
        api.rnn_backward(cache, None, None)


def test_backward_of_no_cache_says_the_forward_did_not_train(api):
    with pytest.raises(ValueError, match="training=False"):
        api.rnn_backward(None, None, None)


def test_backward_refuses_a_cache_from_the_other_backend():
    _, _, numpy_cache = reference.rnn_forward(**good())
    _, _, cpp_cache = rnnkit.rnn_forward(**good())
    with pytest.raises(TypeError, match=r"made by rnnkit.reference.rnn_forward"):
        rnnkit.rnn_backward(numpy_cache, None, None)
    with pytest.raises(TypeError, match=r"made by rnnkit.rnn_forward"):
        reference.rnn_backward(cpp_cache, None, None)


def test_backward_refuses_gradients_of_another_dtype(api):
    y, h_n, cache = forward(api, np.float32)
    with pytest.raises(TypeError, match=r"dy has dtype float64; expected float32"):
        api.rnn_backward(cache, y.astype(np.float64), None)
    with pytest.raises(TypeError, match=r"dh_n has dtype float64; expected float32"):
        api.rnn_backward(cache, None, h_n.astype(np.float64))


@pytest.mark.parametrize(("name", "shape"), [("dy", (4, 3, 5)), ("dy", (3, 3, 6)), ("dy", (3, 6)),
                                             ("dh_n", (3, 5)), ("dh_n", (1, 3, 6))])
def test_backward_refuses_gradients_of_the_wrong_shape(api, name, shape):
    _, _, cache = forward(api)
    kwargs = {"dy": None, "dh_n": None, name: np.zeros(shape, np.float32)}
    with pytest.raises(ValueError, match=rf"{name} has shape .*; expected"):
        api.rnn_backward(cache, **kwargs)


# ---- threads and the private module -------------------------------------------------------------------

@pytest.mark.parametrize(("value", "error"), [(0, ValueError), (-1, ValueError), (10**9, ValueError),
                                              (2**70, ValueError), (2.0, TypeError), ("2", TypeError),
                                              (True, TypeError), (None, TypeError)])
def test_set_num_threads_refuses_bad_values(threads, value, error):
    before = rnnkit.get_num_threads()
    with pytest.raises(error, match="num_threads"):
        rnnkit.set_num_threads(value)
    assert rnnkit.get_num_threads() == before


def test_numpy_integers_are_accepted_as_thread_counts(threads):
    threads(np.int64(2))
    assert rnnkit.get_num_threads() == 2


def test_private_module_checks_structure_too():
    """Even called directly, _core never lets a kernel touch memory it does not own."""
    from rnnkit import _core

    p = good(np.float64)
    y = np.empty((4, 3, 6))
    h_n = np.empty((3, 6))
    plan = _core.Plan("tanh", p["w_ih"], p["w_hh"])

    def run(x=p["x"], y=y, lengths=None, plans=(plan,)):
        return _core.forward(list(plans), [False] * len(plans), x, [None] * len(plans), [None] * len(plans),
                             lengths, True, [y] * len(plans), [h_n] * len(plans), [None] * len(plans))

    with pytest.raises(ValueError, match=r"w_ih must have shape \(6, 4\)"):
        _core.Plan("tanh", np.zeros((5, 4)), p["w_hh"])
    with pytest.raises(ValueError, match=r"x must have shape \(4, 3, 4\)"):  # a plan for I = 4
        run(plans=(_core.Plan("tanh", np.zeros((6, 4)), p["w_hh"]),))
    with pytest.raises(ValueError, match=r"y must have shape \(4, 3, 6\)"):
        run(y=np.empty((4, 3, 5)))
    ro = np.empty((4, 3, 6))
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="y must be writable"):
        run(y=ro)
    with pytest.raises(ValueError, match="x must be C-contiguous"):
        run(x=p["x"][::-1])
    with pytest.raises(TypeError, match="x must have dtype float64"):
        run(x=p["x"].astype(np.float32))
    with pytest.raises(TypeError, match="b_ih must have dtype float64"):
        _core.Plan("tanh", p["w_ih"], p["w_hh"], np.zeros(6, np.float32))
    with pytest.raises(ValueError, match="cell must be one of"):
        _core.Plan("gelu", p["w_ih"], p["w_hh"])
    with pytest.raises(ValueError, match=r"lengths\[1\] = 9 is not in \[0, T = 4\]"):
        run(lengths=np.array([1, 9, 2]))
    with pytest.raises(TypeError, match="lengths must be an int64 array"):
        run(lengths=np.array([1, 2, 2], np.int32))
    with pytest.raises(ValueError, match="one or two directions"):
        run(plans=(plan, plan, plan))


# ---- LSTM and GRU -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("cell", "gates"), [("lstm", 4), ("gru", 3)])
def test_gated_cells_need_gate_blocks_of_rows(api, cell, gates):
    problem = make_problem(cell, 4, 3, 5, 6, np.float32)
    wrong = {**problem, "w_hh": problem["w_hh"][:6]}
    with pytest.raises(ValueError, match=rf"w_hh has shape \(6, 6\); expected \({gates * 6}, 6\) = \(G\*H, H\) with G = {gates}"):
        run_forward(api, cell, wrong)
    wrong = {**problem, "w_ih": problem["w_ih"][:6]}
    with pytest.raises(ValueError, match=rf"w_ih has shape \(6, 5\); expected \({gates * 6}, 5\)"):
        run_forward(api, cell, wrong)
    wrong = {**problem, "b_hh": problem["b_hh"][:6]}
    with pytest.raises(ValueError, match=rf"b_hh has shape \(6,\); expected \({gates * 6},\)"):
        run_forward(api, cell, wrong)


@pytest.mark.parametrize(("cell", "state"), [(cell, state) for cell in CELLS for state in STATES[cell]])
def test_initial_states_are_checked(api, cell, state):
    problem = make_problem(cell, 4, 3, 5, 6, np.float32)
    with pytest.raises(ValueError, match=rf"{state} has shape \(3, 7\); expected \(3, 6\)"):
        run_forward(api, cell, {**problem, state: np.zeros((3, 7), np.float32)})
    with pytest.raises(TypeError, match=rf"{state} has dtype int64"):
        run_forward(api, cell, {**problem, state: np.zeros((3, 6), np.int64)})


KIND = {"tanh": "rnn", "relu": "rnn", "lstm": "lstm", "gru": "gru"}


@pytest.mark.parametrize(("made_by", "used_by"), [(a, b) for a in CELLS for b in CELLS if KIND[a] != KIND[b]])
def test_a_cache_only_fits_the_backward_of_its_own_cell(api, made_by, used_by):
    _, cache = run_forward(api, made_by, make_problem(made_by, 2, 1, 3, 4, np.float64))
    with pytest.raises(TypeError, match=r"cache was made by rnnkit\..*_forward; this backward pass needs one from"):
        run_backward(api, used_by, cache, {})


def test_lstm_backward_checks_dc_n(api):
    _, cache = run_forward(api, "lstm", make_problem("lstm", 4, 3, 5, 6, np.float32))
    with pytest.raises(TypeError, match="dc_n has dtype float64; expected float32"):
        api.lstm_backward(cache, None, None, np.zeros((3, 6)))
    with pytest.raises(ValueError, match=r"dc_n has shape \(6, 3\); expected \(3, 6\)"):
        api.lstm_backward(cache, None, None, np.zeros((6, 3), np.float32))


def test_masked_arrays_are_refused_rather_than_computed_on_hidden_values(api):
    problem = good(np.float64)
    masked = np.ma.masked_array(problem["x"], mask=np.zeros_like(problem["x"], bool))
    with pytest.raises(TypeError, match="x is a masked array"):
        api.rnn_forward(**{**problem, "x": masked})


def test_non_native_byte_order_is_data_like_any_other(api):
    problem = good(np.float64)
    swapped = {k: v.astype(v.dtype.newbyteorder(">")) for k, v in problem.items()}
    got, _, _ = api.rnn_forward(**swapped)
    want, _, _ = api.rnn_forward(**problem)
    np.testing.assert_array_equal(got, want)
    assert got.dtype == np.float64 and got.dtype.isnative
