"""The models on real sequence data: ragged lists of (T_i, F) sequences and token ids (vocab_size=),
bidirectional ManyToOne / ManyToMany / Seq2Seq, decoders with end_token, bucketed batches.

A ragged batch computes what each sequence computes alone (outputs and gradients, every cell, torch's
packed semantics for ManyToOne), padding is never counted, each topology learns a variable-length task,
end tokens cut and stop as documented, plan-based generation matches a per-step reference, bucketing is
seeded and saves padding, and bad input is refused with a message that names it."""

import numpy as np
import pytest
import rnnkit
from helpers import CELLS, numeric_gradient
from rnnkit import Embedding, ManyToMany, ManyToOne, Model, OneToMany, OneToOne, Seq2Seq, _model
from rnnkit._data import batch_order
from rnnkit._model import from_state_tuple, one_hot

F64 = "float64"
LENGTHS = [3, 1, 5, 2, 4, 5]


@pytest.fixture(autouse=True)
def one_kernel_thread(threads):
    """Results are the same for any thread count (test_threads.py); one thread keeps these small loops fast."""
    threads(1)


def ragged_floats(rng, lengths, features=3):
    return [rng.standard_normal((t, features)) for t in lengths]


def ragged_ids(rng, lengths, vocab):
    return [rng.integers(0, vocab, t) for t in lengths]


def whole(data):
    """The checked data set as one batch (time-major, padded to its longest sequence)."""
    return data.take(np.arange(len(data)))


def grads_of(model, x, y):
    """The gradients of the mean loss of the batch (x, y) (checked data sets), copied."""
    model._batch_loss(whole(x), whole(y), train=True)
    return {name: g.copy() for name, g in model._grads().items()}


def assert_grads_close(got, want, rtol=1e-10):
    assert got.keys() == want.keys()
    for name in want:
        scale = max(float(np.abs(want[name]).max()), 1e-300)
        np.testing.assert_allclose(got[name], want[name], rtol=0, atol=rtol * scale, err_msg=name)


def assert_lists_equal(got, want):
    assert isinstance(got, list)
    assert isinstance(want, list)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def garble_padding(batch, rng, vocab=None):
    """A copy of the batch whose padded inputs are arbitrary (the real steps unchanged)."""
    data = batch.data.copy()
    pad = ~batch.mask()
    assert pad.any()
    if vocab is None:
        data[pad] = rng.standard_normal(data[pad].shape) * 100
    else:
        data[pad] = rng.integers(0, vocab, data[pad].shape)
    return type(batch)(data, batch.lengths, timed=batch.timed)


# -- 1. a ragged batch computes what each sequence computes alone --------------------------------------

M2O_CASES = [(cell, bi, 1) for cell in CELLS for bi in (False, True)] + [("lstm", True, 2), ("gru", False, 2)]


@pytest.mark.parametrize(("cell", "bidirectional", "layers"), M2O_CASES)
def test_many_to_one_ragged_batch_equals_each_sequence_alone(cell, bidirectional, layers):
    rng = np.random.default_rng(1)
    X = ragged_floats(rng, LENGTHS)
    y = np.array([0, 1, 2, 1, 0, 2])
    model = ManyToOne(3, 5, 3, cell=cell, num_layers=layers, bidirectional=bidirectional, dtype=F64, seed=2)
    x = model._check_x(X)
    yy = model._check_y(y, x)
    assert x.lengths.tolist() == LENGTHS
    assert x.ragged
    logits = model._forward(whole(x), None)
    grads = grads_of(model, x, yy)

    # batches of one, no padding: the outputs row by row, the gradient of the mean loss = their mean
    mean = {name: np.zeros_like(g) for name, g in grads.items()}
    for i, seq in enumerate(X):
        xi = model._check_x(seq[None])
        assert xi.lengths is None
        np.testing.assert_allclose(model._forward(whole(xi), None)[0], logits[i], rtol=0, atol=1e-12)
        for name, g in grads_of(model, xi, model._check_y(y[i:i + 1], xi)).items():
            mean[name] += g / len(X)
    assert_grads_close(grads, mean)

    model.fitted = True
    np.testing.assert_array_equal(model.predict(X), logits.argmax(-1))
    np.testing.assert_array_equal(model.predict(X), [model.predict(s[None])[0] for s in X])

    # the padded inputs are never read: garbage there changes nothing
    batch = whole(x)
    garbled = garble_padding(batch, rng)
    np.testing.assert_array_equal(model._forward(garbled, None), model._forward(batch, None))
    model._batch_loss(garbled, whole(yy), train=True)
    for name, g in model._grads().items():
        np.testing.assert_array_equal(g, grads[name], err_msg=name)

    # the NumPy reference backend, same weights, same ragged batch
    numpy_model = ManyToOne(3, 5, 3, cell=cell, num_layers=layers, bidirectional=bidirectional, dtype=F64,
                            backend="numpy", seed=2)
    for name, p in model.params.items():
        np.testing.assert_array_equal(numpy_model.params[name], p)
    np.testing.assert_allclose(numpy_model._forward(whole(x), None), logits, rtol=0, atol=1e-12)
    assert_grads_close(grads_of(numpy_model, x, yy), grads)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_many_to_many_ragged_batch_equals_each_sequence_alone(cell, bidirectional):
    rng = np.random.default_rng(3)
    X = ragged_floats(rng, LENGTHS)
    Y = [rng.integers(0, 3, t) for t in LENGTHS]
    model = ManyToMany(3, 5, 3, cell=cell, num_layers=2, bidirectional=bidirectional, dtype=F64, seed=4)
    x = model._check_x(X)
    y = model._check_y(Y, x)
    outputs = model._forward(whole(x), None)  # (T_max, N, O)
    grads = grads_of(model, x, y)

    # the loss is the mean over the real steps: sequence i weighs T_i / sum(T)
    total = sum(LENGTHS)
    weighted = {name: np.zeros_like(g) for name, g in grads.items()}
    for i, (seq, target) in enumerate(zip(X, Y)):
        xi = model._check_x(seq[None])
        np.testing.assert_allclose(model._forward(whole(xi), None)[:, 0], outputs[:len(seq), i], rtol=0, atol=1e-12)
        for name, g in grads_of(model, xi, model._check_y(target[None], xi)).items():
            weighted[name] += g * len(seq) / total
    assert_grads_close(grads, weighted)

    model.fitted = True
    predictions = model.predict(X)
    assert isinstance(predictions, list)
    assert [len(p) for p in predictions] == LENGTHS
    for i, p in enumerate(predictions):
        np.testing.assert_array_equal(p, outputs[:LENGTHS[i], i].argmax(-1))
    assert isinstance(model.predict(np.stack([X[2], X[5]])), np.ndarray)  # rectangular stays an array

    # padding never counts: garbage inputs there, or any padded targets beside ragged X
    batch = whole(x)
    garbled = garble_padding(batch, rng)
    loss = model._batch_loss(batch, whole(y), train=False)
    assert model._batch_loss(garbled, whole(y), train=True) == loss
    for name, g in model._grads().items():
        np.testing.assert_array_equal(g, grads[name], err_msg=name)
    padded = np.zeros((len(Y), max(LENGTHS)), np.int64)
    for i, target in enumerate(Y):
        padded[i, :len(target)] = target
    other = padded.copy()
    other[np.arange(max(LENGTHS))[None, :] >= np.array(LENGTHS)[:, None]] = 2
    scores = set()
    for targets in (Y, padded, other):
        yt = model._check_y(targets, x)
        assert model._batch_loss(batch, whole(yt), train=True) == loss
        for name, g in model._grads().items():
            np.testing.assert_array_equal(g, grads[name], err_msg=name)
        scores.add(model.score(X, targets))
    assert len(scores) == 1
    right = sum(int((p == t).sum()) for p, t in zip(predictions, Y))
    assert scores.pop() == right / total

    numpy_model = ManyToMany(3, 5, 3, cell=cell, num_layers=2, bidirectional=bidirectional, dtype=F64,
                             backend="numpy", seed=4)
    assert_grads_close(grads_of(numpy_model, x, y), grads)


