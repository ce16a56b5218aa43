"""Streams (layer.stream, model.stream), every per-step cell state (return_cells) and predictions
from many threads at once."""

import threading

import numpy as np
import pytest
import rnnkit
from helpers import CELLS
from rnnkit import ManyToMany, ManyToOne, OneToMany, OneToOne, Seq2Seq, _core

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


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cell", CELLS)
def test_a_step_on_two_or_three_threads_gives_bitwise_the_one_threads_outputs(cell, dtype, isa, threads):
    """A large step takes helpers, each a share of every layer's units (threads() splits even these
    small ones): the outputs and states do not depend on how many took part."""
    for inputs, hidden, batch in ((5, 7, 3), (9, 40, 1), (4, 33, 8)):
        layer = make_layer(cell, layers=3, dtype=dtype, inputs=inputs, hidden=hidden)
        x = np.random.default_rng(hidden).standard_normal((6, batch, inputs)).astype(dtype)
        runs = []
        for n in (1, 2, 3):
            threads(n)
            stream = layer.stream(batch)
            runs.append((np.stack([stream.step(np.ascontiguousarray(x[t])) for t in range(6)]), stream.state))
        for got, state in runs[1:]:
            np.testing.assert_array_equal(got, runs[0][0])
            for a, b in zip(state if cell == "lstm" else [state], runs[0][1] if cell == "lstm" else [runs[0][1]]):
                np.testing.assert_array_equal(a, b)
        want, _ = layer(x, training=False)
        assert relative(runs[0][0], want) <= TOL[dtype]


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
    with pytest.raises(ValueError, match="bidirectional and cannot stream"):
        Seq2Seq(3, 4, 2, bidirectional=True, seed=0).stream()
    with pytest.raises(TypeError, match="OneToOne has no stream"):
        OneToOne(3, 4, 2, seed=0).stream()


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


# -- generation streams (OneToMany, Seq2Seq) ----------------------------------------------------------

def reversing_seq2seq(cell, rng, **options):
    """A Seq2Seq trained briefly to reverse token sequences (end token 6): it writes sequences of
    several lengths."""
    src = [rng.integers(0, 6, rng.integers(2, 7)) for _ in range(60)]
    model = Seq2Seq(4, 12, 7, cell=cell, num_layers=2, vocab_size=6, end_token=6, dtype="float64", seed=0, **options)
    model.fit(src, [s[::-1] for s in src], epochs=20, lr=1e-2, verbose=0)
    return model, src


