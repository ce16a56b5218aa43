"""fit's learning-rate schedules, callbacks, validation_split, shuffle and weights (class_weight,
sample_weight): the lr sequences are the formulas and the optimizer steps with them; the hooks come in
Keras' order; the weighted loss is Σ w·loss / Σ w; rnnkit.distributed trains to the same results."""

import math
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from rnnkit import ManyToMany, ManyToOne, Model
from rnnkit._data import batch_order
from rnnkit._model import _IN_ORDER
from rnnkit.callbacks import Callback, EarlyStopping, ModelCheckpoint
from rnnkit.optim import SGD, CosineLR, ReduceLROnPlateau, StepLR


def classification_data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 4, 3))
    return x, (x[:, 0, 0] + x[:, 1, 1] > 0).astype(int)


def model(cls=ManyToOne, **options):
    return cls(3, 5, 2, seed=0, dtype="float64", **options)


class Recorder(Callback):
    """Every hook call, with a copy of its logs; optionally scripted values put into the epoch logs
    (for the callbacks after it) and the parameters kept at each epoch's end."""

    def __init__(self, script=None):
        self.calls, self.script, self.params = [], script, []

    def on_train_begin(self, logs=None):
        self.calls.append(("train_begin", dict(logs)))

    def on_epoch_begin(self, epoch, logs=None):
        self.calls.append(("epoch_begin", epoch, dict(logs)))

    def on_batch_end(self, batch, logs=None):
        self.calls.append(("batch_end", batch, dict(logs)))

    def on_epoch_end(self, epoch, logs=None):
        if self.script is not None:
            logs["val_loss"] = self.script[epoch]
        self.params.append({k: a.copy() for k, a in self.model.params.items()})
        self.calls.append(("epoch_end", epoch, dict(logs)))

    def on_train_end(self, logs=None):
        self.calls.append(("train_end", dict(logs)))


# -- schedules -------------------------------------------------------------------------------------------

def lrs(schedule, epochs, base=0.1, **fit):
    x, y = classification_data()
    m = model()
    m.fit(x, y, epochs=epochs, optimizer=SGD(lr=base), schedule=schedule, verbose=0, **fit)
    return m.history_["lr"], m