TORCH_MODULES = {"tanh": "RNN", "relu": "RNN", "lstm": "LSTM", "gru": "GRU"}


def torch_copy(torch, cell, layer, **kwargs):
    """The torch module (batch-first, float64) holding the same weights as an rnnkit RNN or Dense layer."""
    if cell is None:
        module = torch.nn.Linear(layer.input_size, layer.output_size, dtype=torch.float64)
    else:
        extra = {"nonlinearity": cell} if TORCH_MODULES[cell] == "RNN" else {}
        module = getattr(torch.nn, TORCH_MODULES[cell])(layer.input_size, layer.hidden_size,
                                                        num_layers=layer.num_layers, batch_first=True,
                                                        dtype=torch.float64, **extra, **kwargs)
    module.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in layer.params.items()})
    return module


def torch_grads(**modules):
    return {f"{name}.{k}": p.grad.numpy() for name, module in modules.items() for k, p in module.named_parameters()}


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("bidirectional", [True, False])
def test_many_to_one_matches_torch_packed(cell, bidirectional):
    """torch: pack_padded_sequence, then Linear on h_n[-1] or cat(h_n[-2], h_n[-1]); logits and gradients."""
    torch = pytest.importorskip("torch")
    from torch.nn.utils.rnn import pack_padded_sequence

    rng = np.random.default_rng(5)
    X = ragged_floats(rng, LENGTHS)
    y = np.array([0, 1, 2, 1, 0, 2])
    model = ManyToOne(3, 4, 3, cell=cell, num_layers=2, bidirectional=bidirectional, dtype=F64, seed=6)
    rnn = torch_copy(torch, cell, model.layers["rnn"], bidirectional=bidirectional)
    head = torch_copy(torch, None, model.layers["head"])

    x = model._check_x(X)
    packed = pack_padded_sequence(torch.from_numpy(x.padded()), torch.tensor(LENGTHS), batch_first=True,
                                  enforce_sorted=False)
    _, h_n = rnn(packed)
    if cell == "lstm":
        h_n = h_n[0]
    want = head(torch.cat([h_n[-2], h_n[-1]], dim=-1) if bidirectional else h_n[-1])
    torch.nn.functional.cross_entropy(want, torch.from_numpy(y)).backward()

    logits = model._forward(whole(x), None)
    np.testing.assert_allclose(logits, want.detach().numpy(), rtol=0, atol=1e-10)
    assert_grads_close(grads_of(model, x, model._check_y(y, x)), torch_grads(rnn=rnn, head=head), rtol=1e-9)
    model.fitted = True
    np.testing.assert_array_equal(model.predict(X), want.detach().numpy().argmax(-1))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_bidirectional_many_to_many_matches_torch_packed(cell):
    """torch: packed sequence, pad_packed_sequence, Linear on every step; the mean loss over real steps."""
    torch = pytest.importorskip("torch")
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    rng = np.random.default_rng(6)
    X = ragged_floats(rng, LENGTHS)
    Y = [rng.integers(0, 3, t) for t in LENGTHS]
    model = ManyToMany(3, 4, 3, cell=cell, num_layers=2, bidirectional=True, dtype=F64, seed=7)
    rnn = torch_copy(torch, cell, model.layers["rnn"], bidirectional=True)
    head = torch_copy(torch, None, model.layers["head"])
    x = model._check_x(X)
    y = model._check_y(Y, x)
    packed = pack_padded_sequence(torch.from_numpy(x.padded()), torch.tensor(LENGTHS), batch_first=True,
                                  enforce_sorted=False)
    hidden, _ = pad_packed_sequence(rnn(packed)[0], batch_first=True)
    logits = head(hidden)  # (N, T_max, O)
    real = torch.from_numpy(np.arange(max(LENGTHS))[None, :] < np.array(LENGTHS)[:, None])
    torch.nn.functional.cross_entropy(logits[real], torch.from_numpy(np.concatenate(Y))).backward()

    outputs = np.swapaxes(model._forward(whole(x), None), 0, 1)
    np.testing.assert_allclose(outputs[real.numpy()], logits[real].detach().numpy(), rtol=0, atol=1e-10)
    assert_grads_close(grads_of(model, x, y), torch_grads(rnn=rnn, head=head), rtol=1e-9)


