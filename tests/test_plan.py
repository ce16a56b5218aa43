"""rnnkit.Plan: one cell's weights packed once.  It computes what the functional forward computes, bit for
bit (inference and training, whose cache feeds the functional backward); its weights are a snapshot;
out= / h_n_out= / c_n_out= write into caller arrays; bad arguments are refused with messages that name
them; one plan serves many Python threads at once."""

import re
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import rnnkit
from helpers import CELLS, STATES, backward, forward, make_problem, upstream

SHAPE = (6, 5, 4, 13)  # T, B, I, H
LENGTHS = [4, 0, 6, 1, 6]
WEIGHTS = ("w_ih", "w_hh", "b_ih", "b_hh")
OPTIONS = {"plain": {}, "lengths": {"lengths": LENGTHS}, "reverse": {"reverse": True},
           "lengths-reverse": {"lengths": LENGTHS, "reverse": True}}
DTYPES = {"f32": np.float32, "f64": np.float64}


def make_plan(cell, problem):
    return rnnkit.Plan(cell, *(problem[w] for w in WEIGHTS))


def plan_forward(plan, cell, problem, **options):
    states = {name: problem[name] for name in STATES[cell]}
    return plan.forward(problem["x"], **states, **options)


def assert_all_equal(got, want, what=""):
    assert len(got) == len(want), f"{what}: {len(got)} results, expected {len(want)}"
    for k, (a, b) in enumerate(zip(got, want)):
        np.testing.assert_array_equal(a, b, err_msg=f"{what}: result {k}")


def problem_for(cell, dtype=np.float64, seed=0, **kwargs):
    return make_problem(cell, *SHAPE, dtype, seed=seed, scale=2.0, **kwargs)


# ---- the same bits as the functional API ---------------------------------------------------------------

@pytest.mark.parametrize("option", OPTIONS, ids=OPTIONS.keys())
@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
@pytest.mark.parametrize("cell", CELLS)
def test_plan_inference_matches_the_functional_forward_bitwise(cell, dtype, option):
    problem = problem_for(cell, dtype)
    want, _ = forward(rnnkit, cell, {**problem, **OPTIONS[option]})
    plan = make_plan(cell, problem)
    got = plan_forward(plan, cell, problem, **OPTIONS[option])
    assert isinstance(got, tuple)
    assert len(got) == (3 if cell == "lstm" else 2)
    assert_all_equal(got, want, f"{cell} {option}")
    for array in got:
        assert array.dtype == dtype
    # the default is training=False: the same as saying so
    assert_all_equal(plan_forward(plan, cell, problem, **OPTIONS[option], training=False), want, "training=False")


@pytest.mark.parametrize("option", OPTIONS, ids=OPTIONS.keys())
@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
@pytest.mark.parametrize("cell", CELLS)
def test_plan_training_cache_gives_the_functional_gradients_bitwise(cell, dtype, option):
    problem = problem_for(cell, dtype)
    grads = upstream(cell, SHAPE[0], SHAPE[1], SHAPE[3], dtype, seed=3)
    want_outputs, want_cache = forward(rnnkit, cell, {**problem, **OPTIONS[option]})
    want_grads = backward(rnnkit, cell, want_cache, grads)
    *outputs, cache = plan_forward(make_plan(cell, problem), cell, problem, **OPTIONS[option], training=True)
    assert cache is not None
    assert_all_equal(outputs, want_outputs, f"{cell} {option} outputs")
    got_grads = backward(rnnkit, cell, cache, grads)
    assert len(got_grads) == len(want_grads)
    assert_all_equal(got_grads, want_grads, f"{cell} {option} gradients")
    assert any(np.abs(g).max() > 0 for g in got_grads)


