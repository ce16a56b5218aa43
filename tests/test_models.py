"""The topology models: each learns a small task, cpp and numpy backends train alike, save/load round
trips, every cell works in every model, and bad input is refused with a message that names it."""

import re

import numpy as np
import pytest
import rnnkit
from rnnkit import ManyToMany, ManyToOne, Model, NotFittedError, OneToMany, OneToOne, Seq2Seq
from test_layers import CELLS

MODELS = [OneToOne, OneToMany, ManyToOne, ManyToMany, Seq2Seq]


@pytest.fixture(autouse=True)
def one_kernel_thread(threads):
    """Results are bitwise the same for any thread count (test_threads.py checks that); one thread
    keeps these many small training loops fast on a machine whose cores other processes share."""
    threads(1)


def tiny_task(model_cls, n=24, features=3, steps=5, classes=4, task="classification", seed=0):
    """Structured toy data of the right shapes for a model class: (X, Y)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, features) if model_cls.x_ndim == 2 else (n, steps, features))
    if task == "regression":
        if model_cls in (OneToOne, ManyToOne):
            return x, np.tanh(x.reshape(n, -1)[:, :2].sum(1))
        if model_cls is ManyToMany:  # causal: the running sum so far
            return x, np.tanh(np.cumsum(x[..., 0], axis=1) / 2)
        head = x if x.ndim == 2 else x.sum(1)
        return x, np.tanh(head[:, :1] * np.linspace(1, -1, 3))
    first = (x.reshape(n, -1)[:, 0] > 0).astype(int)
    if model_cls in (OneToOne, ManyToOne):
        return x, first
    if model_cls is ManyToMany:
        return x, (np.cumsum(x[..., 0], axis=1) > 0).astype(int) + 2 * (x[..., 1] > 0)
    label = (x.reshape(n, -1)[:, :2] > 0) @ [1, 2]
    return x, np.stack([label, (label + 1) % classes, label], axis=1)


# -- learning ----------------------------------------------------------------------------------------

def test_one_to_one_learns_a_nonlinear_boundary():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 4))
    y = (x[:, 0] * x[:, 1] > 0).astype(int)  # XOR of two signs: not linearly separable
    model = OneToOne(4, 32, 2, seed=0)
    model.fit(x[:300], y[:300], epochs=30, lr=1e-2, verbose=0)
    assert model.score(x[:300], y[:300]) >= 0.9
    assert model.score(x[300:], y[300:]) >= 0.85
    assert model.predict(x).shape == (400,)


def test_many_to_one_learns_the_sign_of_a_sum():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 8, 2))
    y = (x[..., 0].sum(1) > 0).astype(int)
    model = ManyToOne(2, 32, 2, seed=0)
    history = model.fit(x[:300], y[:300], epochs=10, lr=1e-2, verbose=0, validation_data=(x[300:], y[300:])).history_
    assert history["val_score"][-1] >= 0.9
    assert history["val_score"][-1] == model.score(x[300:], y[300:])
    assert history["loss"][-1] < history["loss"][0] / 2


def test_many_to_many_labels_every_step():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 10, 2))
    y = (np.cumsum(x[..., 0], axis=1) > 0).astype(int)  # the sign of the running sum so far
    model = ManyToMany(2, 32, 2, seed=0)
    model.fit(x[:300], y[:300], epochs=10, lr=1e-2, verbose=0)
    assert model.score(x[300:], y[300:]) >= 0.9
    assert model.predict(x[300:]).shape == (100, 10)


def test_one_to_many_generates_a_sequence_from_its_input():
    rng = np.random.default_rng(0)
    label = rng.integers(0, 4, 300)
    x = np.eye(4)[label]
    y = np.stack([label, (label + 1) % 4, (label + 2) % 4, label], axis=1)
    model = OneToMany(4, 32, 4, seed=0)
    model.fit(x, y, epochs=20, lr=1e-2, verbose=0)
    assert model.score(x, y) >= 0.95
    assert model.predict(x).shape == (300, 4)  # as many steps as the targets had
    longer = model.predict(x[:5], steps=7)
    assert longer.shape == (5, 7)
    np.testing.assert_array_equal(longer[:, :4], y[:5])  # greedy decoding is causal


def test_seq2seq_reverses_a_sequence_with_a_different_output_length():
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 5, (400, 6))
    x = np.eye(5)[tokens]
    y = tokens[:, ::-1][:, :4]  # the last four tokens, reversed: T_out = 4, T_in = 6
    model = Seq2Seq(5, 64, 5, seed=0)
    model.fit(x[:300], y[:300], epochs=30, lr=1e-2, verbose=0)
    assert model.score(x[300:], y[300:]) >= 0.9
    assert model.predict(x[:3, :3], steps=2).shape == (3, 2)  # any T_in, any T_out


@pytest.mark.parametrize("model_cls", [ManyToMany, OneToMany, ManyToOne])
def test_regression_reaches_a_high_r2(model_cls):
    x, y = tiny_task(model_cls, n=300, task="regression", seed=1)
    model = model_cls(3, 32, 1, task="regression", seed=0)
    model.fit(x, y, epochs=30, lr=1e-2, verbose=0)
    assert model.score(x, y) >= 0.9
    assert model.predict(x).shape == y.shape


def test_regression_with_several_outputs_keeps_the_last_axis():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 3))
    y = np.stack([np.tanh(x[:, 0]), x[:, 1] * 0.5], axis=1)
    model = OneToOne(3, 16, 2, task="regression", seed=0)
    model.fit(x, y, epochs=30, lr=1e-2, verbose=0)
    assert model.predict(x).shape == (200, 2)
    assert model.score(x, y) >= 0.9


# -- the two backends, every cell -------------------------------------------------------------------

@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("model_cls", MODELS, ids=lambda c: c.__name__)
def test_cpp_and_numpy_backends_train_alike(model_cls, cell):
    x, y = tiny_task(model_cls)
    histories, predictions = [], []
    for backend in ("cpp", "numpy"):
        model = model_cls(3, 8, 4, cell=cell, num_layers=2, dtype="float64", backend=backend, seed=3)
        histories.append(model.fit(x, y, epochs=4, batch_size=8, lr=1e-2, verbose=0).history_["loss"])
        predictions.append(model.predict(x))
    np.testing.assert_allclose(histories[0], histories[1], rtol=1e-8)
    np.testing.assert_array_equal(predictions[0], predictions[1])
    assert histories[0][-1] < histories[0][0]  # it learns with this cell


def test_training_is_reproducible_from_the_seed():
    x, y = tiny_task(ManyToMany)
    runs = [ManyToMany(3, 8, 4, seed=s).fit(x, y, epochs=2, verbose=0).history_["loss"] for s in (5, 5, 6)]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_fit_continues_from_the_current_weights():
    x, y = tiny_task(ManyToOne)
    model = ManyToOne(3, 8, 4, seed=0)
    first = model.fit(x, y, epochs=3, lr=1e-2, verbose=0).history_["loss"]
    second = model.fit(x, y, epochs=1, lr=1e-2, verbose=0).history_["loss"]
    assert second[0] < first[0]


# -- save / load ------------------------------------------------------------------------------------

@pytest.mark.parametrize("model_cls", MODELS, ids=lambda c: c.__name__)
def test_save_load_predicts_identically(model_cls, tmp_path):
    x, y = tiny_task(model_cls)
    model = model_cls(3, 8, 4, num_layers=2, dtype="float64", seed=0)
    model.fit(x, y, epochs=1, verbose=0)
    path = tmp_path / "model.npz"
    model.save(path)
    for loader in (Model, model_cls):
        restored = loader.load(path)
        assert type(restored) is model_cls
        assert restored.dtype == np.float64
        assert restored.num_layers == 2
        assert restored.steps == model.steps
        np.testing.assert_array_equal(restored.predict(x), model.predict(x))
    with np.load(path, allow_pickle=False) as data:  # plain arrays and a JSON string, no pickle
        assert all(data[k].dtype != object for k in data.files)


def test_load_refuses_other_files_and_other_classes(tmp_path):
    model = ManyToOne(3, 4, 2, seed=0)
    model.save(tmp_path / "m.npz")
    with pytest.raises(TypeError, match="holds a ManyToOne, not a Seq2Seq"):
        Seq2Seq.load(tmp_path / "m.npz")
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="is not an rnnkit model file"):
        Model.load(tmp_path / "other.npz")
    with pytest.raises(NotFittedError):  # saved before fit: still not fitted
        Model.load(tmp_path / "m.npz").predict(np.zeros((1, 2, 3)))


# -- interface details ------------------------------------------------------------------------------

def test_history_has_validation_entries_per_epoch():
    x, y = tiny_task(Seq2Seq)
    history = Seq2Seq(3, 8, 4, seed=0).fit(x, y, epochs=3, verbose=0, validation_data=(x[:10], y[:10])).history_
    assert set(history) == {"loss", "time", "val_loss", "val_score"}
    assert all(len(v) == 3 for v in history.values())
    assert all(0 <= s <= 1 for s in history["val_score"])


@pytest.mark.parametrize(("verbose", "pattern"), [(0, None), (1, r"epoch 2/2.*batch"), (2, r"epoch 2/2 .*loss=")])
def test_verbose_progress(capsys, verbose, pattern):
    x, y = tiny_task(OneToOne)
    OneToOne(3, 4, 4, seed=0).fit(x, y, epochs=2, verbose=verbose).history_
    captured = capsys.readouterr()
    assert captured.out == ""
    if pattern is None:
        assert captured.err == ""
    else:
        assert re.search(pattern, captured.err)


def test_inputs_may_be_lists_ints_and_integral_float_labels():
    x, y = tiny_task(OneToOne)
    model = OneToOne(3, 4, 4, seed=0)
    model.fit(x.tolist(), y.astype(float), epochs=1, verbose=0)
    one_hot_ints = np.eye(3, dtype=np.int64)[[0, 1, 2]]
    assert model.predict(one_hot_ints).shape == (3,)
    assert model.predict(np.zeros((0, 3))).shape == (0,)


def test_torch_tensors_are_accepted():
    torch = pytest.importorskip("torch")
    x, y = tiny_task(ManyToOne)
    model = ManyToOne(3, 4, 4, seed=0)
    model.fit(torch.tensor(x), torch.tensor(y), epochs=1, verbose=0)
    np.testing.assert_array_equal(model.predict(torch.tensor(x)), model.predict(x))


def test_repr_and_exports():
    model = ManyToMany(3, 8, 4, cell="relu", seed=1)
    assert repr(model).startswith("ManyToMany(3, 8, 4, cell='relu'")
    assert rnnkit.Seq2Seq is Seq2Seq
    assert issubclass(NotFittedError, ValueError)


# -- bad input ---------------------------------------------------------------------------------------

def fitted(model_cls, **kwargs):
    x, y = tiny_task(model_cls)
    model = model_cls(3, 4, 4, seed=0, **kwargs)
    model.fit(x, y, epochs=1, verbose=0)
    return model


@pytest.mark.parametrize(("model_cls", "x", "y", "error", "pattern"), [
    (ManyToOne, np.zeros((10, 3)), np.zeros(10), ValueError,
     r"X has shape \(10, 3\); ManyToOne expects 3 dimensions \(N, T, F\)"),
    (OneToOne, np.zeros((10, 2, 3)), np.zeros(10), ValueError,
     r"X has shape \(10, 2, 3\); OneToOne expects 2 dimensions \(N, F\)"),
    (ManyToOne, np.zeros((10, 5, 3)), np.zeros(9), ValueError,
     r"X and Y have different numbers of samples: 10 and 9"),
    (ManyToOne, np.zeros((10, 5, 4)), np.zeros(10), ValueError,
     r"X has 4 features, but ManyToOne is expecting 3 features as input \(its input_size; X has shape \(10, 5, 4\)\)"),
    (ManyToOne, np.zeros((10, 0, 3)), np.zeros(10), ValueError, r"at least one timestep"),
    (OneToOne, np.zeros((0, 3)), np.zeros(0), ValueError, r"fit needs at least one sample"),
    (OneToOne, np.zeros((3, 3)), np.array([0, 1, 4]), ValueError,
     r"Y holds labels from 0 to 4; labels must lie in \[0, output_size\) = \[0, 4\)"),
    (OneToOne, np.zeros((3, 3)), np.array([0, -1, 2]), ValueError, r"labels must lie in \[0, output_size\)"),
    (OneToOne, np.zeros((3, 3)), np.array([0, 0.5, 2]), ValueError, r"Y must hold integer class labels"),
    (OneToOne, np.zeros((3, 3)), np.zeros((3, 1)), ValueError,
     r"Y has shape \(3, 1\); OneToOne expects Y of shape \(N,\) for task='classification'"),
    (ManyToMany, np.zeros((3, 5, 3)), np.zeros(3), ValueError, r"Y has shape \(3,\); ManyToMany expects Y of shape \(N, T\)"),
    (ManyToMany, np.zeros((3, 5, 3)), np.zeros((3, 4)), ValueError, r"Y has 4 timesteps and X has 5"),
    (OneToMany, np.zeros((3, 3)), np.zeros((3, 0)), ValueError, r"at least one target step"),
    (OneToOne, np.array([[0, np.nan, 0]] * 3), np.zeros(3), ValueError, r"X contains NaN or Inf \(first at index \(0, 1\)\)"),
    (OneToOne, np.array([[0, 0, np.inf]] * 3), np.zeros(3), ValueError, r"X contains NaN or Inf"),
    (OneToOne, np.zeros((3, 3)), np.array([0, np.nan, 1]), ValueError, r"Y contains NaN or Inf"),
    (OneToOne, np.full((3, 3), "a"), np.zeros(3), TypeError, r"X must contain real numbers, got an array of dtype <U1"),
    (OneToOne, np.zeros((3, 3), complex), np.zeros(3), ValueError, r"X has dtype complex128: Complex data not supported"),
    (OneToOne, "abc", np.zeros(3), TypeError, r"X must be an array of numbers, got str"),
    (OneToOne, [[1.0, 2.0], [3.0]], np.zeros(2), ValueError, r"X could not be converted to an array"),
])
def test_bad_data_is_refused(model_cls, x, y, error, pattern):
    model = model_cls(3, 4, 4, seed=0)
    with pytest.raises(error, match=pattern):
        model.fit(x, y, verbose=0)


@pytest.mark.parametrize(("y", "pattern"), [
    (np.array([0.0, np.inf, 1.0]), r"Y contains NaN or Inf"),
    (np.zeros((3, 3)), r"Y has shape \(3, 3\); its last axis must be output_size = 2"),
    (np.zeros((3, 2, 1)), r"Y has shape \(3, 2, 1\); OneToOne expects Y of shape \(N, output_size\)"),
])
def test_bad_regression_targets_are_refused(y, pattern):
    model = OneToOne(3, 4, 2, task="regression", seed=0)
    with pytest.raises(ValueError, match=pattern):
        model.fit(np.zeros((3, 3)), y, verbose=0)


@pytest.mark.parametrize("model_cls", MODELS, ids=lambda c: c.__name__)
def test_predict_and_score_before_fit(model_cls):
    x, y = tiny_task(model_cls)
    model = model_cls(3, 4, 4, seed=0)
    with pytest.raises(NotFittedError, match=f"this {model_cls.__name__} is not fitted yet: call fit"):
        model.predict(x)
    with pytest.raises(ValueError, match="not fitted yet"):
        model.score(x, y)


def test_predict_checks_its_input_like_fit():
    model = fitted(ManyToOne)
    with pytest.raises(ValueError, match=r"X has 2 features"):
        model.predict(np.zeros((2, 5, 2)))
    with pytest.raises(ValueError, match=r"X contains NaN or Inf"):
        model.predict(np.full((2, 5, 3), np.nan))
    decoder = fitted(OneToMany)
    with pytest.raises(ValueError, match="steps must be >= 1, got 0"):
        decoder.predict(np.zeros((2, 3)), steps=0)
    with pytest.raises(TypeError, match="steps must be an int"):
        decoder.predict(np.zeros((2, 3)), steps=2.0)


@pytest.mark.parametrize(("kwargs", "error", "pattern"), [
    ({"epochs": 0}, ValueError, "epochs must be >= 1, got 0"),
    ({"batch_size": 0}, ValueError, "batch_size must be >= 1"),
    ({"lr": -1.0}, ValueError, "lr must be > 0"),
    ({"optimizer": "rmsprop"}, ValueError, "optimizer must be one of 'adam', 'sgd'"),
    ({"clip": 0}, ValueError, "clip must be None or a number > 0, got 0"),
    ({"verbose": 3}, ValueError, "verbose must be 0, 1 or 2"),
    ({"validation_data": (np.zeros((2, 3)),)}, TypeError, r"validation_data must be a pair \(X_val, Y_val\)"),
    ({"validation_data": (np.zeros((2, 4)), np.zeros(2))}, ValueError, r"X_val has 4 features"),
    ({"validation_data": (np.zeros((2, 3)), np.zeros(3))}, ValueError, r"X and Y_val have different numbers"),
])
def test_bad_fit_arguments(kwargs, error, pattern):
    x, y = tiny_task(OneToOne)
    with pytest.raises(error, match=pattern):
        OneToOne(3, 4, 4, seed=0).fit(x, y, **{"verbose": 0, **kwargs}).history_


@pytest.mark.parametrize(("kwargs", "error", "pattern"), [
    ({"task": "ranking"}, ValueError, "task must be 'classification' or 'regression', got 'ranking'"),
    ({"cell": "elman"}, ValueError, "cell must be one of"),
    ({"dtype": "float16"}, ValueError, "dtype must be 'float32' or 'float64'"),
    ({"backend": "gpu"}, ValueError, "backend must be one of"),
    ({"seed": 1.5}, TypeError, "seed must be None or an int"),
    ({"output_size": 0}, ValueError, "output_size must be >= 1"),
    ({"num_layers": "2"}, TypeError, "num_layers must be an int, got str"),
])
def test_bad_constructor_arguments(kwargs, error, pattern):
    args = {"input_size": 3, "hidden_size": 4, "output_size": 2, **kwargs}
    with pytest.raises(error, match=pattern):
        OneToMany(**args)


def test_r2_is_scikit_learns_variance_weighted_r2():
    metrics = pytest.importorskip("sklearn.metrics")
    from rnnkit._model import r2_score

    rng = np.random.default_rng(0)
    y = rng.standard_normal((50, 3)) * [1, 2, 3]
    pred = y + rng.standard_normal((50, 3)) * 0.5
    assert r2_score(y, pred) == pytest.approx(metrics.r2_score(y, pred, multioutput="variance_weighted"), rel=1e-12)
    assert r2_score(y[:, 0], pred[:, 0]) == pytest.approx(metrics.r2_score(y[:, 0], pred[:, 0]), rel=1e-12)


def test_the_base_class_is_not_a_model():
    with pytest.raises(TypeError, match="Model is a base class"):
        Model(3, 4, 2)


def test_sequence_targets_with_another_number_of_samples_are_refused_naming_both_shapes():
    model = ManyToMany(3, 4, 2)
    with pytest.raises(ValueError, match=r"X and Y have different numbers of samples: 5 and 4 \(shapes \(5, 4, 3\) "
                                         r"and \(4, 4\)\)"):
        model.fit(np.zeros((5, 4, 3)), np.zeros((4, 4), int), verbose=0)
    with pytest.raises(ValueError, match="X and Y have different numbers of samples: 2 and 3"):
        model.fit([np.zeros((4, 3)), np.zeros((2, 3))], np.zeros((3, 4), int), verbose=0)


@pytest.mark.parametrize("model_cls", [OneToOne, ManyToOne, ManyToMany, Seq2Seq])
def test_validation_loss_and_score_are_the_models_own_from_one_forward(model_cls):
    """fit's val_loss and val_score are those of the model after the epoch (score() and the mean
    loss); a model whose predictions are its outputs' makes them with one forward per chunk."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 3) if model_cls is OneToOne else (40, 5, 3))
    flat = x.reshape(40, -1)
    y = (flat[:, 0] > 0).astype(int) if not model_cls.sequence_targets else (flat[:, :5] > 0).astype(int)
    xv, yv = x[:15], y[:15]
    model = model_cls(3, 6, 2, seed=0, dtype="float64")
    model.fit(x, y, epochs=1, verbose=0)
    forwards = []
    original = model._forward
    model._forward = lambda *a: forwards.append(1) or original(*a)
    model.fit(x, y, epochs=1, batch_size=40, verbose=0, validation_data=(xv, yv))
    # one batch of 40, then one validation forward (a decoder's score is generated without _forward)
    assert len(forwards) == 2
    del model._forward
    assert model.history_["val_score"][0] == model.score(xv, yv)
    checked = model._check_x(xv)
    assert model.history_["val_loss"][0] == model._mean_loss(checked, model._check_y(yv, checked))


