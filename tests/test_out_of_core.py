"""Out-of-core data (issue 14): fit, predict and score take a np.memmap, an h5py dataset or any
array-like with shape, dtype and NumPy indexing, and read only the rows of each batch — checked as
they arrive; under MPI each rank reads only its shares."""

import importlib.util

import numpy as np
import pytest
import rnnkit
from rnnkit import ManyToMany, ManyToOne, OneToOne
from rnnkit._model import PREDICT_CHUNK

from distributed_worker import Recording


def data(n=200, steps=9, features=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, steps, features))
    return x, (x[:, :, 0].sum(1) > 0).astype(int) + (x[:, 0, 1] > 1)


def memmap(tmp_path, array, name="x.npy"):
    np.save(tmp_path / name, array)
    return np.load(tmp_path / name, mmap_mode="r")


def same_params(a, b):
    return a.params.keys() == b.params.keys() and all(np.array_equal(a.params[k], b.params[k]) for k in a.params)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_memmap_trains_bitwise_as_the_array_in_memory(tmp_path, dtype):
    x, y = data()
    on_disk = memmap(tmp_path, x)  # float64 on disk, read into the model's dtype batch by batch
    fits = {"epochs": 2, "batch_size": 16, "verbose": 0, "validation_split": 0.2, "lr": 0.01}
    a = ManyToOne(4, 8, 3, dtype=dtype, seed=1).fit(on_disk, y, **fits)
    b = ManyToOne(4, 8, 3, dtype=dtype, seed=1).fit(x, y, **fits)
    assert same_params(a, b)
    assert a.history_["loss"] == b.history_["loss"] and a.history_["val_loss"] == b.history_["val_loss"]
    np.testing.assert_array_equal(a.predict(on_disk), b.predict(x))
    assert a.score(on_disk, y) == b.score(x, y)
    np.testing.assert_array_equal(a.predict_proba(on_disk), b.predict_proba(x))


def test_each_batch_reads_only_its_own_rows():
    x, y = data(n=203)
    source = Recording(x)
    model = ManyToOne(4, 6, 3, seed=0)
    requests = []
    original = Recording.__getitem__

    def recording(self, idx):
        before = len(self.rows)
        out = original(self, idx)
        requests.append(self.rows[before:])
        return out

    Recording.__getitem__ = recording
    try:
        model.fit(source, y, epochs=2, batch_size=16, verbose=0)
        fit_requests = list(requests)
        requests.clear()
        model.predict(source)
    finally:
        Recording.__getitem__ = original
    # fit: one read per batch, of at most batch_size distinct rows in increasing order (h5py's rule),
    # every row once per epoch
    assert len(fit_requests) == 2 * int(np.ceil(203 / 16))
    for rows in fit_requests:
        assert len(rows) <= 16 and rows == sorted(set(rows))
    read = np.concatenate(fit_requests)
    assert np.array_equal(np.bincount(read, minlength=203), np.full(203, 2))
    # predict: chunks in order, each row once
    assert all(len(rows) <= PREDICT_CHUNK for rows in requests)
    assert np.concatenate(requests).tolist() == list(range(203))


@pytest.mark.skipif(importlib.util.find_spec("h5py") is None, reason="needs h5py (pip install h5py)")
def test_an_h5py_dataset_trains_as_the_array_in_memory(tmp_path):
    import h5py

    x, y = data()
    with h5py.File(tmp_path / "data.h5", "w") as f:
        f["x"] = x.astype(np.float32)
    with h5py.File(tmp_path / "data.h5", "r") as f:
        a = ManyToOne(4, 8, 3, seed=2).fit(f["x"], y, epochs=2, batch_size=32, verbose=0)
        pred = a.predict(f["x"])
    b = ManyToOne(4, 8, 3, seed=2).fit(x.astype(np.float32), y, epochs=2, batch_size=32, verbose=0)
    assert same_params(a, b)
    np.testing.assert_array_equal(pred, b.predict(x.astype(np.float32)))


def test_two_dimensional_and_token_id_data_out_of_core(tmp_path):
    rng = np.random.default_rng(4)
    flat = rng.standard_normal((120, 5))
    labels = np.array(["b", "a", "c"])[(flat[:, 0] > 0).astype(int) + (flat[:, 1] > 0.5)]
    a = OneToOne(5, 8, 3, seed=0).fit(memmap(tmp_path, flat), labels, epochs=2, verbose=0)
    b = OneToOne(5, 8, 3, seed=0).fit(flat, labels, epochs=2, verbose=0)
    assert same_params(a, b)
    assert list(a.classes_) == ["a", "b", "c"]
    ids = rng.integers(0, 7, (90, 6))
    tags = (ids + 1) % 7
    a = ManyToMany(4, 8, 7, vocab_size=7, seed=0).fit(memmap(tmp_path, ids, "ids.npy"), tags, epochs=2, verbose=0)
    b = ManyToMany(4, 8, 7, vocab_size=7, seed=0).fit(ids, tags, epochs=2, verbose=0)
    assert same_params(a, b)