@pytest.mark.parametrize("cell", CELLS)
def test_plan_without_biases_and_without_initial_states(cell):
    problem = problem_for(cell, np.float32, seed=4, bias=False, h0=False)
    grads = upstream(cell, SHAPE[0], SHAPE[1], SHAPE[3], np.float32)
    want, want_cache = forward(rnnkit, cell, {**problem, "lengths": LENGTHS})
    plan = rnnkit.Plan(cell, problem["w_ih"], problem["w_hh"])
    assert_all_equal(plan.forward(problem["x"], lengths=LENGTHS), want, cell)
    *outputs, cache = plan.forward(problem["x"], lengths=LENGTHS, training=True)
    assert_all_equal(outputs, want, cell)
    got_grads = backward(rnnkit, cell, cache, grads)
    want_grads = backward(rnnkit, cell, want_cache, grads)
    for k, (a, b) in enumerate(zip(got_grads, want_grads)):
        if b is None:
            assert a is None, f"{cell}: gradient {k} of an absent bias is not None"
        else:
            np.testing.assert_array_equal(a, b, err_msg=f"{cell}: gradient {k}")


def test_plan_describes_itself():
    problem = problem_for("gru", np.float32)
    plan = make_plan("gru", problem)
    assert (plan.cell, plan.input_size, plan.hidden_size, plan.dtype) == ("gru", SHAPE[2], SHAPE[3], np.float32)
    assert plan.isa == rnnkit.simd_isa()
    assert "gru" in repr(plan)


# ---- snapshot ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cell", CELLS)
def test_changing_the_weight_arrays_after_making_the_plan_changes_nothing(cell):
    problem = problem_for(cell)
    grads = upstream(cell, SHAPE[0], SHAPE[1], SHAPE[3], np.float64, seed=5)
    original = {w: problem[w].copy() for w in WEIGHTS}
    want, want_cache = forward(rnnkit, cell, {**problem, "lengths": LENGTHS})
    want_grads = backward(rnnkit, cell, want_cache, grads)
    plan = make_plan(cell, problem)
    *_, cache = plan_forward(plan, cell, problem, lengths=LENGTHS, training=True)  # made before the change

    for w in WEIGHTS:  # in place: the same arrays, other values
        problem[w] *= -1.5
        problem[w] += 0.25
    changed, _ = forward(rnnkit, cell, {**problem, "lengths": LENGTHS})
    assert not np.array_equal(changed[0], want[0])

    assert_all_equal(plan_forward(plan, cell, problem, lengths=LENGTHS), want, f"{cell} inference after the change")
    *outputs, cache_after = plan_forward(plan, cell, problem, lengths=LENGTHS, training=True)
    assert_all_equal(outputs, want, f"{cell} training after the change")
    # both caches hold the snapshot's weights: the gradients are those of the original weights
    assert_all_equal(backward(rnnkit, cell, cache, grads), want_grads, f"{cell} gradients, cache from before")
    assert_all_equal(backward(rnnkit, cell, cache_after, grads), want_grads, f"{cell} gradients, cache from after")

    # a new plan sees the new values
    assert_all_equal(plan_forward(make_plan(cell, problem), cell, problem, lengths=LENGTHS), changed, "new plan")
    # and the old one still holds the old ones
    old = {**problem, **original}
    assert_all_equal(plan_forward(plan, cell, problem, lengths=LENGTHS),
                     forward(rnnkit, cell, {**old, "lengths": LENGTHS})[0], "old plan")


def test_a_plan_made_from_non_contiguous_or_list_weights_copies_them():
    problem = problem_for("lstm")
    wide = np.zeros((problem["w_hh"].shape[0], 2 * SHAPE[3]))
    wide[:, ::2] = problem["w_hh"]
    w_hh = wide[:, ::2]  # a strided view
    plan = rnnkit.Plan("lstm", problem["w_ih"].tolist(), w_hh, problem["b_ih"], problem["b_hh"])
    want, _ = forward(rnnkit, "lstm", problem)
    wide[...] = 0.0
    assert_all_equal(plan_forward(plan, "lstm", problem), want, "lstm")


# ---- out=, h_n_out=, c_n_out= ----------------------------------------------------------------------------

