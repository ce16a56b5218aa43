"""fit(..., checkpoint=PATH): exact resume.  A fit killed at any moment (SIGKILL, in a subprocess) and
started again until it completes ends with the weights of an uninterrupted fit, bitwise; a checkpoint
of another model or fit is refused; a crash while writing leaves the previous checkpoint."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import rnnkit
from rnnkit import ManyToMany, ManyToOne, _model
from rnnkit.optim import SGD, Adam, ReduceLROnPlateau, StepLR

from test_distributed import needs_mpi, run_mpi

SCRIPT = textwrap.dedent("""
    import sys, time
    import numpy as np
    from rnnkit import ManyToOne

    dtype, checkpoint, out, pause = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    rng = np.random.default_rng(0)
    X = rng.standard_normal((96, 7, 4)).astype(dtype)
    Y = rng.integers(0, 3, 96)

    class Slow:  # makes each batch last long enough for a kill to land mid-training; changes nothing else
        def on_batch_end(self, batch, logs):
            time.sleep(pause)

    model = ManyToOne(4, 12, 3, cell="gru", num_layers=2, dropout=0.3, dtype=dtype, seed=3)
    model.fit(X, Y, epochs=4, batch_size=8, verbose=0, callbacks=[Slow()],
              checkpoint=None if checkpoint == "-" else checkpoint, checkpoint_every=1 if checkpoint != "-" else None)
    np.savez(out, loss=np.array(model.history_["loss"]), **model.params)