@pytest.mark.parametrize("cell", CELLS)
def test_a_seq2seq_stream_generates_what_predict_does(cell):
    rng = np.random.default_rng(11)
    model, src = reversing_seq2seq(cell, rng)
    want = model.predict(src[:12])
    assert len({len(w) for w in want}) >= 2  # (sequences of their own lengths)
    one = model.stream()
    for i in range(6):  # batch 1: the source fed whole, or step by step
        one.reset()
        if i % 2:
            one.feed(src[i])
        else:
            for token in src[i]:
                one.step(np.int64(token))
        one.start()
        got = one.generate()
        assert len(got) == 1
        np.testing.assert_array_equal(got[0], want[i])
    # three sessions that start at different times: rows 0 and 2 read their sources, then row 1
    stream = model.stream(3)
    stream.feed(np.stack([src[0][:2], src[1][:2], src[2][:2]], axis=1))
    stream.reset(rows=[1])
    for token in src[1]:
        stream.step(np.array([0, token, 0]))  # rows 0 and 2 read extra steps: they restart below
    stream.start(rows=[1])
    stream.reset(rows=[0, 2])  # (row 1's encoder reads on; its decoder has started already)
    stream.feed(np.stack([src[3][:2], np.zeros(2, np.int64), src[4][:2]], axis=1))
    steps = [stream.next() for _ in range(len(want[1]) + 1)]
    assert [int(s[1]) for s in steps] == [*want[1].tolist(), 6]  # the end token ends row 1
    assert all(s[0] == -1 and s[2] == -1 for s in steps)  # rows not started generate nothing
    assert stream.next()[1] == -1
    assert not stream.state["going"].any()


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_a_one_to_many_stream_generates_what_predict_does(cell):
    rng = np.random.default_rng(12)
    X = rng.standard_normal((30, 5))
    model = OneToMany(5, 8, 6, cell=cell, num_layers=2, end_token=0, dtype="float64", seed=0)
    model.fit(X, [rng.integers(1, 6, rng.integers(1, 5)) for _ in range(30)], epochs=15, lr=1e-2, verbose=0)
    stream = model.stream(4)
    stream.start(X[:4])
    got, want = stream.generate(), model.predict(X[:4])
    assert all(np.array_equal(g, w) for g, w in zip(got, want))
    assert all(g.size == 0 for g in stream.generate())  # every row has ended
    stream.start(X[4:5], rows=[2])  # one session restarts; next() gives its sequence token by token
    tokens = []
    while (t := int(stream.next()[2])) not in (0, -1):
        tokens.append(t)
    assert tokens == model.predict(X[4:5])[0].tolist()
    with pytest.raises(TypeError, match="no source"):
        stream.step(X[:4])
    with pytest.raises(TypeError, match="starts from an input"):
        stream.start()
    with pytest.raises(ValueError, match=r"x has shape \(4, 5\); expected \(1, 5\)"):
        stream.start(X[:4], rows=[0])

    values = OneToMany(3, 6, 2, cell=cell, task="regression", dtype="float64", seed=1)
    values.fit(rng.standard_normal((4, 3)), rng.standard_normal((4, 3, 2)), epochs=1, verbose=0)
    X = rng.standard_normal((2, 3))
    stream = values.stream(2)
    stream.start(X)
    np.testing.assert_allclose(stream.generate(5), values.predict(X, max_steps=5), rtol=0, atol=1e-12)
    stream.reset(rows=[1])
    assert np.isnan(stream.next()[1]).all()
    assert np.isfinite(stream.state["input"][0]).all()