@pytest.mark.parametrize("training", [False, True], ids=["inference", "training"])
@pytest.mark.parametrize("cell", CELLS)
def test_out_arrays_are_written_and_returned(cell, training):
    steps, batch, _, hidden = SHAPE
    problem = problem_for(cell, np.float32)
    want, _ = forward(rnnkit, cell, {**problem, "lengths": LENGTHS, "reverse": True})
    plan = make_plan(cell, problem)
    out = np.full((steps, batch, hidden), np.nan, np.float32)
    h_n_out = np.full((batch, hidden), np.nan, np.float32)
    extra = {}
    if cell == "lstm":
        extra["c_n_out"] = np.full((batch, hidden), np.nan, np.float32)
    result = plan_forward(plan, cell, problem, lengths=LENGTHS, reverse=True, training=training, out=out,
                          h_n_out=h_n_out, **extra)
    outputs = result[:-1] if training else result
    assert outputs[0] is out
    assert outputs[1] is h_n_out
    if cell == "lstm":
        assert outputs[2] is extra["c_n_out"]
    assert_all_equal(outputs, want, f"{cell} into out arrays")
    if training:
        grads = upstream(cell, steps, batch, hidden, np.float32)
        _, want_cache = forward(rnnkit, cell, {**problem, "lengths": LENGTHS, "reverse": True})
        assert_all_equal(backward(rnnkit, cell, result[-1], grads), backward(rnnkit, cell, want_cache, grads),
                         "gradients through a cache whose y is a caller's array")


@pytest.mark.parametrize("cell", CELLS)
def test_out_may_be_a_slice_of_the_last_axis_of_a_wider_array(cell):
    steps, batch, _, hidden = SHAPE
    problem = problem_for(cell)
    want, _ = forward(rnnkit, cell, {**problem, "lengths": LENGTHS})
    wide = np.full((steps, batch, 3 * hidden + 2), 7.0)
    out = wide[..., hidden + 1:2 * hidden + 1]
    assert not out.flags.c_contiguous
    assert wide.flags.c_contiguous
    y, *_ = plan_forward(make_plan(cell, problem), cell, problem, lengths=LENGTHS, out=out)
    assert y is out
    np.testing.assert_array_equal(wide[..., hidden + 1:2 * hidden + 1], want[0])
    # nothing outside the slice is touched
    assert (wide[..., :hidden + 1] == 7.0).all()
    assert (wide[..., 2 * hidden + 1:] == 7.0).all()


@pytest.mark.parametrize("layout", ["time-strided", "transposed"])
def test_another_non_contiguous_out_is_refused_or_written_correctly(layout):
    """A layout other than a last-axis slice: the plan must either refuse it (naming out) or fill it right."""
    steps, batch, _, hidden = SHAPE
    problem = problem_for("gru")
    want, _ = forward(rnnkit, "gru", {**problem, "lengths": LENGTHS})
    if layout == "time-strided":
        base = np.full((2 * steps, batch, hidden), 7.0)
        out = base[::2]
    else:
        base = np.full((hidden, batch, steps), 7.0)
        out = base.transpose(2, 1, 0)
    refused = None
    try:
        make_plan("gru", problem).forward(problem["x"], problem["h0"], lengths=LENGTHS, out=out)
    except (ValueError, TypeError) as error:
        refused = str(error)
    if refused is not None:
        assert re.search(r"\bout\b", refused), f"the error does not name out: {refused!r}"
        return
    np.testing.assert_array_equal(out, want[0])
    if layout == "time-strided":
        assert (base[1::2] == 7.0).all(), "wrote outside out"


def _read_only(array):
    array.flags.writeable = False
    return array


