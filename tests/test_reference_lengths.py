"""The oracle's lengths / reverse / training options: torch's packed sequences (pack_padded_sequence with
enforce_sorted=False) for one direction of one layer, its reverse direction, finite differences, and
the validation of the new arguments."""

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

STEPS, BATCH, INPUTS, HIDDEN = 5, 4, 3, 6
LENGTHS = {
    "all-T": [5, 5, 5, 5],
    "all-equal": [3, 3, 3, 3],
    "unsorted-with-0-and-T": [2, 5, 0, 3],
    "unsorted": [1, 4, 5, 2],
    "ones-and-zero": [1, 0, 1, 1],
}
WEIGHTS = ("w_ih", "w_hh", "b_ih", "b_hh")


def with_options(problem, **options):
    return {**problem, **options}


def padding_mask(lengths, steps):
    """(T, B) True at real steps."""
    return np.arange(steps)[:, None] < np.asarray(lengths)[None, :]


# ---- against torch ---------------------------------------------------------------------------------

# (the reference against torch's packed sequences: tests/test_torch_packed.py, for the kernels too)


loss = reference_loss


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("cell", CELLS)
def test_gradients_with_lengths_match_finite_differences(cell, reverse):
    steps, batch, inputs, hidden = 4, 3, 2, 3
    problem = make_problem(cell, steps, batch, inputs, hidden, np.float64, seed=7, scale=2.0)
    grads = upstream(cell, steps, batch, hidden, np.float64, seed=8)
    options = {"lengths": [3, 0, 4], "reverse": reverse}
    _, cache = forward(reference, cell, with_options(problem, **options))
    analytic = dict(zip(gradient_names(cell), backward(reference, cell, cache, grads)))
    for name, value in problem.items():
        numeric = numeric_gradient(lambda: loss(cell, with_options(problem, **options), grads), value)
        np.testing.assert_allclose(analytic["d" + name], numeric, rtol=1e-6, atol=1e-7,
                                   err_msg=f"{cell} reverse={reverse} d{name}")


# ---- consistency -----------------------------------------------------------------------------------

@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cell", CELLS)
def test_no_lengths_equals_full_lengths_bitwise(cell, dtype, reverse):
    problem = make_problem(cell, STEPS, BATCH, INPUTS, HIDDEN, dtype, seed=2)
    grads = upstream(cell, STEPS, BATCH, HIDDEN, dtype)
    out_none, cache_none = forward(reference, cell, with_options(problem, reverse=reverse))
    out_full, cache_full = forward(reference, cell, with_options(problem, lengths=[STEPS] * BATCH, reverse=reverse))
    for a, b in zip(out_none, out_full):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(backward(reference, cell, cache_none, grads), backward(reference, cell, cache_full, grads)):
        np.testing.assert_array_equal(a, b)
    assert cache_none.lengths is None and cache_none.reverse is reverse
    assert cache_full.lengths.dtype == np.int64 and cache_full.lengths.tolist() == [STEPS] * BATCH


@pytest.mark.parametrize("cell", CELLS)
def test_reverse_without_lengths_is_the_forward_pass_on_the_flipped_sequence(cell):
    problem = make_problem(cell, STEPS, BATCH, INPUTS, HIDDEN, np.float64, seed=4)
    reversed_out, _ = forward(reference, cell, with_options(problem, reverse=True))
    flipped_out, _ = forward(reference, cell, with_options(problem, x=problem["x"][::-1].copy()))
    np.testing.assert_array_equal(reversed_out[0], flipped_out[0][::-1])
    for a, b in zip(reversed_out[1:], flipped_out[1:]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("cell", CELLS)
def test_padding_is_never_read(cell, reverse):
    """NaN in x and dy at padded positions changes nothing."""
    lengths = LENGTHS["unsorted-with-0-and-T"]
    problem = make_problem(cell, STEPS, BATCH, INPUTS, HIDDEN, np.float64, seed=9)
    grads = upstream(cell, STEPS, BATCH, HIDDEN, np.float64)
    padded = ~padding_mask(lengths, STEPS)
    dirty_problem = with_options(problem, x=problem["x"].copy())
    dirty_problem["x"][padded] = np.nan
    dirty_grads = {**grads, "dy": grads["dy"].copy()}
    dirty_grads["dy"][padded] = np.nan
    clean, clean_cache = forward(reference, cell, with_options(problem, lengths=lengths, reverse=reverse))
    dirty, dirty_cache = forward(reference, cell, with_options(dirty_problem, lengths=lengths, reverse=reverse))
    for a, b in zip(clean, dirty):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(backward(reference, cell, clean_cache, grads), backward(reference, cell, dirty_cache, dirty_grads)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cell", CELLS)
def test_length_zero_without_initial_state_gives_zeros(cell):
    problem = make_problem(cell, STEPS, BATCH, INPUTS, HIDDEN, np.float64, h0=False)
    outputs, _ = forward(reference, cell, with_options(problem, lengths=[0, 2, 0, 5]))
    for state in outputs[1:]:
        assert not state[[0, 2]].any()
        assert state[[1, 3]].any()


@pytest.mark.parametrize("cell", CELLS)
def test_training_false_saves_nothing(cell):
    problem = with_options(make_problem(cell, STEPS, BATCH, INPUTS, HIDDEN, np.float64), lengths=[1, 5, 0, 3])
    trained, cache = forward(reference, cell, problem)
    inferred, none = forward(reference, cell, with_options(problem, training=False))
    assert none is None and cache is not None
    for a, b in zip(trained, inferred):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match=r"cache is None: the forward .* ran with training=False"):
        backward(reference, cell, None, {})


@pytest.mark.parametrize("cache", [{}, (1, 2), "cache"], ids=["dict", "tuple", "str"])
def test_a_wrong_cache_is_still_a_type_error(cache):
    with pytest.raises(TypeError, match="cache must be the last value returned by"):
        reference.rnn_backward(cache, None, None)


# ---- validation ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("lengths", "pattern"), [
    ([5, 5, 5], r"lengths has shape \(3,\); expected \(B,\) = \(4,\)"),
    ([[5], [5], [5], [5]], r"lengths has shape \(4, 1\); expected \(B,\) = \(4,\)"),
    (5, r"lengths has shape \(\); expected \(B,\) = \(4,\)"),
    ([1, -1, 2, 3], r"lengths\[1\] = -1 is out of range; expected 0 <= length <= T = 5"),
    ([1, 2, 3, 6], r"lengths\[3\] = 6 is out of range; expected 0 <= length <= T = 5"),
    (np.array([1, 2, 3, 2**40]), r"lengths\[3\] = 1099511627776 is out of range"),
    ([1.0, 2.0, 3.0, 4.0], r"lengths must be integers, got an array of dtype float64"),
    (np.array([1, 2, 3, 4], np.float32), r"lengths must be integers, got an array of dtype float32"),
    ([1, 2, 3, 4.5], r"lengths must be integers, got an array of dtype float64"),
    ([True, False, True, True], r"lengths must be integers, got booleans"),
    ([1, np.nan, 3, 4], r"lengths must be integers, got NaN at lengths\[1\]"),
    (["1", "2", "3", "4"], r"lengths must be integers, got an array of dtype <U1"),
    ([1, 2, None, 4], r"lengths must be integers, got an array of dtype object"),
], ids=["short", "2-d", "scalar", "negative", "above-T", "huge", "float", "float32", "fraction", "bool", "nan",
        "str", "object"])
