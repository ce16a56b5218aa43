"""scikit-learn compatibility (without requiring scikit-learn in rnnkit itself): get_params and
set_params, clone, classes_ of any labels, predict_proba, sizes taken from the data, pickling,
Pipeline / cross_val_score / GridSearchCV, and what check_estimator says of OneToOne."""

import pickle
import warnings

import numpy as np
import pytest
import rnnkit
from rnnkit import ManyToMany, ManyToOne, OneToOne, Seq2Seq

sklearn = pytest.importorskip("sklearn")
from sklearn.base import clone  # noqa: E402
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402


def blobs(n=160, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 4))
    return X, np.where(X[:, 0] + X[:, 1] > 0, "pos", "neg")


def sequences(n=120, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 6, 3))
    return X, (X[:, :, 0].sum(axis=1) > 0).astype(int)


def test_clone_get_params_and_set_params():
    model = ManyToOne(3, 8, 2, cell="gru", num_layers=2, dropout=0.25, init="orthogonal", seed=4)
    params = model.get_params()
    assert params["dropout"] == 0.25 and params["init"] == "orthogonal" and params["seed"] == 4
    twin = clone(model)
    assert type(twin) is ManyToOne and twin.get_params() == params and not twin.fitted
    for name, value in model.params.items():  # the same seed: the same initial weights
        np.testing.assert_array_equal(twin.params[name], value)
    X, y = sequences()
    model.fit(X, y, epochs=1, verbose=0)
    assert model.set_params(hidden_size=5) is model and model.hidden_size == 5 and not model.fitted
    assert model.params["rnn.weight_hh_l0"].shape == (15, 5)
    with pytest.raises(ValueError, match=r"invalid parameter\(s\) \['hidden'\] for ManyToOne"):
        model.set_params(hidden=5)
    assert clone(Seq2Seq(3, 4, 5, end_token=4)).get_params()["end_token"] == 4


def test_any_labels_become_classes_and_predict_proba_follows_them(tmp_path):
    X, y = blobs()
    model = OneToOne(4, 8, 2, seed=0)
    assert model.fit(X, y, epochs=30, lr=1e-2, verbose=0) is model
    assert model.classes_.tolist() == ["neg", "pos"]
    predicted = model.predict(X)
    assert set(predicted) <= {"neg", "pos"} and (predicted == y).mean() > 0.9
    proba = model.predict_proba(X)
    assert proba.shape == (len(X), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-6)
    np.testing.assert_array_equal(model.classes_[proba.argmax(axis=1)], predicted)
    assert model.score(X, y) == pytest.approx((predicted == y).mean())
    with pytest.raises(ValueError, match=r"Y\[0\] = 'maybe' is not one of the classes fit saw"):
        model.score(X[:2], np.array(["maybe", "pos"]))
    model.save(tmp_path / "m.npz")
    back = rnnkit.Model.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(back.predict(X), predicted)
    with pytest.raises(ValueError, match=r"Y holds 3 classes \('a', 'b', 'c'\).*output_size must be 3, not 2"):
        OneToOne(4, 8, 2).fit(X[:3], np.array(["a", "b", "c"]), verbose=0)
    ints = OneToOne(4, 8, 3, seed=0).fit(X[:30], np.arange(30) % 3, epochs=1, verbose=0)
    assert ints.classes_.tolist() == [0, 1, 2]  # labels 0 … output_size-1 are the outputs themselves
    odd = ManyToOne(4, 8, 3, seed=0).fit(X[:30, None], np.array([3, 7, 9] * 10), epochs=1, verbose=0)
    assert odd.classes_.tolist() == [3, 7, 9] and set(odd.predict(X[:30, None])) <= {3, 7, 9}
    seqs, _ = sequences(20)
    tagger = ManyToMany(3, 6, 2, seed=0).fit(seqs, (seqs[..., 0] > 0).astype(int), epochs=1, verbose=0)
    p = tagger.predict_proba(seqs)
    assert p.shape == (20, 6, 2)
    np.testing.assert_array_equal(p.argmax(-1), tagger.predict(seqs))
    ragged = tagger.predict_proba([seqs[0][:2], seqs[1]])
    assert [r.shape for r in ragged] == [(2, 2), (6, 2)]
    with pytest.raises(AttributeError, match="regression"):
        ManyToOne(3, 4, 1, task="regression").predict_proba(seqs)
    with pytest.raises(TypeError, match="greedily"):
        Seq2Seq(3, 4, 2).predict_proba(seqs)


