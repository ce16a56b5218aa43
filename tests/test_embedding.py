"""rnnkit.Embedding: torch.nn.Embedding parity (output and weight gradient), padding_idx,
initialisation, a deterministic backward, the ids it accepts and refuses, the state dict, and the
optimizers training it."""

import numpy as np
import pytest
import rnnkit
from rnnkit import Embedding
from rnnkit.optim import make_optimizer

DTYPES = [np.float32, np.float64]
DTYPE_IDS = ["f32", "f64"]
# gradients against torch's (which sums repeated ids in another order): relative to their max-abs
GRAD_TOLERANCE = {np.float32: 1e-6, np.float64: 1e-13}


def torch_embedding(torch, num_embeddings, embedding_dim, dtype, padding_idx=None):
    torch.manual_seed(0)
    module = torch.nn.Embedding(num_embeddings, embedding_dim, padding_idx=padding_idx)
    return module.to(torch.float64 if dtype == np.float64 else torch.float32)


def reference_grad(ids, dy, num_embeddings, padding_idx=None):
    """The weight gradient in float64 by np.add.at."""
    dim = dy.shape[-1]
    grad = np.zeros((num_embeddings, dim))
    np.add.at(grad, np.asarray(ids).reshape(-1), dy.reshape(-1, dim).astype(np.float64))
    if padding_idx is not None:
        grad[padding_idx] = 0
    return grad


def assert_grad_close(got, want, dtype):
    assert got.dtype == np.dtype(dtype)
    assert got.shape == want.shape
    scale = float(np.max(np.abs(want)))
    error = float(np.max(np.abs(got.astype(np.float64) - np.asarray(want, np.float64))))
    assert error <= GRAD_TOLERANCE[dtype] * scale, f"max error {error:.3g} > {GRAD_TOLERANCE[dtype]:.0e} x {scale:.3g}"


# -- parity with torch ------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("padding_idx", [None, 3, -2], ids=["no-pad", "pad3", "pad-2"])
@pytest.mark.parametrize("ids_shape", [(40,), (6, 7), (3, 4, 5)], ids=["1d", "2d", "3d"])
def test_matches_torch(dtype, padding_idx, ids_shape):
    torch = pytest.importorskip("torch")
    num_embeddings, dim = 11, 6
    module = torch_embedding(torch, num_embeddings, dim, dtype, padding_idx)
    emb = Embedding(num_embeddings, dim, padding_idx=padding_idx, dtype=dtype, seed=1)
    emb.load_state_dict(module.state_dict())  # torch tensors, as they come
    np.testing.assert_array_equal(emb.params["weight"], module.weight.detach().numpy())

    rng = np.random.default_rng(0)
    ids = rng.integers(0, num_embeddings, ids_shape)  # far more ids than rows: many repeats
    ids.reshape(-1)[:4] = [5, 5, 5, num_embeddings - 2]  # repeats and the padding row, for sure
    out_t = module(torch.tensor(ids))
    dy = rng.standard_normal(tuple(out_t.shape)).astype(dtype)
    (out_t * torch.tensor(dy)).sum().backward()

    out = emb(ids)
    assert out.shape == ids_shape + (dim,)
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(out, out_t.detach().numpy())  # a gather: exact
    assert emb.backward(dy) is None
    assert set(emb.grads) == {"weight"}
    assert_grad_close(emb.grads["weight"], module.weight.grad.numpy(), dtype)
    if padding_idx is not None:
        assert not emb.grads["weight"][padding_idx].any()


def test_torch_integer_tensors_and_0d_ids():
    torch = pytest.importorskip("torch")
    emb = Embedding(10, 4, dtype="float64", seed=0)
    weight = emb.params["weight"]
    for dtype in (torch.int8, torch.uint8, torch.int16, torch.int32, torch.int64):
        ids = torch.tensor([[1, 2], [9, 1]], dtype=dtype)
        np.testing.assert_array_equal(emb(ids), weight[[[1, 2], [9, 1]]])
    np.testing.assert_array_equal(emb(torch.tensor(7)), weight[7])
    with pytest.raises(TypeError, match=r"ids must be integers, got an array of dtype float32"):
        emb(torch.tensor([1.0, 2.0]))
    with pytest.raises(TypeError, match=r"ids must be integers, got an array of dtype bool"):
        emb(torch.tensor([True, False]))


