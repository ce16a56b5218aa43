"""The RNN layer with lengths= (and its backward), against torch's packed sequences
(pack_padded_sequence(..., enforce_sorted=False) -> torch.nn.RNN/LSTM/GRU -> pad_packed_sequence): every
cell, 1 and 2 layers, both directions, both layouts, with and without h0, float64 and float32, with
garbage in dy at the padding.  Then the NumPy backend against the C++ one, inference mode against training
mode, lengths all T against no lengths (bitwise), rows of length 0 (which torch refuses), bad lengths, and
rnnkit.pad_sequences (against torch.nn.utils.rnn.pad_sequence, and a padded batch against each sequence
run alone)."""

import numpy as np
import pytest
import rnnkit
from helpers import CELLS, assert_close

F32, F64 = np.float32, np.float64
STEPS, BATCH, INPUTS, HIDDEN = 7, 5, 4, 13  # H = 13: a tail on every SIMD width
LENGTHS = [3, 7, 1, 6, 7]  # unsorted, with T and 1
CONFIGS = {"uni-1": (1, False), "bi-1": (1, True), "uni-2": (2, False), "bi-2": (2, True)}
F32_TOLERANCE = 1e-5  # float32 rnnkit against float32 torch (max-abs error relative to max-abs)


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def num_states(cell):
    return 2 if cell == "lstm" else 1


def pack_states(cell, states):
    """A list of S arrays -> what the layer (and torch) take: the array, or the pair (h, c)."""
    return tuple(states) if cell == "lstm" else states[0]


def unpack_states(cell, value):
    return list(value) if cell == "lstm" else [value]


def padding_mask(lengths, steps, batch_first):
    """True at the padding positions of a (T, B) array, or (B, T) when batch_first."""
    mask = np.arange(steps)[:, None] >= np.asarray(lengths)[None, :]
    return mask.T if batch_first else mask


def make_data(cell, layers, bidirectional, batch_first, dtype, *, lengths=LENGTHS, seed=21, garbage=np.nan):
    """x, h0 (list of S arrays), dy (with garbage at the padding) and dh_n (list of S arrays)."""
    rng = np.random.default_rng(seed)
    batch = len(lengths)
    directions = 2 if bidirectional else 1
    x = rng.standard_normal((batch, STEPS, INPUTS) if batch_first else (STEPS, batch, INPUTS)).astype(dtype)
    state_shape = (layers * directions, batch, HIDDEN)
    h0 = [rng.standard_normal(state_shape).astype(dtype) for _ in range(num_states(cell))]
    dy = rng.standard_normal(x.shape[:2] + (directions * HIDDEN,)).astype(dtype)
    dy[padding_mask(lengths, STEPS, batch_first)] = garbage
    dh_n = [rng.standard_normal(state_shape).astype(dtype) for _ in range(num_states(cell))]
    return x, h0, dy, dh_n


def make_layer(cell, layers, bidirectional, batch_first, dtype, backend="cpp", seed=0):
    """A layer with weights U(-2/sqrt(H), 2/sqrt(H)): large enough that the recurrence matters."""
    layer = rnnkit.RNN(INPUTS, HIDDEN, cell=cell, num_layers=layers, bidirectional=bidirectional,
                       batch_first=batch_first, dtype=np.dtype(dtype).name, backend=backend, seed=seed)
    layer.load_state_dict({name: 2.0 * p for name, p in layer.state_dict().items()})
    return layer


def run_layer(layer, x, h0, dy, dh_n, lengths, cell):
    """(y, [h_n...], dx, [dh0...], grads) of one forward with lengths and its backward."""
    y, h_n = layer.forward(x, None if h0 is None else pack_states(cell, h0), lengths=lengths)
    dx, dh0 = layer.backward(dy, pack_states(cell, dh_n))
    return np.array(y), unpack_states(cell, h_n), dx, unpack_states(cell, dh0), dict(layer.grads)