def test_a_generation_streams_state_saves_and_restores_a_session_and_bad_input_changes_nothing():
    rng = np.random.default_rng(13)
    model, src = reversing_seq2seq("gru", rng)
    stream = model.stream(2)
    stream.feed(np.stack([src[0][:2], src[1][:2]], axis=1))
    stream.start()
    first = stream.next()
    saved = stream.state
    rest = stream.generate(4)
    stream.state = saved  # back to just after the first token: the same continuation
    assert all(np.array_equal(a, b) for a, b in zip(stream.generate(4), rest))
    assert first.shape == (2,)
    before = stream.state
    bad = [({"decoder": saved["decoder"]}, TypeError, "keys"),
           ({**saved, "input": saved["input"][:1]}, ValueError, "input"),
           ({**saved, "going": saved["going"].astype(int)}, TypeError, "going"),
           ({**saved, "encoder": saved["encoder"][:1]}, ValueError, "state"),
           ({**saved, "decoder": saved["decoder"].astype(np.float32)}, TypeError, "float64")]
    for value, error, match in bad:
        with pytest.raises(error, match=match):
            stream.state = value
        after = stream.state
        for key in before:
            np.testing.assert_array_equal(after[key], before[key], err_msg=key)
    with pytest.raises(ValueError, match=r"x_t\[1\] = 9 is out of range"):
        stream.step(np.array([1, 9]))
    with pytest.raises(TypeError, match="integer token ids"):
        stream.feed(np.zeros((3, 2)))
    with pytest.raises(TypeError, match="without x"):
        stream.start(np.zeros(2, np.int64))
    with pytest.raises(ValueError, match="rows holds 5"):
        stream.start(rows=[5])
    with pytest.raises(ValueError, match="max_steps"):
        stream.generate(-1)
    with pytest.raises(ValueError, match="backend"):
        Seq2Seq(3, 4, 2, backend="numpy", seed=0).stream()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_c_generation_loop_equals_steps_through_the_head(dtype):
    """_core.Stream.generate against a Python loop of step (through the same head), argmax and
    one-hot feedback: bitwise, end token and NaN included."""
    layer = make_layer("lstm", dtype=dtype, inputs=5, hidden=7)
    rng = np.random.default_rng(14)
    w, b = rng.standard_normal((5, 7)).astype(dtype), rng.standard_normal(5).astype(dtype)
    plans = [layer._cell.plan(*layer._weights(i, 0)) for i in range(layer.num_layers)]
    state = rng.standard_normal((2, 3, 7)).astype(dtype), rng.standard_normal((2, 3, 7)).astype(dtype)
    fast = _core.Stream(plans, 3, w, b)
    fast.state = state
    got = fast.generate(12, True, 2)
    slow = _core.Stream(plans, 3, w, b)
    slow.state = state
    x, going, want = np.zeros((3, 5), dtype), np.ones(3, bool), []
    for _ in range(12):
        labels = np.where(going, slow.step(x).argmax(axis=1), -1)
        want.append(labels)
        x = np.zeros((3, 5), dtype)
        x[going, labels[going]] = 1
        going &= labels != 2
    np.testing.assert_array_equal(got, np.stack(want))
    values = _core.Stream(plans, 3, w, b)
    values.state = state
    out, x, check = values.generate(4, False), np.zeros((3, 5), dtype), _core.Stream(plans, 3, w, b)
    check.state = state
    for t in range(4):
        x = check.step(x)
        np.testing.assert_array_equal(out[t], x)
    nan = _core.Stream(plans, 1, np.full((5, 7), np.nan, dtype), b)
    assert nan.generate(2, True).tolist() == [[0], [0]]  # numpy's argmax: the first NaN
    with pytest.raises(ValueError, match="needs a stream with a head"):
        _core.Stream(plans, 3).generate(2, True)
    with pytest.raises(ValueError, match="end_token = 5 is not a label"):
        fast.generate(2, True, 5)
    with pytest.raises(ValueError, match=r"first_input must have shape \(3, 5\)"):
        fast.generate(2, True, -1, np.zeros((2, 5), dtype))
    with pytest.raises(ValueError, match="input size"):
        _core.Stream(plans, 3, np.zeros((4, 7), dtype), np.zeros(4, dtype)).generate(1, True)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_stream_with_an_embedding_and_labels_equals_the_lookup_head_and_argmax(dtype):
    layer = make_layer("gru", dtype=dtype, inputs=5, hidden=7)
    rng = np.random.default_rng(15)
    table = rng.standard_normal((9, 5)).astype(dtype)
    w, b = rng.standard_normal((4, 7)).astype(dtype), rng.standard_normal(4).astype(dtype)
    plans = [layer._cell.plan(*layer._weights(i, 0)) for i in range(layer.num_layers)]
    ids = rng.integers(0, 9, (6, 3))
    fused = _core.Stream(plans, 3, w, b, True, table)
    plain = _core.Stream(plans, 3, w, b)
    want = plain.feed(np.ascontiguousarray(table[ids])).argmax(axis=-1)
    np.testing.assert_array_equal(np.stack([fused.step(ids[t]) for t in range(3)]), want[:3])
    np.testing.assert_array_equal(fused.feed(ids[3:].astype(np.int32)), want[3:])  # any integer dtype
    one = _core.Stream(plans, 1, w, b, True, table)
    assert one.step(3).shape == ()
    assert one.feed([1, 2]).shape == (2,)
    with pytest.raises(ValueError, match=r"^x_t = 9 is out of range"):
        one.step(np.int64(9))
    before = fused.state
    for bad, error, match in [(np.zeros(3), TypeError, "integer token ids"),
                              (np.zeros((3, 2), np.int64), ValueError, r"expected \(B,\) token ids with B = 3"),
                              (np.array([0, 9, 1]), ValueError, r"x_t\[1\] = 9 is out of range"),
                              (np.array([0, -1, 1]), ValueError, r"x_t\[1\] = -1 is out of range")]:
        with pytest.raises(error, match=match):
            fused.step(bad)
    with pytest.raises(ValueError, match=r"x_chunk\[1, 2\] = 12 is out of range; token ids must lie in \[0, vocab_size\) = \[0, 9\)"):
        fused.feed(np.array([[0, 1, 2], [3, 4, 12]]))
    after = fused.state
    np.testing.assert_array_equal(after, before)  # a refused call changes nothing
    with pytest.raises(ValueError, match="labels=True needs a head"):
        _core.Stream(plans, 3, None, None, True)
    with pytest.raises(ValueError, match=r"embedding must have shape \(9, 5\), got \(9, 4\)"):
        _core.Stream(plans, 3, w, b, False, table[:, :4])