def test_torch_training_step_matches():
    """A few SGD (momentum) steps on the table, as the models make them, agree with torch's."""
    torch = pytest.importorskip("torch")
    module = torch_embedding(torch, 9, 5, np.float64, padding_idx=0)
    emb = Embedding(9, 5, padding_idx=0, dtype="float64")
    emb.load_state_dict(module.state_dict())
    opt_t = torch.optim.SGD(module.parameters(), lr=0.1, momentum=0.9)
    opt = make_optimizer("sgd", emb.params, 0.1)
    rng = np.random.default_rng(3)
    for _ in range(4):
        ids = rng.integers(0, 9, (3, 6))
        dy = rng.standard_normal((3, 6, 5))
        opt_t.zero_grad()
        (module(torch.tensor(ids)) * torch.tensor(dy)).sum().backward()
        opt_t.step()
        emb(ids)
        emb.backward(dy)
        opt.step(emb.grads)
    np.testing.assert_allclose(emb.params["weight"], module.weight.detach().numpy(), rtol=0, atol=1e-12)
    assert not emb.params["weight"][0].any()


# -- forward ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_forward_is_a_gather_of_any_shape(dtype):
    emb = Embedding(20, 3, dtype=dtype, seed=0)
    weight = emb.params["weight"]
    rng = np.random.default_rng(1)
    for shape in [(), (1,), (7,), (2, 3), (2, 3, 4), (1, 2, 1, 3), (0,), (3, 0)]:
        ids = rng.integers(0, 20, shape)
        out = emb(ids)
        assert out.shape == shape + (3,)
        assert out.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(out, weight[ids])


@pytest.mark.parametrize("int_dtype", [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32,
                                       np.uint64, np.intp, ">i4"])
def test_every_integer_dtype(int_dtype):
    emb = Embedding(100, 2, seed=0)
    ids = np.array([[0, 99], [42, 42]], dtype=int_dtype)
    np.testing.assert_array_equal(emb(ids), emb.params["weight"][[[0, 99], [42, 42]]])


def test_lists_scalars_and_non_contiguous_ids():
    emb = Embedding(10, 4, seed=0)
    weight = emb.params["weight"]
    np.testing.assert_array_equal(emb([[1, 2, 3], [4, 5, 6]]), weight[[[1, 2, 3], [4, 5, 6]]])
    np.testing.assert_array_equal(emb((3, 3)), weight[[3, 3]])
    np.testing.assert_array_equal(emb(7), weight[7])
    np.testing.assert_array_equal(emb(np.int64(7)), weight[7])
    np.testing.assert_array_equal(emb(np.array(7)), weight[7])
    assert emb([]).shape == (0, 4)
    ids = np.arange(10).reshape(2, 5)[:, ::2]  # a strided view
    np.testing.assert_array_equal(emb(ids), weight[ids])
    np.testing.assert_array_equal(emb(ids.T), weight[ids.T])


def test_forward_returns_a_copy_and_keeps_its_own_ids():
    emb = Embedding(6, 2, dtype="float64", seed=0)
    before = emb.params["weight"].copy()
    out = emb(3)  # one id: still a copy, not a view of the table
    out[...] = 100.0
    np.testing.assert_array_equal(emb.params["weight"], before)

    ids = np.array([1, 1, 2])
    emb(ids)
    ids[...] = 5  # changing the caller's ids after the forward does not change the backward
    emb.backward(np.ones((3, 2)))
    np.testing.assert_array_equal(emb.grads["weight"][:, 0], [0, 2, 1, 0, 0, 0])


def test_call_is_forward():
    assert Embedding.__call__ is Embedding.forward