@pytest.mark.parametrize("cell", ["lstm", "gru", "tanh"])
def test_seq2seq_with_a_bidirectional_encoder_matches_torch(cell):
    """torch: a bidirectional encoder over packed sources; the decoder starts from the sum of each layer's
    two final states and is teacher-forced (zeros, then the previous target one-hot) over packed targets."""
    torch = pytest.importorskip("torch")
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    rng = np.random.default_rng(7)
    X = ragged_floats(rng, LENGTHS)
    Y = [rng.integers(0, 3, k) for k in (2, 4, 1, 3, 3, 1)]
    model = Seq2Seq(3, 4, 4, cell=cell, num_layers=2, bidirectional=True, end_token=3, dtype=F64, seed=8)
    encoder = torch_copy(torch, cell, model.layers["encoder"], bidirectional=True)
    decoder = torch_copy(torch, cell, model.layers["decoder"])
    head = torch_copy(torch, None, model.layers["head"])
    x = model._check_x(X)
    y = model._check_y(Y, x)
    targets = y.padded()  # (N, T_out): each target with its end token, padded
    out_lengths = [len(t) + 1 for t in Y]
    np.testing.assert_array_equal(y.lengths, out_lengths)

    packed = pack_padded_sequence(torch.from_numpy(x.padded()), torch.tensor(LENGTHS), batch_first=True,
                                  enforce_sorted=False)
    _, state = encoder(packed)
    state = tuple(s[0::2] + s[1::2] for s in state) if cell == "lstm" else state[0::2] + state[1::2]
    inputs = np.zeros((len(Y), targets.shape[1], 4))
    inputs[:, 1:] = np.eye(4)[targets[:, :-1]]
    packed = pack_padded_sequence(torch.from_numpy(inputs), torch.tensor(out_lengths), batch_first=True,
                                  enforce_sorted=False)
    hidden, _ = pad_packed_sequence(decoder(packed, state)[0], batch_first=True)
    logits = head(hidden)
    real = torch.from_numpy(np.arange(targets.shape[1])[None, :] < np.array(out_lengths)[:, None])
    torch.nn.functional.cross_entropy(logits[real], torch.from_numpy(targets)[real]).backward()

    outputs = np.swapaxes(model._forward(whole(x), whole(y)), 0, 1)
    np.testing.assert_allclose(outputs[real.numpy()], logits[real].detach().numpy(), rtol=0, atol=1e-10)
    assert_grads_close(grads_of(model, x, y), torch_grads(encoder=encoder, decoder=decoder, head=head), rtol=1e-9)


GRADIENT_CASES = {
    "ManyToMany-bidirectional-lstm": lambda: ManyToMany(2, 3, 3, cell="lstm", num_layers=2, bidirectional=True,
                                                        dtype=F64, seed=0),
    "Seq2Seq-bidirectional-lstm": lambda: Seq2Seq(2, 3, 3, cell="lstm", num_layers=2, bidirectional=True,
                                                  end_token=2, dtype=F64, seed=0),
    "Seq2Seq-bidirectional-gru": lambda: Seq2Seq(2, 3, 3, cell="gru", num_layers=2, bidirectional=True,
                                                 dtype=F64, seed=0),
    "OneToMany-end-token-tanh": lambda: OneToMany(2, 3, 3, cell="tanh", num_layers=2, end_token=0, dtype=F64,
                                                  seed=0),
}


@pytest.mark.parametrize("case", GRADIENT_CASES)
def test_ragged_gradients_match_central_differences(case):
    """Every parameter, on ragged inputs and targets (for Seq2Seq with 2 layers: the decoder's start,
    the sum of both encoder directions layer by layer, sends its gradient to the right layer)."""
    model = GRADIENT_CASES[case]()
    rng = np.random.default_rng(8)
    lengths = [3, 1, 4]
    if model.x_ndim == 2:
        X = rng.standard_normal((3, 2))
    else:
        X = ragged_floats(rng, lengths, features=2)
    if isinstance(model, ManyToMany):
        Y = [rng.integers(0, 3, t) for t in lengths]
    else:
        Y = [rng.integers(0, 2, t) for t in (2, 1, 3)]
    x = model._check_x(X)
    y = model._check_y(Y, x)
    assert (x.lengths is not None or not x.timed)
    assert y.lengths is not None
    grads = grads_of(model, x, y)
    for name, param in model.params.items():
        numeric = numeric_gradient(lambda: model._batch_loss(whole(x), whole(y), train=False), param)
        np.testing.assert_allclose(grads[name], numeric, rtol=0, atol=1e-8, err_msg=name)


# -- 2. every topology learns a variable-length task ---------------------------------------------------

def larger_sum(rng, n):
    X = ragged_floats(rng, rng.integers(2, 13, n), features=2)
    return X, np.array([int(s[:, 0].sum() > s[:, 1].sum()) for s in X])


@pytest.mark.parametrize("bidirectional", [False, True])
def test_many_to_one_learns_which_feature_has_the_larger_sum(bidirectional):
    rng = np.random.default_rng(0)
    (X, y), (Xt, yt) = larger_sum(rng, 400), larger_sum(rng, 200)
    model = ManyToOne(2, 16, 2, cell="gru", bidirectional=bidirectional, seed=0)
    history = model.fit(X, y, epochs=10, lr=1e-2, verbose=0, validation_data=(Xt, yt)).history_
    assert model.score(Xt, yt) >= 0.85  # chance: about 0.5
    assert history["val_score"][-1] == model.score(Xt, yt)
    assert model.predict(Xt).shape == (200,)


def parity(rng, n):
    X = ragged_ids(rng, rng.integers(2, 11, n), 2)
    return X, [np.cumsum(s) % 2 for s in X]


def test_many_to_many_learns_running_parity_of_token_ids():
    rng = np.random.default_rng(0)
    (X, Y), (Xt, Yt) = parity(rng, 400), parity(rng, 200)
    model = ManyToMany(4, 16, 2, cell="gru", vocab_size=2, seed=0)
    model.fit(X, Y, epochs=10, lr=1e-2, verbose=0)
    assert isinstance(model.layers["embed"], Embedding)
    assert model.score(Xt, Yt) >= 0.95
    predictions = model.predict(Xt)
    assert [len(p) for p in predictions] == [len(s) for s in Xt]


def reversal(rng, n):
    X = ragged_ids(rng, rng.integers(1, 5, n), 4)
    return X, [s[::-1].copy() for s in X]


def test_seq2seq_learns_to_reverse_with_an_end_token_and_a_bidirectional_encoder():
    rng = np.random.default_rng(0)
    (X, Y), (Xt, Yt) = reversal(rng, 800), reversal(rng, 200)
    model = Seq2Seq(8, 48, 5, cell="gru", vocab_size=4, bidirectional=True, end_token=4, seed=0)
    model.fit(X, Y, epochs=20, lr=1e-2, verbose=0)
    assert model.steps == 5  # the longest target, its end token counted
    predictions = model.predict(Xt)
    exact = np.mean([np.array_equal(p, t) for p, t in zip(predictions, Yt)])
    assert exact >= 0.8  # chance: well under 1%
    assert model.score(Xt, Yt) >= 0.9


