"""Keras interop: RNN.from_keras and RNN.to_keras_weights against Keras' own layers (when Keras is
installed), the mapping rules and round trips on bare weight arrays (always), and every refusal."""

import os

import numpy as np
import pytest
from rnnkit import RNN

# Keras 3 on the torch backend needs no TensorFlow (CI installs keras and torch only); an explicit
# KERAS_BACKEND wins, and the tests pass on either backend.
os.environ.setdefault("KERAS_BACKEND", "torch")

CELLS = ("tanh", "relu", "lstm", "gru")
GATES = {"tanh": 1, "relu": 1, "lstm": 4, "gru": 3}
# max-abs error relative to Keras' max-abs output
TOLERANCE = {np.float32: 1e-5, np.float64: 1e-10}
STEPS, BATCH, INPUTS, HIDDEN = 6, 3, 5, 4

pytestmark = [
    # Keras 3.15's Variable.numpy() (behind layer.get_weights()) calls np.array on a Variable whose
    # __array__ takes no copy keyword, which NumPy 2 deprecates: Keras' warning, not ours.
    pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"),
]


@pytest.fixture(scope="module")
def keras():
    return pytest.importorskip("keras")


def assert_close(got, want, tolerance, what):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    scale = float(np.max(np.abs(want)))
    error = float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64))))
    assert scale > 0, f"{what}: the reference is all zeros, so the comparison would prove nothing"
    assert error <= tolerance * scale, f"{what}: max error {error:.3g} > {tolerance:.0e} x {scale:.3g}"


def assert_same_arrays(got, want, what=""):
    """The same list of arrays: count, dtypes, shapes and every value."""
    assert len(got) == len(want), f"{what}{len(got)} arrays, expected {len(want)}"
    for i, (g, w) in enumerate(zip(got, want)):
        assert g.dtype == w.dtype, f"{what}array {i}: dtype {g.dtype} != {w.dtype}"
        np.testing.assert_array_equal(g, w, err_msg=f"{what}array {i}")


def keras_weights(rng, cell, inputs=INPUTS, hidden=HIDDEN, *, directions=1, use_bias=True, dtype=np.float32):
    """Random arrays in Keras' layout, as layer.get_weights() returns them."""
    rows = GATES[cell] * hidden
    arrays = []
    for _ in range(directions):
        arrays += [rng.standard_normal((inputs, rows)), rng.standard_normal((hidden, rows))]
        if use_bias:
            arrays.append(rng.standard_normal((2, rows) if cell == "gru" else (rows,)))
    return [(0.5 * a).astype(dtype) for a in arrays]


# -- mapping rules and round trips on bare arrays (no Keras needed) ------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("use_bias", [True, False], ids=["bias", "no-bias"])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("cell", CELLS)
def test_weights_round_trip_is_the_identity(cell, bidirectional, num_layers, use_bias, dtype):
    rng = np.random.default_rng(0)
    directions = 2 if bidirectional else 1
    per_layer = [keras_weights(rng, cell, INPUTS if k == 0 else directions * HIDDEN, directions=directions,
                               use_bias=use_bias, dtype=dtype) for k in range(num_layers)]
    source = per_layer[0] if num_layers == 1 else per_layer
    layer = RNN.from_keras(source, cell=cell)
    assert (layer.input_size, layer.hidden_size, layer.num_layers) == (INPUTS, HIDDEN, num_layers)
    assert (layer.cell, layer.bidirectional, layer.batch_first, layer.dtype) == (cell, bidirectional, True, dtype)
    if not use_bias:
        assert not any(np.any(a) for name, a in layer.params.items() if name.startswith("bias"))
    back = layer.to_keras_weights(use_bias=use_bias)
    back = [back] if num_layers == 1 else back
    assert len(back) == num_layers
    for k, (got_layer, want_layer) in enumerate(zip(back, per_layer)):
        assert_same_arrays(got_layer, want_layer, f"layer {k} ")