# -- padding_idx ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("padding_idx", "row"), [(0, 0), (4, 4), (-1, 9), (-10, 0)])
def test_padding_row_is_zero_and_gets_no_gradient(padding_idx, row):
    emb = Embedding(10, 5, padding_idx=padding_idx, dtype="float64", seed=0)
    assert emb.padding_idx == row  # stored as torch stores it: in [0, num_embeddings)
    weight = emb.params["weight"]
    assert not weight[row].any()
    assert np.all(np.delete(weight, row, axis=0) != 0)
    ids = np.array([[row, 1, row], [2, row, 3]])
    out = emb(ids)
    assert not out[ids == row].any()
    emb.backward(np.ones((2, 3, 5)))
    grad = emb.grads["weight"]
    assert not grad[row].any()
    want = reference_grad(ids, np.ones((2, 3, 5)), 10, row)
    np.testing.assert_array_equal(grad, want)


def test_padding_row_stays_zero_under_the_optimizers():
    for name in ("sgd", "adam"):
        emb = Embedding(8, 3, padding_idx=2, seed=0)
        opt = make_optimizer(name, emb.params, 0.1)
        rng = np.random.default_rng(0)
        for _ in range(3):
            ids = rng.integers(0, 8, (4, 5))
            ids[0, 0] = 2
            emb(ids)
            emb.backward(rng.standard_normal((4, 5, 3)).astype(np.float32))
            opt.step(emb.grads)
        assert not emb.params["weight"][2].any(), name


def test_repr():
    assert repr(Embedding(50, 8)) == "Embedding(50, 8, dtype='float32')"
    assert repr(Embedding(50, 8, padding_idx=-1, dtype="float64")) == "Embedding(50, 8, padding_idx=49, dtype='float64')"


# -- initialisation ---------------------------------------------------------------------------------

def test_init_is_standard_normal():
    weight = Embedding(2000, 100, dtype="float64", seed=0).params["weight"]  # 200,000 draws
    assert weight.shape == (2000, 100)
    # standard errors: 0.0022 for the mean, 0.0016 for the std; U(-1, 1) (std 0.58) or N(0, 0.1) fail
    assert abs(float(weight.mean())) < 0.01
    assert abs(float(weight.std()) - 1.0) < 0.01
    assert 0.3 < float(np.mean(np.abs(weight) > 1.0)) < 0.34  # P(|z| > 1) = 0.317: the normal's tails
    rows = weight.mean(axis=1)  # rows are independent: no row is special
    assert float(rows.std()) == pytest.approx(0.1, rel=0.1)


def test_init_is_reproducible():
    a = Embedding(30, 7, seed=5).params["weight"]
    b = Embedding(30, 7, seed=5).params["weight"]
    c = Embedding(30, 7, seed=6).params["weight"]
    np.testing.assert_array_equal(a, b)
    assert not np.any(a == c)
    # drawn in float64, then cast: one seed starts float32 and float64 tables alike
    d = Embedding(30, 7, dtype="float64", seed=5).params["weight"]
    assert a.dtype == np.float32
    assert d.dtype == np.float64
    np.testing.assert_array_equal(a, d.astype(np.float32))
    # a Generator is used as is
    e = Embedding(30, 7, dtype="float64", seed=np.random.default_rng(5)).params["weight"]
    np.testing.assert_array_equal(e, d)
    assert Embedding(30, 7).params["weight"].dtype == np.float32  # the default dtype


def test_padding_does_not_change_the_other_rows():
    plain = Embedding(10, 3, seed=2).params["weight"]
    padded = Embedding(10, 3, padding_idx=4, seed=2).params["weight"]
    np.testing.assert_array_equal(np.delete(plain, 4, axis=0), np.delete(padded, 4, axis=0))