def torch_packed_layer(torch, cell, layers, bidirectional, batch_first, dtype, state_dict, x, h0, dy, dh_n, lengths):
    """The same as run_layer, from torch.nn on a PackedSequence (every length >= 1: torch refuses 0)."""
    from test_torch_packed import torch_module
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    module = torch_module(cell, INPUTS, HIDDEN, num_layers=layers, bidirectional=bidirectional,
                          batch_first=batch_first, dtype=torch.float64 if dtype == F64 else torch.float32)
    module.load_state_dict({name: torch.from_numpy(np.array(p)) for name, p in state_dict.items()})
    tx = torch.tensor(x, requires_grad=True)
    th0 = None if h0 is None else [torch.tensor(h, requires_grad=True) for h in h0]
    packed = pack_padded_sequence(tx, torch.tensor(lengths), batch_first=batch_first, enforce_sorted=False)
    out, final = module(packed, None if th0 is None else pack_states(cell, th0))
    y = pad_packed_sequence(out, batch_first=batch_first, total_length=STEPS)[0]
    finals = unpack_states(cell, final)
    # dy at the padding (garbage) never reaches torch: the padded y there is a constant 0
    clean_dy = np.where(padding_mask(lengths, STEPS, batch_first)[..., None], 0, dy)
    loss = (y * torch.from_numpy(clean_dy)).sum()
    for f, d in zip(finals, dh_n):
        loss = loss + (f * torch.from_numpy(d)).sum()
    loss.backward()
    dh0 = None if th0 is None else [h.grad.numpy() for h in th0]
    grads = {name: p.grad.numpy() for name, p in module.named_parameters()}
    return y.detach().numpy(), [f.detach().numpy() for f in finals], tx.grad.numpy(), dh0, grads


def compare_to_torch(torch, cell, layers, bidirectional, batch_first, with_state, dtype, check):
    x, h0, dy, dh_n = make_data(cell, layers, bidirectional, batch_first, dtype)
    h0 = h0 if with_state else None
    layer = make_layer(cell, layers, bidirectional, batch_first, dtype)
    got = run_layer(layer, x, h0, dy, dh_n, LENGTHS, cell)
    want = torch_packed_layer(torch, cell, layers, bidirectional, batch_first, dtype, layer.state_dict(),
                              x, h0, dy, dh_n, LENGTHS)
    what = f"{cell} L={layers} bidirectional={bidirectional} batch_first={batch_first} h0={with_state}"
    y, h_n, dx, dh0, grads = got
    check(y, want[0], f"{what} y")
    mask = padding_mask(LENGTHS, STEPS, batch_first)
    assert not y[mask].any(), f"{what}: y at the padding is not 0"
    assert not dx[mask].any(), f"{what}: dx at the padding is not 0"
    for k in range(num_states(cell)):
        check(h_n[k], want[1][k], f"{what} state_n[{k}]")
    check(dx, want[2], f"{what} dx")
    if with_state:
        for k in range(num_states(cell)):
            check(dh0[k], want[3][k], f"{what} dstate0[{k}]")
    assert list(grads) == list(want[4]), f"{what}: grads keys"
    for name in want[4]:
        check(grads[name], want[4][name], f"{what} grads[{name}]")


# ---- 1. the layer against torch's packed sequences ---------------------------------------------------

