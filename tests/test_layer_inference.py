"""The RNN layer's inference forward (training=False): the same bits as the training forward, nothing saved
for a backward, and weights packed once but packed again after an optimizer step, load_state_dict or
invalidate() (checked against the NumPy backend loaded with the same state dict).  Then a model's predict,
which runs its layers in inference mode, after more training."""

import numpy as np
import pytest
import rnnkit
from rnnkit import optim

STEPS, BATCH, INPUTS, HIDDEN = 6, 4, 5, 11
CELLS = ("tanh", "relu", "lstm", "gru")
CONFIGS = {"uni-1": (1, False), "bi-1": (1, True), "uni-2": (2, False), "bi-2": (2, True)}


def make_layer(cell, layers, bidirectional, dtype="float32", seed=0, **kwargs):
    return rnnkit.RNN(INPUTS, HIDDEN, cell=cell, num_layers=layers, bidirectional=bidirectional, dtype=dtype,
                      seed=seed, **kwargs)


def data(cell, layers, bidirectional, dtype=np.float32, seed=1, batch=BATCH):
    rng = np.random.default_rng(seed)
    d = 2 if bidirectional else 1
    x = rng.standard_normal((STEPS, batch, INPUTS)).astype(dtype)
    states = [rng.standard_normal((layers * d, batch, HIDDEN)).astype(dtype) for _ in range(2 if cell == "lstm" else 1)]
    dy = rng.standard_normal((STEPS, batch, d * HIDDEN)).astype(dtype)
    h0 = tuple(states) if cell == "lstm" else states[0]
    return x, h0, dy


def flat(y, h_n):
    return [np.asarray(y), *(h_n if isinstance(h_n, tuple) else (h_n,))]


def assert_all_equal(got, want, what):
    assert len(got) == len(want)
    for k, (a, b) in enumerate(zip(got, want)):
        np.testing.assert_array_equal(a, b, err_msg=f"{what}: output {k}")


def assert_close_all(got, want, what, tolerance=1e-5):
    """Each output's max-abs error at most tolerance x its max-abs."""
    assert len(got) == len(want)
    for k, (a, b) in enumerate(zip(got, want)):
        assert a.shape == b.shape, f"{what}: output {k}"
        assert a.dtype == b.dtype, f"{what}: output {k}"
        scale = max(float(np.abs(b).max()), 1e-30)
        error = float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max())
        assert error <= tolerance * scale, f"{what}: output {k}: max error {error:.3g} > {tolerance} x {scale:.3g}"


def assert_differ(got, want, what, at_least=1e-3):
    """The change is visible: some output moved by more than at_least x its max-abs."""
    moved = max(float(np.abs(a.astype(np.float64) - b).max() / max(np.abs(b).max(), 1e-30)) for a, b in zip(got, want))
    assert moved > at_least, f"{what}: the outputs did not change (relative change {moved:.3g})"


def numpy_twin(layer):
    """The same layer on the NumPy backend with the cpp layer's current parameters."""
    twin = rnnkit.RNN(layer.input_size, layer.hidden_size, cell=layer.cell, num_layers=layer.num_layers,
                      bidirectional=layer.bidirectional, dtype=str(layer.dtype), backend="numpy", seed=123)
    twin.load_state_dict(layer.state_dict())
    return twin


# ---- inference = training, bitwise ---------------------------------------------------------------------

@pytest.mark.parametrize("with_state", [True, False], ids=["h0", "no-h0"])
@pytest.mark.parametrize("config", CONFIGS, ids=CONFIGS.keys())
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cell", CELLS)
def test_inference_forward_equals_training_forward_bitwise(cell, dtype, config, with_state):
    layers, bidirectional = CONFIGS[config]
    layer = make_layer(cell, layers, bidirectional, dtype)
    x, h0, _ = data(cell, layers, bidirectional, np.dtype(dtype))
    h0 = h0 if with_state else None
    trained = flat(*layer.forward(x, h0, training=True))
    for call in range(3):  # the first call packs the weights, the others reuse them
        inferred = flat(*layer.forward(x, h0, training=False))
        assert_all_equal(inferred, trained, f"{cell} {config} inference call {call}")
    # another batch size and sequence length on the kept packed weights
    x2, h2, _ = data(cell, layers, bidirectional, np.dtype(dtype), seed=7, batch=BATCH + 3)
    h2 = h2 if with_state else None
    assert_all_equal(flat(*layer.forward(x2[:-2], h2, training=False)), flat(*layer.forward(x2[:-2], h2)),
                     f"{cell} {config} other shape")


