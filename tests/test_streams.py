"""Streams (layer.stream, model.stream), every per-step cell state (return_cells) and predictions
from many threads at once."""

import threading

import numpy as np
import pytest
import rnnkit
from helpers import CELLS
from rnnkit import ManyToMany, ManyToOne, Seq2Seq

TOL = {"float32": 2e-5, "float64": 1e-12}  # stream against the whole-sequence forward (relative)


def make_layer(cell, layers=2, dtype="float64", backend="cpp", inputs=5, hidden=7):
    layer = rnnkit.RNN(inputs, hidden, cell=cell, num_layers=layers, dtype=dtype, backend=backend, seed=1)
    for p in layer.params.values():  # weights large enough that the recurrence matters
        p *= 2
    layer.invalidate()
    return layer


def relative(a, b):
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cell", CELLS)
def test_any_chunking_gives_the_same_outputs_as_one_forward(cell, dtype, isa):
    layer = make_layer(cell, dtype=dtype)
    steps, batch = 11, 3
    x = np.random.default_rng(2).standard_normal((steps, batch, 5)).astype(dtype)
    want, _ = layer(x, training=False)
    stream = layer.stream(batch)
    stepped = np.stack([stream.step(np.ascontiguousarray(x[t])) for t in range(steps)])
    assert relative(stepped, want) <= TOL[dtype], (cell, dtype)
    for cuts in ([11], [1, 4, 6], [5, 5, 1]):
        stream.reset()
        pieces, start = [], 0
        for n in cuts:
            pieces.append(stream.feed(np.ascontiguousarray(x[start:start + n])))
            start += n
        np.testing.assert_array_equal(np.concatenate(pieces), stepped)  # the same path: bitwise


@pytest.mark.parametrize("cell", CELLS)
def test_numpy_backend_streams_alike(cell):
    x = np.random.default_rng(3).standard_normal((6, 2, 5))
    cpp, ref = make_layer(cell).stream(2), make_layer(cell, backend="numpy").stream(2)
    assert relative(ref.feed(x), cpp.feed(x)) <= 1e-12
    assert relative(ref.step(x[0]), cpp.step(x[0])) <= 1e-12


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_rows_are_independent_sessions_and_state_saves_and_restores(cell):
    layer = make_layer(cell)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((8, 3, 5))
    stream = layer.stream(3)
    stream.feed(x[:4])
    saved = stream.state
    stream.reset(rows=[1])
    after_reset = stream.feed(x[4:])
    fresh = layer.stream(1)  # (another batch size tiles the rows otherwise: equal to rounding)
    np.testing.assert_allclose(after_reset[:, 1], fresh.feed(np.ascontiguousarray(x[4:, 1])), rtol=1e-12, atol=1e-14)
    whole = layer.stream(3)
    np.testing.assert_array_equal(after_reset[:, [0, 2]], whole.feed(x)[4:, [0, 2]])
    stream.state = saved  # back to the sessions as they were before the reset
    np.testing.assert_array_equal(stream.feed(x[4:]), layer.stream(3).feed(x)[4:])


@pytest.mark.parametrize("backend", ["cpp", "numpy"])
def test_bad_steps_and_states_are_refused_and_change_nothing(backend):
    layer = make_layer("lstm", backend=backend)
    stream = layer.stream(2)
    x = np.random.default_rng(5).standard_normal((2, 5))
    stream.step(x)
    before = stream.state
    for bad, error, pattern in [
        (np.zeros((3, 5)), ValueError, r"x_t has shape \(3, 5\)"),
        (np.zeros((2, 4)), ValueError, r"x_t has shape \(2, 4\)"),
        (np.zeros((2, 5), np.float32), TypeError, r"x_t has dtype float32"),
        ([[0.0] * 5] * 2, TypeError, r"x_t must be a numpy array"),
    ]:
        with pytest.raises(error, match=pattern):
            stream.step(bad)
    for bad, error in [((before[0][:1], before[1]), ValueError), (before[0], TypeError),
                       ((before[0].astype(np.float32), before[1]), TypeError)]:
        with pytest.raises(error, match="state"):
            stream.state = bad
    with pytest.raises(ValueError, match=r"rows must lie in \[0, B\)"):
        stream.reset(rows=[5])
    after = stream.state
    np.testing.assert_array_equal(after[0], before[0])
    np.testing.assert_array_equal(after[1], before[1])