def copies(rng, n):
    digits = rng.integers(0, 5, n)
    return digits, [np.full(d + 1, d + 1) for d in digits]  # d -> d+1 copies of token d+1, then the end (0)


@pytest.fixture(scope="module")
def counter():
    """A OneToMany (class one-hot -> d+1 copies of d+1, end token 0), trained, and its data."""
    rnnkit.set_num_threads(1)
    rng = np.random.default_rng(0)
    digits, Y = copies(rng, 300)
    model = OneToMany(5, 16, 6, cell="gru", end_token=0, dtype=F64, seed=0)
    model.fit(np.eye(5)[digits], Y, epochs=30, lr=1e-2, verbose=0)
    return model, np.eye(5)[digits], Y


def test_one_to_many_learns_a_variable_length_target(counter):
    model, X, Y = counter
    assert model.steps == 6
    predictions = model.predict(X)
    assert isinstance(predictions, list)
    assert np.mean([np.array_equal(p, t) for p, t in zip(predictions, Y)]) >= 0.9
    assert model.score(X, Y) >= 0.95


# -- 3. end_token semantics ----------------------------------------------------------------------------

@pytest.mark.parametrize(("targets", "rows"), [
    ([[1, 2, 4, 3], [1], [4, 4]], [[1, 2, 4], [1, 4], [4]]),  # cut after the first end, or appended
    (np.array([[1, 2, 4, 4], [1, 4, 4, 4], [3, 3, 3, 3]]), [[1, 2, 4], [1, 4], [3, 3, 3, 3, 4]]),  # padded with ends
    (np.array([[1, 2], [2, 3], [0, 0]]), [[1, 2, 4], [2, 3, 4], [0, 0, 4]]),  # none: every one appended
    ([[1, 2], [], [3]], [[1, 2, 4], [4], [3, 4]]),  # an empty target is just the end
])
@pytest.mark.parametrize("model_cls", [OneToMany, Seq2Seq])
def test_end_token_cuts_or_appends(model_cls, targets, rows):
    model = model_cls(3, 4, 5, end_token=4, seed=0)
    X = np.zeros((3, 3)) if model_cls is OneToMany else ragged_floats(np.random.default_rng(0), [2, 3, 1])
    x = model._check_x(X)
    y = model._check_y(targets, x)
    assert [r.tolist() for r in y.rows()] == rows
    model.fit(X, targets, epochs=1, verbose=0)
    assert model.steps == max(len(r) for r in rows)


def test_predict_stops_at_the_end_token_and_at_max_steps(counter):
    model, X, _ = counter
    assert_lists_equal(model.predict(X[:40]), model.predict(X[:40], max_steps=model.steps))
    rng = np.random.default_rng(1)
    noisy = rng.standard_normal((60, 5))
    for k in (1, 3, 9):
        out = model.predict(noisy, max_steps=k)
        assert len(out) == 60
        assert all(isinstance(p, np.ndarray) and p.dtype.kind == "i" for p in out)
        assert all(len(p) <= k and 0 not in p for p in out)
    long = model.predict(noisy, max_steps=9)
    assert len({len(p) for p in long}) >= 3  # each row stops at its own end token
    short = model.predict(noisy, max_steps=3)
    for a, b in zip(long, short):  # greedy decoding is causal: a cap is a prefix
        np.testing.assert_array_equal(b, a[:3])
    assert_lists_equal(model.predict(noisy, steps=3), short)  # the old name
    with pytest.raises(TypeError, match="not both"):
        model.predict(noisy, 3, steps=3)


def test_end_token_never_or_always_predicted():
    model = OneToMany(3, 4, 5, end_token=2, dtype=F64, seed=0)
    model.fit(np.zeros((2, 3)), [[1, 1, 1], [0]], epochs=1, verbose=0)
    assert model.steps == 4
    X = np.random.default_rng(0).standard_normal((7, 3))
    bias = model.layers["head"].params["bias"]
    bias[2] = -1e3
    assert [len(p) for p in model.predict(X)] == [4] * 7
    assert [len(p) for p in model.predict(X, max_steps=6)] == [6] * 7
    bias[2] = 1e3
    out = model.predict(X)
    assert isinstance(out, list)
    assert [len(p) for p in out] == [0] * 7
    assert model.score(X, [[2]] * 7) == 1.0  # predicting the end at once is right for empty targets


def test_without_end_token_predict_returns_arrays():
    model = OneToMany(3, 4, 5, seed=0)
    model.fit(np.zeros((2, 3)), [[1, 2, 4, 3], [1, 4, 0, 0]], epochs=1, verbose=0)
    X = np.random.default_rng(0).standard_normal((6, 3))
    assert isinstance(model.predict(X), np.ndarray)
    assert model.predict(X).shape == (6, 4)
    assert model.predict(X, max_steps=7).shape == (6, 7)
    s2s = Seq2Seq(3, 4, 5, seed=0)
    s2s.fit(ragged_floats(np.random.default_rng(0), [2, 4]), [[1, 2, 3], [1]], epochs=1, verbose=0)
    assert s2s.steps == 3
    assert s2s.predict(ragged_floats(np.random.default_rng(1), [1, 5, 2])).shape == (3, 3)


def reference_generation(model, X, steps):
    """Greedy decoding with whole-layer calls, decoder(step_input, state), one step at a time for
    every row (no row dropped), cut after the fact at each row's first end token."""
    x = model._check_x(X)
    batch = whole(x)
    classify = model.task == "classification"
    with model._inference():
        state = from_state_tuple(model._initial_state(batch))
        step_input = np.zeros((1, batch.size, model.output_size), model.dtype)
        out = []
        for _ in range(steps):
            hidden, state = model.layers["decoder"](step_input, state)
            outputs = model.layers["head"](hidden[0])
            if classify:
                labels = outputs.argmax(-1)
                out.append(labels)
                step_input = one_hot(labels, model.output_size, model.dtype)[None]
            else:
                out.append(outputs)
                step_input = outputs[None]
    out = np.stack(out, axis=1)
    if not classify:
        return out[..., 0] if model.output_size == 1 else out
    if model.end_token is None:
        return out
    cut = []
    for row in out:
        ends = np.flatnonzero(row == model.end_token)
        cut.append(row[:ends[0]] if ends.size else row)
    return cut


