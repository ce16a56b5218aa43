"""rnnkit.RNN and rnnkit.Dense: torch.nn.RNN/LSTM/GRU parity (outputs and every gradient), the state
dict, initialisation, layouts, and the errors bad input gets."""

import numpy as np
import pytest
import rnnkit
from helpers import assert_close, numeric_gradient
from rnnkit import _cells
from rnnkit.layers import RNN, Dense


def available_cells():
    """Every cell make_cell accepts, so new cells are tested the moment they land."""
    names = getattr(_cells, "CELLS", ("tanh", "relu", "lstm", "gru"))
    cells = []
    for name in names:
        try:
            _cells.make_cell(name)
        except ValueError:
            continue
        cells.append(name)
    return cells


CELLS = available_cells()
BACKENDS = ["cpp", "numpy"]


def num_states(cell):
    return _cells.make_cell(cell).num_states


def random_states(rng, cell, shape, dtype):
    states = tuple(rng.standard_normal(shape).astype(dtype) for _ in range(num_states(cell)))
    return states if len(states) > 1 else states[0]


# -- parity with torch ------------------------------------------------------------------------------

def torch_module(torch, cell, *args, **kwargs):
    if cell in ("tanh", "relu"):
        return torch.nn.RNN(*args, nonlinearity=cell, **kwargs)
    return {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](*args, **kwargs)


def to_torch(torch, states):
    if isinstance(states, tuple):
        return tuple(torch.tensor(s, requires_grad=True) for s in states)
    return torch.tensor(states, requires_grad=True)


def flat(states):
    return states if isinstance(states, tuple) else (states,)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize(("batch_first", "with_h0"), [(False, True), (True, False)], ids=["tm-h0", "bf-no-h0"])
def test_two_layer_bidirectional_matches_torch(cell, backend, dtype, batch_first, with_h0):
    torch = pytest.importorskip("torch")
    steps, batch, inputs, hidden, layers = 6, 3, 5, 7, 2
    torch.manual_seed(0)
    module = torch_module(torch, cell, inputs, hidden, num_layers=layers, bidirectional=True, batch_first=batch_first)
    module = module.to(torch.float64 if dtype == np.float64 else torch.float32)
    layer = RNN(inputs, hidden, cell=cell, num_layers=layers, bidirectional=True, batch_first=batch_first,
                dtype=dtype, backend=backend, seed=1)
    layer.load_state_dict(module.state_dict())  # torch tensors, as they come

    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, steps, inputs) if batch_first else (steps, batch, inputs)).astype(dtype)
    h0 = random_states(rng, cell, (2 * layers, batch, hidden), dtype) if with_h0 else None
    xt = torch.tensor(x, requires_grad=True)
    h0t = to_torch(torch, h0) if with_h0 else None
    yt, hnt = module(xt, h0t)
    dy = rng.standard_normal(tuple(yt.shape)).astype(dtype)
    dh_n = tuple(rng.standard_normal(tuple(s.shape)).astype(dtype) for s in flat(hnt))
    loss = (yt * torch.tensor(dy)).sum() + sum((s * torch.tensor(d)).sum() for s, d in zip(flat(hnt), dh_n))
    loss.backward()

    y, h_n = layer(x, h0)
    dx, dh0 = layer.backward(dy, dh_n if len(dh_n) > 1 else dh_n[0])

    assert_close(y, yt.detach().numpy(), dtype, "y")
    assert len(flat(h_n)) == num_states(cell)
    for i, (got, want) in enumerate(zip(flat(h_n), flat(hnt))):
        assert_close(got, want.detach().numpy(), dtype, f"h_n[{i}]")
    assert_close(dx, xt.grad.numpy(), dtype, "dx")
    if with_h0:
        for i, (got, want) in enumerate(zip(flat(dh0), flat(h0t))):
            assert_close(got, want.grad.numpy(), dtype, f"dh0[{i}]")
    for name, parameter in module.named_parameters():
        assert_close(layer.grads[name], parameter.grad.numpy(), dtype, name)
    assert list(layer.grads) == [name for name, _ in module.named_parameters()]