def test_many_threads_with_random_models_shapes_and_calls_get_their_serial_results():
    """A hostile mix: 12 threads at once, each calling predict, score and streams of randomly chosen
    models (every topology and cell, both dtypes) on inputs of random shapes and lengths, many of the
    calls on the same model objects; every result equals the same call run alone."""
    rng = np.random.default_rng(16)
    models = []
    for i in range(6):
        cell, dtype = CELLS[i % 3], ("float32", "float64")[i % 2]
        seqs = [rng.standard_normal((rng.integers(1, 9), 3)).astype(dtype) for _ in range(12)]
        a = ManyToOne(3, int(rng.integers(2, 9)), 3, cell=cell, num_layers=1 + i % 2, dtype=dtype, seed=i)
        a.fit(seqs, rng.integers(0, 3, 12), epochs=1, verbose=0)
        b = ManyToMany(3, int(rng.integers(2, 9)), 2, cell=cell, dtype=dtype, seed=i)
        b.fit(seqs, [rng.integers(0, 2, len(s)) for s in seqs], epochs=1, verbose=0)
        c = Seq2Seq(3, int(rng.integers(2, 9)), 4, cell=cell, end_token=3, dtype=dtype, seed=i)
        c.fit(seqs, [rng.integers(0, 4, rng.integers(1, 5)) for _ in seqs], epochs=1, verbose=0)
        models += [a, b, c]

    def make_call(seed):
        r = np.random.default_rng(seed)
        model = models[r.integers(len(models))]
        n = int(r.integers(1, 20))
        X = [r.standard_normal((r.integers(1, 12), 3)).astype(model.dtype) for _ in range(n)]
        kind = ("predict", "score", "stream")[r.integers(3)] if not isinstance(model, Seq2Seq) else \
            ("predict", "stream")[r.integers(2)]
        if kind == "predict":
            return lambda: model.predict(X)
        if kind == "score":
            y = r.integers(0, 3, n) if isinstance(model, ManyToOne) else [r.integers(0, 2, len(x)) for x in X]
            return lambda: model.score(X, y)
        if isinstance(model, Seq2Seq):
            def generate():
                stream = model.stream(1)
                stream.feed(np.ascontiguousarray(X[0]))
                stream.start()
                return stream.generate(6)
            return generate
        chunk = np.ascontiguousarray(np.stack([x[:1] for x in X], axis=1)[0][None].repeat(int(r.integers(1, 5)), 0))
        return lambda: model.stream(n).feed(chunk)

    calls = [make_call(s) for s in range(96)]
    want = [call() for call in calls]
    got = [None] * len(calls)

    def work(i):
        for k in range(i, len(calls), 12):
            got[k] = calls[k]()

    errors = run_in_threads(work, 12)
    assert not errors, errors

    def same(a, b):
        if isinstance(a, list):
            return len(a) == len(b) and all(same(p, q) for p, q in zip(a, b))
        return np.array_equal(np.asarray(a), np.asarray(b))

    for k, (a, b) in enumerate(zip(got, want)):
        assert same(a, b), f"call {k}"