# (array for out of shape (T, B, H), or for h_n_out / c_n_out of shape (B, H)) -> the error expected
BAD_OUTPUTS = {
    "wrong-shape": (lambda *shape: np.zeros(shape[:-1] + (shape[-1] + 1,), np.float32), ValueError),
    "wrong-leading": (lambda *shape: np.zeros((shape[0] + 1,) + shape[1:], np.float32), ValueError),
    "wrong-ndim": (lambda *shape: np.zeros(shape + (1,), np.float32), ValueError),
    "wrong-dtype": (lambda *shape: np.zeros(shape, np.float64), TypeError),
    "read-only": (lambda *shape: _read_only(np.zeros(shape, np.float32)), ValueError),
    "list": (lambda *shape: np.zeros(shape, np.float32).tolist(), TypeError),
}


@pytest.mark.parametrize("bad", BAD_OUTPUTS, ids=BAD_OUTPUTS.keys())
@pytest.mark.parametrize("name", ["out", "h_n_out", "c_n_out"])
def test_bad_output_arrays_are_refused_naming_them(name, bad):
    steps, batch, _, hidden = SHAPE
    problem = problem_for("lstm", np.float32)
    plan = make_plan("lstm", problem)
    make, error = BAD_OUTPUTS[bad]
    array = make(steps, batch, hidden) if name == "out" else make(batch, hidden)
    with pytest.raises(error, match=name):
        plan_forward(plan, "lstm", problem, **{name: array})
    with pytest.raises(error, match=name):
        plan_forward(plan, "lstm", problem, training=True, **{name: array})


def test_out_of_a_forward_that_fails_validation_is_left_alone():
    steps, batch, _, hidden = SHAPE
    problem = problem_for("tanh", np.float32)
    out = np.full((steps, batch, hidden), 7.0, np.float32)
    with pytest.raises(ValueError, match="lengths"):
        make_plan("tanh", problem).forward(problem["x"], problem["h0"], lengths=[1, 2, 3], out=out)
    assert (out == 7.0).all()


# ---- bad arguments ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("cell", ["lstm2", "LSTM", "", None, 3, "rnn"])
def test_a_wrong_cell_name_is_refused(cell):
    problem = problem_for("tanh")
    with pytest.raises((ValueError, TypeError), match="cell"):
        rnnkit.Plan(cell, problem["w_ih"], problem["w_hh"])


BAD_WEIGHTS = {
    "w_hh-not-square": ("w_hh", lambda p: p["w_hh"][:, :-1]),
    "w_hh-wrong-gates": ("w_hh", lambda p: p["w_hh"][:-1]),
    "w_hh-1d": ("w_hh", lambda p: p["w_hh"].ravel()),
    "w_ih-wrong-rows": ("w_ih", lambda p: p["w_ih"][:-1]),
    "w_ih-1d": ("w_ih", lambda p: p["w_ih"].ravel()),
    "b_ih-wrong-size": ("b_ih", lambda p: p["b_ih"][:-1]),
    "b_hh-wrong-size": ("b_hh", lambda p: np.concatenate([p["b_hh"], p["b_hh"]])),
    "b_ih-2d": ("b_ih", lambda p: p["b_ih"][None]),
}


@pytest.mark.parametrize("bad", BAD_WEIGHTS, ids=BAD_WEIGHTS.keys())
@pytest.mark.parametrize("cell", CELLS)
def test_wrong_weight_shapes_are_refused_naming_the_weight(cell, bad):
    problem = problem_for(cell)
    name, change = BAD_WEIGHTS[bad]
    weights = {w: problem[w] for w in WEIGHTS}
    weights[name] = change(problem)
    with pytest.raises(ValueError, match=name):
        rnnkit.Plan(cell, *(weights[w] for w in WEIGHTS))


def test_weights_of_mixed_or_non_float_dtypes_are_refused():
    problem = problem_for("gru")
    with pytest.raises(TypeError, match="dtype"):
        rnnkit.Plan("gru", problem["w_ih"].astype(np.float32), problem["w_hh"], problem["b_ih"], problem["b_hh"])
    with pytest.raises(TypeError, match="w_hh"):
        rnnkit.Plan("gru", problem["w_ih"], problem["w_hh"].astype(np.int64))
    with pytest.raises(TypeError, match="w_ih"):
        rnnkit.Plan("gru", None, problem["w_hh"])