@pytest.mark.parametrize("cell", CELLS)
def test_state_dict_has_torch_names_shapes_and_order(cell):
    torch = pytest.importorskip("torch")
    module = torch_module(torch, cell, 4, 6, num_layers=3, bidirectional=True)
    layer = RNN(4, 6, cell=cell, num_layers=3, bidirectional=True, seed=0)
    sd = layer.state_dict()
    assert list(sd) == list(module.state_dict())
    for name, tensor in module.state_dict().items():
        assert sd[name].shape == tuple(tensor.shape), name
        assert sd[name].dtype == np.float32


def test_unidirectional_layer_reproduces_torch_after_load():
    torch = pytest.importorskip("torch")
    module = torch.nn.RNN(3, 5, num_layers=2)
    layer = RNN(3, 5, num_layers=2, seed=0)
    x = np.random.default_rng(0).standard_normal((4, 2, 3)).astype(np.float32)
    before, _ = layer(x)
    layer.load_state_dict(module.state_dict())
    after, h_n = layer(x)
    with torch.no_grad():
        want, want_h = module(torch.tensor(x))
    assert_close(after, want.numpy(), np.float32, "y")
    assert_close(h_n, want_h.numpy(), np.float32, "h_n")
    assert not np.allclose(before, after)


# -- behaviour without torch -----------------------------------------------------------------------

@pytest.mark.parametrize("cell", CELLS)
def test_cpp_and_numpy_backends_agree(cell):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 4, 3))
    dy = rng.standard_normal((5, 4, 12))
    results = []
    for backend in BACKENDS:
        layer = RNN(3, 6, cell=cell, num_layers=2, bidirectional=True, dtype="float64", backend=backend, seed=7)
        y, h_n = layer(x)
        dx, dh0 = layer.backward(dy)
        results.append((y, flat(h_n), dx, flat(dh0), layer.grads))
    (y1, h1, dx1, d1, g1), (y2, h2, dx2, d2, g2) = results
    assert_close(y1, y2, np.float64, "y")
    assert_close(dx1, dx2, np.float64, "dx")
    for a, b in zip(h1 + d1, h2 + d2):
        assert_close(a, b, np.float64, "states")
    for name in g1:
        assert_close(g1[name], g2[name], np.float64, name)


def test_initialisation_is_torch_style_and_seeded():
    layer = RNN(3, 16, num_layers=2, bidirectional=True, seed=0)
    bound = 1 / np.sqrt(16)
    values = np.concatenate([p.ravel() for p in layer.params.values()])
    assert np.abs(values).max() <= bound
    assert np.abs(values).max() > 0.9 * bound  # uniform over the whole interval, not a narrower one
    same = RNN(3, 16, num_layers=2, bidirectional=True, seed=0)
    other = RNN(3, 16, num_layers=2, bidirectional=True, seed=1)
    double = RNN(3, 16, num_layers=2, bidirectional=True, seed=0, dtype="float64")
    for name, array in layer.params.items():
        np.testing.assert_array_equal(array, same.params[name])
        assert not np.array_equal(array, other.params[name])
        np.testing.assert_array_equal(array, double.params[name].astype(np.float32))


@pytest.mark.parametrize("cell", CELLS)
def test_unbatched_input_matches_a_batch_of_one(cell):
    layer = RNN(3, 5, cell=cell, num_layers=2, bidirectional=True, dtype="float64", seed=0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3))
    h0 = random_states(rng, cell, (4, 5), np.float64)
    y, h_n = layer(x, h0)
    dx, dh0 = layer.backward(np.ones((4, 10)))
    grads = layer.grads
    batched_h0 = tuple(s[:, None] for s in flat(h0))
    yb, hb = layer(x[:, None], batched_h0 if len(batched_h0) > 1 else batched_h0[0])
    dxb, dh0b = layer.backward(np.ones((4, 1, 10)))
    assert y.shape == (4, 10)
    assert dx.shape == (4, 3)
    np.testing.assert_allclose(y, yb[:, 0])
    np.testing.assert_allclose(dx, dxb[:, 0])
    for a, b in zip(flat(h_n) + flat(dh0), flat(hb) + flat(dh0b)):
        assert a.shape == (4, 5)
        np.testing.assert_allclose(a, b[:, 0])
    for name in grads:
        np.testing.assert_allclose(grads[name], layer.grads[name])