@pytest.mark.parametrize("stream_rows", [0, 1000], ids=["layer-steps", "one-stream-call"])
@pytest.mark.parametrize("cell", CELLS)
def test_plan_generation_equals_a_per_step_reference(cell, stream_rows, monkeypatch):
    """Both ways of generating (a stream of the decoder's plans for small batches, each layer's step
    on the kernels' threads for larger ones) against full layer calls."""
    monkeypatch.setattr(rnnkit.models._Decoder, "STREAM_ROWS", stream_rows)
    rng = np.random.default_rng(2)
    digits, Y = copies(rng, 60)
    o2m = OneToMany(5, 8, 6, cell=cell, num_layers=2, end_token=0, dtype=F64, seed=0)
    o2m.fit(np.eye(5)[digits], Y, epochs=25, lr=1e-2, verbose=0)
    src = ragged_ids(rng, rng.integers(1, 6, 60), 4)
    s2s = Seq2Seq(3, 8, 5, cell=cell, num_layers=2, bidirectional=True, vocab_size=4, end_token=4, dtype=F64,
                  seed=0)
    s2s.fit(src, [s[::-1] for s in src], epochs=25, lr=1e-2, verbose=0)
    for model, X in ((o2m, rng.standard_normal((40, 5))), (s2s, src)):
        got, want = model.predict(X, max_steps=8), reference_generation(model, X, 8)
        assert len(got) == len(want)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)
        assert len({len(g) for g in got}) >= 3  # rows stopped at different steps

    # no end token: every row runs all the steps; regression feeds back its values
    plain = Seq2Seq(3, 6, 4, cell=cell, num_layers=2, dtype=F64, seed=1)
    X = ragged_floats(rng, [3, 1, 4, 2])
    plain.fit(X, rng.integers(0, 4, (4, 3)), epochs=1, verbose=0)
    np.testing.assert_array_equal(plain.predict(X, max_steps=6), reference_generation(plain, X, 6))
    values = OneToMany(3, 6, 2, cell=cell, num_layers=2, task="regression", dtype=F64, seed=1)
    values.fit(rng.standard_normal((4, 3)), rng.standard_normal((4, 3, 2)), epochs=1, verbose=0)
    X = rng.standard_normal((5, 3))
    np.testing.assert_allclose(values.predict(X, max_steps=5), reference_generation(values, X, 5), rtol=0,
                               atol=1e-12)


# -- 4. bucketing --------------------------------------------------------------------------------------

def padded_steps(batches, lengths):
    return sum(len(b) * int(lengths[b].max()) for b in batches)


def test_batch_order_buckets_reproducibly_and_covers_every_sample_once():
    lengths = np.random.default_rng(0).integers(1, 60, 1000)
    for bucket in (True, False):
        rng, again = np.random.default_rng(1), np.random.default_rng(1)
        for _ in range(3):  # epochs: a fresh order each, every sample exactly once
            batches = batch_order(rng, 1000, 16, lengths, bucket)
            same = batch_order(again, 1000, 16, lengths, bucket)
            assert len(batches) == len(same) == 63
            assert all(np.array_equal(a, b) for a, b in zip(batches, same))
            np.testing.assert_array_equal(np.sort(np.concatenate(batches)), np.arange(1000))
    bucketed = padded_steps(batch_order(np.random.default_rng(1), 1000, 16, lengths, True), lengths)
    plain = padded_steps(batch_order(np.random.default_rng(1), 1000, 16, lengths, False), lengths)
    assert lengths.sum() <= bucketed < 0.7 * plain
    # without lengths, bucket changes nothing
    a = batch_order(np.random.default_rng(2), 100, 8, None, True)
    b = batch_order(np.random.default_rng(2), 100, 8, None, False)
    assert all(np.array_equal(p, q) for p, q in zip(a, b))


def recording(monkeypatch):
    """Record every batch_order call of fit: (lengths, bucket, batches)."""
    calls = []

    def spy(rng, n, batch_size, lengths=None, bucket=True):
        batches = batch_order(rng, n, batch_size, lengths, bucket)
        calls.append((None if lengths is None else lengths.copy(), bucket, batches))
        return batches

    monkeypatch.setattr(_model, "batch_order", spy)
    return calls


def test_fit_buckets_by_the_right_lengths(monkeypatch):
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 40, 300)
    X = ragged_floats(rng, lengths, features=2)
    y = rng.integers(0, 2, 300)
    padding = {}
    for bucket in (True, False):
        calls = recording(monkeypatch)
        ManyToOne(2, 4, 2, seed=0).fit(X, y, epochs=2, batch_size=8, bucket=bucket, verbose=0).history_
        assert len(calls) == 2
        for got_lengths, got_bucket, batches in calls:
            np.testing.assert_array_equal(got_lengths, lengths)
            assert got_bucket is bucket
            np.testing.assert_array_equal(np.sort(np.concatenate(batches)), np.arange(300))
        padding[bucket] = padded_steps(calls[0][2], lengths)
    assert padding[True] < 0.7 * padding[False]

    # decoders: by the sources' lengths when ragged, else by the targets' (end tokens counted)
    targets = [np.ones(k, np.int64) for k in rng.integers(1, 6, 300)]
    for model, data, want in [
        (Seq2Seq(2, 4, 3, end_token=2, seed=0), X, lengths),
        (Seq2Seq(2, 4, 3, end_token=2, seed=0), rng.standard_normal((300, 3, 2)), [len(t) + 1 for t in targets]),
        (OneToMany(2, 4, 3, end_token=2, seed=0), rng.standard_normal((300, 2)), [len(t) + 1 for t in targets]),
        (OneToMany(2, 4, 3, seed=0), rng.standard_normal((300, 2)), [len(t) for t in targets]),
    ]:
        calls = recording(monkeypatch)
        model.fit(data, targets, epochs=1, batch_size=16, verbose=0)
        np.testing.assert_array_equal(calls[0][0], want)


def test_fit_is_bitwise_reproducible_from_the_seed():
    rng = np.random.default_rng(0)
    X = ragged_floats(rng, rng.integers(1, 12, 80))
    Y = [rng.integers(0, 3, len(s)) for s in X]
    runs = []
    for seed in (7, 7, 8):
        model = ManyToMany(3, 6, 3, cell="lstm", bidirectional=True, seed=seed)
        history = model.fit(X, Y, epochs=3, batch_size=8, lr=1e-2, verbose=0).history_
        runs.append((history["loss"], {k: v.copy() for k, v in model.params.items()}))
    assert runs[0][0] == runs[1][0]
    for name, p in runs[0][1].items():
        np.testing.assert_array_equal(p, runs[1][1][name], err_msg=name)
    assert runs[0][0] != runs[2][0]
    # bucketing changes the batches of ragged data, so the losses
    plain = ManyToMany(3, 6, 3, cell="lstm", bidirectional=True, seed=7)
    assert plain.fit(X, Y, epochs=3, batch_size=8, lr=1e-2, bucket=False, verbose=0).history_["loss"] != runs[0][0]