def test_gru_gates_are_reordered_and_its_two_biases_kept():
    hidden = 2
    blocks = {"z": 1.0, "r": 2.0, "h": 3.0}  # Keras' [z | r | h], each block filled with its label
    row = np.repeat(list(blocks.values()), hidden).astype(np.float32)
    kernel = np.tile(row, (INPUTS, 1))
    recurrent = np.tile(10 * row, (hidden, 1))
    bias = np.stack([100 * row, 1000 * row])
    sd = RNN.from_keras([kernel, recurrent, bias], cell="gru").state_dict()
    torch_order = np.repeat([blocks["r"], blocks["z"], blocks["h"]], hidden)  # torch's [r | z | n]
    np.testing.assert_array_equal(sd["weight_ih_l0"], np.tile(torch_order[:, None], (1, INPUTS)))
    np.testing.assert_array_equal(sd["weight_hh_l0"], np.tile(10 * torch_order[:, None], (1, hidden)))
    np.testing.assert_array_equal(sd["bias_ih_l0"], 100 * torch_order)
    np.testing.assert_array_equal(sd["bias_hh_l0"], 1000 * torch_order)


@pytest.mark.parametrize("cell", ["tanh", "lstm"])
def test_the_one_keras_bias_is_bias_ih_and_to_keras_sums_the_two(cell):
    rng = np.random.default_rng(1)
    kernel, recurrent, bias = keras_weights(rng, cell)
    sd = RNN.from_keras([kernel, recurrent, bias], cell=cell).state_dict()
    # gate orders agree (LSTM [i | f | c | o] is torch's [i | f | g | o]): plain transposes
    np.testing.assert_array_equal(sd["weight_ih_l0"], kernel.T)
    np.testing.assert_array_equal(sd["weight_hh_l0"], recurrent.T)
    np.testing.assert_array_equal(sd["bias_ih_l0"], bias)
    np.testing.assert_array_equal(sd["bias_hh_l0"], np.zeros_like(bias))

    layer = RNN(INPUTS, HIDDEN, cell=cell, seed=0)  # torch-style: two non-zero biases
    b_ih, b_hh = layer.params["bias_ih_l0"], layer.params["bias_hh_l0"]
    np.testing.assert_array_equal(layer.to_keras_weights()[2], b_ih + b_hh)


def test_from_keras_options():
    weights = keras_weights(np.random.default_rng(2), "lstm")
    x = np.random.default_rng(3).standard_normal((STEPS, BATCH, INPUTS))
    layer = RNN.from_keras(weights, cell="lstm", batch_first=False, dtype="float64", backend="numpy")
    assert (layer.batch_first, layer.dtype, layer.backend) == (False, np.float64, "numpy")
    for got, want in zip(layer.to_keras_weights(), weights):
        np.testing.assert_array_equal(got, want.astype(np.float64))
    y_numpy, _ = layer(x)
    y_cpp, _ = RNN.from_keras(weights, cell="lstm", batch_first=False, dtype="float64")(x)
    assert_close(y_cpp, y_numpy, 1e-12, "y")


@pytest.mark.parametrize("cell", CELLS)
def test_arrays_are_copied_both_ways(cell):
    # input_size = hidden_size = 1: a transpose of a (G, 1) parameter is C-contiguous, the easy one to alias
    weights = keras_weights(np.random.default_rng(14), cell, inputs=1, hidden=1)
    layer = RNN.from_keras(weights, cell=cell)
    before = layer.state_dict()
    for array in weights + layer.to_keras_weights():
        array[...] = 7
    for name, array in layer.params.items():
        np.testing.assert_array_equal(array, before[name], err_msg=name)