def test_a_bidirectional_layer_or_model_cannot_stream():
    with pytest.raises(ValueError, match="bidirectional layer cannot stream"):
        rnnkit.RNN(3, 4, bidirectional=True).stream()
    model = ManyToOne(3, 4, 2, bidirectional=True, seed=0)
    with pytest.raises(ValueError, match="bidirectional and cannot stream"):
        model.stream()
    with pytest.raises(TypeError, match="Seq2Seq has no stream"):
        Seq2Seq(3, 4, 2, seed=0).stream()


def test_model_streams_predict_what_predict_does():
    rng = np.random.default_rng(6)
    seqs = [rng.integers(0, 6, 9) for _ in range(40)]
    tags = [np.cumsum(s) % 2 for s in seqs]
    tagger = ManyToMany(4, 8, 2, cell="gru", vocab_size=6, dtype="float64", seed=0)
    tagger.fit(seqs, tags, epochs=2, verbose=0)
    ids = np.stack(seqs[:3], axis=1)  # (T, B) token ids
    stream = tagger.stream(3)
    stepped = np.stack([stream.step(ids[t]) for t in range(ids.shape[0])])
    np.testing.assert_array_equal(stepped.T, tagger.predict(np.stack(seqs[:3])))
    one = tagger.stream()
    assert [int(one.step(i)) for i in seqs[0]] == tagger.predict([seqs[0]])[0].tolist()
    with pytest.raises(ValueError, match=r"out of range"):
        one.step(np.int64(6))

    X = rng.standard_normal((20, 7, 3))
    y = (X[:, :, 0].sum(1) > 0).astype(int)
    reader = ManyToOne(3, 6, 2, cell="lstm", num_layers=2, dtype="float64", seed=0)
    reader.fit(X, y, epochs=1, verbose=0)
    stream = reader.stream(20)
    last = stream.feed(np.ascontiguousarray(X.transpose(1, 0, 2)))[-1]
    np.testing.assert_array_equal(last, reader.predict(X))


@pytest.mark.parametrize("backend", ["cpp", "numpy"])
@pytest.mark.parametrize("batch_first", [False, True])
def test_return_cells_gives_every_c_t_as_a_loop_over_steps_would(backend, batch_first):
    layer = rnnkit.RNN(4, 6, cell="lstm", num_layers=2, bidirectional=True, batch_first=batch_first,
                       dtype="float64", backend=backend, seed=2)
    rng = np.random.default_rng(7)
    steps, batch = 7, 4
    x = rng.standard_normal((batch, steps, 4) if batch_first else (steps, batch, 4))
    lengths = np.array([7, 3, 5, 1])
    y, (h_n, c_n), cells = layer(x, lengths=lengths, training=False, return_cells=True)
    y2, _ = layer(x, lengths=lengths, training=False)
    np.testing.assert_array_equal(y, y2)
    cells_tm = cells.transpose(1, 0, 2) if batch_first else cells
    assert cells_tm.shape == (steps, batch, 12)
    # the top layer's own reference: its input is the first layer's y
    first = rnnkit.RNN(4, 6, cell="lstm", bidirectional=True, batch_first=batch_first, dtype="float64",
                       backend=backend, seed=0)
    first.load_state_dict({k: v for k, v in layer.state_dict().items() if "_l0" in k})
    mid, _ = first(x, lengths=lengths)
    mid_tm = mid.transpose(1, 0, 2) if batch_first else mid
    w = layer.state_dict()
    for d, suffix in enumerate(["", "_reverse"]):
        *_, cache = rnnkit.reference.lstm_forward(
            np.ascontiguousarray(mid_tm), None, None, w[f"weight_ih_l1{suffix}"], w[f"weight_hh_l1{suffix}"],
            w[f"bias_ih_l1{suffix}"], w[f"bias_hh_l1{suffix}"], lengths=lengths, reverse=bool(d))
        np.testing.assert_allclose(cells_tm[..., d * 6:(d + 1) * 6], cache.cells, rtol=1e-12, atol=1e-14)
    # each row's last real c is c_n of the top layer (forward direction)
    np.testing.assert_allclose(cells_tm[lengths - 1, np.arange(batch), :6], c_n[2], rtol=1e-12)
    assert (cells_tm[np.arange(steps)[:, None] >= lengths[None, :]] == 0).all()
    with pytest.raises(ValueError, match="return_cells=True is for the LSTM"):
        rnnkit.RNN(4, 6, cell="gru", dtype="float64")(x, return_cells=True)