# -- a deterministic backward -----------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_backward_is_deterministic_and_sums_repeats(dtype):
    emb = Embedding(50, 16, padding_idx=7, dtype=dtype, seed=0)
    rng = np.random.default_rng(0)
    ids = rng.zipf(1.3, (64, 40)) % 50  # skewed: a few ids repeat hundreds of times
    dy = rng.standard_normal((64, 40, 16)).astype(dtype)
    emb(ids)
    emb.backward(dy)
    first = emb.grads["weight"]
    emb.backward(dy)  # a second backward after the same forward: a new array, the same bits
    second = emb.grads["weight"]
    assert second is not first
    assert first.tobytes() == second.tobytes()
    emb(ids)
    emb.backward(dy.copy())
    assert emb.grads["weight"].tobytes() == first.tobytes()
    assert first.dtype == np.dtype(dtype)
    assert first.shape == (50, 16)
    tolerance = {np.float32: 1e-5, np.float64: 1e-13}[dtype]
    want = reference_grad(ids, dy, 50, 7)
    np.testing.assert_allclose(first, want, rtol=0, atol=tolerance * float(np.max(np.abs(want))))


def test_backward_does_not_depend_on_the_thread_count(threads):
    emb = Embedding(30, 8, seed=0)
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 30, (50, 20))
    dy = rng.standard_normal((50, 20, 8)).astype(np.float32)
    results = []
    for n in (1, 2, 4):
        threads(n)
        emb(ids)
        emb.backward(dy)
        results.append(emb.grads["weight"].tobytes())
    assert results[0] == results[1] == results[2]


def test_backward_unused_rows_are_zero_and_dy_may_be_a_list():
    emb = Embedding(5, 2, dtype="float64", seed=0)
    emb([[1, 3], [3, 3]])
    emb.backward([[[1, 2], [3, 4]], [[5, 6], [7, 8]]])  # a nested list takes the layer's dtype
    np.testing.assert_array_equal(emb.grads["weight"], [[0, 0], [1, 2], [0, 0], [15, 18], [0, 0]])
    emb([])
    emb.backward(np.zeros((0, 2)))
    np.testing.assert_array_equal(emb.grads["weight"], np.zeros((5, 2)))


# -- bad input --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("ids", "dtype"), [
    (np.array([1.0, 2.0]), "float64"),  # whole-valued floats are still floats
    (np.array([1.0, 2.0], np.float32), "float32"),
    ([1.0, 2.0], "float64"),
    (1.0, "float64"),
    (np.array([True, False]), "bool"),
    ([True, False], "bool"),
    (True, "bool"),
    (["a", "b"], "<U1"),
    ("3", "<U1"),
    ([object()], "object"),
    (np.array([1 + 2j]), "complex128"),
])
def test_non_integer_ids_are_refused(ids, dtype):
    emb = Embedding(10, 3)
    with pytest.raises(TypeError, match=rf"ids must be integers, got an array of dtype {dtype}"):
        emb(ids)


@pytest.mark.parametrize(("ids", "message"), [
    (np.arange(60).reshape(6, 10) % 50 + np.eye(6, 10, 3, dtype=int) * 40, r"ids\[1, 4\] = 54"),
    ([[0, 1, 2, 3], [4, 5, 6, 57]], r"ids\[1, 3\] = 57"),
    ([3, 50, 60], r"ids\[1\] = 50"),
    ([3, -1, 60], r"ids\[1\] = -1"),  # negative ids are out of range, as in torch
    (np.array([[[1, 2]], [[300, 2]]], np.uint16), r"ids\[1, 0, 0\] = 300"),
    (np.array([0, 2**64 - 1], np.uint64), r"ids\[1\] = 18446744073709551615"),
    (np.array([1, -128], np.int8), r"ids\[1\] = -128"),
    (57, r"ids = 57"),
])
def test_out_of_range_ids_name_the_first_one(ids, message):
    emb = Embedding(50, 3)
    with pytest.raises(ValueError, match=message + r" is out of range; expected 0 <= id < num_embeddings = 50"):
        emb(ids)


def test_a_failed_forward_changes_nothing():
    emb = Embedding(10, 2, dtype="float64", seed=0)
    emb([1, 2])
    with pytest.raises(ValueError, match="out of range"):
        emb([1, 20])
    emb.backward(np.ones((2, 2)))  # still the backward of the last good forward
    np.testing.assert_array_equal(emb.grads["weight"][:3, 0], [0, 1, 1])