@pytest.mark.parametrize("cell", CELLS)
def test_inference_forward_batch_first_and_unbatched(cell):
    layer = make_layer(cell, 2, True, batch_first=True)
    x, h0, _ = data(cell, 2, True)
    xb = np.ascontiguousarray(x.transpose(1, 0, 2))
    assert_all_equal(flat(*layer.forward(xb, h0, training=False)), flat(*layer.forward(xb, h0)), f"{cell} batch-first")
    assert_all_equal(flat(*layer.forward(xb[0], None, training=False)), flat(*layer.forward(xb[0])),
                     f"{cell} unbatched")


# ---- no backward after an inference forward ----------------------------------------------------------

@pytest.mark.parametrize("cell", CELLS)
def test_inference_forward_allows_no_backward(cell):
    layer = make_layer(cell, 2, True)
    x, h0, dy = data(cell, 2, True)
    layer.forward(x, h0, training=False)
    with pytest.raises((RuntimeError, ValueError), match=r"training=True"):
        layer.backward(dy)
    assert layer.grads == {}


@pytest.mark.parametrize("cell", CELLS)
def test_inference_forward_after_a_training_forward_leaves_nothing_for_backward(cell):
    """A training forward, then an inference forward: the backward must not run on the first one's state."""
    layer = make_layer(cell, 2, True)
    x, h0, dy = data(cell, 2, True)
    layer.forward(x, h0, training=True)
    layer.forward(x[:3], None, training=False)  # another shape, so stale state would be visible
    with pytest.raises((RuntimeError, ValueError), match=r"training=True"):
        layer.backward(dy)
    # a training forward makes backward possible again
    layer.forward(x, h0, training=True)
    dx, _ = layer.backward(dy)
    assert dx.shape == x.shape
    assert np.abs(dx).max() > 0


# ---- repacking -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("config", ["uni-1", "bi-2"])
@pytest.mark.parametrize("cell", CELLS)
def test_inference_after_an_optimizer_step_uses_the_new_weights(cell, config, optimizer):
    layers, bidirectional = CONFIGS[config]
    layer = make_layer(cell, layers, bidirectional)
    x, h0, dy = data(cell, layers, bidirectional)
    before = flat(*layer.forward(x, h0, training=False))  # packs the weights
    dy = dy * np.float32(0.1)  # a gentle loss: the ReLU cell must not blow up in two steps
    layer.forward(x, h0, training=True)
    layer.backward(dy)
    opt = optim.SGD(layer.params, lr=0.1) if optimizer == "sgd" else optim.Adam(layer.params, lr=0.01)
    opt.step(layer.grads)

    after = flat(*layer.forward(x, h0, training=False))
    assert_differ(after, before, f"{cell} {config} {optimizer}")
    assert_close_all(after, flat(*numpy_twin(layer).forward(x, h0, training=False)), f"{cell} {config} vs numpy")
    assert_all_equal(after, flat(*layer.forward(x, h0, training=True)), f"{cell} {config} vs training forward")

    # a second step, with the packed weights of the first kept in between
    layer.forward(x, h0, training=True)
    layer.backward(dy)
    opt.step(layer.grads)
    again = flat(*layer.forward(x, h0, training=False))
    assert_differ(again, after, f"{cell} {config} {optimizer} second step")
    assert_close_all(again, flat(*numpy_twin(layer).forward(x, h0, training=False)), f"{cell} {config} step 2")


@pytest.mark.parametrize("config", ["uni-1", "bi-2"])
@pytest.mark.parametrize("cell", CELLS)
def test_inference_after_load_state_dict_uses_the_new_weights(cell, config):
    layers, bidirectional = CONFIGS[config]
    layer = make_layer(cell, layers, bidirectional, seed=0)
    x, h0, _ = data(cell, layers, bidirectional)
    before = flat(*layer.forward(x, h0, training=False))
    other = make_layer(cell, layers, bidirectional, seed=99)
    layer.load_state_dict(other.state_dict())
    after = flat(*layer.forward(x, h0, training=False))
    assert_differ(after, before, f"{cell} {config}")
    assert_close_all(after, flat(*numpy_twin(layer).forward(x, h0, training=False)), f"{cell} {config} vs numpy")
    assert_all_equal(after, flat(*other.forward(x, h0, training=True)), f"{cell} {config} vs the source layer")