def test_step_lr_is_base_times_gamma_to_the_epoch_over_step_size():
    got, m = lrs(StepLR(3, gamma=0.5), 8)
    assert got == [0.1 * 0.5 ** (e // 3) for e in range(8)]
    assert m.optimizer_.lr == got[-1]  # the optimizer keeps the last epoch's lr


@pytest.mark.parametrize(("warmup", "min_lr"), [(0, 0.0), (2, 0.0), (3, 0.01)])
def test_cosine_lr_warms_up_linearly_then_follows_the_cosine_to_min_lr(warmup, min_lr):
    total = 8
    got, _ = lrs(CosineLR(total, warmup_epochs=warmup, min_lr=min_lr), total + 2)
    want = []
    for e in range(total + 2):
        if e < warmup:
            want.append(0.1 * (e + 1) / warmup)
        else:
            p = min(1.0, (e - warmup) / (total - warmup))
            want.append(min_lr + (0.1 - min_lr) * (1 + math.cos(math.pi * p)) / 2)
    np.testing.assert_allclose(got, want, rtol=1e-15, atol=0)
    assert got[warmup] == pytest.approx(0.1)
    assert got[-1] == pytest.approx(min_lr)


def test_reduce_on_plateau_follows_keras_rule_on_the_monitored_values():
    factor, patience = 0.5, 1
    got, m = lrs(ReduceLROnPlateau("val_loss", factor=factor, patience=patience, min_lr=0.02, min_delta=0.0), 12,
                 base=2.0, validation_split=0.25)
    # replay the rule on the val_loss fit saw: the lr of epoch e+1 follows from epochs 0..e
    lr, best, wait, want = 2.0, np.inf, 0, [2.0]
    for value in m.history_["val_loss"][:-1]:
        if value < best:
            best, wait = value, 0
        else:
            wait += 1
            if wait >= patience and lr > 0.02:
                lr, wait = max(lr * factor, 0.02), 0
        want.append(lr)
    assert got == want
    assert min(got) < 2.0, "the lr never dropped, so the rule was not tested"


def test_a_callable_gets_the_0_based_epoch_and_its_lr_is_recorded():
    seen = []
    got, _ = lrs(lambda epoch: seen.append(epoch) or 0.1 / (epoch + 1), 4)
    assert seen == [0, 1, 2, 3]
    assert got == [0.1, 0.05, 0.1 / 3, 0.025]


def test_the_optimizer_steps_with_the_scheduled_lr():
    """SGD without momentum, one batch an epoch: the change of every weight is lr × its gradient."""
    x, y = classification_data(n=16)
    m = model()
    xs, ys = m._check_x(x), m._check_y(y, m._check_x(x))
    steps = []

    class Gradient(Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.before = {k: a.copy() for k, a in m.params.items()}
            m._batch_loss(xs.take(np.arange(16)), ys.take(np.arange(16)), train=True)
            self.grads = {k: g.copy() for k, g in m._grads().items()}

        def on_epoch_end(self, epoch, logs=None):
            steps.append((logs["lr"], self.before, self.grads, {k: a.copy() for k, a in m.params.items()}))

    schedule = [0.5, 0.05, 0.0, 1.5]
    m.fit(x, y, epochs=4, batch_size=16, optimizer=SGD(lr=1.0), clip=None, shuffle=False, verbose=0,
          schedule=lambda e: schedule[e], callbacks=[Gradient()])
    assert m.history_["lr"] == schedule
    for lr, before, grads, after in steps:
        for name in before:
            np.testing.assert_allclose(after[name], before[name] - lr * grads[name], rtol=1e-12, atol=1e-14)
    assert any(np.abs(g).max() > 1e-3 for g in steps[0][2].values())


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -0.1])
def test_a_schedule_returning_a_bad_lr_names_the_value_and_the_epoch(bad):
    x, y = classification_data()
    with pytest.raises(ValueError, match=rf"lr={bad!r} for epoch 2"):
        model().fit(x, y, epochs=4, verbose=0, schedule=lambda e: 1e-3 if e < 2 else bad)


def test_schedule_arguments_are_checked():
    with pytest.raises(ValueError, match="warmup_epochs"):
        CosineLR(3, warmup_epochs=3)
    with pytest.raises(ValueError, match="step_size"):
        StepLR(0)
    x, y = classification_data()
    with pytest.raises(TypeError, match="schedule must be"):
        model().fit(x, y, verbose=0, schedule=0.1)
    with pytest.raises(ValueError, match="monitors 'val_loss'"):  # no validation data: said before training
        model().fit(x, y, verbose=0, schedule=ReduceLROnPlateau())
    with pytest.raises(ValueError, match="monitors 'val_loss'"):
        model().fit(x, y, verbose=0, callbacks=[EarlyStopping()])
    with pytest.raises(ValueError, match="monitors 'val_loss'"):
        model().fit(x, y, verbose=0, callbacks=[ModelCheckpoint("m.npz", save_best_only=True)])


# -- callbacks -------------------------------------------------------------------------------------------

def test_hooks_come_in_keras_order_with_their_logs():
    x, y = classification_data(n=20)
    recorder = Recorder()
    m = model().fit(x, y, epochs=2, batch_size=8, validation_split=0.2, verbose=0, callbacks=[recorder])
    names = [c[0] if c[0] in ("train_begin", "train_end") else (c[0], c[1]) for c in recorder.calls]
    assert names == ["train_begin", ("epoch_begin", 0), ("batch_end", 0), ("batch_end", 1), ("epoch_end", 0),
                     ("epoch_begin", 1), ("batch_end", 0), ("batch_end", 1), ("epoch_end", 1), "train_end"]
    end = recorder.calls[4][2]
    assert set(end) == {"loss", "val_loss", "val_score", "lr"}
    assert end["loss"] == m.history_["loss"][0]
    assert end["val_loss"] == m.history_["val_loss"][0]
    assert set(recorder.calls[2][2]) == {"loss", "lr"}
    assert recorder.calls[-1][1] == recorder.calls[-2][2]  # on_train_end: the last epoch's logs


def test_a_plain_object_with_some_hooks_is_a_callback_and_can_stop_training():
    x, y = classification_data(n=32)
    m = model()

    class StopAfterTwoBatches:
        def __init__(self):
            self.batches = 0

        def on_batch_end(self, batch, logs):
            self.batches += 1
            if self.batches == 2:
                m.stop_training = True

    m.fit(x, y, epochs=5, batch_size=8, verbose=0, callbacks=[StopAfterTwoBatches()])
    assert len(m.history_["loss"]) == 1  # stopped in epoch 0, whose history is kept
    assert m.fitted
    with pytest.raises(TypeError, match="none of the hooks"):
        m.fit(x, y, verbose=0, callbacks=[object()])


def test_a_callback_that_raises_stops_fit_with_its_exception_after_the_last_step():
    x, y = classification_data(n=32)
    m = model()
    kept = []

    class Boom(Callback):
        def on_batch_end(self, batch, logs=None):
            kept.append({k: a.copy() for k, a in self.model.params.items()})
            if len(kept) == 3:
                raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        m.fit(x, y, epochs=3, batch_size=8, verbose=0, callbacks=[Boom()])
    for name, array in m.params.items():
        np.testing.assert_array_equal(array, kept[-1][name])


def test_early_stopping_stops_after_patience_and_restores_the_best_weights():
    x, y = classification_data()
    script = [1.0, 0.8, 0.85, 0.79, 0.9, 0.95, 0.5, 0.1]
    recorder = Recorder(script)
    stop = EarlyStopping(patience=2, min_delta=0.02, restore_best_weights=True)
    m = model().fit(x, y, epochs=8, validation_split=0.2, verbose=0, callbacks=[recorder, stop])
    # best 0.8 at epoch 1; 0.79 is not better by more than min_delta; wait reaches 2 at epoch 3
    assert len(m.history_["loss"]) == 4
    assert (stop.stopped_epoch, stop.best_epoch) == (3, 1)
    for name, array in m.params.items():
        np.testing.assert_array_equal(array, recorder.params[1][name])
    # predictions use the restored weights (the packed inference weights were refreshed)
    twin = model().fit(x[:2], y[:2], epochs=1, verbose=0)
    for name, array in twin.params.items():
        array[...] = recorder.params[1][name]
    np.testing.assert_array_equal(m.predict_proba(x), twin.predict_proba(x))


def test_early_stopping_with_patience_0_and_mode_max():
    x, y = classification_data()
    script = [0.5, 0.6, 0.6, 0.7]

    class Scores(Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["val_score"] = script[epoch]

    stop = EarlyStopping(monitor="val_score", patience=0)
    m = model().fit(x, y, epochs=4, validation_split=0.2, verbose=0, callbacks=[Scores(), stop])
    assert len(m.history_["loss"]) == 3
    assert stop.stopped_epoch == 2


def test_model_checkpoint_writes_each_epoch_or_only_the_best(tmp_path):
    x, y = classification_data()
    m = model().fit(x, y, epochs=3, verbose=0, callbacks=[ModelCheckpoint(tmp_path / "e{epoch}.npz")])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e1.npz", "e2.npz", "e3.npz"]
    np.testing.assert_array_equal(Model.load(tmp_path / "e3.npz").predict(x), m.predict(x))

    best = tmp_path / "best"
    best.mkdir()
    recorder = Recorder([1.0, 0.7, 0.9, 0.6, 0.65])
    model().fit(x, y, epochs=5, validation_split=0.2, verbose=0,
                callbacks=[recorder, ModelCheckpoint(str(best / "m{epoch}.npz"), save_best_only=True)])
    assert sorted(p.name for p in best.iterdir()) == ["m1.npz", "m2.npz", "m4.npz"]
    loaded = Model.load(best / "m4.npz")
    for name, array in loaded.params.items():
        np.testing.assert_array_equal(array, recorder.params[3][name])


# -- validation_split, shuffle -----------------------------------------------------------------------------

def test_validation_split_is_the_last_fraction_before_shuffling():
    x, y = classification_data(n=40)
    split = model().fit(x, y, epochs=3, verbose=0, validation_split=0.25).history_
    given = model().fit(x[:30], y[:30], epochs=3, verbose=0, validation_data=(x[30:], y[30:])).history_
    for key in ("loss", "val_loss", "val_score"):
        assert split[key] == given[key]
    lists = [x[i, :1 + i % 4] for i in range(40)]
    labels = [np.full(1 + i % 4, y[i]) for i in range(40)]
    split = model(ManyToMany).fit(lists, labels, epochs=2, verbose=0, validation_split=0.1).history_
    given = model(ManyToMany).fit(lists[:36], labels[:36], epochs=2, verbose=0,
                                  validation_data=(lists[36:], labels[36:])).history_
    assert split["loss"] == given["loss"]
    assert split["val_loss"] == given["val_loss"]


@pytest.mark.parametrize("bad", [1.0, -0.1, 0.99, "0.2"])
def test_validation_split_is_checked(bad):
    x, y = classification_data(n=10)
    with pytest.raises(ValueError, match="validation_split"):
        model().fit(x, y, verbose=0, validation_split=bad)


def test_validation_split_and_validation_data_are_refused_together():
    x, y = classification_data(n=10)
    with pytest.raises(ValueError, match="not both"):
        model().fit(x, y, verbose=0, validation_split=0.2, validation_data=(x, y))


def test_shuffle_false_takes_the_batches_in_order_and_draws_nothing():
    x, y = classification_data(n=20)
    m = model()
    seen = []
    batch_loss = m._batch_loss

    def recording(xb, yb, train, weights=None):
        seen.append(np.swapaxes(xb.data, 0, 1).copy())
        return batch_loss(xb, yb, train, weights)

    m._batch_loss = recording
    state = m._rng.bit_generator.state
    m.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    assert m._rng.bit_generator.state == state
    want = [x[0:8], x[8:16], x[16:20]] * 2
    assert len(seen) == 6
    assert all(np.array_equal(a, b) for a, b in zip(seen, want))


def test_shuffle_false_still_buckets_by_length_only_with_bucket():
    lengths = np.array([5, 1, 4, 2, 3, 1])
    bucketed = batch_order(_IN_ORDER, 6, 2, lengths, True)
    assert [b.tolist() for b in bucketed] == [[1, 5], [3, 4], [2, 0]]
    assert [b.tolist() for b in batch_order(_IN_ORDER, 6, 2, lengths, False)] == [[0, 1], [2, 3], [4, 5]]


def test_the_defaults_change_nothing():
    x, y = classification_data()
    a = model().fit(x, y, epochs=2, verbose=0).history_
    b = model().fit(x, y, epochs=2, verbose=0, shuffle=True, schedule=None, callbacks=[], validation_split=0.0,
                    class_weight=None, sample_weight=None).history_
    assert a["loss"] == b["loss"]
    assert set(a) == set(b) == {"loss", "time"}


# -- weights ---------------------------------------------------------------------------------------------

def initial_loss(m, x, y, **fit):
    """The loss fit reports for one batch of everything, taken before any step (lr 0)."""
    m.fit(x, y, epochs=1, batch_size=len(x), shuffle=False, verbose=0, schedule=lambda e: 0.0, **fit)
    return m.history_["loss"][0]


def test_the_weighted_loss_is_the_weighted_mean_over_real_targets():
    x, y = classification_data(n=12)
    w = np.linspace(0.0, 3.0, 12)
    m = model()
    got = initial_loss(m, x, y, sample_weight=w, class_weight={1: 0.5})
    p = m.predict_proba(x)
    terms = -np.log(p[np.arange(12), y])
    weights = w * np.where(y == 1, 0.5, 1.0)
    assert got == pytest.approx(float((weights * terms).sum() / weights.sum()), rel=1e-12)


def test_the_weighted_regression_loss_per_step_of_sequences_of_their_own_lengths():
    rng = np.random.default_rng(1)
    lists = [rng.standard_normal((1 + i % 3, 3)) for i in range(9)]
    targets = [rng.standard_normal((len(s), 2)) for s in lists]
    w = rng.uniform(0, 2, 9)
    m = ManyToMany(3, 4, 2, task="regression", seed=0, dtype="float64")
    got = initial_loss(m, lists, targets, sample_weight=w)
    pred = m.predict(lists)
    num = sum(wi * np.square(p - t).mean(axis=1).sum() for wi, p, t in zip(w, pred, targets))
    den = sum(wi * len(t) for wi, t in zip(w, targets))
    assert got == pytest.approx(num / den, rel=1e-12)


def test_an_integer_weight_counts_a_sample_that_many_times():
    x, y = classification_data(n=10)
    w = np.ones(10)
    w[3] = 3
    weighted = initial_loss(model(), x, y, sample_weight=w)
    repeated = initial_loss(model(), np.concatenate([x, x[3:4], x[3:4]]), np.concatenate([y, y[3:4], y[3:4]]))
    assert weighted == pytest.approx(repeated, rel=1e-13)


def test_class_weight_equals_the_matching_sample_weight_and_unit_weights_the_unweighted_fit():
    x, y = classification_data()
    by_class = model().fit(x, y, epochs=3, batch_size=8, verbose=0, class_weight={0: 2.5}).history_["loss"]
    by_sample = model().fit(x, y, epochs=3, batch_size=8, verbose=0,
                            sample_weight=np.where(y == 0, 2.5, 1.0)).history_["loss"]
    np.testing.assert_allclose(by_class, by_sample, rtol=1e-13)
    ones = model().fit(x, y, epochs=3, batch_size=8, verbose=0, sample_weight=np.ones(len(x))).history_["loss"]
    plain = model().fit(x, y, epochs=3, batch_size=8, verbose=0).history_["loss"]
    np.testing.assert_allclose(ones, plain, rtol=1e-12)


def test_class_weight_takes_the_labels_as_given():
    x, y = classification_data()
    names = np.array(["no", "yes"])[y]
    got = initial_loss(model(), x, names, class_weight={"yes": 0.0})
    want = initial_loss(model(), x, y, sample_weight=(y == 0).astype(float))
    assert got == pytest.approx(want, rel=1e-13)


def test_bad_weights_name_the_argument():
    x, y = classification_data(n=10)
    with pytest.raises(ValueError, match=r"class_weight .*\[7, 'a'\]"):
        model().fit(x, y, verbose=0, class_weight={0: 1.0, 7: 2.0, "a": 1.0})
    with pytest.raises(ValueError, match=r"class_weight\[1\]"):
        model().fit(x, y, verbose=0, class_weight={1: -1.0})
    with pytest.raises(ValueError, match="class_weight is for task='classification'"):
        ManyToOne(3, 4, 1, task="regression").fit(x, x[:, 0, 0], verbose=0, class_weight={0: 1.0})
    with pytest.raises(ValueError, match=r"sample_weight has shape \(9,\)"):
        model().fit(x, y, verbose=0, sample_weight=np.ones(9))
    with pytest.raises(ValueError, match=r"sample_weight\[2\] = -1"):
        model().fit(x, y, verbose=0, sample_weight=[1, 1, -1, 1, 1, 1, 1, 1, 1, 1])
    with pytest.raises(ValueError, match="sample weights are all zero"):
        model().fit(x, y, verbose=0, sample_weight=np.zeros(10))


# -- rnnkit.distributed ----------------------------------------------------------------------------------

MPIEXEC = (str(Path(sys.executable).parent / "mpiexec") if (Path(sys.executable).parent / "mpiexec").exists()
           else shutil.which("mpiexec"))

SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import rnnkit
    from rnnkit.callbacks import EarlyStopping
    from rnnkit.optim import StepLR
    rng = np.random.default_rng(0)
    x = rng.standard_normal((45, 4, 3))
    y = (x[:, 0, 0] + x[:, 1, 1] > 0).astype(int)
    comm = None
    if sys.argv[1] == "mpi":
        from mpi4py import MPI
        comm = MPI.COMM_WORLD
    model = rnnkit.ManyToOne(3, 5, 2, seed=0, dtype="float64")
    model.fit(x, y, epochs=6, batch_size=7, verbose=0, comm=comm, schedule=StepLR(2, 0.5), validation_split=0.2,
              shuffle=sys.argv[2] == "shuffle", class_weight={1: 2.0}, sample_weight=np.linspace(0, 2, 45),
              callbacks=[EarlyStopping(monitor="loss", patience=0, restore_best_weights=True)])
    if comm is None or comm.rank == 0:
        json.dump({"history": {k: v for k, v in model.history_.items() if "time" not in k},
                   "params": {k: a.tolist() for k, a in model.params.items()}}, open(sys.argv[3], "w"))
""")


@pytest.mark.skipif(MPIEXEC is None or __import__("importlib").util.find_spec("mpi4py") is None,
                    reason="needs mpi4py and mpiexec")
@pytest.mark.parametrize("shuffle", ["shuffle", "in-order"])
def test_distributed_fit_takes_the_new_options_to_the_single_process_results(tmp_path, shuffle):
    import json
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    single = subprocess.run([sys.executable, str(script), "single", shuffle, str(tmp_path / "single.json")],
                            check=False, capture_output=True, text=True, timeout=60, env=env)
    assert single.returncode == 0, single.stderr[-3000:]
    command = [MPIEXEC, "-n", "2", sys.executable, str(script), "mpi", shuffle, str(tmp_path / "mpi.json")]
    ranks = subprocess.run(command,
                           check=False, capture_output=True, text=True, timeout=60, env=env,
                           start_new_session=True)
    assert ranks.returncode == 0, ranks.stderr[-3000:]
    want, got = (json.loads((tmp_path / f"{name}.json").read_text()) for name in ("single", "mpi"))
    assert want["history"]["lr"] == got["history"]["lr"]
    assert len(got["history"]["loss"]) == len(want["history"]["loss"])
    for key in ("loss", "val_loss", "val_score"):
        np.testing.assert_allclose(got["history"][key], want["history"][key], rtol=1e-10)
    for name, value in want["params"].items():
        np.testing.assert_allclose(got["params"][name], value, rtol=1e-9, atol=1e-12)