def test_bidirectional_output_concatenates_forward_and_reverse():
    layer = RNN(2, 3, bidirectional=True, dtype="float64", seed=0)
    x = np.random.default_rng(0).standard_normal((5, 1, 2))
    y, h_n = layer(x)
    forward = RNN(2, 3, dtype="float64")
    reverse = RNN(2, 3, dtype="float64")
    sd = layer.state_dict()
    forward.load_state_dict({k: v for k, v in sd.items() if not k.endswith("_reverse")})
    reverse.load_state_dict({k[:-len("_reverse")]: v for k, v in sd.items() if k.endswith("_reverse")})
    y_forward, _ = forward(x)
    y_reverse, _ = reverse(x[::-1].copy())
    np.testing.assert_allclose(y[..., :3], y_forward)
    np.testing.assert_allclose(y[..., 3:], y_reverse[::-1])
    np.testing.assert_allclose(h_n[1], y[0, :, 3:])  # the reverse direction ends at t = 0


def test_output_is_read_only_and_backward_needs_a_forward():
    layer = RNN(2, 3)
    with pytest.raises(RuntimeError, match="forward"):
        layer.backward(np.zeros((1, 1, 3), np.float32))
    y, _ = layer(np.zeros((2, 1, 2), np.float32))
    with pytest.raises(ValueError, match="read-only"):
        y[0] = 1


def test_dense_matches_finite_differences():
    rng = np.random.default_rng(0)
    dense = Dense(4, 3, dtype="float64", seed=0)
    x = rng.standard_normal((2, 5, 4))
    dy = rng.standard_normal((2, 5, 3))
    y = dense(x)
    np.testing.assert_allclose(y, x @ dense.params["weight"].T + dense.params["bias"])
    dx = dense.backward(dy)

    def loss():
        return float((dense(x) * dy).sum())

    for name in ("weight", "bias"):
        numeric = numeric_gradient(loss, dense.params[name])
        np.testing.assert_allclose(dense.grads[name], numeric, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dx, dy @ dense.params["weight"])