@pytest.mark.parametrize("cell", CELLS)
def test_bad_lengths_are_refused(cell, lengths, pattern):
    problem = make_problem(cell, STEPS, BATCH, INPUTS, HIDDEN, np.float64)
    with pytest.raises(ValueError, match=pattern):
        forward(reference, cell, with_options(problem, lengths=lengths))


@pytest.mark.parametrize("name", ["reverse", "training"])
@pytest.mark.parametrize("value", [1, 0, None, "True", 1.0, np.array([True])], ids=repr)
@pytest.mark.parametrize("cell", CELLS)
def test_flags_must_be_bools(cell, name, value):
    problem = make_problem(cell, STEPS, BATCH, INPUTS, HIDDEN, np.float64)
    with pytest.raises(TypeError, match=rf"{name} must be a bool \(True or False\), got"):
        forward(reference, cell, with_options(problem, **{name: value}))


@pytest.mark.parametrize("lengths", [
    (2, 5, 0, 3), np.array([2, 5, 0, 3], np.int32), np.array([2, 5, 0, 3], np.uint8),
    np.array([2, 5, 0, 3], np.uint64), np.array([0, 2, 5, 0, 3, 9])[1:5], np.array([2, 5, 0, 3], ">i4"),
], ids=["tuple", "int32", "uint8", "uint64", "strided-view", "big-endian"])
def test_integer_lengths_of_any_kind_are_accepted(lengths):
    problem = make_problem("gru", STEPS, BATCH, INPUTS, HIDDEN, np.float64)
    want, _ = forward(reference, "gru", with_options(problem, lengths=[2, 5, 0, 3]))
    got, cache = forward(reference, "gru", with_options(problem, lengths=lengths))
    for a, b in zip(want, got):
        np.testing.assert_array_equal(a, b)
    assert cache.lengths.dtype == np.int64 and cache.lengths.flags.c_contiguous


def test_torch_integer_tensor_lengths_are_accepted():
    torch = pytest.importorskip("torch")
    problem = make_problem("lstm", STEPS, BATCH, INPUTS, HIDDEN, np.float64)
    want, _ = forward(reference, "lstm", with_options(problem, lengths=[2, 5, 0, 3]))
    for dtype in (torch.int64, torch.int32, torch.uint8):
        got, _ = forward(reference, "lstm", with_options(problem, lengths=torch.tensor([2, 5, 0, 3], dtype=dtype)))
        for a, b in zip(want, got):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="lengths must be integers"):
        forward(reference, "lstm", with_options(problem, lengths=torch.tensor([2.0, 5.0, 0.0, 3.0])))


def test_numpy_bools_are_accepted_as_flags():
    problem = make_problem("tanh", STEPS, BATCH, INPUTS, HIDDEN, np.float64)
    want, _ = forward(reference, "tanh", with_options(problem, reverse=True))
    got, cache = forward(reference, "tanh", with_options(problem, reverse=np.bool_(True), training=np.bool_(True)))
    np.testing.assert_array_equal(want[0], got[0])
    assert cache.reverse is True
