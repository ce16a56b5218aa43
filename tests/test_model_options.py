"""The models' dropout (between layers and on the head's input), init and unit_forget_bias."""

import numpy as np
import pytest
import rnnkit
from rnnkit import ManyToMany, ManyToOne, OneToOne


def data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 5, 3))
    return X, (X[:, :, 0].sum(axis=1) > 0).astype(int)


def test_dropout_drops_the_head_input_in_training_only_and_reproducibly():
    X, y = data()
    model = ManyToOne(3, 200, 2, num_layers=2, dropout=0.3, dtype="float64", seed=0)
    assert model.layers["rnn"].dropout == 0.3
    batch = model._check_x(X).take(np.arange(len(X)))
    model._forward(batch, None)
    mask = model._head_mask
    assert mask.shape == (len(X), 200)
    assert abs(np.mean(mask == 0) - 0.3) < 0.02  # 12,800 draws
    np.testing.assert_allclose(np.unique(mask), [0, 1 / 0.7])
    dout = np.random.default_rng(1).standard_normal((len(X), 2))
    dfeatures = model._head_backward(dout)  # the head's gradient, through the same mask
    np.testing.assert_allclose(dfeatures, (dout @ model.layers["head"].params["weight"]) * mask, rtol=1e-12)
    plain = ManyToOne(3, 200, 2, num_layers=2, dtype="float64", seed=0)
    with model._inference(), plain._inference():  # inference never drops: the same weights, the same outputs
        np.testing.assert_array_equal(model._forward(batch, None), plain._forward(batch, None))
    runs = [ManyToOne(3, 8, 2, num_layers=2, dropout=0.5, seed=3).fit(X, y, epochs=2, verbose=0).history_["loss"]
            for _ in range(2)]
    assert runs[0] == runs[1]
    assert ManyToOne(3, 8, 2, num_layers=2, seed=3).fit(X, y, epochs=2, verbose=0).history_["loss"] != runs[0]
    one_layer = OneToOne(3, 8, 2, dropout=0.5, seed=0)  # one layer: only the head's input drops, no warning
    assert one_layer.layers["rnn"].dropout == 0.0


def test_init_and_unit_forget_bias_reach_the_layers_and_survive_save(tmp_path):
    model = ManyToMany(3, 6, 2, cell="lstm", num_layers=2, init="orthogonal", unit_forget_bias=True, dropout=0.1,
                       dtype="float64", seed=0)
    w = model.params["rnn.weight_hh_l1"]
    for gate in range(4):
        block = w[gate * 6:(gate + 1) * 6]
        np.testing.assert_allclose(block.T @ block, np.eye(6), atol=1e-12)
    b = model.params["rnn.bias_ih_l0"] + model.params["rnn.bias_hh_l0"]
    np.testing.assert_array_equal(b[6:12], 1.0)
    model.save(tmp_path / "m.npz")
    back = rnnkit.Model.load(tmp_path / "m.npz")
    assert (back.init, back.unit_forget_bias, back.dropout) == ("orthogonal", True, 0.1)
    for name, value in model.params.items():
        np.testing.assert_array_equal(back.params[name], value)
    assert "init='orthogonal'" in repr(model) and "dropout=0.1" in repr(model)
    identity = ManyToOne(3, 4, 2, cell="relu", init="identity")
    np.testing.assert_array_equal(identity.params["rnn.weight_hh_l0"], np.eye(4))
    with pytest.raises(ValueError, match="unit_forget_bias=True is for the LSTM"):
        ManyToOne(3, 4, 2, cell="gru", unit_forget_bias=True)
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\), got 1.5"):
        ManyToOne(3, 4, 2, dropout=1.5)
    with pytest.raises(ValueError, match="init must be one of 'torch', 'orthogonal', 'identity'"):
        ManyToOne(3, 4, 2, init="xavier")