def test_bad_rows_are_refused_by_the_batch_that_reads_them_naming_the_row(tmp_path):
    x, y = data()
    x[137, 3, 2] = np.nan
    model = ManyToOne(4, 6, 3, seed=0)
    with pytest.raises(ValueError, match=r"X contains NaN or Inf \(first at index \(137, 3, 2\)"):
        model.fit(memmap(tmp_path, x), y, epochs=1, verbose=0)
    ids = np.random.default_rng(0).integers(0, 5, (40, 6))
    ids[33, 4] = 9
    model = ManyToOne(3, 6, 2, vocab_size=5, seed=0)
    with pytest.raises(ValueError, match=r"X\[33, 4\] = 9 is out of range; token ids must lie in \[0, vocab_size\)"):
        model.fit(memmap(tmp_path, ids, "ids.npy"), ids[:, 0] % 2, epochs=1, verbose=0)


def test_out_of_core_shapes_and_dtypes_are_checked_before_anything_is_read(tmp_path):
    x, y = data()
    model = ManyToOne(4, 6, 3, seed=0)
    with pytest.raises(ValueError, match=r"X has 4 features, but ManyToOne is expecting 3"):
        ManyToOne(3, 6, 3).fit(memmap(tmp_path, x), y, verbose=0)
    with pytest.raises(ValueError, match=r"X has shape \(200, 36\); ManyToOne expects 3 dimensions"):
        model.fit(memmap(tmp_path, x.reshape(200, -1), "flat.npy"), y, verbose=0)
    with pytest.raises(TypeError, match="X must contain real numbers, got an array of dtype complex128"):
        model.fit(memmap(tmp_path, x.astype(complex), "c.npy"), y, verbose=0)
    with pytest.raises(ValueError, match="different numbers of samples: 200 and 199"):
        model.fit(memmap(tmp_path, x), y[:-1], verbose=0)
    assert not model.fitted


class _Interrupt(Exception):
    pass


class _StopAt:
    def __init__(self, batch):
        self.batch, self.seen = batch, 0

    def on_batch_end(self, batch, logs):
        self.seen += 1
        if self.seen == self.batch:
            raise _Interrupt


def test_a_checkpointed_fit_on_a_memmap_resumes_exactly(tmp_path):
    x, y = data()
    on_disk = memmap(tmp_path, x)
    path = tmp_path / "run.ckpt"
    fits = {"epochs": 3, "batch_size": 16, "verbose": 0, "checkpoint": path, "checkpoint_every": 5}
    model = ManyToOne(4, 6, 3, seed=3)
    with pytest.raises(_Interrupt):
        model.fit(on_disk, y, callbacks=[_StopAt(23)], **fits)
    resumed = ManyToOne(4, 6, 3, seed=3).fit(on_disk, y, **fits)
    whole = ManyToOne(4, 6, 3, seed=3).fit(x, y, epochs=3, batch_size=16, verbose=0)
    assert same_params(resumed, whole)
    changed = x.copy()
    changed[-1, 0, 0] += 1  # other data (its last rows differ): the checkpoint is refused
    with pytest.raises(ValueError, match="its X is"):
        ManyToOne(4, 6, 3, seed=3).fit(memmap(tmp_path, changed, "changed.npy"), y, **fits)


from test_distributed import needs_mpi, relative_error, run_mpi  # noqa: E402 - the MPI runner and its skip


@needs_mpi
def test_under_mpi_each_rank_reads_only_its_shares(tmp_path):
    n, epochs = 1200, 2
    x, y = data(n=n, steps=6, features=3, seed=8)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    status, stderr, _, result = run_mpi(2, "out_of_core", tmp_path)
    assert status == 0, stderr[-3000:]
    assert result["identical"]
    keep = int(n * 0.75)
    # Rows 64 .. keep-65 are read by training only (the data's check across ranks reads the first and
    # last 64 rows of the training and the validation parts): every epoch reads each once, on one rank,
    # and each rank about half of them.
    middle = np.arange(64, keep - 64)
    counts = [np.bincount(rows, minlength=n)[middle] for rows in result["rows"]]
    np.testing.assert_array_equal(counts[0] + counts[1], np.full(middle.size, epochs))
    for count in counts:
        assert 0.4 * epochs * middle.size < count.sum() < 0.6 * epochs * middle.size
    for rows in result["rows"]:
        # Each rank: its half of the training part and of the validation part (one forward gives the
        # validation loss and score), and the checks' 4 x 64 rows — not all of it.
        share = epochs * (n / 2 + 2 * 16) + 4 * 64
        assert len(rows) <= share < 0.75 * epochs * n
    # and the single process's training, in memory
    model = ManyToOne(3, 6, 3, cell="gru", dtype="float64", seed=5)
    model.fit(x, y, epochs=epochs, batch_size=16, lr=0.02, verbose=0, validation_split=0.25)
    loaded = rnnkit.Model.load(tmp_path / "model.npz")
    for name, value in model.params.items():
        assert relative_error(loaded.params[name], value) <= 1e-10, name
    assert relative_error(result["history"]["loss"], model.history_["loss"]) <= 1e-10