@pytest.mark.parametrize("cell", CELLS)
def test_load_state_dict_of_another_layer_repacks_this_one(cell):
    """The version bump is global: loading into one layer must not leave another's packed weights wrong,
    and loading into a second layer must not keep the first one's packed weights stale either."""
    a = make_layer(cell, 1, True, seed=0)
    b = make_layer(cell, 1, True, seed=1)
    x, h0, _ = data(cell, 1, True)
    a.forward(x, h0, training=False)
    b.forward(x, h0, training=False)
    a.load_state_dict(make_layer(cell, 1, True, seed=2).state_dict())
    b_out = flat(*b.forward(x, h0, training=False))
    assert_all_equal(b_out, flat(*b.forward(x, h0)), f"{cell} untouched layer")
    a_out = flat(*a.forward(x, h0, training=False))
    assert_all_equal(a_out, flat(*a.forward(x, h0)), f"{cell} loaded layer")


@pytest.mark.parametrize("config", ["uni-1", "bi-2"])
@pytest.mark.parametrize("cell", CELLS)
def test_inference_after_changing_params_in_place_and_invalidate(cell, config):
    layers, bidirectional = CONFIGS[config]
    layer = make_layer(cell, layers, bidirectional)
    x, h0, _ = data(cell, layers, bidirectional)
    before = flat(*layer.forward(x, h0, training=False))
    rng = np.random.default_rng(5)
    for array in layer.params.values():  # by hand, in place: no optimizer, no load_state_dict
        array *= np.float32(1.5)
        array += rng.uniform(-0.2, 0.2, array.shape).astype(np.float32)
    layer.invalidate()
    after = flat(*layer.forward(x, h0, training=False))
    assert_differ(after, before, f"{cell} {config}")
    assert_close_all(after, flat(*numpy_twin(layer).forward(x, h0, training=False)), f"{cell} {config} vs numpy")
    assert_all_equal(after, flat(*layer.forward(x, h0, training=True)), f"{cell} {config} vs training forward")


@pytest.mark.parametrize("cell", CELLS)
def test_numpy_backend_inference_equals_its_training_forward(cell):
    layer = make_layer(cell, 2, True, backend="numpy")
    x, h0, _ = data(cell, 2, True)
    assert_all_equal(flat(*layer.forward(x, h0, training=False)), flat(*layer.forward(x, h0)), cell)


# ---- a model's predict ---------------------------------------------------------------------------------

@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_model_predict_after_more_training_matches_the_numpy_backend(cell):
    """predict runs the layers in inference mode: after further fit epochs (optimizer steps) it must see the
    new weights, as the NumPy backend model trained alike does."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((48, 7, 3))
    Y = X[:, :, 0].sum(axis=1) * 0.3 + X[:, -1, 1]
    kwargs = {"cell": cell, "num_layers": 2, "task": "regression", "dtype": "float64", "seed": 4}
    fit = {"epochs": 1, "batch_size": 16, "lr": 0.05, "verbose": 0}
    cpp = rnnkit.ManyToOne(3, 8, 1, backend="cpp", **kwargs)
    ref = rnnkit.ManyToOne(3, 8, 1, backend="numpy", **kwargs)
    for name, array in ref.params.items():
        np.testing.assert_array_equal(array, cpp.params[name])
    cpp.fit(X, Y, **fit)
    ref.fit(X, Y, **fit)
    first = cpp.predict(X)
    np.testing.assert_allclose(first, ref.predict(X), rtol=1e-8, atol=1e-8)
    cpp.fit(X, Y, **fit)
    ref.fit(X, Y, **fit)
    second = cpp.predict(X)
    assert np.abs(second - first).max() > 1e-4, "predict did not change after another epoch"
    np.testing.assert_allclose(second, ref.predict(X), rtol=1e-8, atol=1e-8)
    # and predict is the training-mode forward of the same weights
    rnn, head = cpp.layers["rnn"], cpp.layers["head"]
    assert rnn.training is True, "predict left the layer in inference mode"
    _, h_n = rnn.forward(np.ascontiguousarray(X.transpose(1, 0, 2)), training=True)
    h_last = (h_n[0] if isinstance(h_n, tuple) else h_n)[-1]
    np.testing.assert_allclose(second, head.forward(h_last)[:, 0], rtol=1e-12, atol=1e-12)