def test_use_bias_false_is_refused_unless_the_biases_compute_nothing():
    layer = RNN(INPUTS, HIDDEN, cell="lstm", seed=0)
    with pytest.raises(ValueError, match=r"use_bias=False, but bias_ih_l0 \+ bias_hh_l0 is not zero"):
        layer.to_keras_weights(use_bias=False)
    layer.params["bias_hh_l0"][...] = -layer.params["bias_ih_l0"]  # only the sum enters the LSTM
    assert len(layer.to_keras_weights(use_bias=False)) == 2
    gru = RNN(INPUTS, HIDDEN, cell="gru", bidirectional=True, seed=0)
    gru.params["bias_hh_l0"][...] = -gru.params["bias_ih_l0"]  # not for the GRU: b_hn sits inside r ⊙ (.)
    with pytest.raises(ValueError, match="bias_ih_l0 and bias_hh_l0 are not zero"):
        gru.to_keras_weights(use_bias=False)
    with pytest.raises(TypeError, match="use_bias must be a bool"):
        layer.to_keras_weights(use_bias="no")


def bad_weights(name):
    rng = np.random.default_rng(4)
    lstm = keras_weights(rng, "lstm")
    cases = {
        "no cell": (lstm, {}, TypeError, "needs cell="),
        "unknown cell": (lstm, {"cell": "rnn"}, ValueError, "cell must be one of"),
        "five arrays": (lstm + lstm[:2], {"cell": "lstm"}, ValueError, "weights has 5 arrays"),
        "weights of another cell": (lstm, {"cell": "gru"}, ValueError,
                                   r"weights\[1\] \(recurrent_kernel\) has shape \(4, 16\); expected \(4, 12\).*a GRU"),
        "1-d kernel": ([lstm[0][0], *lstm[1:]], {"cell": "lstm"}, ValueError, r"weights\[0\] \(kernel\) must have 2"),
        "recurrent kernel": ([lstm[0], lstm[1][:3], lstm[2]], {"cell": "lstm"}, ValueError,
                             r"weights\[1\] \(recurrent_kernel\) has shape \(3, 16\); expected \(3, 12\)"),
        "lstm bias": ([*lstm[:2], lstm[2][:4]], {"cell": "lstm"}, ValueError,
                      r"weights\[2\] \(bias\) has shape \(4,\); expected \(16,\)"),
        "gru reset_after=False bias": ([*keras_weights(rng, "gru")[:2], np.zeros(12, np.float32)],
                                       {"cell": "gru"}, ValueError, "reset_after=False"),
        "backward direction": (lstm + [lstm[0][:3], *lstm[1:]], {"cell": "lstm"}, ValueError,
                               r"weights\[3\] \(backward kernel\) has shape \(3, 16\)"),
        "second layer input": ([lstm, lstm], {"cell": "lstm"}, ValueError,
                               r"weights\[1\]\[0\] \(kernel\) has shape \(5, 16\); expected \(4, 16\).*after a layer"),
        "integers": ([a.astype(np.int64) for a in lstm], {"cell": "lstm"}, TypeError, "expected float32 or float64"),
        "float16": ([a.astype(np.float16) for a in lstm], {"cell": "lstm"}, TypeError, "expected float32 or float64"),
        "mixed dtypes": ([lstm[0].astype(np.float64), *lstm[1:]], {"cell": "lstm"}, TypeError, "the same dtype"),
        "arrays and lists": ([lstm, *lstm], {"cell": "lstm"}, TypeError, "mix arrays and lists"),
        "empty": ([], {"cell": "lstm"}, ValueError, "empty list"),
        "a dict": ({"kernel": lstm[0]}, {"cell": "lstm"}, TypeError, "got dict"),
        "one array": (lstm[0], {"cell": "lstm"}, TypeError, "got ndarray"),
        "batch_first": (lstm, {"cell": "lstm", "batch_first": 1}, TypeError, "batch_first must be a bool"),
        "dtype": (lstm, {"cell": "lstm", "dtype": "float16"}, ValueError, "dtype must be 'float32' or 'float64'"),
        "backend": (lstm, {"cell": "lstm", "backend": "cuda"}, ValueError, "backend must be one of"),
    }
    return cases[name]