@pytest.mark.parametrize("with_state", [True, False], ids=["h0", "no-h0"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["time-major", "batch-first"])
@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("cell", CELLS)
def test_layer_with_lengths_matches_torch_packed_float64(torch, cell, config, batch_first, with_state):
    layers, bidirectional = CONFIGS[config]

    def check(got, want, what):
        assert_close(got, want, F64, what)

    compare_to_torch(torch, cell, layers, bidirectional, batch_first, with_state, F64, check)


@pytest.mark.parametrize("cell", CELLS)
def test_layer_with_lengths_matches_torch_packed_float32(torch, isa, cell):
    def check(got, want, what):
        got, want = np.asarray(got), np.asarray(want)
        assert got.shape == want.shape, what
        assert got.dtype == want.dtype == F32, what
        scale = max(float(np.abs(want).max()), 1e-30)
        error = float(np.abs(got.astype(F64) - want).max())
        assert error <= F32_TOLERANCE * scale, f"{what} [{isa}]: max error {error:.3g} > {F32_TOLERANCE} x {scale:.3g}"

    compare_to_torch(torch, cell, 2, True, True, True, F32, check)


# ---- 2. the NumPy backend against the C++ one --------------------------------------------------------

@pytest.mark.parametrize("dtype", [F64, F32], ids=["float64", "float32"])
@pytest.mark.parametrize("cell", CELLS)
def test_numpy_backend_matches_cpp_with_lengths(cell, dtype):
    lengths = [3, 0, 7, 1, 5]
    runs = []
    for backend in ("cpp", "numpy"):
        x, h0, dy, dh_n = make_data(cell, 2, True, True, dtype, lengths=lengths, garbage=1e6)
        layer = make_layer(cell, 2, True, True, dtype, backend=backend)
        runs.append(run_layer(layer, x, h0, dy, dh_n, lengths, cell))
    (y, h_n, dx, dh0, grads), (ny, nh_n, ndx, ndh0, ngrads) = runs
    what = f"{cell} {np.dtype(dtype).name} numpy vs cpp"
    assert_close(ny, y, dtype, f"{what} y")
    assert_close(ndx, dx, dtype, f"{what} dx")
    for k in range(num_states(cell)):
        assert_close(nh_n[k], h_n[k], dtype, f"{what} state_n[{k}]")
        assert_close(ndh0[k], dh0[k], dtype, f"{what} dstate0[{k}]")
    assert list(ngrads) == list(grads)
    for name in grads:
        assert_close(ngrads[name], grads[name], dtype, f"{what} grads[{name}]")
    mask = padding_mask(lengths, STEPS, True)
    assert not ny[mask].any(), f"{what}: y at the padding is not 0"
    assert not ndx[mask].any(), f"{what}: dx at the padding is not 0"


# ---- 3. inference mode -------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["cpp", "numpy"])
@pytest.mark.parametrize("config", ["uni-1", "bi-2"])
@pytest.mark.parametrize("cell", CELLS)
def test_inference_with_lengths_gives_the_training_outputs(cell, config, backend):
    layers, bidirectional = CONFIGS[config]
    lengths = np.array([3, 0, 7, 1, 5])
    x, h0, _, _ = make_data(cell, layers, bidirectional, False, F32, lengths=lengths)
    layer = make_layer(cell, layers, bidirectional, False, F32, backend=backend)

    def outputs(**kwargs):
        y, h_n = layer(x, pack_states(cell, h0), lengths=lengths, **kwargs)
        return [np.array(y), *unpack_states(cell, h_n)]

    want = outputs()  # training mode

    what = f"{cell} {config} {backend}"
    for run in range(2):  # the second inference call runs on the weights packed by the first
        for k, (a, b) in enumerate(zip(outputs(training=False), want)):
            np.testing.assert_array_equal(a, b, err_msg=f"{what} training=False call {run}: output {k}")
    layer.training = False
    for k, (a, b) in enumerate(zip(outputs(), want)):
        np.testing.assert_array_equal(a, b, err_msg=f"{what} layer.training=False: output {k}")
    with pytest.raises(RuntimeError, match="forward"):
        layer.backward(None)
    layer.training = True
    for k, (a, b) in enumerate(zip(outputs(), want)):
        np.testing.assert_array_equal(a, b, err_msg=f"{what} back in training: output {k}")


# ---- 4. lengths all T, and rows of length 0 ----------------------------------------------------------

@pytest.mark.parametrize("batch_first", [False, True], ids=["time-major", "batch-first"])
@pytest.mark.parametrize("cell", CELLS)
def test_lengths_all_full_is_bitwise_lengths_none(cell, batch_first):
    full = [STEPS] * BATCH
    x, h0, dy, dh_n = make_data(cell, 2, True, batch_first, F64, lengths=full)
    layer = make_layer(cell, 2, True, batch_first, F64)
    want = run_layer(layer, x, h0, dy, dh_n, None, cell)
    for lengths in (full, np.array(full, np.int32), np.array(full, np.uint8)):
        got = run_layer(layer, x, h0, dy, dh_n, lengths, cell)
        what = f"{cell} batch_first={batch_first} lengths={lengths!r}"
        for k in (0, 2):
            np.testing.assert_array_equal(got[k], want[k], err_msg=f"{what} {'y' if k == 0 else 'dx'}")
        for k in (1, 3):
            for s in range(num_states(cell)):
                np.testing.assert_array_equal(got[k][s], want[k][s], err_msg=f"{what} output {k} state {s}")
        assert list(got[4]) == list(want[4])
        for name in want[4]:
            np.testing.assert_array_equal(got[4][name], want[4][name], err_msg=f"{what} grads[{name}]")


@pytest.mark.parametrize("backend", ["cpp", "numpy"])
@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("cell", CELLS)
def test_rows_of_length_zero(cell, config, backend):
    """A row of length 0: y = 0, h_n = h0, dh0 = dh_n, dx = 0 (exactly), and the other rows (and the
    parameter gradients) as when those rows run alone."""
    layers, bidirectional = CONFIGS[config]
    lengths = np.array([4, 0, 7, 0, 2])
    empty, rows = np.flatnonzero(lengths == 0), np.flatnonzero(lengths > 0)
    x, h0, dy, dh_n = make_data(cell, layers, bidirectional, False, F64, lengths=lengths, garbage=1e6)
    layer = make_layer(cell, layers, bidirectional, False, F64, backend=backend)
    y, h_n, dx, dh0, grads = run_layer(layer, x, h0, dy, dh_n, lengths, cell)
    what = f"{cell} {config} {backend}"

    assert not y[:, empty].any(), f"{what}: y of an empty row is not 0"
    assert not dx[:, empty].any(), f"{what}: dx of an empty row is not 0"
    for s in range(num_states(cell)):
        np.testing.assert_array_equal(h_n[s][:, empty], h0[s][:, empty], err_msg=f"{what} state_n[{s}]")
        np.testing.assert_array_equal(dh0[s][:, empty], dh_n[s][:, empty], err_msg=f"{what} dstate0[{s}]")

    sub = run_layer(layer, x[:, rows], [h[:, rows] for h in h0], dy[:, rows], [d[:, rows] for d in dh_n],
                    lengths[rows], cell)
    assert_close(y[:, rows], sub[0], F64, f"{what} y of the other rows")
    assert_close(dx[:, rows], sub[2], F64, f"{what} dx of the other rows")
    for s in range(num_states(cell)):
        assert_close(h_n[s][:, rows], sub[1][s], F64, f"{what} state_n[{s}] of the other rows")
        assert_close(dh0[s][:, rows], sub[3][s], F64, f"{what} dstate0[{s}] of the other rows")
    for name in grads:
        assert_close(grads[name], sub[4][name], F64, f"{what} grads[{name}]")


def test_all_rows_of_length_zero():
    cell = "lstm"
    lengths = [0, 0, 0]
    x, h0, dy, dh_n = make_data(cell, 2, True, True, F64, lengths=lengths, garbage=1e6)
    layer = make_layer(cell, 2, True, True, F64)
    y, h_n, dx, dh0, grads = run_layer(layer, x, h0, dy, dh_n, lengths, cell)
    assert not y.any()
    assert not dx.any()
    for s in range(2):
        np.testing.assert_array_equal(h_n[s], h0[s])
        np.testing.assert_array_equal(dh0[s], dh_n[s])
    for name, g in grads.items():
        assert not g.any(), f"grads[{name}] is not 0"


# ---- 5. bad lengths ----------------------------------------------------------------------------------

@pytest.mark.parametrize("batch_first", [False, True], ids=["time-major", "batch-first"])
@pytest.mark.parametrize("lengths", [
    pytest.param([3, 2, 1], id="too-few"),
    pytest.param([3] * (BATCH + 1), id="too-many"),
    pytest.param(np.full((BATCH, 1), 3), id="2-d"),
    pytest.param(3, id="scalar"),
    pytest.param([], id="empty"),
    pytest.param([3, STEPS + 1, 1, 2, 2], id="T+1"),
    pytest.param([3, -1, 1, 2, 2], id="negative"),
    pytest.param([3.0, 2.0, 1.0, 2.0, 2.0], id="floats"),
    pytest.param(np.array([3, 2, 1, 2, 2], np.float64), id="float-array"),
    pytest.param([3, float("nan"), 1, 2, 2], id="nan"),
    pytest.param([True, True, False, True, True], id="bools"),
    pytest.param(["3", "2", "1", "2", "2"], id="strings"),
])
def test_bad_lengths_are_refused(lengths, batch_first):
    layer = rnnkit.RNN(INPUTS, HIDDEN, cell="gru", num_layers=2, bidirectional=True, batch_first=batch_first,
                       dtype="float64", seed=0)
    x = np.zeros((BATCH, STEPS, INPUTS) if batch_first else (STEPS, BATCH, INPUTS))
    with pytest.raises(ValueError, match="lengths"):
        layer(x, lengths=lengths)
    with pytest.raises(ValueError, match="lengths"):
        layer(x, lengths=lengths, training=False)


def test_out_of_range_lengths_message():
    layer = rnnkit.RNN(INPUTS, HIDDEN, batch_first=True, dtype="float64", seed=0)
    x = np.zeros((BATCH, STEPS, INPUTS))  # T is axis 1 here
    with pytest.raises(ValueError, match=rf"lengths\[1\] = {STEPS + 1} is out of range.*T = {STEPS}"):
        layer(x, lengths=[1, STEPS + 1, 1, 1, 1])
    with pytest.raises(ValueError, match=r"lengths\[3\] = -1 is out of range"):
        layer(x, lengths=[1, 1, 1, -1, 1])
    with pytest.raises(ValueError, match=rf"lengths has shape \(3,\); expected \(B,\) = \({BATCH},\)"):
        layer(x, lengths=[1, 1, 1])


@pytest.mark.parametrize("lengths", [[STEPS], [1], np.array([2])])
def test_lengths_with_unbatched_x_are_refused(lengths):
    layer = rnnkit.RNN(INPUTS, HIDDEN, cell="lstm", dtype="float64", seed=0)
    with pytest.raises(ValueError, match="lengths"):
        layer(np.zeros((STEPS, INPUTS)), lengths=lengths)


def test_refused_lengths_leave_the_previous_forward_for_backward():
    """A forward refused for its lengths must not replace what the last good forward saved."""
    layer = make_layer("tanh", 1, False, False, F64)
    x, _, dy, dh_n = make_data("tanh", 1, False, False, F64, garbage=0.0)
    layer(x, lengths=LENGTHS)
    want = layer.backward(dy, dh_n[0])
    layer(x, lengths=LENGTHS)
    with pytest.raises(ValueError, match="lengths"):
        layer(x, lengths=[STEPS + 1] * BATCH)
    got = layer.backward(dy, dh_n[0])
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


# ---- 6. pad_sequences --------------------------------------------------------------------------------

def some_sequences(lengths, features=(3,), dtype=F32, seed=5):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((n, *features)).astype(dtype) for n in lengths]


