"""rnnkit.diagnostics.gradient_flow (dL/dh_t against finite differences; vanishing and exploding
gradients where theory says how fast) and `python -m rnnkit gradients --quick`."""

import importlib.util
import subprocess
import sys

import numpy as np
import pytest
from rnnkit import ManyToMany, ManyToOne, OneToOne, Seq2Seq
from rnnkit import diagnostics as dg

CELLS = ("tanh", "relu", "lstm", "gru")
EPS = 1e-5


def _data(model_cls, task, samples, steps, features, outputs, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((samples, steps, features))
    per_step = model_cls is ManyToMany
    shape = (samples, steps) if per_step else (samples,)
    if task == "classification":
        return X, rng.integers(0, outputs, shape)
    return X, rng.standard_normal((*shape, outputs))


def _numeric_gradients(model, X, y, layers, steps, samples, hidden):
    """Central differences of the loss with one unit of one sample's h_t moved (L, T, N, H)."""
    numeric = np.zeros((layers, steps, samples, hidden))
    for index in np.ndindex(numeric.shape):
        layer, t, n, j = index
        delta = np.zeros((samples, hidden))
        delta[n, j] = EPS
        numeric[index] = (dg.perturbed_loss(model, X, y, layer, t, delta)
                          - dg.perturbed_loss(model, X, y, layer, t, -delta)) / (2 * EPS)
    return numeric


CASES = [(ManyToOne, cell, layers, "classification") for cell in CELLS for layers in (1, 2)] + [
    (ManyToMany, cell, 2, "classification") for cell in CELLS] + [
    (ManyToOne, "lstm", 1, "regression"), (ManyToMany, "gru", 1, "regression")]


@pytest.mark.parametrize(("model_cls", "cell", "layers", "task"), CASES,
                         ids=[f"{c.__name__}-{cell}-{n}layer-{task[:5]}" for c, cell, n, task in CASES])
def test_state_gradients_match_central_differences(model_cls, cell, layers, task):
    samples, steps, features, hidden, outputs = 2, 4, 3, 3, 3
    model = model_cls(features, hidden, outputs, cell=cell, num_layers=layers, task=task, seed=3)
    X, y = _data(model_cls, task, samples, steps, features, outputs)
    loss, gradients = dg.state_gradients(model, X, y)
    assert gradients.shape == (layers, steps, samples, hidden)
    numeric = _numeric_gradients(model, X, y, layers, steps, samples, hidden)
    scale = np.abs(numeric).max()
    assert scale > 1e-6  # (a gradient to compare, not zeros)
    assert np.abs(gradients - numeric).max() <= 1e-6 * scale
    flow = dg.gradient_flow(model, X, y)
    np.testing.assert_allclose(flow.norms, np.linalg.norm(numeric, axis=-1).mean(axis=-1), rtol=1e-6)
    assert flow.loss == loss


@pytest.mark.parametrize("model_cls", [ManyToOne, ManyToMany])
@pytest.mark.parametrize("task", ["classification", "regression"])
def test_the_loss_is_the_models(model_cls, task):
    """The forward under the gradients is the model's own: its loss, as fit averages it."""
    model = model_cls(3, 5, 2, cell="gru", num_layers=2, task=task, dtype="float64", seed=1)
    X, y = _data(model_cls, task, 6, 7, 3, 2, seed=1)
    x = model._check_x(X)
    expected = model._mean_loss(x, model._check_y(y, x))
    assert dg.gradient_flow(model, X, y).loss == pytest.approx(expected, rel=1e-12)


def test_token_ids_are_embedded_first():
    model = ManyToOne(4, 3, 2, cell="lstm", vocab_size=6, seed=0)
    rng = np.random.default_rng(0)
    ids, labels = rng.integers(0, 6, (3, 5)), rng.integers(0, 2, 3)
    _, gradients = dg.state_gradients(model, ids, labels)
    numeric = _numeric_gradients(model, ids, labels, 1, 5, 3, 3)
    assert np.abs(gradients - numeric).max() <= 1e-6 * np.abs(numeric).max()
    # the same as feeding the embedded rows as float inputs to a model with those weights
    floats = ManyToOne(4, 3, 2, cell="lstm", seed=0)
    for name in ("rnn", "head"):
        floats.layers[name].load_state_dict(model.layers[name].state_dict())
    embedded = model.layers["embed"].params["weight"][ids]
    np.testing.assert_allclose(dg.gradient_flow(floats, embedded, labels).norms,
                               dg.gradient_flow(model, ids, labels).norms, rtol=1e-12)


def _linear_tanh(gain, hidden=16, steps=20, seed=0):
    """A tanh ManyToOne whose W_hh is gain × an orthogonal matrix, with no biases and inputs so small
    that tanh stays linear: then dL/dh_t = (W_hh^T)^(T-1-t) dL/dh_{T-1} exactly, whose norm is
    gain^(T-1-t) times the last step's, sample by sample."""
    model = ManyToOne(4, hidden, 3, seed=seed, dtype="float64")
    rng = np.random.default_rng(seed)
    weights = model.layers["rnn"].state_dict()
    weights["weight_hh_l0"] = gain * np.linalg.qr(rng.standard_normal((hidden, hidden)))[0]
    weights["weight_ih_l0"] *= 1e-6
    weights["bias_ih_l0"][:] = 0
    weights["bias_hh_l0"][:] = 0
    model.layers["rnn"].load_state_dict(weights)
    return model, rng.standard_normal((8, steps, 4)), rng.integers(0, 3, 8)


@pytest.mark.parametrize("gain", [0.5, 1.5], ids=["vanishing", "exploding"])
def test_small_recurrent_weights_vanish_and_large_ones_explode(gain):
    model, X, y = _linear_tanh(gain)
    flow = dg.gradient_flow(model, X, y)
    np.testing.assert_array_equal(flow.distance, flow.steps[::-1])
    by_distance = flow.norms[0][np.argsort(flow.distance)]
    np.testing.assert_allclose(by_distance[1:] / by_distance[:-1], gain, rtol=1e-4)  # one factor gain per step back
    if gain < 1:
        assert by_distance[-1] < 1e-5 * by_distance[0]
    else:
        assert by_distance[-1] > 1e3 * by_distance[0]


def test_default_tanh_weights_scaled_down_vanish_with_ordinary_inputs():
    """Not only in the linear regime: W_hh scaled to 0.3x its start shrinks the gradient every step back."""
    model = ManyToOne(4, 16, 3, seed=0, dtype="float64")
    weights = model.layers["rnn"].state_dict()
    weights["weight_hh_l0"] *= 0.3
    model.layers["rnn"].load_state_dict(weights)
    X, y = _data(ManyToOne, "classification", 8, 20, 4, 3)
    by_distance = dg.gradient_flow(model, X, y).norms[0][::-1]
    assert np.all(np.diff(by_distance) < 0)
    assert by_distance[-1] < 1e-8 * by_distance[0]


def test_refusals():
    X, y = _data(ManyToOne, "classification", 2, 3, 2, 2)
    with pytest.raises(TypeError, match="got a OneToOne"):
        dg.gradient_flow(OneToOne(2, 3, 2), X[:, 0], y)
    with pytest.raises(TypeError, match="got a Seq2Seq"):
        dg.gradient_flow(Seq2Seq(2, 3, 2), X, y[:, None])
    with pytest.raises(ValueError, match="bidirectional"):
        dg.gradient_flow(ManyToOne(2, 3, 2, bidirectional=True), X, y)
    ragged = [np.zeros((3, 2)), np.zeros((2, 2))]
    with pytest.raises(ValueError, match="sequences of different lengths"):
        dg.gradient_flow(ManyToOne(2, 3, 2), ragged, y)
    with pytest.raises(ValueError, match="features"):  # the model's own checks of X
        dg.gradient_flow(ManyToOne(5, 3, 2), X, y)


# ---- python -m rnnkit gradients -------------------------------------------------------------------

def test_the_gradients_command_quick(tmp_path):
    if importlib.util.find_spec("matplotlib") is None:
        pytest.skip("matplotlib is not installed (the bench extra): the command draws its figure with it")
    from rnnkit.gradients import QUICK, VARIANTS

    out = tmp_path / "figures"
    result = subprocess.run([sys.executable, "-m", "rnnkit", "gradients", "--quick", "--out", str(out)],
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    png = out / "gradients.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote {png}" in result.stdout
    lines = result.stdout.splitlines()
    header = next(line for line in lines if line.startswith("cell"))
    assert all(f"k={k}" in header for k in QUICK.lengths)
    for variant in VARIANTS:
        rows = [line for line in lines if line.startswith(variant.label + " ")
                and line[len(variant.label):].split()[0] in ("1", "none")]
        assert len(rows) == 2, (variant.label, result.stdout)  # clip=1 and none
        for row in rows:
            assert len(row[len(variant.label):].split()) >= 2 + len(QUICK.lengths)


def test_the_gradients_command_without_matplotlib(tmp_path):
    """A stand-in matplotlib that fails to import: the command says so and exits 1 before training."""
    blocker = tmp_path / "matplotlib"
    blocker.mkdir()
    (blocker / "__init__.py").write_text("raise ImportError('no matplotlib here (the test blocks it)')\n")
    result = subprocess.run([sys.executable, "-m", "rnnkit", "gradients", "--quick", "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=120, check=False,
                            env={**__import__("os").environ, "PYTHONPATH": str(tmp_path)})
    assert result.returncode == 1
    assert "matplotlib" in result.stderr
    assert "pip install matplotlib" in result.stderr
    assert not (tmp_path / "gradients.png").exists()


def test_a_model_without_weights_yet_is_not_fitted():
    from rnnkit import NotFittedError

    X, y = _data(ManyToOne, "classification", 2, 3, 2, 2)
    with pytest.raises(NotFittedError, match="gradient_flow"):
        dg.gradient_flow(ManyToOne(None, 3, None), X, y)


def test_labels_other_than_indices_are_the_models_classes():
    """A model fitted on string labels: y in those labels, mapped as fit maps them."""
    X, y = _data(ManyToOne, "classification", 6, 4, 2, 2, seed=2)
    names = np.array(["no", "yes"])[y]
    model = ManyToOne(2, 3, 2, seed=0).fit(X, names, epochs=1, verbose=0)
    by_index = ManyToOne(2, 3, 2)  # the same weights, labels 0 and 1
    for name in ("rnn", "head"):
        by_index.layers[name].load_state_dict(model.layers[name].state_dict())
    np.testing.assert_array_equal(dg.gradient_flow(model, X, names).norms, dg.gradient_flow(by_index, X, y).norms)
