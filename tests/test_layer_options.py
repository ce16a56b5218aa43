"""rnnkit.RNN's training options: ``dropout`` (torch.nn.RNN's, between layers), ``init`` ("torch",
"orthogonal", "identity" for every weight_hh) and ``unit_forget_bias`` (Keras' LSTM option): the
equations and gradients against a layer-by-layer reference, the masks' statistics and seeding, and
the errors bad values get."""

import math
import re

import numpy as np
import pytest
from helpers import numeric_gradient
from rnnkit import reference
from rnnkit.layers import RNN, orthogonal

BACKENDS = ["cpp", "numpy"]
KINDS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def names(layer):
    """(layer, direction, {kind: param name}) for every layer and direction, in order."""
    for index in range(layer.num_layers):
        for direction in range(layer.num_directions):
            suffix = f"_l{index}" + ("_reverse" if direction else "")
            yield index, direction, {kind: kind + suffix for kind in KINDS}


def gate_blocks(layer, name):
    weight, hidden = layer.params[name], layer.hidden_size
    return [weight[g * hidden:(g + 1) * hidden] for g in range(weight.shape[0] // hidden)]


def stacked_forward(layer, x, masks, lengths=None):
    """(y, h_n) of ``layer`` computed one layer and direction at a time with rnnkit.reference, each
    layer's output but the last multiplied by its mask: the equations dropout should follow."""
    layer_input, h_n = x, []
    for index in range(layer.num_layers):
        halves = []
        for direction in range(layer.num_directions):
            w = [layer.params[layer._name(kind, index, direction)] for kind in KINDS]
            options = {"lengths": lengths, "reverse": bool(direction), "training": False}
            if layer.cell == "lstm":
                y, h, _, _ = reference.lstm_forward(layer_input, None, None, *w, **options)
            elif layer.cell == "gru":
                y, h, _ = reference.gru_forward(layer_input, None, *w, **options)
            else:
                y, h, _ = reference.rnn_forward(layer_input, None, *w, nonlinearity=layer.cell, **options)
            halves.append(y)
            h_n.append(h)
        out = np.concatenate(halves, axis=-1)
        layer_input = out * masks[index] if index < layer.num_layers - 1 else out
    return layer_input, np.stack(h_n)


def problem(steps=5, batch=3, inputs=3, dtype=np.float64, seed=0):
    return np.random.default_rng(seed).standard_normal((steps, batch, inputs)).astype(dtype)


# -- dropout: the equations and the gradients ------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cell", ["tanh", "lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
def test_dropout_forward_is_the_stack_with_the_masks(cell, backend, bidirectional, with_lengths):
    layer = RNN(3, 4, cell=cell, num_layers=3, bidirectional=bidirectional, dropout=0.4, dtype="float64",
                backend=backend, seed=0)
    x = problem(steps=6, batch=4)
    lengths = np.array([6, 2, 0, 4]) if with_lengths else None
    y, h_n = layer(x, lengths=lengths)
    masks = layer.dropout_masks
    assert len(masks) == 2
    for mask in masks:
        assert mask.shape == (6, 4, layer.num_directions * 4)
        assert set(np.unique(mask)) == {0.0, 1 / 0.6}
        if bidirectional:  # one mask over [forward | reverse]: both halves drop
            assert (mask[..., :4] == 0).any()
            assert (mask[..., 4:] == 0).any()
    want_y, want_h = stacked_forward(layer, x, masks, lengths)
    np.testing.assert_allclose(y, want_y, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(h_n[0] if cell == "lstm" else h_n, want_h, rtol=1e-12, atol=1e-12)
    assert not np.allclose(y, stacked_forward(layer, x, [1.0, 1.0], lengths)[0])  # the masks changed y
    if with_lengths:
        padding = np.arange(6)[:, None] >= lengths[None, :]
        assert np.all(y[padding] == 0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cell", ["tanh", "lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
def test_dropout_backward_matches_finite_differences(cell, backend, bidirectional, with_lengths):
    # (without lengths the kernels' backward reads the forward's own y: dropping it in place would show)
    layer = RNN(2, 3, cell=cell, num_layers=2, bidirectional=bidirectional, dropout=0.5, dtype="float64",
                backend=backend, seed=3)
    x = problem(steps=4, batch=2, inputs=2, seed=1)
    lengths = np.array([4, 2]) if with_lengths else None
    y, _ = layer(x, lengths=lengths)
    masks = layer.dropout_masks  # fixed from here on: the function differentiated below
    assert (masks[0] == 0).any()
    rng = np.random.default_rng(2)
    dy = rng.standard_normal(y.shape)
    dh_n = rng.standard_normal((layer.num_layers * layer.num_directions, 2, 3))

    def loss():
        y, h_n = stacked_forward(layer, x, masks, lengths)
        return float(np.sum(y * dy) + np.sum(h_n * dh_n))

    dstates = (dh_n, np.zeros_like(dh_n)) if cell == "lstm" else dh_n
    dx, _ = layer.backward(dy, dstates)
    np.testing.assert_allclose(dx, numeric_gradient(loss, x), rtol=1e-6, atol=1e-8)
    if with_lengths:
        assert np.all(dx[2:, 1] == 0)  # the padding
    for name, param in layer.params.items():
        np.testing.assert_allclose(layer.grads[name], numeric_gradient(loss, param), rtol=1e-6, atol=1e-8,
                                   err_msg=name)


# -- dropout: statistics, modes, seeding -----------------------------------------------------------

@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dropout_drops_a_fraction_p_and_keeps_the_mean(p, dtype):
    layer = RNN(8, 64, num_layers=3, dropout=p, dtype=dtype, seed=0)
    x = problem(steps=40, batch=32, inputs=8, dtype=dtype)
    y_full, _ = RNN(8, 64, num_layers=3, dtype=dtype, seed=0)(x)
    layer(x)
    for mask in layer.dropout_masks:
        count = mask.size  # 81920: the fraction's standard error is sqrt(p(1-p)/count) <= 0.0018
        assert mask.dtype == np.dtype(dtype)
        assert abs(np.mean(mask == 0) - p) < 0.01
        np.testing.assert_array_equal(np.unique(mask), np.array([0, 1 / (1 - p)], dtype))
        # the mean is kept: E[mask] = 1, its standard error sqrt(p/(1-p)/count) <= 0.007
        assert abs(float(np.mean(mask, dtype=np.float64)) - 1) < 0.04
        assert count == 40 * 32 * 64
    assert not np.array_equal(layer.dropout_masks[0], layer.dropout_masks[1])  # a mask per layer
    assert not np.allclose(layer(x)[0], y_full)


@pytest.mark.parametrize("backend", BACKENDS)
def test_inference_never_drops(backend):
    x = problem(dtype=np.float32)
    plain = RNN(3, 5, cell="lstm", num_layers=3, bidirectional=True, backend=backend, seed=4)
    dropping = RNN(3, 5, cell="lstm", num_layers=3, bidirectional=True, dropout=0.9, backend=backend, seed=4)
    want, _ = plain(x, training=False)
    twin = RNN(3, 5, cell="lstm", num_layers=3, bidirectional=True, dropout=0.9, backend=backend, seed=4)
    for _ in range(3):
        y, _ = dropping(x, training=False)
        np.testing.assert_array_equal(y, want)
        assert dropping.dropout_masks == ()
    dropping.training = False  # the attribute, as torch's module.eval()
    np.testing.assert_array_equal(dropping(x)[0], want)
    np.testing.assert_array_equal(dropping(x, return_cells=True)[0], want)
    # inference drew nothing: the next training masks are the first ones a fresh twin draws
    dropping.training = True
    dropping(x)
    twin(x)
    for got, first in zip(dropping.dropout_masks, twin.dropout_masks):
        np.testing.assert_array_equal(got, first)
    np.testing.assert_array_equal(plain(x, training=True)[0], want)


def test_same_seed_same_masks_call_after_call():
    x = problem(dtype=np.float32)
    layers = [RNN(3, 6, cell="gru", num_layers=3, dropout=0.3, seed=seed) for seed in (7, 7, 8)]
    first = [layer(x)[0].copy() for layer in layers]
    second = [layer(x)[0].copy() for layer in layers]
    np.testing.assert_array_equal(first[0], first[1])
    np.testing.assert_array_equal(second[0], second[1])
    assert not np.array_equal(first[0], second[0])  # each call draws new masks
    assert not np.array_equal(first[0], first[2])  # another seed, other masks
    np.testing.assert_array_equal(layers[0].params["weight_hh_l1"], layers[1].params["weight_hh_l1"])
    # one seed drops the same units whatever the dtype and the layout
    double = RNN(3, 6, cell="gru", num_layers=3, dropout=0.3, dtype="float64", seed=7)
    batch_first = RNN(3, 6, cell="gru", num_layers=3, dropout=0.3, batch_first=True, seed=7)
    double(x.astype(np.float64))
    y_bf, _ = batch_first(x.transpose(1, 0, 2))
    np.testing.assert_array_equal(y_bf.transpose(1, 0, 2), first[0])
    layers[0] = RNN(3, 6, cell="gru", num_layers=3, dropout=0.3, seed=7)
    layers[0](x)
    for a, b, c in zip(layers[0].dropout_masks, double.dropout_masks, batch_first.dropout_masks):
        np.testing.assert_array_equal(a == 0, b == 0)
        np.testing.assert_array_equal(c, a.transpose(1, 0, 2))


def test_dropout_masks_are_read_only():
    layer = RNN(3, 4, num_layers=2, dropout=0.5, seed=0)
    layer(problem(dtype=np.float32))
    with pytest.raises(ValueError, match="read-only"):
        layer.dropout_masks[0][...] = 1


def test_a_model_generator_gives_the_same_draws_whatever_the_options():
    """A model builds its layers from one Generator: the options must not shift what comes after."""
    plain_rng, options_rng = np.random.default_rng(5), np.random.default_rng(5)
    plain = RNN(3, 4, cell="lstm", num_layers=2, seed=plain_rng)
    other = RNN(3, 4, cell="lstm", num_layers=2, dropout=0.5, init="orthogonal", unit_forget_bias=True,
                seed=options_rng)
    assert plain_rng.random() == options_rng.random()
    np.testing.assert_array_equal(plain.params["weight_ih_l1"], other.params["weight_ih_l1"])
    other(problem(dtype=np.float32))  # the masks come from the layer's own stream, not the model's
    assert plain_rng.random() == options_rng.random()
    # two layers from one Generator drop independently
    shared = np.random.default_rng(0)
    a, b = (RNN(3, 4, num_layers=2, dropout=0.5, seed=shared) for _ in range(2))
    x = problem(dtype=np.float32)
    a(x)
    b(x)
    assert not np.array_equal(a.dropout_masks[0], b.dropout_masks[0])


def test_dropout_with_one_layer_warns_and_does_nothing():
    with pytest.warns(UserWarning, match=r"num_layers greater than 1.*dropout=0\.5 and num_layers=1"):
        layer = RNN(3, 4, dropout=0.5, seed=0)
    x = problem(dtype=np.float32)
    y, _ = layer(x)
    np.testing.assert_array_equal(y, RNN(3, 4, seed=0)(x)[0])
    assert layer.dropout_masks == ()
    RNN(3, 4, dropout=0.0, seed=0)  # no warning (warnings are errors in this suite)


# -- init ------------------------------------------------------------------------------------------

def test_torch_init_is_unchanged():
    """The default draws the parameters exactly as before: U(-1/sqrt(H), 1/sqrt(H)) in order."""
    layer = RNN(3, 5, cell="gru", num_layers=2, bidirectional=True, seed=11)
    rng, bound = np.random.default_rng(11), 1 / math.sqrt(5)
    for name, param in layer.params.items():
        np.testing.assert_array_equal(param, rng.uniform(-bound, bound, param.shape).astype(np.float32), name)
    explicit = RNN(3, 5, cell="gru", num_layers=2, bidirectional=True, init="torch", seed=11)
    for name, param in layer.params.items():
        np.testing.assert_array_equal(param, explicit.params[name])


@pytest.mark.parametrize("cell", ["tanh", "relu", "lstm", "gru"])
@pytest.mark.parametrize(("dtype", "tolerance"), [("float32", 1e-6), ("float64", 1e-12)])
def test_orthogonal_init(cell, dtype, tolerance):
    layer = RNN(3, 16, cell=cell, num_layers=2, bidirectional=True, init="orthogonal", dtype=dtype, seed=0)
    torch_init = RNN(3, 16, cell=cell, num_layers=2, bidirectional=True, dtype=dtype, seed=0)
    blocks = []
    for _, _, name in names(layer):
        for block in gate_blocks(layer, name["weight_hh"]):
            w = block.astype(np.float64)
            assert np.max(np.abs(w.T @ w - np.eye(16))) < tolerance
            assert np.max(np.abs(w @ w.T - np.eye(16))) < tolerance
            blocks.append(w)
        assert not np.allclose(layer.params[name["weight_hh"]], torch_init.params[name["weight_hh"]])
        for kind in ("weight_ih", "bias_ih", "bias_hh"):  # the rest as torch, bit for bit
            np.testing.assert_array_equal(layer.params[name[kind]], torch_init.params[name[kind]])
    assert len({block.tobytes() for block in blocks}) == len(blocks)  # each block drawn anew
    again = RNN(3, 16, cell=cell, num_layers=2, bidirectional=True, init="orthogonal", dtype=dtype, seed=0)
    np.testing.assert_array_equal(again.params["weight_hh_l1_reverse"], layer.params["weight_hh_l1_reverse"])


def test_orthogonal_is_haar_distributed():
    """The sign fix matters: without it Q's diagonal leans to one sign (numpy's Q[0, 0] is always < 0)."""
    rng = np.random.default_rng(0)
    draws = np.array([orthogonal(rng, 4) for _ in range(4000)])
    diagonal = draws[:, np.arange(4), np.arange(4)]  # each entry has mean 0 and std 1/2 under Haar
    assert np.all(np.abs(diagonal.mean(axis=0)) < 0.04)
    determinants = np.linalg.det(draws)
    assert 0.45 < np.mean(determinants > 0) < 0.55


@pytest.mark.parametrize("cell", ["tanh", "relu", "lstm", "gru"])
def test_identity_init(cell):
    layer = RNN(4, 6, cell=cell, num_layers=2, bidirectional=True, init="identity", seed=1)
    torch_init = RNN(4, 6, cell=cell, num_layers=2, bidirectional=True, seed=1)
    for _, _, name in names(layer):
        blocks = gate_blocks(layer, name["weight_hh"])
        assert len(blocks) == {"lstm": 4, "gru": 3}.get(cell, 1)
        for block in blocks:
            np.testing.assert_array_equal(block, np.eye(6, dtype=np.float32))
        for kind in ("weight_ih", "bias_ih", "bias_hh"):
            np.testing.assert_array_equal(layer.params[name[kind]], torch_init.params[name[kind]])


def test_identity_relu_runs_and_trains():
    layer = RNN(3, 8, cell="relu", num_layers=2, init="identity", dtype="float64", seed=0)
    x = problem()
    y, _ = layer(x)
    layer.backward(np.ones_like(y))
    assert all(np.all(np.isfinite(g)) for g in layer.grads.values())


# -- unit_forget_bias ------------------------------------------------------------------------------

@pytest.mark.parametrize("init", ["torch", "orthogonal"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_unit_forget_bias(init, dtype):
    layer = RNN(3, 5, cell="lstm", num_layers=2, bidirectional=True, init=init, unit_forget_bias=True,
                dtype=dtype, seed=2)
    plain = RNN(3, 5, cell="lstm", num_layers=2, bidirectional=True, init=init, dtype=dtype, seed=2)
    forget = slice(5, 10)  # torch's gate order i, f, g, o
    others = np.r_[0:5, 10:20]
    for _, _, name in names(layer):
        total = layer.params[name["bias_ih"]][forget] + layer.params[name["bias_hh"]][forget]
        np.testing.assert_array_equal(total, np.ones(5, dtype))
        for kind in ("bias_ih", "bias_hh"):
            np.testing.assert_array_equal(layer.params[name[kind]][others], plain.params[name[kind]][others])
        for kind in ("weight_ih", "weight_hh"):
            np.testing.assert_array_equal(layer.params[name[kind]], plain.params[name[kind]])


# -- the configuration and bad values --------------------------------------------------------------

def test_options_are_attributes_and_round_trip_through_repr():
    layer = RNN(3, 4, cell="lstm", num_layers=2, dropout=0.25, init="orthogonal", unit_forget_bias=True,
                dtype="float64", seed=0)
    assert (layer.dropout, layer.init, layer.unit_forget_bias) == (0.25, "orthogonal", True)
    text = repr(layer)
    assert "dropout=0.25, init='orthogonal', unit_forget_bias=True" in text
    rebuilt = eval(text, {"RNN": RNN})
    assert (rebuilt.dropout, rebuilt.init, rebuilt.unit_forget_bias) == (0.25, "orthogonal", True)
    assert rebuilt.num_layers == 2
    assert repr(RNN(3, 4)) == "RNN(3, 4, cell='tanh', dtype='float32', backend='cpp')"  # defaults stay unsaid
    assert isinstance(RNN(3, 4, num_layers=2, dropout=np.float32(0.5)).dropout, float)
    assert RNN(3, 4, num_layers=2, dropout=0).dropout == 0.0


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"dropout": -0.1}, ValueError, "dropout must be in [0, 1), got -0.1"),
    ({"dropout": 1}, ValueError, "dropout must be in [0, 1), got 1"),
    ({"dropout": 1.5}, ValueError, "dropout must be in [0, 1), got 1.5"),
    ({"dropout": float("nan")}, ValueError, "dropout must be in [0, 1), got nan"),
    ({"dropout": "0.5"}, TypeError, "dropout must be a number in [0, 1), got '0.5' (str)"),
    ({"dropout": None}, TypeError, "dropout must be a number in [0, 1), got None"),
    ({"dropout": True}, TypeError, "dropout must be a number in [0, 1), got True (bool)"),
    ({"init": "xavier"}, ValueError, "init must be one of 'torch', 'orthogonal', 'identity', got 'xavier'"),
    ({"init": None}, ValueError, "init must be one of 'torch', 'orthogonal', 'identity', got None"),
    ({"init": "Orthogonal"}, ValueError, "got 'Orthogonal'"),
    ({"unit_forget_bias": "yes"}, TypeError, "unit_forget_bias must be a bool, got str"),
    ({"unit_forget_bias": True}, ValueError, "unit_forget_bias=True is for the LSTM"),
    ({"unit_forget_bias": True, "cell": "gru"}, ValueError, "this layer's cell is 'gru'"),
], ids=lambda value: repr(value) if isinstance(value, dict) else "")
def test_bad_values_are_refused_by_name(kwargs, error, message):
    with pytest.raises(error, match=re.escape(message)):
        RNN(3, 4, num_layers=2, **kwargs)


def test_unit_forget_bias_false_is_fine_for_every_cell():
    for cell in ("tanh", "relu", "gru"):
        RNN(3, 4, cell=cell, unit_forget_bias=False)