@pytest.mark.parametrize("topology", ["OneToOne", "ManyToOne", "ManyToMany", "OneToMany", "Seq2Seq"])
def test_training_skips_the_inputs_gradient_and_learns_the_same(topology, monkeypatch):
    """Without an embedding nothing learns from the recurrent layer's dx, so fit skips it
    (Model._needs_dx); forcing it back changes no weight's bit."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 5, 3)) if topology in ("ManyToOne", "ManyToMany", "Seq2Seq") else rng.standard_normal((40, 3))
    y = rng.integers(0, 4, (40, 5) if topology in ("ManyToMany", "OneToMany", "Seq2Seq") else 40)
    cls = getattr(rnnkit, topology)

    def trained(force_dx):
        if force_dx:
            monkeypatch.setattr(Model, "_needs_dx", property(lambda self: True))
        model = cls(3, 8, 4, seed=1, num_layers=2)
        model.fit(x, y, epochs=2, batch_size=16, verbose=0)
        monkeypatch.undo()
        return {f"{name}.{k}": v.copy() for name, layer in model.layers.items() for k, v in layer.params.items()}

    calls = []
    backward = rnnkit.layers.RNN.backward

    def spy(self, *args, need_dx=True, **kwargs):
        calls.append(need_dx)
        return backward(self, *args, need_dx=need_dx, **kwargs)

    monkeypatch.setattr(rnnkit.layers.RNN, "backward", spy)
    skipped = trained(False)
    assert calls and not any(calls)  # every recurrent backward skipped dx
    forced = trained(True)
    assert skipped.keys() == forced.keys()
    for name in skipped:
        assert skipped[name].tobytes() == forced[name].tobytes(), name