@pytest.mark.parametrize("model_cls", [OneToOne, OneToMany, ManyToOne, ManyToMany, Seq2Seq],
                         ids=lambda c: c.__name__)
def test_rectangular_data_is_unaffected_by_bucket(model_cls, monkeypatch):
    rng = np.random.default_rng(0)
    n = 40
    X = rng.standard_normal((n, 3) if model_cls.x_ndim == 2 else (n, 5, 3))
    if model_cls in (OneToOne, ManyToOne):
        Y = rng.integers(0, 4, n)
    else:
        Y = rng.integers(0, 4, (n, 5 if model_cls is ManyToMany else 3))
    results = []
    for bucket in (True, False):
        calls = recording(monkeypatch)
        model = model_cls(3, 6, 4, dtype=F64, seed=3)
        history = model.fit(X, Y, epochs=2, batch_size=8, bucket=bucket, verbose=0).history_
        assert all(c[0] is None for c in calls)
        results.append((history["loss"], model.params))
    assert results[0][0] == results[1][0]
    for name, p in results[0][1].items():
        np.testing.assert_array_equal(p, results[1][1][name], err_msg=name)


def test_bucket_must_be_a_bool():
    with pytest.raises(TypeError, match="bucket must be a bool, got int"):
        ManyToOne(3, 4, 2, seed=0).fit(ragged_floats(np.random.default_rng(0), [2, 3]), [0, 1], bucket=1,
                                       verbose=0).history_


# -- 5. token ids (vocab_size) --------------------------------------------------------------------------

VOCAB_CASES = {
    "OneToOne": lambda: OneToOne(3, 4, 3, vocab_size=6, dtype=F64, seed=0),
    "OneToMany": lambda: OneToMany(3, 4, 3, vocab_size=6, end_token=2, dtype=F64, seed=0),
    "ManyToOne-bidirectional": lambda: ManyToOne(3, 4, 3, vocab_size=6, bidirectional=True, dtype=F64, seed=0),
    "ManyToMany": lambda: ManyToMany(3, 4, 3, vocab_size=6, cell="lstm", dtype=F64, seed=0),
    "Seq2Seq-bidirectional": lambda: Seq2Seq(3, 4, 3, vocab_size=6, bidirectional=True, end_token=2,
                                             cell="gru", dtype=F64, seed=0),
}


@pytest.mark.parametrize("case", VOCAB_CASES)
def test_the_embedding_gets_the_loss_gradient(case):
    model = VOCAB_CASES[case]()
    rng = np.random.default_rng(0)
    lengths = [3, 1, 4, 2]
    if model.x_ndim == 2:
        X = np.array([0, 3, 1, 3])
    else:
        X = ragged_ids(rng, lengths, 4)  # ids 4 and 5 never occur
    if isinstance(model, ManyToMany):
        Y = [rng.integers(0, 3, t) for t in lengths]
    elif model.sequence_targets:
        Y = [rng.integers(0, 2, t) for t in (2, 1, 3, 2)]
    else:
        Y = np.array([0, 1, 2, 1])
    x = model._check_x(X)
    y = model._check_y(Y, x)
    grad = grads_of(model, x, y)["embed.weight"]
    weight = model.layers["embed"].params["weight"]
    numeric = numeric_gradient(lambda: model._batch_loss(whole(x), whole(y), train=False), weight)
    np.testing.assert_allclose(grad, numeric, rtol=0, atol=1e-8)
    used = np.unique(np.concatenate([np.ravel(s) for s in (X if isinstance(X, list) else [X])]))
    assert np.abs(grad[used]).sum(axis=1).min() > 0
    unused = np.setdiff1d(np.arange(6), used)
    assert unused.size
    assert not grad[unused].any()
    before = weight.copy()
    model.fit(X, Y, epochs=1, lr=1e-2, verbose=0)
    assert not np.array_equal(before[used], weight[used])
    np.testing.assert_array_equal(before[unused], weight[unused])  # (Adam: no gradient, no step)


@pytest.mark.parametrize(("model_cls", "x", "error", "pattern"), [
    (ManyToMany, [np.array([1, 2]), np.array([3, 5, 1])], ValueError,
     r"X\[1\]\[1\] = 5 is out of range; token ids must lie in \[0, vocab_size\) = \[0, 5\)"),
    (ManyToMany, [np.array([1, 2]), np.array([0, -1, 1])], ValueError, r"X\[1\]\[1\] = -1 is out of range"),
    (ManyToMany, np.array([[1, 2, 0], [3, 0, 7]]), ValueError, r"X\[1, 2\] = 7 is out of range"),
    (OneToOne, np.array([1, 5, 0]), ValueError, r"X\[1\] = 5 is out of range"),
    (ManyToMany, [np.array([1, 2]), np.array([3.0, 4.0, 1.0])], TypeError,
     r"X\[1\] must hold integer token ids for a model with vocab_size=5, got dtype float64"),
    (ManyToMany, np.zeros((2, 3)), TypeError,
     r"X must hold integer token ids .* \(float input needs a model without vocab_size\)"),
    (OneToOne, np.array([1.0, 2.0, 0.0]), TypeError, r"X must hold integer token ids"),
    (ManyToMany, np.zeros((2, 3, 3)), ValueError,
     r"X has shape \(2, 3, 3\); ManyToMany expects 2 dimensions \(N, T\) of token ids"),
    (OneToOne, np.zeros((3, 3)), ValueError, r"X has shape \(3, 3\); OneToOne expects 1 dimensions \(N,\) of token ids"),
    (ManyToMany, [np.array([1, 2]), np.array([[3, 4], [1, 1]])], ValueError,
     r"X\[1\] has shape \(2, 2\); a model with vocab_size takes each sequence as a \(T_i,\) array of token ids"),
    (ManyToMany, [np.array([1, 2]), np.array([], np.int64)], ValueError, r"X\[1\] is empty"),
])
def test_bad_token_ids_are_refused(model_cls, x, error, pattern):
    model = model_cls(3, 4, 2, vocab_size=5, seed=0)
    if model_cls is OneToOne:
        y = np.zeros(len(x), np.int64)
    else:
        y = [np.zeros(len(s), np.int64) for s in x] if isinstance(x, list) else np.zeros(np.shape(x)[:2], np.int64)
    with pytest.raises(error, match=pattern):
        model.fit(x, y, verbose=0)