""")


def _run(script, *args, timeout=120):
    return subprocess.run([sys.executable, str(script), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, check=True)


def _mtime(path):
    try:
        return os.stat(path).st_mtime_ns
    except FileNotFoundError:
        return None


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_killed_and_restarted_fit_ends_bitwise_as_an_uninterrupted_one(tmp_path, dtype):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    _run(script, dtype, "-", tmp_path / "reference.npz", 0)
    checkpoint, out = tmp_path / "run.ckpt", tmp_path / "resumed.npz"
    rng = np.random.default_rng(int.from_bytes(dtype.encode(), "little") % 2**32)
    kills, starts = 0, 0
    while True:
        starts += 1
        assert starts <= 40, "the fit did not complete after 40 starts"
        before = _mtime(checkpoint)
        process = subprocess.Popen([sys.executable, str(script), dtype, str(checkpoint), str(out), "0.004"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        killed = False
        if kills < 4:
            deadline = time.monotonic() + 60
            while process.poll() is None and _mtime(checkpoint) == before and time.monotonic() < deadline:
                time.sleep(0.002)  # wait for progress: a checkpoint written by this start
            time.sleep(float(rng.uniform(0, 0.15)))  # then kill at a random moment (mid-write too)
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                killed = True
        _, err = process.communicate(timeout=120)
        if killed and process.returncode == -signal.SIGKILL:
            kills += 1
            continue
        assert process.returncode == 0, err.decode()
        break
    assert kills >= 2, f"only {kills} kills landed mid-training"
    with np.load(tmp_path / "reference.npz") as want, np.load(out) as got:
        assert sorted(want.files) == sorted(got.files)
        for name in want.files:
            assert got[name].dtype == want[name].dtype
            assert np.array_equal(got[name], want[name]), f"{name} differs after {kills} kills"
    # the finished checkpoint stays; a rerun only loads it
    assert checkpoint.exists()
    stamp = _mtime(checkpoint)
    _run(script, dtype, checkpoint, tmp_path / "again.npz", 0)
    assert _mtime(checkpoint) == stamp
    with np.load(tmp_path / "reference.npz") as want, np.load(tmp_path / "again.npz") as got:
        for name in want.files:
            assert np.array_equal(got[name], want[name])


def _data(n=30, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 5, 3)), rng.integers(0, 3, n)


def _model_(**kw):
    return ManyToOne(3, 6, 3, cell="lstm", dropout=0.2, num_layers=2, dtype="float64", seed=2, **kw)


class _Interrupt(Exception):
    pass


class _StopAfter:
    """Raises after ``n`` batches (an interruption in the middle of fit)."""

    def __init__(self, n):
        self.n = n

    def on_batch_end(self, batch, logs):
        self.n -= 1
        if self.n == 0:
            raise _Interrupt


def _same(a, b):
    assert sorted(a.params) == sorted(b.params)
    for name in a.params:
        assert np.array_equal(a.params[name], b.params[name]), name


@pytest.mark.parametrize("make_opt", [lambda: "adam", lambda: SGD(lr=0.05, momentum=0.9, nesterov=True),
                                      lambda: Adam(lr=3e-3, weight_decay=0.01)])
@pytest.mark.parametrize("every", [None, 1, 3])
def test_in_process_interruptions_resume_exactly(tmp_path, make_opt, every):
    X, Y = _data()
    Xv, Yv = _data(10, seed=1)
    options = {"epochs": 5, "batch_size": 4, "verbose": 0, "validation_data": (Xv, Yv),
               "schedule": ReduceLROnPlateau(patience=0, factor=0.5, min_delta=10.0)}
    reference = _model_().fit(X, Y, optimizer=make_opt(), **options)
    path = tmp_path / "c.ckpt"
    for n in (3, 9, 1, 13, 2):
        model = _model_()
        with pytest.raises(_Interrupt):
            model.fit(X, Y, optimizer=make_opt(), callbacks=[_StopAfter(n)], checkpoint=path,
                      checkpoint_every=every, **{**options, "schedule": ReduceLROnPlateau(patience=0, factor=0.5,
                                                                                          min_delta=10.0)})
    model = _model_().fit(X, Y, optimizer=make_opt(), checkpoint=path, checkpoint_every=every,
                          **{**options, "schedule": ReduceLROnPlateau(patience=0, factor=0.5, min_delta=10.0)})
    _same(model, reference)
    assert model.history_["loss"] == reference.history_["loss"]
    assert model.history_["val_loss"] == reference.history_["val_loss"]
    assert model.history_["lr"] == reference.history_["lr"]
    assert model.optimizer_.lr == reference.optimizer_.lr
    assert len(set(model.history_["lr"])) > 1  # the plateau schedule did act


def test_finished_checkpoint_is_kept_and_a_rerun_only_loads_it(tmp_path):
    X, Y = _data()
    path = tmp_path / "c.ckpt"
    first = _model_().fit(X, Y, epochs=3, batch_size=8, verbose=0, checkpoint=path, schedule=StepLR(1, 0.5))
    stamp = _mtime(path)
    calls = []

    class Spy:
        def on_epoch_begin(self, epoch, logs):
            calls.append(epoch)

    again = _model_().fit(X, Y, epochs=3, batch_size=8, verbose=0, checkpoint=path, schedule=StepLR(1, 0.5),
                          callbacks=[Spy()])
    assert calls == []
    assert _mtime(path) == stamp
    _same(again, first)
    assert again.history_["loss"] == first.history_["loss"]
    assert again.fitted
    assert again.optimizer_.steps == first.optimizer_.steps
    assert again.optimizer_.lr == first.optimizer_.lr
    np.testing.assert_array_equal(again.predict(X), first.predict(X))
    # the same model, fit again with the same path: nothing more either
    first.fit(X, Y, epochs=3, batch_size=8, verbose=0, checkpoint=path, schedule=StepLR(1, 0.5))
    _same(again, first)


@pytest.mark.parametrize(("change", "what"), [
    ({"model": {"hidden_size": 7}}, "model"),
    ({"model": {"seed": 5}}, "model"),
    ({"fit": {"epochs": 4}}, "epochs"),
    ({"fit": {"batch_size": 5}}, "batch_size"),
    ({"fit": {"lr": 0.01}}, "optimizer"),
    ({"fit": {"optimizer": "sgd"}}, "optimizer"),
    ({"fit": {"shuffle": False}}, "shuffle"),
    ({"fit": {"clip": 1.0}}, "clip"),
    ({"fit": {"schedule": StepLR(2)}}, "schedule"),
    ({"data": 1}, "X"),
])
def test_a_checkpoint_of_another_model_or_fit_is_refused(tmp_path, change, what):
    X, Y = _data()
    path = tmp_path / "c.ckpt"
    model_kw = {"hidden_size": 6, "seed": 2}
    base = {"epochs": 3, "batch_size": 4, "verbose": 0}
    ManyToOne(3, model_kw["hidden_size"], 3, dtype="float64", seed=2).fit(X, Y, checkpoint=path, **base)
    model_kw.update(change.get("model", {}))
    if "data" in change:
        X = X.copy()
        X[0, 0, 0] += 1
    other = ManyToOne(3, model_kw["hidden_size"], 3, dtype="float64", seed=model_kw["seed"])
    with pytest.raises(ValueError, match=f"its {what} is"):
        other.fit(X, Y, checkpoint=path, **{**base, **change.get("fit", {})})


def test_another_topology_or_a_file_that_is_no_checkpoint_is_refused(tmp_path):
    X, Y = _data()
    path = tmp_path / "c.ckpt"
    _model_().fit(X, Y, epochs=1, verbose=0, checkpoint=path)
    with pytest.raises(ValueError, match="its model is"):
        ManyToMany(3, 6, 3, dtype="float64", seed=2).fit(X, np.tile(Y[:, None], (1, 5)), epochs=1, verbose=0,
                                                         checkpoint=path)
    saved = tmp_path / "model.npz"
    _model_().fit(X, Y, epochs=1, verbose=0).save(saved)
    with pytest.raises(ValueError, match="not an rnnkit checkpoint"):
        _model_().fit(X, Y, epochs=1, verbose=0, checkpoint=saved)
    junk = tmp_path / "junk"
    junk.write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(ValueError, match="not a readable rnnkit checkpoint"):
        _model_().fit(X, Y, epochs=1, verbose=0, checkpoint=junk)


def test_a_crash_while_writing_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    X, Y = _data()
    path = tmp_path / "c.ckpt"
    options = {"epochs": 4, "batch_size": 6, "verbose": 0, "checkpoint": path, "checkpoint_every": 2}
    reference = _model_().fit(X, Y, epochs=4, batch_size=6, verbose=0)
    real = _model._write_checkpoint
    writes = []

    def failing(file, text, arrays):
        writes.append(json.loads(text)["position"])
        if len(writes) == 4:  # the fourth write: half a file, then the crash
            file.write(b"PK\x03\x04" + b"\0" * 100)
            raise OSError("disk full (simulated)")
        real(file, text, arrays)

    monkeypatch.setattr(_model, "_write_checkpoint", failing)
    with pytest.raises(OSError, match="simulated"):
        _model_().fit(X, Y, **options)
    monkeypatch.setattr(_model, "_write_checkpoint", real)
    assert [p.name for p in tmp_path.iterdir()] == ["c.ckpt"]  # no temporary file left behind
    with np.load(path) as data:  # the third write, whole
        assert json.loads(str(data["checkpoint"]))["position"] == writes[2]
    model = _model_().fit(X, Y, **options)
    _same(model, reference)
    assert model.history_["loss"] == reference.history_["loss"]


def test_float32_mid_epoch_resume_and_defaults_unchanged(tmp_path):
    X, Y = _data()
    X = X.astype(np.float32)
    make = lambda: ManyToOne(3, 5, 3, cell="gru", dropout=0.25, dtype="float32", seed=4)
    reference = make().fit(X, Y, epochs=3, batch_size=4, verbose=0)
    with_file = make().fit(X, Y, epochs=3, batch_size=4, verbose=0, checkpoint=tmp_path / "a", checkpoint_every=1)
    _same(with_file, reference)
    assert with_file.history_["loss"] == reference.history_["loss"]
    path = tmp_path / "b"
    with pytest.raises(_Interrupt):
        make().fit(X, Y, epochs=3, batch_size=4, verbose=0, checkpoint=path, checkpoint_every=5,
                   callbacks=[_StopAfter(14)])
    with np.load(path) as data:
        position = json.loads(str(data["checkpoint"]))["position"]
        assert (position["epoch"], position["batch"]) == (1, 5)  # 8 batches an epoch: written after batch 5 of epoch 2
        assert "order" in data.files
    resumed = make().fit(X, Y, epochs=3, batch_size=4, verbose=0, checkpoint=path, checkpoint_every=5)
    _same(resumed, reference)


def test_checkpoint_arguments_are_checked(tmp_path):
    X, Y = _data()
    with pytest.raises(ValueError, match="checkpoint_every needs checkpoint"):
        _model_().fit(X, Y, epochs=1, verbose=0, checkpoint_every=2)
    with pytest.raises(ValueError, match="checkpoint_every"):
        _model_().fit(X, Y, epochs=1, verbose=0, checkpoint=tmp_path / "c", checkpoint_every=0)
    with pytest.raises(TypeError, match="checkpoint must be a path"):
        _model_().fit(X, Y, epochs=1, verbose=0, checkpoint=3)


def test_optimizer_state_dict_round_trip():
    rng = np.random.default_rng(0)
    for make in (lambda p: Adam(p, lr=1e-2), lambda p: SGD(p, lr=0.1, momentum=0.5)):
        a = {"w": rng.standard_normal((3, 2))}
        b = {"w": a["w"].copy()}
        first, second = make(a), make(b)
        grads = [{"w": rng.standard_normal((3, 2))} for _ in range(4)]
        for g in grads[:2]:
            first.step({"w": g["w"].copy()})
            second.step({"w": g["w"].copy()})
        state = json.loads(json.dumps({k: v for k, v in first.state_dict().items() if k != "arrays"}))
        state["arrays"] = first.state_dict()["arrays"]
        third = make({"w": a["w"].copy()})
        third.load_state_dict(state)
        for g in grads[2:]:
            first.step({"w": g["w"].copy()})
            third.step({"w": g["w"].copy()})
        assert np.array_equal(first.params["w"], third.params["w"])
    with pytest.raises(ValueError, match="not a SGD"):
        SGD({}, lr=0.1).load_state_dict(Adam({}).state_dict())
    with pytest.raises(ValueError, match="momentum"):
        SGD({}, lr=0.1, momentum=0.5).load_state_dict(SGD({}, lr=0.1, momentum=0.9).state_dict())


@needs_mpi
def test_under_mpi_rank_0_writes_and_every_rank_resumes_exactly_after_a_kill(tmp_path):
    """Two ranks; the writer (rank 0) SIGKILLed mid-epoch, so mpiexec ends both; the same fit again
    resumes from rank 0's file on both ranks and ends bitwise where an uninterrupted run ends."""
    killed, resumed, whole = tmp_path / "killed", tmp_path / "resumed", tmp_path / "whole"
    for folder in (killed, whole):
        folder.mkdir()
    status, stderr, _, _ = run_mpi(2, "checkpoint", killed, {**os.environ, "RNNKIT_TEST_KILL_AT": "7"})
    assert status != 0, "the kill did not end the job"
    assert (killed / "run.ckpt").exists(), stderr[-2000:]
    assert not list(killed.glob("*.tmp*")), "a temporary file was left"
    resumed.mkdir()
    os.replace(killed / "run.ckpt", resumed / "run.ckpt")
    status, stderr, _, got = run_mpi(2, "checkpoint", resumed, dict(os.environ))
    assert status == 0, stderr[-3000:]
    status, stderr, _, want = run_mpi(2, "checkpoint", whole, dict(os.environ))
    assert status == 0, stderr[-3000:]
    assert got["outcomes"] == [["ok", ""]] * 2 and got["identical"]
    assert got["loss"] == want["loss"] and got["wait"] == want["wait"]
    a, b = rnnkit.Model.load(resumed / "model.npz"), rnnkit.Model.load(whole / "model.npz")
    _same(a, b)
    # another model: rank 0 refuses the file, and every rank raises it (no MPI_Abort)
    status, stderr, _, other = run_mpi(2, "checkpoint", whole, {**os.environ, "RNNKIT_TEST_HIDDEN": "7"})
    assert status == 0, stderr[-3000:]
    assert [kind for kind, _ in other["outcomes"]] == ["ValueError"] * 2
    assert all("written by another model" in message for _, message in other["outcomes"]), other