@pytest.mark.parametrize("padding_value", [0.0, -2.5])
@pytest.mark.parametrize("features", [(3,), (), (2, 3)], ids=["vectors", "scalars", "matrices"])
@pytest.mark.parametrize("batch_first", [True, False])
def test_pad_sequences_matches_torch_pad_sequence(torch, batch_first, features, padding_value):
    lengths = [2, 5, 1, 4]
    seqs = some_sequences(lengths, features)
    x, got_lengths = rnnkit.pad_sequences(seqs, batch_first=batch_first, padding_value=padding_value)
    want = torch.nn.utils.rnn.pad_sequence([torch.from_numpy(s) for s in seqs], batch_first=batch_first,
                                           padding_value=padding_value).numpy()
    assert x.dtype == want.dtype == F32
    assert x.shape == want.shape
    np.testing.assert_array_equal(x, want)
    assert x.flags.c_contiguous
    assert got_lengths.dtype == np.int64
    np.testing.assert_array_equal(got_lengths, lengths)
    # torch tensors in, the same out
    x2, lengths2 = rnnkit.pad_sequences([torch.from_numpy(s) for s in seqs], batch_first=batch_first,
                                        padding_value=padding_value)
    np.testing.assert_array_equal(x2, x)
    np.testing.assert_array_equal(lengths2, lengths)