def test_ragged_ids_are_refused():
    with pytest.raises(ValueError, match="ids could not be converted to an array"):
        Embedding(10, 3)([[1, 2], [3]])


def test_backward_errors():
    emb = Embedding(10, 4)
    with pytest.raises(RuntimeError, match="forward"):
        emb.backward(np.zeros((2, 4), np.float32))
    emb(np.array([[1, 2, 3], [4, 5, 6]]))
    with pytest.raises(ValueError, match=r"dy has shape \(3, 2, 4\); expected \(2, 3, 4\)"):
        emb.backward(np.zeros((3, 2, 4), np.float32))
    with pytest.raises(ValueError, match=r"dy has shape \(2, 3, 5\); expected \(2, 3, 4\)"):
        emb.backward(np.zeros((2, 3, 5), np.float32))
    with pytest.raises(ValueError, match=r"dy has shape \(2, 3\); expected \(2, 3, 4\)"):
        emb.backward(np.zeros((2, 3), np.float32))
    with pytest.raises(TypeError, match=r"dy has dtype float64; this layer has dtype float32"):
        emb.backward(np.zeros((2, 3, 4)))
    with pytest.raises(TypeError, match=r"dy"):
        emb.backward(np.zeros((2, 3, 4), np.complex64))
    assert emb.grads == {}  # no failed backward left a gradient behind


@pytest.mark.parametrize(("kwargs", "error", "pattern"), [
    ({"num_embeddings": 0}, ValueError, r"num_embeddings must be >= 1, got 0"),
    ({"num_embeddings": -3}, ValueError, r"num_embeddings must be >= 1, got -3"),
    ({"num_embeddings": 5.0}, TypeError, r"num_embeddings must be an int, got float"),
    ({"num_embeddings": "5"}, TypeError, r"num_embeddings must be an int, got str"),
    ({"num_embeddings": True}, TypeError, r"num_embeddings must be an int, got bool"),
    ({"embedding_dim": 0}, ValueError, r"embedding_dim must be >= 1, got 0"),
    ({"embedding_dim": 2.5}, TypeError, r"embedding_dim must be an int, got float"),
    ({"dtype": "int32"}, ValueError, r"dtype must be 'float32' or 'float64', got 'int32'"),
    ({"dtype": "float16"}, ValueError, r"dtype must be 'float32' or 'float64'"),
    ({"dtype": "nonsense"}, ValueError, r"dtype must be 'float32' or 'float64'"),
    ({"padding_idx": 10}, ValueError, r"padding_idx must be in \[-num_embeddings, num_embeddings\) = \[-10, 10\), got 10"),
    ({"padding_idx": -11}, ValueError, r"padding_idx must be in .* got -11"),
    ({"padding_idx": 1.0}, TypeError, r"padding_idx must be None or an int, got float"),
    ({"padding_idx": True}, TypeError, r"padding_idx must be None or an int, got bool"),
    ({"seed": 1.5}, TypeError, r"seed must be None, an int or a numpy.random.Generator"),
])
def test_constructor_errors(kwargs, error, pattern):
    args = {"num_embeddings": 10, "embedding_dim": 4, **kwargs}
    num_embeddings, embedding_dim = args.pop("num_embeddings"), args.pop("embedding_dim")
    with pytest.raises(error, match=pattern):
        Embedding(num_embeddings, embedding_dim, **args)


def test_numpy_integer_arguments():
    emb = Embedding(np.int64(10), np.int32(4), padding_idx=np.int64(-1))
    assert (emb.num_embeddings, emb.embedding_dim, emb.padding_idx) == (10, 4, 9)
    assert type(emb.num_embeddings) is int
    assert type(emb.padding_idx) is int


def test_replaced_params_are_refused():
    emb = Embedding(10, 4)
    emb.params["weight"] = np.zeros((10, 4))  # float64 in a float32 layer
    with pytest.raises(TypeError, match=r"params\['weight'\] must be a float32 array of shape \(10, 4\)"):
        emb([1])


# -- state dict and optimizers ----------------------------------------------------------------------