# -- errors ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("kwargs", "error", "pattern"), [
    ({"hidden_size": 0}, ValueError, "hidden_size must be >= 1, got 0"),
    ({"hidden_size": 2.5}, TypeError, "hidden_size must be an int, got float"),
    ({"num_layers": 0}, ValueError, "num_layers must be >= 1"),
    ({"cell": "elman"}, ValueError, "cell must be one of"),
    ({"dtype": "int32"}, ValueError, "dtype must be 'float32' or 'float64', got 'int32'"),
    ({"backend": "cuda"}, ValueError, "backend must be one of 'cpp', 'numpy', got 'cuda'"),
    ({"bidirectional": 1}, TypeError, "bidirectional must be a bool"),
    ({"seed": 1.5}, TypeError, "seed must be None, an int or a numpy.random.Generator"),
])
def test_constructor_errors(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        RNN(**{"input_size": 3, "hidden_size": 4, **kwargs})


@pytest.mark.parametrize(("x", "h0", "error", "pattern"), [
    (np.zeros((2, 3), np.float32)[None, None], None, ValueError, r"x must have 3 dimensions \(T, B, I\)"),
    (np.zeros((2, 1, 4), np.float32), None, ValueError, r"x has 4 features .*input_size is 3"),
    (np.zeros((2, 1, 3), np.float64), None, TypeError, "x has dtype float64; this layer has dtype float32"),
    (np.zeros((2, 1, 3), np.int64), None, TypeError, "x has dtype int64"),
    (np.zeros((2, 1, 3), np.float32), np.zeros((1, 1, 4), np.float32), ValueError,
     r"h0 has shape \(1, 1, 4\); expected \(2, 1, 4\)"),
    (np.zeros((2, 5, 3), np.float32), np.zeros((2, 1, 4), np.float32), ValueError,
     r"h0 has shape \(2, 1, 4\); expected \(2, 5, 4\)"),
])
def test_forward_errors(x, h0, error, pattern):
    layer = RNN(3, 4, num_layers=2)
    with pytest.raises(error, match=pattern):
        layer(x, h0)


def test_backward_errors():
    layer = RNN(3, 4, bidirectional=True, batch_first=True)
    layer(np.zeros((2, 5, 3), np.float32))
    with pytest.raises(ValueError, match=r"dy has shape \(5, 2, 8\); expected \(2, 5, 8\)"):
        layer.backward(np.zeros((5, 2, 8), np.float32))
    with pytest.raises(ValueError, match=r"dh_n has shape \(1, 2, 4\); expected \(2, 2, 4\)"):
        layer.backward(None, np.zeros((1, 2, 4), np.float32))


def test_lstm_state_must_be_a_pair():
    layer = RNN(3, 4, cell="lstm")
    with pytest.raises(TypeError, match=r"h0 must be a tuple of 2 arrays \(h, c\)"):
        layer(np.zeros((2, 1, 3), np.float32), np.zeros((1, 1, 4), np.float32))


def test_load_state_dict_errors_leave_the_layer_unchanged():
    layer = RNN(3, 4, seed=0)
    before = layer.state_dict()
    bad_shape = {**before, "weight_hh_l0": np.zeros((4, 5))}
    with pytest.raises(ValueError, match=r"weight_hh_l0 has shape \(4, 5\); expected \(4, 4\)"):
        layer.load_state_dict(bad_shape)
    with pytest.raises(ValueError, match=r"missing keys \['bias_hh_l0'\], unexpected keys \['bias_hh_l1'\]"):
        layer.load_state_dict({**{k: v for k, v in before.items() if k != "bias_hh_l0"}, "bias_hh_l1": before["bias_hh_l0"]})
    with pytest.raises(TypeError, match="state_dict must be a mapping"):
        layer.load_state_dict([1, 2])
    for name, array in layer.state_dict().items():
        np.testing.assert_array_equal(array, before[name])


def test_load_state_dict_casts_and_copies_in_place():
    layer = RNN(3, 4, seed=0)
    live = layer.params["weight_ih_l0"]
    new = {k: np.full(v.shape, 0.5, np.float64) for k, v in layer.state_dict().items()}
    layer.load_state_dict(new)
    assert layer.params["weight_ih_l0"] is live  # optimizers keep their references
    assert live.dtype == np.float32
    assert np.all(live == 0.5)


def test_public_exports():
    for name in ("RNN", "Dense", "OneToOne", "OneToMany", "ManyToOne", "ManyToMany", "Seq2Seq"):
        assert name in rnnkit.__all__
        assert getattr(rnnkit, name) is not None


def test_replaced_parameters_are_checked_before_the_kernels_see_them():
    layer = RNN(3, 4)
    layer.params["weight_hh_l0"] = np.zeros((4, 4), np.float64)
    with pytest.raises(TypeError, match=r"params\['weight_hh_l0'\] must be a C-contiguous float32 array of shape \(4, 4\)"):
        layer(np.zeros((2, 1, 3), np.float32))
    layer.params["weight_hh_l0"] = np.zeros((4, 8), np.float32)[:, ::2]
    with pytest.raises(TypeError, match="C-contiguous"):
        layer(np.zeros((2, 1, 3), np.float32))


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("with_lengths", [False, True])
def test_backward_without_dx_gives_the_same_other_gradients(cell, backend, with_lengths):
    """need_dx=False: dx is None (the kernels skip its products); dh0 and every weight's gradient are
    bitwise those of the backward that computes dx."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((6, 4, 3)).astype(np.float32)
    dy = rng.standard_normal((6, 4, 12)).astype(np.float32)
    lengths = np.array([6, 2, 5, 1]) if with_lengths else None
    layer = RNN(3, 6, cell=cell, num_layers=2, bidirectional=True, backend=backend, seed=7)
    results = []
    for need_dx in (True, False):
        layer(x, lengths=lengths)
        dx, dh0 = layer.backward(dy, need_dx=need_dx)
        assert (dx is None) == (not need_dx)
        results.append((flat(dh0), dict(layer.grads)))
    (d1, g1), (d2, g2) = results
    for a, b in zip(d1, d2):
        assert a.tobytes() == b.tobytes()
    assert g1.keys() == g2.keys()
    for name in g1:
        assert g1[name].tobytes() == g2[name].tobytes(), name