def test_rnnkit_version_is_recorded(tmp_path):
    X, Y = _data()
    _model_().fit(X, Y, epochs=1, verbose=0, checkpoint=tmp_path / "c")
    with np.load(tmp_path / "c") as data:
        config = json.loads(str(data["checkpoint"]))
    assert config["format"] == "rnnkit.checkpoint/1"
    assert config["rnnkit_version"] == rnnkit.__version__
    assert set(config["random"]) == {"model._rng", "model._dropout_rng", "rnn._dropout_rng"}


def test_early_stopping_keeps_its_count_and_best_weights_across_a_resume(tmp_path):
    """EarlyStopping's best, wait and best weights are in the checkpoint: the resumed fit stops at the
    epoch the uninterrupted one stops at, and restores the same best weights.  (Without its state
    the resumed callback would start afresh and train on to the last epoch.)"""
    from rnnkit.callbacks import EarlyStopping, ModelCheckpoint

    X, Y = _data()
    Xv, Yv = _data(10, seed=1)
    # min_delta so large that only the first epoch improves: fit stops at epoch 3 (0-based), wait=3
    stopper = lambda: EarlyStopping(monitor="val_loss", patience=3, min_delta=10.0, restore_best_weights=True)  # noqa: E731
    options = {"epochs": 8, "batch_size": 4, "verbose": 0, "validation_data": (Xv, Yv)}
    reference = _model_().fit(X, Y, callbacks=[stopper()], **options)
    assert len(reference.history_["loss"]) == 4
    path = tmp_path / "c.ckpt"
    with pytest.raises(_Interrupt):  # in epoch 2 of 8 batches: after two epochs' ends
        _model_().fit(X, Y, callbacks=[stopper(), _StopAfter(2 * 8 + 3)], checkpoint=path, checkpoint_every=2,
                      **options)
    resumed_stopper = stopper()
    model = _model_().fit(X, Y, callbacks=[resumed_stopper], checkpoint=path, **options)
    assert model.history_["loss"] == reference.history_["loss"]
    assert resumed_stopper.stopped_epoch == 3 and resumed_stopper.best_epoch == 0
    _same(model, reference)
    # ModelCheckpoint's best, too
    saver = ModelCheckpoint(tmp_path / "best.npz", monitor="val_loss", save_best_only=True)
    saver.best = 0.25
    restored = ModelCheckpoint(tmp_path / "best.npz", monitor="val_loss", save_best_only=True)
    restored.load_state_dict(json.loads(json.dumps(saver.state_dict())))
    assert restored.best == 0.25