# -- 6. bad input --------------------------------------------------------------------------------------

def seqs(*shapes):
    return [np.zeros(shape) for shape in shapes]


@pytest.mark.parametrize(("model", "x", "y", "error", "pattern"), [
    (lambda: ManyToOne(2, 4, 2), seqs((3, 2), (4, 2), (2, 3)), [0, 1, 0], ValueError,
     r"X\[2\] has 3 features \(shape \(2, 3\)\); every sequence needs input_size = 2"),
    (lambda: ManyToOne(2, 4, 2), seqs((3, 2), (0, 2)), [0, 1], ValueError,
     r"X\[1\] is empty \(shape \(0, 2\)\): ManyToOne needs at least one step per sequence"),
    (lambda: ManyToMany(2, 4, 2), seqs((3, 2), (1, 2), (0, 2)), [[0] * 3, [1], []], ValueError, r"X\[2\] is empty"),
    (lambda: Seq2Seq(2, 4, 2, end_token=1), seqs((3, 2), (0, 2)), [[0], [1]], ValueError, r"X\[1\] is empty"),
    (lambda: ManyToOne(2, 4, 2), [np.zeros((3, 2)), []], [0, 1], ValueError, r"X\[1\] has shape \(0,\)"),
    (lambda: ManyToOne(2, 4, 2), seqs((3, 2), (4,)), [0, 1], ValueError,
     r"X\[1\] has shape \(4,\); ManyToOne takes each sequence as a \(T_i, F\) array \(for one feature"),
    (lambda: ManyToOne(2, 4, 2), [np.zeros((3, 2)), np.full((2, 2), np.nan)], [0, 1], ValueError,
     r"X\[1\] contains NaN or Inf \(first at index \(0, 0\)\)"),
    (lambda: ManyToMany(2, 4, 2), seqs((3, 2), (4, 2), (2, 2)), [[0, 1, 0], [1, 1, 0, 1], [1, 0, 0]], ValueError,
     r"Y\[2\] has 3 steps and X\[2\] has 2; ManyToMany predicts one output per input step"),
    (lambda: ManyToMany(2, 4, 2), np.zeros((2, 4, 2)), [[0, 1, 0, 1], [1, 1, 0]], ValueError,
     r"Y\[1\] has 3 steps and X\[1\] has 4"),
    (lambda: Seq2Seq(2, 4, 3), seqs((3, 2), (4, 2)), [[0, 1], []], ValueError,
     r"Y\[1\] is empty: every target needs at least one step \(or give the model an end_token"),
    (lambda: Seq2Seq(2, 4, 3), seqs((3, 2), (4, 2)), np.zeros((2, 0), np.int64), ValueError,
     r"at least one target step is needed"),
    (lambda: OneToMany(2, 4, 3), np.zeros((2, 2)), [[0, 1], []], ValueError, r"Y\[1\] is empty"),
    (lambda: ManyToOne(2, 4, 2), seqs((3, 2), (4, 2), (1, 2)), [0, 1], ValueError,
     r"X and Y have different numbers of samples: 3 and 2"),
    (lambda: ManyToMany(2, 4, 2), seqs((3, 2), (4, 2)), [np.zeros(3, int)], ValueError,
     r"X and Y have different numbers of samples: 2 and 1"),
    (lambda: Seq2Seq(2, 4, 3, end_token=2), seqs((3, 2), (4, 2)), [[0], [1, 1], [1]], ValueError,
     r"X and Y have different numbers of samples: 2 and 3"),
    (lambda: ManyToMany(2, 4, 2), seqs((3, 2), (2, 2)), [np.zeros(3, int), np.array([0, 2])], ValueError,
     r"Y\[1\] holds labels from 0 to 2; labels must lie in \[0, output_size\) = \[0, 2\)"),
])
def test_bad_ragged_data_is_refused(model, x, y, error, pattern):
    with pytest.raises(error, match=pattern):
        model().fit(x, y, verbose=0)


def test_validation_and_predict_check_ragged_data_too():
    model = ManyToOne(2, 4, 2, seed=0)
    with pytest.raises(ValueError, match=r"X_val\[1\] has 3 features"):
        model.fit(seqs((2, 2), (3, 2)), [0, 1], verbose=0, validation_data=(seqs((2, 2), (1, 3)), [0, 1]))
    model.fit(seqs((2, 2), (3, 2)), [0, 1], verbose=0)
    with pytest.raises(ValueError, match=r"X\[0\] is empty"):
        model.predict(seqs((0, 2), (3, 2)))