@pytest.mark.parametrize("case", [
    "no cell", "unknown cell", "five arrays", "weights of another cell", "1-d kernel", "recurrent kernel", "lstm bias",
    "gru reset_after=False bias", "backward direction", "second layer input", "integers", "float16", "mixed dtypes",
    "arrays and lists", "empty", "a dict", "one array", "batch_first", "dtype", "backend"])
def test_bad_weights_are_refused_naming_what_is_wrong(case):
    source, kwargs, error, match = bad_weights(case)
    with pytest.raises(error, match=match):
        RNN.from_keras(source, **kwargs)


# -- against Keras ----------------------------------------------------------------------------------

def make_keras_layer(keras, cell, *, dtype="float32", bidirectional=False, inputs=INPUTS, **kwargs):
    """A Keras layer returning the whole sequence and the final state(s), built on (B, T, I) inputs with
    random weights (non-zero biases included)."""
    kwargs = {"return_sequences": True, "return_state": True, "dtype": dtype, **kwargs}
    if cell in ("tanh", "relu"):
        layer = keras.layers.SimpleRNN(HIDDEN, activation=cell, **kwargs)
    else:
        layer = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU}[cell](HIDDEN, **kwargs)
    if bidirectional:
        layer = keras.layers.Bidirectional(layer, dtype=dtype)  # its own dtype, or it casts outputs to float32
    layer.build((None, STEPS, inputs))
    randomize(layer, np.random.default_rng(5))
    return layer


def randomize(layer, rng):
    layer.set_weights([(0.5 * rng.standard_normal(w.shape)).astype(w.dtype) for w in layer.get_weights()])


def run_keras(keras, layer, x):
    """(y, [final states]) as NumPy arrays; the states in Keras' order (forward h[, c], then backward)."""
    y, *states = layer(x)
    return keras.ops.convert_to_numpy(y), [keras.ops.convert_to_numpy(s) for s in states]


def as_keras_states(h_n):
    """rnnkit's h_n (D, B, H) (a pair (h, c) for the LSTM) in Keras' order: per direction, h then c."""
    states = h_n if isinstance(h_n, tuple) else (h_n,)
    return [s[d] for d in range(states[0].shape[0]) for s in states]