def test_sizes_none_are_taken_from_the_first_fit():
    X, y = blobs()
    model = OneToOne(None, 8, None, seed=0)
    assert model.params == {}
    with pytest.raises(rnnkit.NotFittedError, match="has no layers yet"):
        ManyToOne(None, 8, 2).stream()
    model.fit(X, y, epochs=1, verbose=0)
    assert (model.input_size, model.output_size, model.n_features_in_) == (4, 2, 4)
    assert model.get_params()["input_size"] is None  # (clone starts from the sizes as given)
    seqs, labels = sequences()
    reader = ManyToOne(None, 8, None, seed=0).fit(list(seqs[:10]), labels[:10], epochs=1, verbose=0)
    assert (reader.input_size, reader.output_size) == (3, 2)
    values = ManyToMany(None, 5, None, task="regression", seed=0).fit(seqs, seqs[..., :2], epochs=1, verbose=0)
    assert values.output_size == 2 and values.predict(seqs).shape == (len(seqs), 6, 2)
    writer = Seq2Seq(None, 5, None, end_token=6, seed=0).fit(seqs, [np.array([1, 2])] * len(seqs), epochs=1,
                                                                verbose=0)
    assert writer.output_size == 7  # the end token counts
    with pytest.raises(ValueError, match="vocab_size needs input_size"):
        ManyToOne(None, 4, 2, vocab_size=10)


def test_pipeline_cross_val_score_and_grid_search():
    X, y = blobs()
    pipe = make_pipeline(StandardScaler(), OneToOne(None, 8, None, seed=0))
    pipe.fit(X, y, onetoone__epochs=20, onetoone__lr=1e-2, onetoone__verbose=0)
    assert pipe.score(X, y) > 0.85
    scores = cross_val_score(OneToOne(None, 8, None, seed=0), X, y, cv=3,
                             params={"epochs": 20, "lr": 1e-2, "verbose": 0})
    assert np.isfinite(scores).all() and scores.mean() > 0.8
    seqs, labels = sequences()
    scores = cross_val_score(ManyToOne(None, 8, None, cell="gru", seed=0), seqs, labels, cv=KFold(3),
                             params={"epochs": 10, "lr": 1e-2, "verbose": 0})  # 3-D input
    assert np.isfinite(scores).all() and scores.mean() > 0.7
    search = GridSearchCV(ManyToOne(3, 4, 2, seed=0), {"hidden_size": [2, 8], "cell": ["tanh", "gru"]}, cv=2)
    search.fit(seqs, labels, epochs=5, lr=1e-2, verbose=0)
    assert set(search.best_params_) == {"hidden_size", "cell"} and np.isfinite(search.best_score_)


def test_a_fitted_model_pickles_and_goes_on_training():
    seqs, labels = sequences()
    model = ManyToOne(3, 8, 2, cell="lstm", seed=0).fit(seqs, labels, epochs=1, verbose=0)
    twin = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(twin.predict(seqs), model.predict(seqs))
    model.fit(seqs, labels, epochs=1, verbose=0)
    twin.fit(seqs, labels, epochs=1, verbose=0)  # the optimizer's state came along
    for name, value in model.params.items():
        np.testing.assert_array_equal(twin.params[name], value)


# The checks OneToOne cannot pass, and why (scikit-learn 1.9):
KNOWN_FAILURES = {
    # a neural network's layers and sizes are public attributes set in __init__ and by the first fit
    "check_no_attributes_set_in_init", "check_dont_overwrite_parameters",
    # fit continues from the current weights and optimizer state (Keras' convention): not idempotent
    "check_fit_idempotent",
    # rnnkit's own NotFittedError (a ValueError and AttributeError): scikit-learn's is not importable
    # without scikit-learn
    "check_estimators_unfitted",
    # constructor arguments are checked in __init__, where a wrong one should fail at once
    "check_do_not_raise_errors_in_init_or_set_params",
    # input rnnkit refuses with its own messages, not scikit-learn's wording: sparse matrices, complex
    # or object arrays, empty data, 1-D X, a column vector y, y=None, array-likes without a shape
    "check_estimator_sparse_tag", "check_estimator_sparse_array", "check_estimator_sparse_matrix",
    "check_complex_data", "check_dtype_object", "check_estimators_empty_data_messages", "check_fit2d_predict1d",
    "check_supervised_y_2d", "check_requires_y_none", "check_classifier_data_not_an_array",
    "check_n_features_in_after_fitting",
    # (run since fit takes sample_weight) X as an array-like without a shape, as in
    # check_classifier_data_not_an_array
    "check_sample_weights_not_an_array",
    # fit names its targets Y (fit(X, y=...) is refused), and mini-batches in a seeded shuffle are not
    # the batches of the data with samples repeated: weights equal repetition within one batch only
    "check_sample_weight_equivalence_on_dense_data",
}


def test_check_estimator_fails_only_the_known_checks():
    from sklearn.utils.estimator_checks import check_estimator
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(OneToOne(None, 8, None, seed=0), on_fail=None)
    failed = {r["check_name"] for r in results if r["status"] == "failed"}
    passed = {r["check_name"] for r in results if r["status"] == "passed"}
    assert failed <= KNOWN_FAILURES, f"new failures: {sorted(failed - KNOWN_FAILURES)}"
    assert {"check_estimators_pickle", "check_classifiers_train", "check_classifiers_classes",
            "check_fit_score_takes_y", "check_pipeline_consistency", "check_estimators_nan_inf",
            "check_supervised_y_no_nan", "check_classifiers_regression_target"} <= passed