@pytest.mark.parametrize(("kwargs", "error", "pattern"), [
    ({"end_token": 3}, ValueError, r"end_token = 3 is out of range; it must be a label in \[0, output_size\) = \[0, 3\)"),
    ({"end_token": -1}, ValueError, r"end_token must be >= 0, got -1"),
    ({"end_token": 1.0}, TypeError, r"end_token must be an int, got float"),
    ({"end_token": True}, TypeError, r"end_token must be an int, got bool"),
    ({"end_token": 1, "task": "regression"}, ValueError,
     r"end_token is for task='classification' .*this model has task='regression'"),
])
@pytest.mark.parametrize("model_cls", [OneToMany, Seq2Seq])
def test_bad_end_token(model_cls, kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        model_cls(2, 4, 3, **kwargs)


@pytest.mark.parametrize(("model_cls", "why"), [(OneToOne, "it runs one step"),
                                                 (OneToMany, "its decoder generates one step after the other")])
def test_bidirectional_is_refused_where_it_means_nothing(model_cls, why):
    with pytest.raises(ValueError, match=f"{model_cls.__name__} cannot be bidirectional: {why}"):
        model_cls(2, 4, 3, bidirectional=True)
    with pytest.raises(TypeError, match="bidirectional must be a bool"):
        ManyToOne(2, 4, 3, bidirectional=1)


# -- 7. save / load -------------------------------------------------------------------------------------

SAVE_CASES = {
    "ManyToOne": (lambda: ManyToOne(3, 5, 3, vocab_size=7, bidirectional=True, cell="lstm", num_layers=2,
                                    dtype=F64, seed=0), "ids", "labels"),
    "ManyToMany": (lambda: ManyToMany(3, 5, 3, vocab_size=7, bidirectional=True, cell="gru", dtype=F64, seed=0),
                   "ids", "steps"),
    "Seq2Seq-ids": (lambda: Seq2Seq(3, 5, 4, vocab_size=7, bidirectional=True, end_token=3, num_layers=2,
                                    dtype=F64, seed=0), "ids", "targets"),
    "Seq2Seq-floats": (lambda: Seq2Seq(3, 5, 4, bidirectional=True, end_token=0, cell="relu", seed=0),
                       "floats", "targets"),
    "OneToMany": (lambda: OneToMany(3, 5, 4, vocab_size=7, end_token=1, cell="lstm", dtype=F64, seed=0),
                  "classes", "targets"),
}


@pytest.mark.parametrize("case", SAVE_CASES)
def test_save_load_keeps_vocab_bidirectional_and_end_token(case, tmp_path):
    make, inputs, targets = SAVE_CASES[case]
    model = make()
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 7, 30)
    X = {"ids": ragged_ids(rng, lengths, 7), "floats": ragged_floats(rng, lengths),
         "classes": rng.integers(0, 7, 30)}[inputs]
    Y = {"labels": rng.integers(0, 3, 30), "steps": [rng.integers(0, 3, t) for t in lengths],
         "targets": [rng.integers(0, 4, k) for k in rng.integers(0, 5, 30)]}[targets]
    model.fit(X, Y, epochs=3, lr=1e-2, verbose=0)
    path = tmp_path / "model.npz"
    model.save(path)
    restored = Model.load(path)
    assert type(restored) is type(model)
    for attr in ("vocab_size", "bidirectional", "end_token", "steps", "num_layers", "cell", "dtype"):
        assert getattr(restored, attr, None) == getattr(model, attr, None), attr
    assert (restored.vocab_size is not None) == isinstance(restored.layers.get("embed"), Embedding)
    got, want = restored.predict(X), model.predict(X)
    assert type(got) is type(want)
    if isinstance(want, list):
        assert len(got) == len(want)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)
    else:
        np.testing.assert_array_equal(got, want)
    assert restored.score(X, Y) == model.score(X, Y)
    assert repr(restored) == repr(model)


# -- 8. regression on ragged targets --------------------------------------------------------------------

@pytest.mark.parametrize("outputs", [1, 2])
def test_ragged_regression_score_is_r2_over_real_steps(outputs):
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 12, 150)
    X = ragged_floats(rng, lengths, features=2)
    running = [np.tanh(np.cumsum(s[:, 0]) / 2) for s in X]  # (T_i,): the running sum so far, squashed
    Y = running if outputs == 1 else [np.stack([r, -0.5 * r], axis=1) for r in running]  # (T_i,) or (T_i, 2)
    model = ManyToMany(2, 16, outputs, task="regression", cell="gru", dtype=F64, seed=0)
    model.fit(X, Y, epochs=15, lr=1e-2, verbose=0)
    predictions = model.predict(X)
    assert isinstance(predictions, list)
    assert [p.shape for p in predictions] == [np.shape(y) for y in Y]
    truth, pred = np.concatenate(Y), np.concatenate(predictions)
    residual = np.square(truth - pred).sum()
    want = 1 - residual / np.square(truth - truth.mean(axis=0)).sum()
    score = model.score(X, Y)
    assert score == pytest.approx(want, rel=1e-12)
    assert score >= 0.8
    try:
        from sklearn.metrics import r2_score
    except ImportError:
        pass
    else:
        assert score == pytest.approx(r2_score(truth, pred, multioutput="variance_weighted"), rel=1e-12)
    # beside ragged X, padded targets: what lies in the padding is not a target
    padded = np.full((len(Y), lengths.max(), *np.shape(Y[0])[1:]), 1e3)
    for i, y in enumerate(Y):
        padded[i, :len(y)] = y
    assert model.score(X, padded) == pytest.approx(score, rel=1e-12)


def test_iterators_are_refused_and_empty_lists_predict_nothing():
    model = ManyToOne(2, 4, 2, seed=0)
    with pytest.raises(TypeError, match=r"X must be an array or a list of sequences, got generator"):
        model.fit((np.zeros((3, 2)) for _ in range(2)), [0, 1], epochs=1, verbose=0)
    with pytest.raises(ValueError, match="fit needs at least one sample"):
        model.fit([], [], epochs=1, verbose=0)
    model.fit([np.zeros((3, 2)), np.ones((2, 2))], [0, 1], epochs=1, verbose=0)
    assert list(model.predict([])) == []
    tagger = ManyToMany(2, 4, 2, seed=0)
    tagger.fit([np.zeros((3, 2)), np.ones((2, 2))], [np.zeros(3, int), np.ones(2, int)], epochs=1, verbose=0)
    assert tagger.predict([]) == []


def test_an_empty_target_with_an_end_token_trains_on_the_end_token_alone():
    model = Seq2Seq(2, 4, 3, end_token=2, seed=0)
    model.fit([np.zeros((3, 2)), np.ones((2, 2))], [[], []], epochs=1, verbose=0)
    assert model.steps == 1  # the end token alone
    assert all(len(p) <= 1 for p in model.predict([np.zeros((3, 2))]))


def test_one_long_sequence_among_short_ones_costs_its_own_length_only():
    """The data set is packed end to end, never padded as a whole (5000 x 20000 x 4 float64 would be
    3.2 GB), and predict's chunks are cut so that the long one pads no chunk of short ones."""
    rng = np.random.default_rng(3)
    X = [rng.standard_normal((2, 4)) for _ in range(5000)] + [rng.standard_normal((20000, 4))]
    y = rng.standard_normal(len(X))
    model = ManyToOne(4, 3, 1, task="regression", dtype="float64", seed=0)  # values: order errors show
    x = model._check_x(X)
    assert x.values is None and x.flat.shape == (5000 * 2 + 20000, 4)
    chunks = model._chunks(x)
    assert sorted(np.concatenate(chunks).tolist()) == list(range(len(X)))
    assert max(len(c) * int(x.lengths[c].max()) for c in chunks) <= max(
        _model.PREDICT_CHUNK * _model.PREDICT_STEPS, 20000)
    model.fit(X, y, epochs=1, batch_size=256, verbose=0)
    pred = model.predict(X)
    alone = model.predict([X[-1], X[0]])
    assert pred.shape == (len(X),)
    np.testing.assert_allclose([pred[-1], pred[0]], alone, rtol=1e-12)
    np.testing.assert_allclose(pred[:3], model.predict(X[:3]), rtol=1e-12)