def test_pad_sequences_default_batch_first_and_layout():
    seqs = some_sequences([2, 3])
    x, lengths = rnnkit.pad_sequences(seqs)
    assert x.shape == (2, 3, 3)
    np.testing.assert_array_equal(lengths, [2, 3])
    np.testing.assert_array_equal(x[0, :2], seqs[0])
    np.testing.assert_array_equal(x[1], seqs[1])
    assert not x[0, 2].any()
    xt, _ = rnnkit.pad_sequences(seqs, batch_first=False)
    assert xt.shape == (3, 2, 3)
    np.testing.assert_array_equal(xt, x.transpose(1, 0, 2))


def test_pad_sequences_dtype():
    f32 = some_sequences([2, 3], dtype=F32)
    assert rnnkit.pad_sequences(f32)[0].dtype == F32
    assert rnnkit.pad_sequences(some_sequences([2, 3], dtype=F64))[0].dtype == F64
    assert rnnkit.pad_sequences([f32[0], f32[1].astype(F64)])[0].dtype == F64  # numpy.result_type
    assert rnnkit.pad_sequences([np.arange(3), np.arange(2)])[0].dtype == np.arange(3).dtype
    assert rnnkit.pad_sequences([[[1.0, 2.0]], [[3.0, 4.0], [5.0, 6.0]]])[0].dtype == F64  # nested lists
    x, _ = rnnkit.pad_sequences(f32, dtype="float64")
    assert x.dtype == F64
    np.testing.assert_array_equal(x[1], f32[1].astype(F64))
    x, _ = rnnkit.pad_sequences([np.arange(3), np.arange(2)], dtype=np.float32, padding_value=-1)
    assert x.dtype == F32
    np.testing.assert_array_equal(x, [[0, 1, 2], [0, 1, -1]])