def run_in_threads(work, count):
    """work(i) in `count` threads at once; the exceptions they raised."""
    errors = []

    def guarded(i):
        try:
            work(i)
        except Exception as exc:  # noqa: BLE001 - reported by the caller
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_predictions_from_many_threads_equal_the_serial_ones():
    rng = np.random.default_rng(8)
    sets = [[rng.standard_normal((rng.integers(1, 15), 3)) for _ in range(rng.integers(1, 40))] for _ in range(16)]
    model = ManyToOne(3, 16, 3, cell="gru", num_layers=2, dtype="float64", seed=0)
    model.fit(sets[0], rng.integers(0, 3, len(sets[0])), epochs=1, verbose=0)
    tagger = ManyToMany(3, 8, 2, cell="lstm", dtype="float64", seed=0)
    tagger.fit(sets[1], [rng.integers(0, 2, len(s)) for s in sets[1]], epochs=1, verbose=0)
    want = [(model.predict(s), tagger.predict(s)) for s in sets]
    got = [None] * len(sets)

    def work(i):
        for _ in range(3):
            got[i] = (model.predict(sets[i]), tagger.predict(sets[i]))

    errors = run_in_threads(work, len(sets))
    assert not errors, errors
    for (a, b), (c, d) in zip(got, want):
        np.testing.assert_array_equal(a, c)
        assert all(np.array_equal(p, q) for p, q in zip(b, d))


def test_streams_from_many_threads_equal_the_serial_ones():
    layer = make_layer("gru", dtype="float32")
    rng = np.random.default_rng(9)
    xs = [rng.standard_normal((20, 2, 5)).astype(np.float32) for _ in range(8)]
    want = [layer.stream(2).feed(x) for x in xs]
    shared = layer.stream(2)
    got = [None] * len(xs)

    def work(i):
        mine = layer.stream(2)
        got[i] = np.stack([mine.step(np.ascontiguousarray(x_t)) for x_t in xs[i]])
        for x_t in xs[i]:
            shared.step(np.ascontiguousarray(x_t))  # one stream from every thread: serialised, never torn

    errors = run_in_threads(work, len(xs))
    assert not errors, errors
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
    assert np.isfinite(shared.state).all()


def test_fit_while_another_thread_predicts_is_refused():
    model = ManyToOne(3, 8, 2, seed=0)
    X = np.random.default_rng(10).standard_normal((64, 5, 3)).astype(np.float32)
    y = (X[:, 0, 0] > 0).astype(int)
    model.fit(X, y, epochs=1, verbose=0)
    started, release = threading.Event(), threading.Event()
    real = model._predict_batch

    def slow(*args, **kwargs):
        started.set()
        release.wait(10)
        return real(*args, **kwargs)

    model._predict_batch = slow
    thread = threading.Thread(target=model.predict, args=(X,))
    thread.start()
    try:
        assert started.wait(10)
        with pytest.raises(RuntimeError, match="predicting in another thread"):
            model.fit(X, y, epochs=1, verbose=0)
    finally:
        release.set()
        thread.join()
    model._predict_batch = real
    model.fit(X, y, epochs=1, verbose=0)  # free again


def test_concurrent_predictions_leave_numpys_blas_threads_as_they_were():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    before = [info["num_threads"] for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas"]
    model = ManyToOne(3, 8, 2, seed=0)
    X = np.random.default_rng(11).standard_normal((30, 4, 3)).astype(np.float32)
    model.fit(X, (X[:, 0, 0] > 0).astype(int), epochs=1, verbose=0)
    assert not run_in_threads(lambda i: [model.predict(X) for _ in range(20)], 6)
    after = [info["num_threads"] for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas"]
    assert after == before