def test_state_dict_round_trip():
    emb = Embedding(12, 5, padding_idx=1, seed=0)
    sd = emb.state_dict()
    assert list(sd) == ["weight"]
    assert sd["weight"] is not emb.params["weight"]
    np.testing.assert_array_equal(sd["weight"], emb.params["weight"])
    sd["weight"][...] = 0  # a copy: the layer keeps its table
    assert emb.params["weight"].any()

    other = Embedding(12, 5, padding_idx=1, seed=1)
    live = other.params["weight"]
    other.load_state_dict(emb.state_dict())
    assert other.params["weight"] is live  # copied in place, so optimizers keep their reference
    np.testing.assert_array_equal(other.params["weight"], emb.params["weight"])
    ids = [[0, 1, 11], [4, 4, 4]]
    np.testing.assert_array_equal(other(ids), emb(ids))

    wide = Embedding(12, 5, dtype="float64")
    wide.load_state_dict(emb.state_dict())  # cast to the layer's dtype
    assert wide.params["weight"].dtype == np.float64
    np.testing.assert_array_equal(wide.params["weight"], emb.params["weight"].astype(np.float64))


def test_load_state_dict_errors():
    emb = Embedding(12, 5)
    before = emb.params["weight"].copy()
    with pytest.raises(ValueError, match=r"weight has shape \(12, 4\); expected \(12, 5\)"):
        emb.load_state_dict({"weight": np.zeros((12, 4), np.float32)})
    with pytest.raises(ValueError, match=r"missing keys \['weight'\], unexpected keys \['embedding'\]"):
        emb.load_state_dict({"embedding": np.zeros((12, 5), np.float32)})
    with pytest.raises(ValueError, match=r"unexpected keys \['bias'\]"):
        emb.load_state_dict({"weight": np.zeros((12, 5), np.float32), "bias": np.zeros(5)})
    with pytest.raises(TypeError, match="state_dict must be a mapping"):
        emb.load_state_dict([np.zeros((12, 5), np.float32)])
    np.testing.assert_array_equal(emb.params["weight"], before)


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_optimizers_update_the_table_in_place(name):
    emb = Embedding(10, 3, seed=0)
    weight = emb.params["weight"]
    before = weight.copy()
    opt = make_optimizer(name, emb.params, 0.1)
    ids = np.array([[1, 2], [2, 5]])
    emb(ids)
    emb.backward(np.ones((2, 2, 3), np.float32))
    opt.step(emb.grads)
    assert emb.params["weight"] is weight
    changed = np.flatnonzero(np.any(weight != before, axis=1))
    np.testing.assert_array_equal(changed, [1, 2, 5])  # only the rows the ids named
    if name == "sgd":  # p -= lr·g at the first step
        np.testing.assert_allclose(weight[2], before[2] - 0.1 * 2, rtol=1e-6)
    else:  # Adam's first step moves every touched entry by lr, against the gradient's sign
        np.testing.assert_allclose(weight[[1, 2, 5]], before[[1, 2, 5]] - 0.1, rtol=1e-5)


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_training_fits_targets(name):
    """Gradient descent on a squared error moves each looked-up vector onto its target."""
    rng = np.random.default_rng(0)
    targets = rng.standard_normal((6, 4))
    emb = Embedding(6, 4, padding_idx=0, dtype="float64", seed=1)
    opt = make_optimizer(name, emb.params, 0.05)
    losses = []
    for _ in range(300):
        ids = rng.integers(0, 6, (8, 5))
        out = emb(ids)
        diff = out - targets[ids]
        losses.append(float(np.mean(np.sum(diff[ids != 0] ** 2, axis=-1))))
        emb.backward(2 * diff / ids.size)
        opt.step(emb.grads)
    assert losses[-1] < 0.02 * losses[0]
    assert not emb.params["weight"][0].any()  # the padding row never trained
    np.testing.assert_allclose(emb.params["weight"][1:], targets[1:], atol=0.1)


def test_exported_from_the_package():
    assert rnnkit.Embedding is Embedding
    assert "Embedding" in rnnkit.__all__