def test_pad_sequences_empty_sequences_have_length_zero():
    seqs = some_sequences([2, 0, 3])
    x, lengths = rnnkit.pad_sequences(seqs, padding_value=7.0)
    np.testing.assert_array_equal(lengths, [2, 0, 3])
    assert x.shape == (3, 3, 3)
    assert x.dtype == F32
    np.testing.assert_array_equal(x[1], np.full((3, 3), 7.0, F32))
    # an empty list or a 1-D empty array takes the others' feature shape and dtype
    for empty in ([], np.zeros(0, F32)):
        x2, lengths2 = rnnkit.pad_sequences([seqs[0], empty, seqs[2]], padding_value=7.0)
        np.testing.assert_array_equal(lengths2, [2, 0, 3])
        np.testing.assert_array_equal(x2, x)


@pytest.mark.parametrize("empty", [[], np.zeros(0, F32)], ids=["list", "array"])
def test_pad_sequences_empty_first_sequence(empty):
    """An empty first sequence ([] or a 1-D empty array) is exempt from the feature-shape check, as one
    anywhere else is: the features come from the non-empty ones."""
    seqs = some_sequences([2, 3])
    x, lengths = rnnkit.pad_sequences([empty, *seqs])
    np.testing.assert_array_equal(lengths, [0, 2, 3])
    assert x.dtype == F32
    assert x.shape == (3, 3, 3)
    assert not x[0].any()