def assert_matches_keras(keras, rnn, keras_layer, x, dtype, what=""):
    want_y, want_states = run_keras(keras, keras_layer, x)
    y, h_n = rnn(x)
    assert y.dtype == dtype
    tolerance = TOLERANCE[dtype]
    if dtype == np.float64 and keras.backend.backend() == "torch" and rnn.cell in ("tanh", "relu"):
        # Keras 3's torch backend runs SimpleRNN in float32 even with dtype="float64" (keras.ops.matmul
        # of a float64 input and a float64 Variable returns float32), so compare at float32's bar.
        tolerance = TOLERANCE[np.float32]
    assert_close(y, want_y, tolerance, f"{what}y")
    got_states = as_keras_states(h_n)
    assert len(got_states) == len(want_states)
    for i, (got, want) in enumerate(zip(got_states, want_states)):
        assert_close(got, want, tolerance, f"{what}state {i}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("cell", CELLS)
def test_from_keras_computes_what_keras_computes(keras, cell, bidirectional, dtype):
    keras_layer = make_keras_layer(keras, cell, dtype=np.dtype(dtype).name, bidirectional=bidirectional)
    x = np.random.default_rng(6).standard_normal((BATCH, STEPS, INPUTS)).astype(dtype)
    rnn = RNN.from_keras(keras_layer)
    assert (rnn.cell, rnn.bidirectional, rnn.num_layers, rnn.batch_first, rnn.dtype) == (
        cell, bidirectional, 1, True, dtype)
    assert_matches_keras(keras, rnn, keras_layer, x, dtype)

    # back into a fresh Keras layer (other random weights): the very same arrays, the same outputs
    fresh = make_keras_layer(keras, cell, dtype=np.dtype(dtype).name, bidirectional=bidirectional)
    randomize(fresh, np.random.default_rng(7))
    fresh.set_weights(rnn.to_keras_weights())
    assert_same_arrays(fresh.get_weights(), keras_layer.get_weights())
    assert_matches_keras(keras, rnn, fresh, x, dtype)


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("cell", CELLS)
def test_to_keras_weights_of_a_torch_style_layer_run_in_keras(keras, cell, bidirectional):
    # rnnkit's own initialisation has two non-zero biases: Keras gets their sum (or the GRU's pair)
    rnn = RNN(INPUTS, HIDDEN, cell=cell, bidirectional=bidirectional, batch_first=True, seed=8)
    keras_layer = make_keras_layer(keras, cell, bidirectional=bidirectional)
    keras_layer.set_weights(rnn.to_keras_weights())
    x = np.random.default_rng(9).standard_normal((BATCH, STEPS, INPUTS)).astype(np.float32)
    assert_matches_keras(keras, rnn, keras_layer, x, np.float32)


@pytest.mark.parametrize(("cell", "bidirectional"), [("lstm", True), ("gru", False)], ids=["lstm-bi", "gru-uni"])
def test_stacked_keras_layers_are_num_layers(keras, cell, bidirectional):
    first = make_keras_layer(keras, cell, bidirectional=bidirectional)
    directions = 2 if bidirectional else 1
    # its input is the first layer's output
    second = make_keras_layer(keras, cell, bidirectional=bidirectional, inputs=directions * HIDDEN)
    randomize(second, np.random.default_rng(10))
    rnn = RNN.from_keras([first, second])
    assert (rnn.num_layers, rnn.input_size) == (2, INPUTS)

    x = np.random.default_rng(11).standard_normal((BATCH, STEPS, INPUTS)).astype(np.float32)
    y1, states1 = run_keras(keras, first, x)
    y2, states2 = run_keras(keras, second, y1)
    y, h_n = rnn(x)
    assert_close(y, y2, TOLERANCE[np.float32], "y")
    assert len(as_keras_states(h_n)) == len(states1 + states2)
    for i, (got, want) in enumerate(zip(as_keras_states(h_n), states1 + states2)):
        assert_close(got, want, TOLERANCE[np.float32], f"state {i}")
    per_layer = rnn.to_keras_weights()
    assert len(per_layer) == 2
    for layer_weights, keras_layer in zip(per_layer, [first, second]):
        assert_same_arrays(layer_weights, keras_layer.get_weights())


@pytest.mark.parametrize("cell", ["relu", "gru"])
def test_use_bias_false_loads_zero_biases(keras, cell):
    keras_layer = make_keras_layer(keras, cell, bidirectional=True, use_bias=False)
    rnn = RNN.from_keras(keras_layer)
    assert not any(np.any(a) for name, a in rnn.params.items() if name.startswith("bias"))
    x = np.random.default_rng(12).standard_normal((BATCH, STEPS, INPUTS)).astype(np.float32)
    assert_matches_keras(keras, rnn, keras_layer, x, np.float32)
    fresh = make_keras_layer(keras, cell, bidirectional=True, use_bias=False)
    fresh.set_weights(rnn.to_keras_weights(use_bias=False))
    assert_same_arrays(fresh.get_weights(), keras_layer.get_weights())


@pytest.mark.parametrize("options", [{"dropout": 0.5, "recurrent_dropout": 0.5}, {"unroll": True}],
                         ids=["dropout", "unroll"])
def test_training_only_and_unrolling_options_are_accepted(keras, options):
    # dropout acts only while Keras trains: rnnkit (which has none) gives Keras' inference output
    keras_layer = make_keras_layer(keras, "lstm", **options)
    rnn = RNN.from_keras(keras_layer)
    x = np.random.default_rng(13).standard_normal((BATCH, STEPS, INPUTS)).astype(np.float32)
    assert_matches_keras(keras, rnn, keras_layer, x, np.float32)


def refused_layer(keras, case):
    layers = keras.layers
    if case == "gru reset_after=False":
        return layers.GRU(HIDDEN, reset_after=False), ValueError, "reset_after=False"
    if case == "simple_rnn sigmoid":
        return layers.SimpleRNN(HIDDEN, activation="sigmoid"), ValueError, "activation='sigmoid'"
    if case == "lstm relu":
        return layers.LSTM(HIDDEN, activation="relu"), ValueError, "activation='relu'"
    if case == "gru hard_sigmoid":
        return layers.GRU(HIDDEN, recurrent_activation="hard_sigmoid"), ValueError, "recurrent_activation='hard_sig"
    if case.startswith("merge_mode"):
        mode = None if case == "merge_mode None" else case.split()[1]
        return layers.Bidirectional(layers.LSTM(HIDDEN), merge_mode=mode), ValueError, f"merge_mode={mode!r}"
    if case == "go_backwards":
        return layers.LSTM(HIDDEN, go_backwards=True), ValueError, "go_backwards=True"
    if case == "stateful":
        return layers.SimpleRNN(HIDDEN, stateful=True), ValueError, "stateful=True"
    if case == "mixed directions":
        mixed = layers.Bidirectional(layers.LSTM(HIDDEN, return_sequences=True),
                                     backward_layer=layers.GRU(HIDDEN, return_sequences=True, go_backwards=True))
        return mixed, ValueError, "forward LSTM .* backward GRU"
    if case == "not built":
        return layers.LSTM(HIDDEN), ValueError, "not built"
    if case == "dense":
        return layers.Dense(HIDDEN), TypeError, "is a Dense"
    if case == "model":
        return keras.Sequential([keras.Input((STEPS, INPUTS)), layers.LSTM(HIDDEN)]), TypeError, "is a Sequential"
    raise AssertionError(case)


REFUSED = ["gru reset_after=False", "simple_rnn sigmoid", "lstm relu", "gru hard_sigmoid", "merge_mode sum",
           "merge_mode ave", "merge_mode mul", "merge_mode None", "go_backwards", "stateful", "mixed directions",
           "not built", "dense", "model"]


@pytest.mark.parametrize("case", REFUSED)
def test_keras_layers_rnnkit_cannot_compute_are_refused(keras, case):
    layer, error, match = refused_layer(keras, case)
    if case not in ("not built", "model"):
        layer.build((BATCH if case == "stateful" else None, STEPS, INPUTS))
    with pytest.raises(error, match=match):
        RNN.from_keras(layer)


def test_stacks_rnnkit_cannot_represent_are_refused(keras):
    lstm, gru = make_keras_layer(keras, "lstm"), make_keras_layer(keras, "gru")
    with pytest.raises(ValueError, match="one cell in all its layers"):
        RNN.from_keras([lstm, gru])
    with pytest.raises(ValueError, match="differ in being Bidirectional"):
        RNN.from_keras([lstm, make_keras_layer(keras, "lstm", bidirectional=True)])
    with pytest.raises(ValueError, match=r"kernel of layers\[1\].* has shape \(5, 16\); expected \(4, 16\)"):
        RNN.from_keras([lstm, lstm])  # the second one's input would be 4 features, not 5
    wider = keras.layers.LSTM(HIDDEN + 1)
    wider.build((None, STEPS, HIDDEN))
    with pytest.raises(ValueError, match="5 units"):
        RNN.from_keras([lstm, wider])
    with pytest.raises(ValueError, match="is an LSTM, but cell='gru'"):
        RNN.from_keras(lstm, cell="gru")
    with pytest.raises(TypeError, match="mixes Keras layers and other objects"):
        RNN.from_keras([lstm, *lstm.get_weights()])