@pytest.mark.parametrize("cell", CELLS)
def test_wrong_inputs_to_forward_are_refused_naming_the_argument(cell):
    steps, batch, inputs, hidden = SHAPE
    problem = problem_for(cell, np.float32)
    plan = make_plan(cell, problem)
    x, h0 = problem["x"], problem["h0"]
    with pytest.raises(ValueError, match=rf"x has {inputs + 1} features"):
        plan.forward(np.zeros((steps, batch, inputs + 1), np.float32), h0)
    with pytest.raises(ValueError, match="x"):
        plan.forward(x[0], None)
    with pytest.raises(TypeError, match=r"x has dtype float64"):
        plan.forward(x.astype(np.float64))
    with pytest.raises(TypeError, match=r"h0 has dtype float64"):
        plan.forward(x, h0.astype(np.float64))
    with pytest.raises(ValueError, match="h0"):
        plan.forward(x, h0[:-1])
    if cell == "lstm":
        with pytest.raises(ValueError, match="c0"):
            plan.forward(x, h0, problem["c0"][:, :-1])
    else:
        with pytest.raises(ValueError, match="c0"):
            plan.forward(x, h0, np.zeros((batch, hidden), np.float32))
    for flag in ("reverse", "training"):
        for value in (1, 0, None, "True", np.array([True])):
            with pytest.raises(TypeError, match=rf"{flag} must be a bool"):
                plan.forward(x, h0, **{flag: value})
    for lengths in ([1, 2, 3], [1, 2, 3, 4, steps + 1], [1, -1, 2, 3, 4], [1.0, 2.0, 3.0, 4.0, 5.0],
                    [True] * batch, [[1]] * batch):
        with pytest.raises(ValueError, match="lengths"):
            plan.forward(x, h0, lengths=lengths)


def test_a_float32_plan_refuses_float64_x_but_a_float64_plan_takes_it():
    problem32 = problem_for("relu", np.float32)
    problem64 = problem_for("relu", np.float64)
    with pytest.raises(TypeError, match="x"):
        make_plan("relu", problem32).forward(problem64["x"])
    with pytest.raises(TypeError, match="x"):
        make_plan("relu", problem64).forward(problem32["x"])
    y, _ = make_plan("relu", problem64).forward(problem64["x"])
    assert y.dtype == np.float64


# ---- many Python threads on one plan ----------------------------------------------------------------------

@pytest.mark.parametrize("cell", CELLS)
def test_many_threads_calling_one_plan_get_the_serial_results(threads, cell):
    threads(2)
    problem = problem_for(cell, np.float32, seed=9)
    plan = make_plan(cell, problem)
    rng = np.random.default_rng(10)
    steps, batch, inputs, _ = SHAPE
    workers, calls = 8, 50
    inputs_for = []
    for k in range(workers):  # each thread its own x, lengths and direction
        x = rng.standard_normal((steps, batch, inputs)).astype(np.float32)
        lengths = rng.integers(0, steps + 1, batch)
        inputs_for.append({"x": x, "lengths": lengths, "reverse": bool(k % 2), "training": k % 3 == 0})

    def call(k):
        kwargs = dict(inputs_for[k])
        x = kwargs.pop("x")
        states = {name: problem[name] for name in STATES[cell]}
        result = plan.forward(x, **states, **kwargs)
        return result[:-1] if kwargs["training"] else result

    serial = [call(k) for k in range(workers)]
    start = threading.Barrier(workers)

    def worker(k):
        """The calls whose results differ from the serial ones (exceptions reach result() below)."""
        start.wait(timeout=60)
        wrong = []
        for i in range(calls):
            for a, b in zip(call(k), serial[k]):
                if not np.array_equal(a, b):
                    wrong.append(f"thread {k} call {i}: max diff {np.max(np.abs(a - b))}")
        return wrong

    with ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(worker, k) for k in range(workers)]
        failures = [line for f in futures for line in f.result(timeout=120)]
    assert not failures, failures[:5]