def test_pad_sequences_refuses_bad_input():
    seqs = some_sequences([2, 3])
    with pytest.raises(ValueError, match=r"seqs\[2\]"):
        rnnkit.pad_sequences([*seqs, np.zeros((4, 2), F32)])
    with pytest.raises(ValueError, match=r"seqs\[1\]"):
        rnnkit.pad_sequences([seqs[0], np.zeros((4, 3, 1), F32)])
    with pytest.raises(ValueError, match="empty"):
        rnnkit.pad_sequences([])
    with pytest.raises(TypeError, match="list or tuple"):
        rnnkit.pad_sequences(np.zeros((2, 3, 3)))
    with pytest.raises(TypeError, match="list or tuple"):
        rnnkit.pad_sequences("abc")
    with pytest.raises(TypeError, match=r"seqs\[1\]"):
        rnnkit.pad_sequences([seqs[0], "abc"])
    with pytest.raises(TypeError, match=r"seqs\[0\]"):
        rnnkit.pad_sequences([np.array(["a", "b"])])
    with pytest.raises(TypeError, match=r"seqs\[1\]"):
        rnnkit.pad_sequences([seqs[0], None])
    with pytest.raises(ValueError, match=r"seqs\[0\]"):
        rnnkit.pad_sequences([np.float32(1.0)])
    with pytest.raises(TypeError, match="batch_first"):
        rnnkit.pad_sequences(seqs, batch_first=1)
    with pytest.raises(TypeError, match="dtype"):
        rnnkit.pad_sequences(seqs, dtype=np.complex64)


@pytest.mark.parametrize("backend", ["cpp", "numpy"])
def test_padded_batch_equals_each_sequence_alone(backend):
    """layer(*pad_sequences(seqs)) with its lengths, and its backward, against each sequence run alone
    (unbatched, no lengths): a 2-layer bidirectional GRU."""
    cell, lengths = "gru", [4, 1, 7, 3, 7, 2]
    seqs = some_sequences(lengths, (INPUTS,), dtype=F64, seed=8)
    dys = some_sequences(lengths, (2 * HIDDEN,), dtype=F64, seed=9)
    layer = make_layer(cell, 2, True, True, F64, backend=backend)
    x, got_lengths = rnnkit.pad_sequences(seqs)
    dy, _ = rnnkit.pad_sequences(dys, padding_value=1e6)
    y, h_n = layer(x, lengths=got_lengths)
    y = np.array(y)
    dx, dh0 = layer.backward(dy)
    grads = dict(layer.grads)
    total = {name: np.zeros_like(g) for name, g in grads.items()}
    for i, (seq, d) in enumerate(zip(seqs, dys)):
        n = len(seq)
        yi, hi = layer(seq)
        assert_close(y[i, :n], yi, F64, f"y of sequence {i}")
        assert not y[i, n:].any(), f"y of sequence {i} at the padding is not 0"
        assert_close(h_n[:, i], hi, F64, f"h_n of sequence {i}")
        dxi, dh0i = layer.backward(d)
        assert_close(dx[i, :n], dxi, F64, f"dx of sequence {i}")
        assert not dx[i, n:].any(), f"dx of sequence {i} at the padding is not 0"
        assert_close(dh0[:, i], dh0i, F64, f"dh0 of sequence {i}")
        for name in total:
            total[name] += layer.grads[name]
    for name, grad in grads.items():
        assert_close(grad, total[name], F64, f"grads[{name}]")
