"""Models under failure: training that diverges stops with an error naming the epoch and batch and
keeps the weights of the last good step; load refuses any file that is not a model it can restore."""

import json
import zipfile

import numpy as np
import pytest
from rnnkit import ManyToOne, Model, OneToOne


@pytest.fixture(autouse=True)
def one_kernel_thread(threads):
    threads(1)


def regression_data(n=40, steps=4, features=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, steps, features))
    return x, np.tanh(x[:, :, 0].sum(1))


def params_of(model):
    return {k: v.copy() for k, v in model.params.items()}


def test_a_non_finite_loss_stops_fit_before_the_step_and_names_epoch_and_batch():
    x, y = regression_data()
    y[:] = 3e38  # the squared error and its float32 gradients overflow on the first batch
    model = ManyToOne(3, 8, 1, task="regression", seed=0)
    before = params_of(model)
    with pytest.raises(FloatingPointError, match=r"diverged at epoch 1, batch 1 of 1: the (loss|gradient norm) is inf"):
        model.fit(x, y, epochs=3, batch_size=64, verbose=0)
    for name, value in model.params.items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)
    assert not model.fitted


def test_a_non_finite_gradient_later_in_training_keeps_the_last_good_step(monkeypatch):
    """Batch 3 of epoch 2 gets NaN gradients: the weights equal those of a run stopped right there."""
    x, y = regression_data()

    def run(poison):
        model = ManyToOne(3, 8, 1, task="regression", seed=1)
        calls = {"n": 0}
        original = model._grads

        def grads():
            calls["n"] += 1
            g = original()
            if calls["n"] == 5 + 3:  # 5 batches per epoch: epoch 2, batch 3
                if not poison:
                    raise KeyboardInterrupt  # stands for "stop here" in the reference run
                for value in g.values():
                    value[...] = np.nan
            return g

        monkeypatch.setattr(model, "_grads", grads)
        return model

    poisoned, stopped = run(True), run(False)
    with pytest.raises(FloatingPointError, match=r"epoch 2, batch 3 of 5: the gradient norm is nan"):
        poisoned.fit(x, y, epochs=4, batch_size=8, verbose=0)
    with pytest.raises(KeyboardInterrupt):
        stopped.fit(x, y, epochs=4, batch_size=8, verbose=0)
    for name, value in poisoned.params.items():
        assert np.isfinite(value).all()
        np.testing.assert_array_equal(value, stopped.params[name], err_msg=name)
    assert poisoned.fitted  # epoch 1 completed
    assert np.isfinite(poisoned.predict(x)).all()


@pytest.fixture
def saved(tmp_path):
    x = np.random.default_rng(0).standard_normal((20, 5))
    model = OneToOne(5, 6, 3, seed=0)
    model.fit(x, (x[:, 0] > 0).astype(int), epochs=1, verbose=0)
    path = tmp_path / "model.npz"
    model.save(path)
    return path, model, x


def test_a_truncated_file_is_refused(saved):
    path, _, _ = saved
    data = path.read_bytes()
    for size in (0, 10, len(data) // 2, len(data) - 30):
        path.write_bytes(data[:size])
        with pytest.raises(ValueError, match="model.npz"):
            Model.load(path)


def test_a_file_that_is_not_a_model_is_refused(saved, tmp_path):
    other = tmp_path / "other.npz"
    np.savez(other, weights=np.zeros(3))
    with pytest.raises(ValueError, match="is not an rnnkit model file"):
        Model.load(other)
    text = tmp_path / "notes.npz"
    text.write_text("hello")
    with pytest.raises(ValueError, match="notes.npz"):
        Model.load(text)


def rewrite(path, change):
    """Rewrite a saved model, letting `change(config, arrays)` edit its contents."""
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    config = json.loads(str(arrays.pop("config")))
    change(config, arrays)
    with open(path, "wb") as f:
        np.savez(f, config=np.array(json.dumps(config)), **arrays)


def test_another_format_version_is_refused(saved):
    path, _, _ = saved
    rewrite(path, lambda config, arrays: config.update(format="rnnkit-model/99"))
    with pytest.raises(ValueError, match=r"has format 'rnnkit-model/99'; this rnnkit reads"):
        Model.load(path)


@pytest.mark.parametrize("damage", ["shape", "missing", "extra", "dtype"])
def test_arrays_that_do_not_match_the_config_are_refused(saved, damage):
    path, _, _ = saved

    def change(config, arrays):
        name = next(k for k in arrays if k.startswith("param:"))
        if damage == "shape":
            arrays[name] = arrays[name][..., :-1]
        elif damage == "missing":
            del arrays[name]
        elif damage == "extra":
            arrays["param:weight_ih_l7"] = np.zeros(2)
        else:
            arrays[name] = arrays[name].astype(np.int32)

    rewrite(path, change)
    with pytest.raises((ValueError, TypeError)):
        Model.load(path)


def test_a_corrupted_member_is_refused(saved):
    path, _, _ = saved
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    name = next(n for n in members if n.startswith("param"))
    members[name] = members[name][:40]  # a truncated .npy inside an intact zip
    with zipfile.ZipFile(path, "w") as z:
        for n, blob in members.items():
            z.writestr(n, blob)
    with pytest.raises(ValueError, match="not a readable rnnkit model file"):
        Model.load(path)


def test_an_intact_file_still_loads_and_predicts_identically(saved):
    path, model, x = saved
    np.testing.assert_array_equal(Model.load(path).predict(x), model.predict(x))
