"""ONNX interop (rnnkit._onnx): the exported layers and models run in ONNX Runtime to rnnkit's own
results, RNN.from_onnx reads them (and hand-built and torch.onnx graphs) back, every refusal, the
atomic writes and ``python -m rnnkit export``.

The tests that need onnx or onnxruntime skip, saying so, where they are not installed."""

import io
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import rnnkit
from rnnkit import RNN, ManyToMany, ManyToOne, OneToMany, OneToOne, Seq2Seq
from rnnkit.__main__ import main

CELLS = ("tanh", "relu", "lstm", "gru")
GATES = {"tanh": 1, "relu": 1, "lstm": 4, "gru": 3}
OPERATOR = {"tanh": "RNN", "relu": "RNN", "lstm": "LSTM", "gru": "GRU"}
TOLERANCE = 1e-5  # max-abs error relative to the reference's max-abs (float32)
N, T, F, H, O = 5, 6, 3, 4, 5
MAX_STEPS = 7


@pytest.fixture(scope="module")
def onnx():
    return pytest.importorskip("onnx", reason="onnx is not installed (pip install 'rnnkit[onnx]')")


@pytest.fixture(scope="module")
def ort(onnx):
    return pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (it comes with rnnkit[bench])")


def session(ort, path_or_bytes):
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only (not the note on the overridable initializers)
    return ort.InferenceSession(path_or_bytes, options, providers=["CPUExecutionProvider"])


def run(ort, path, feeds) -> dict:
    s = session(ort, str(path))
    return dict(zip([o.name for o in s.get_outputs()], s.run(None, feeds)))


def assert_close(got, want, what=""):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    scale = float(np.max(np.abs(want), initial=0.0))
    assert scale > 0, f"{what}: the reference is all zeros, so the comparison would prove nothing"
    error = float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64))))
    assert error <= TOLERANCE * scale, f"{what}: max error {error:.3g} > {TOLERANCE:.0e} x {scale:.3g}"


def checked(onnx, path):
    """The file at ``path``, after onnx's full check (with shape inference)."""
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    return model


def states_tuple(states):
    return states if isinstance(states, tuple) else (states,)


# -- the layer -----------------------------------------------------------------------------------------

LAYER_CONFIGS = [(1, False), (2, True), (2, False)]


@pytest.mark.parametrize("batch_first", [False, True], ids=["time_major", "batch_first"])
@pytest.mark.parametrize(("num_layers", "bidirectional"), LAYER_CONFIGS, ids=["1", "2bi", "2"])
@pytest.mark.parametrize("cell", CELLS)
def test_layer_export_matches_forward(onnx, ort, tmp_path, cell, num_layers, bidirectional, batch_first):
    layer = RNN(F, H, cell=cell, num_layers=num_layers, bidirectional=bidirectional, batch_first=batch_first,
                seed=1)
    path = tmp_path / "layer.onnx"
    layer.to_onnx(path)
    checked(onnx, path)
    s = session(ort, str(path))
    assert [i.name for i in s.get_inputs()] == ["x"]  # lengths, h0 (c0): overridable initializers
    assert {i.name for i in s.get_overridable_initializers()} == {"lengths", "h0"} | ({"c0"} if cell == "lstm" else set())
    names = [o.name for o in s.get_outputs()]
    assert names == ["y", "h_n"] + (["c_n"] if cell == "lstm" else [])

    rng = np.random.default_rng(2)
    x = rng.standard_normal((N, T, F) if batch_first else (T, N, F)).astype(np.float32)
    rows = layer.num_layers * layer.num_directions
    h0 = tuple(rng.standard_normal((rows, N, H)).astype(np.float32) for _ in range(2 if cell == "lstm" else 1))
    lengths = np.array([T, 3, 1, 0, 5])  # unsorted, one empty row
    for use_lengths in (False, True):
        for use_h0 in (False, True):
            feeds = {"x": x}
            if use_lengths:
                feeds["lengths"] = lengths
            if use_h0:
                feeds.update(zip(["h0", "c0"], h0))
            got = s.run(None, feeds)
            y, h_n = layer.forward(x, (h0 if cell == "lstm" else h0[0]) if use_h0 else None,
                                   lengths=lengths if use_lengths else None, training=False)
            what = f"lengths={use_lengths}, h0={use_h0}"
            for name, g, w in zip(names, got, (y, *states_tuple(h_n))):
                assert_close(g, w, f"{name} ({what})")
            if use_lengths:  # y is exactly 0 at the padding, as rnnkit's
                steps = np.arange(T)[:, None] >= lengths[None, :]  # (T, N)
                padding = got[0][steps.T] if batch_first else got[0][steps]
                assert padding.size
                assert not padding.any(), f"y is not 0 at the padding ({what})"


def test_layer_export_lengths_below_zero_mean_full(ort, tmp_path):
    layer = RNN(F, H, cell="gru", bidirectional=True, seed=3)
    layer.to_onnx(tmp_path / "l.onnx")
    x = np.random.default_rng(0).standard_normal((T, 2, F)).astype(np.float32)
    got = run(ort, tmp_path / "l.onnx", {"x": x, "lengths": np.array([-1, 2])})
    y, h_n = layer.forward(x, lengths=[T, 2], training=False)
    assert_close(got["y"], y, "y")
    assert_close(got["h_n"], h_n, "h_n")


def test_float64_layer_is_refused_or_cast(onnx, ort, tmp_path):
    """ONNX Runtime has no float64 RNN / LSTM / GRU kernels: a float64 layer needs dtype='float32'."""
    layer = RNN(F, H, cell="lstm", num_layers=2, dtype="float64", seed=4)
    path = tmp_path / "l64.onnx"
    with pytest.raises(ValueError, match="float64.*dtype='float32'"):
        layer.to_onnx(path)
    assert not path.exists()
    with pytest.raises(ValueError, match="float32 only"):
        layer.to_onnx(path, dtype="float64")
    layer.to_onnx(path, dtype="float32")
    x = np.random.default_rng(0).standard_normal((T, N, F))
    got = run(ort, path, {"x": x.astype(np.float32)})
    y, (h_n, c_n) = layer.forward(x, training=False)
    for name, want in (("y", y), ("h_n", h_n), ("c_n", c_n)):
        assert got[name].dtype == np.float32
        assert_close(got[name], want, name)


def test_ort_refuses_float64_recurrent_ops(onnx, ort):
    """Why float64 is refused: ONNX Runtime runs no double RNN / LSTM / GRU (if this fails, it now does)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = {"W": rng.standard_normal((1, 4 * H, F)), "R": rng.standard_normal((1, 4 * H, H))}
    graph = helper.make_graph(
        [helper.make_node("LSTM", ["X", "W", "R"], ["Y"], hidden_size=H)], "g",
        [helper.make_tensor_value_info("X", TensorProto.DOUBLE, [T, 1, F])],
        [helper.make_tensor_value_info("Y", TensorProto.DOUBLE, [T, 1, 1, H])],
        initializer=[numpy_helper.from_array(a, name) for name, a in weights.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    with pytest.raises(Exception, match="(?i)double|implementation"):  # (ORT's own error types)
        session(ort, model.SerializeToString()).run(None, {"X": rng.standard_normal((T, 1, F))})


@pytest.mark.parametrize("opset", [14, 17, 19])
def test_opsets(onnx, ort, tmp_path, opset):
    """The Loop of a decoder and the layer run at the oldest opset allowed, the default and ORT 1.16's newest."""
    model = Seq2Seq(F, H, O, cell="lstm", num_layers=2, bidirectional=True, seed=5)
    model.fitted, model.steps = True, MAX_STEPS
    model.to_onnx(tmp_path / "m.onnx", opset=opset)
    proto = checked(onnx, tmp_path / "m.onnx")
    assert [o.version for o in proto.opset_import] == [opset]
    assert proto.ir_version == onnx.helper.find_min_ir_version_for(proto.opset_import)
    X = np.random.default_rng(0).standard_normal((N, T, F)).astype(np.float32)
    np.testing.assert_array_equal(run(ort, tmp_path / "m.onnx", {"X": X})["labels"], model.predict(X))


@pytest.mark.parametrize(("opset", "error"), [(13, ValueError), (10_000, ValueError), ("17", TypeError),
                                              (True, TypeError)])
def test_bad_opset(onnx, tmp_path, opset, error):
    with pytest.raises(error, match="opset"):
        RNN(F, H).to_onnx(tmp_path / "l.onnx", opset=opset)


# -- the models ------------------------------------------------------------------------------------------

TOPOLOGIES = (OneToOne, OneToMany, ManyToOne, ManyToMany, Seq2Seq)


def make_model(cls, cell, *, fitted=True, **options):
    model = cls(F, H, O, cell=cell, seed=options.pop("seed", 7), **options)
    model.fitted = fitted  # predict needs it; the weights stay the random ones (no training: fast)
    if model.generates:
        model.steps = MAX_STEPS
    return model


def model_input(model, rng, n=N):
    """Random rectangular X for the model (token ids with vocab_size)."""
    shape = (n, T) if model.x_ndim == 3 else (n,)
    if model.vocab_size is not None:
        return rng.integers(0, model.vocab_size, shape).astype(np.int64)
    return rng.standard_normal((*shape, F)).astype(np.float32)


def assert_predictions(model, got: dict, prediction, lengths=None):
    """ORT's outputs equal predict's results (labels exactly; values within TOLERANCE)."""
    if model.task == "classification":
        labels = got["labels"]
        assert labels.dtype == np.int64
        if lengths is not None and model.sequence_targets and not model.generates:  # a list, per real step
            for i, n in enumerate(lengths):
                np.testing.assert_array_equal(labels[i, :n], prediction[i], err_msg=f"row {i}")
                assert (labels[i, n:] == -1).all(), f"row {i}: labels at the padding are not -1"
                assert not got["outputs"][i, n:].any(), f"row {i}: outputs at the padding are not 0"
        else:
            np.testing.assert_array_equal(labels, prediction)
        return
    values = got["outputs"]
    if model.output_size == 1:
        values = values[..., 0]
    if lengths is not None and model.sequence_targets and not model.generates:
        for i, n in enumerate(lengths):
            assert_close(values[i, :n], prediction[i], f"row {i}")
    else:
        assert_close(values, prediction, "outputs")


def check_model_export(onnx, ort, tmp_path, model, X, lengths=None, seqs=None):
    path = tmp_path / "model.onnx"
    model.to_onnx(path)
    checked(onnx, path)
    feeds = {"X": X} if lengths is None else {"X": X, "lengths": lengths}
    got = run(ort, path, feeds)
    expected = {"outputs"} | ({"labels"} if model.task == "classification" else set())
    assert set(got) == expected
    assert_predictions(model, got, model.predict(seqs if seqs is not None else X), lengths)
    return got


CASES = [  # (num_layers, bidirectional where the model allows it, task, output_size)
    pytest.param(1, False, "classification", O, id="1-classification"),
    pytest.param(2, True, "regression", O, id="2bi-regression"),
    pytest.param(2, False, "regression", 1, id="2-regression1"),
]


@pytest.mark.parametrize(("num_layers", "bidirectional", "task", "outputs"), CASES)
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("cls", TOPOLOGIES, ids=lambda c: c.__name__)
def test_model_export_matches_predict(onnx, ort, tmp_path, cls, cell, num_layers, bidirectional, task, outputs):
    model = cls(F, H, outputs, cell=cell, num_layers=num_layers, task=task,
                bidirectional=bidirectional and cls.can_be_bidirectional, seed=7)
    model.fitted = True
    model.steps = MAX_STEPS if model.generates else None
    got = check_model_export(onnx, ort, tmp_path, model, model_input(model, np.random.default_rng(8)))
    steps = {OneToOne: (), ManyToOne: (), ManyToMany: (T,), OneToMany: (MAX_STEPS,), Seq2Seq: (MAX_STEPS,)}[cls]
    assert got["outputs"].shape == (N, *steps, outputs)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("cls", TOPOLOGIES, ids=lambda c: c.__name__)
def test_vocab_model_export(onnx, ort, tmp_path, cls, cell):
    model = make_model(cls, cell, vocab_size=11, num_layers=2, bidirectional=cls.can_be_bidirectional)
    X = model_input(model, np.random.default_rng(9))
    check_model_export(onnx, ort, tmp_path, model, X)
    graph_input = checked(onnx, tmp_path / "model.onnx").graph.input[0]
    assert graph_input.type.tensor_type.elem_type == onnx.TensorProto.INT64


@pytest.mark.parametrize("task", ["classification", "regression"])
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("cls", [ManyToOne, ManyToMany, Seq2Seq], ids=lambda c: c.__name__)
def test_ragged_inputs_through_lengths(onnx, ort, tmp_path, cls, cell, task):
    """Sequences of their own lengths: predict(list) against the padded X with the lengths input."""
    model = make_model(cls, cell, task=task, num_layers=2, bidirectional=True)
    rng = np.random.default_rng(10)
    lengths = np.array([3, T, 1, 4, 2, 5])
    seqs = [rng.standard_normal((n, F)).astype(np.float32) for n in lengths]
    X, padded_lengths = rnnkit.pad_sequences(seqs)
    np.testing.assert_array_equal(padded_lengths, lengths)
    check_model_export(onnx, ort, tmp_path, model, X, lengths, seqs)


def test_ragged_vocab_inputs(onnx, ort, tmp_path):
    model = make_model(ManyToMany, "gru", vocab_size=9, bidirectional=True)
    rng = np.random.default_rng(11)
    lengths = np.array([2, 5, T, 1])
    seqs = [rng.integers(0, 9, n) for n in lengths]
    X = np.zeros((len(seqs), T), np.int64)
    for i, seq in enumerate(seqs):
        X[i, :len(seq)] = seq
    check_model_export(onnx, ort, tmp_path, model, X, lengths, seqs)


def end_token_model(cls, cell, **options):
    """A decoder whose end token ends rows at different steps, some part-way: the weights scaled up
    (random small ones generate about the same labels for every input), the end token chosen among
    the labels (one seed gives the same weights for every end_token)."""
    rng = np.random.default_rng(12)
    for seed in range(30):
        for token in range(O):
            model = make_model(cls, cell, end_token=token, seed=seed, **options)
            for layer in model.layers.values():
                layer.load_state_dict({name: 3 * array for name, array in layer.state_dict().items()})
            X = 2 * model_input(model, rng, n=8)
            sizes = {len(row) for row in model.predict(X)}
            if len(sizes) > 1 and any(0 < n < MAX_STEPS for n in sizes):
                return model, X
    raise AssertionError("no end token ends the rows at different steps")


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("cls", [OneToMany, Seq2Seq], ids=lambda c: c.__name__)
def test_decoder_with_end_token(onnx, ort, tmp_path, cls, cell):
    model, X = end_token_model(cls, cell, num_layers=2, bidirectional=cls.can_be_bidirectional)
    path = tmp_path / "m.onnx"
    model.to_onnx(path)
    proto = checked(onnx, path)
    assert {p.key: p.value for p in proto.metadata_props}["rnnkit.end_token"] == str(model.end_token)
    got = run(ort, path, {"X": X})
    labels, outputs = got["labels"], got["outputs"]
    assert labels.shape == (len(X), MAX_STEPS)
    for i, (row, want) in enumerate(zip(labels, model.predict(X))):
        n = len(want)
        np.testing.assert_array_equal(row[:n], want, err_msg=f"row {i}")
        if n < MAX_STEPS:  # the end token is kept, then -1 (and outputs 0)
            assert row[n] == model.end_token, f"row {i}"
            assert (row[n + 1:] == -1).all(), f"row {i}: labels after the end token are not -1"
            assert not outputs[i, n + 1:].any(), f"row {i}: outputs after the end token are not 0"
            assert outputs[i, n].argmax() == model.end_token


def test_decoder_max_steps(onnx, ort, tmp_path):
    model = make_model(Seq2Seq, "gru", task="regression")
    X = model_input(model, np.random.default_rng(13))
    model.to_onnx(tmp_path / "m.onnx", max_steps=3)
    assert_close(run(ort, tmp_path / "m.onnx", {"X": X})["outputs"], model.predict(X, max_steps=3), "outputs")
    unfitted = make_model(OneToMany, "tanh", fitted=False)
    unfitted.steps = None
    with pytest.raises(ValueError, match="max_steps="):
        unfitted.to_onnx(tmp_path / "u.onnx")
    with pytest.raises(ValueError, match="max_steps"):
        unfitted.to_onnx(tmp_path / "u.onnx", max_steps=0)
    with pytest.raises(ValueError, match="max_steps is for the decoders"):
        make_model(ManyToOne, "tanh").to_onnx(tmp_path / "u.onnx", max_steps=3)
    assert not (tmp_path / "u.onnx").exists()


def test_float64_model_is_refused_or_cast(onnx, ort, tmp_path):
    model = make_model(ManyToMany, "lstm", task="regression", dtype="float64", bidirectional=True)
    with pytest.raises(ValueError, match="float64"):
        model.to_onnx(tmp_path / "m.onnx")
    model.to_onnx(tmp_path / "m.onnx", dtype="float32")
    X = model_input(model, np.random.default_rng(14))
    got = run(ort, tmp_path / "m.onnx", {"X": X})
    assert got["outputs"].dtype == np.float32
    assert_close(got["outputs"], model.predict(X.astype(np.float64)), "outputs")


def test_export_writes_docs_and_metadata(onnx, tmp_path):
    model = make_model(ManyToOne, "gru", num_layers=2, bidirectional=True)
    model.to_onnx(tmp_path / "m.onnx")
    proto = checked(onnx, tmp_path / "m.onnx")
    assert proto.producer_name == "rnnkit"
    assert {p.key: p.value for p in proto.metadata_props}["rnnkit.class"] == "ManyToOne"
    docs = {i.name: i.doc_string for i in [*proto.graph.input, *proto.graph.output]}
    assert set(docs) == {"X", "lengths", "outputs", "labels"}
    assert all(docs.values())
    recurrent = [n for n in proto.graph.node if n.op_type == "GRU"]
    assert len(recurrent) == 2  # one node per layer
    assert all(onnx.helper.get_attribute_value(a) == b"bidirectional" for n in recurrent for a in n.attribute
               if a.name == "direction")


# -- import ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("num_layers", "bidirectional"), LAYER_CONFIGS, ids=["1", "2bi", "2"])
@pytest.mark.parametrize("cell", CELLS)
def test_round_trip_gives_the_same_weights(onnx, tmp_path, cell, num_layers, bidirectional):
    layer = RNN(F, H, cell=cell, num_layers=num_layers, bidirectional=bidirectional, batch_first=True, seed=15)
    layer.to_onnx(tmp_path / "l.onnx")
    for source in (tmp_path / "l.onnx", str(tmp_path / "l.onnx"), (tmp_path / "l.onnx").read_bytes(),
                   onnx.load(str(tmp_path / "l.onnx"))):
        back = RNN.from_onnx(source, batch_first=True)
        assert (back.cell, back.num_layers, back.bidirectional, back.batch_first, back.dtype) == (
            cell, num_layers, bidirectional, True, np.float32)
        assert list(back.params) == list(layer.params)
        for name, array in layer.params.items():
            np.testing.assert_array_equal(back.params[name], array, err_msg=name)
    as64 = RNN.from_onnx(tmp_path / "l.onnx", dtype="float64", backend="numpy")
    assert (as64.dtype, as64.backend, as64.batch_first) == (np.float64, "numpy", False)
    np.testing.assert_array_equal(as64.params["weight_hh_l0"], layer.params["weight_hh_l0"])


def test_model_files_give_their_recurrent_layer(onnx, tmp_path):
    model = make_model(Seq2Seq, "lstm", num_layers=2, bidirectional=True)
    model.to_onnx(tmp_path / "m.onnx")
    encoder = RNN.from_onnx(tmp_path / "m.onnx")  # the encoder: the decoder is inside the Loop
    for name, array in model.layers["encoder"].params.items():
        np.testing.assert_array_equal(encoder.params[name], array, err_msg=name)
    make_model(OneToMany, "gru").to_onnx(tmp_path / "o.onnx")
    with pytest.raises(ValueError, match="no RNN, LSTM or GRU node in its main graph.*Loop"):
        RNN.from_onnx(tmp_path / "o.onnx")


def hand_built(onnx, nodes, *, steps=T, batch=N, inputs=F, hidden=H, link="squeeze", constants=False, seed=0):
    """A graph of recurrent nodes with random weights, built with onnx.helper.  ``nodes``: per node
    (op, attributes, extra) with extra a dict of optional pieces ("bias": False, "P": array, "W": name of
    a graph input).  Outputs: the last node's output as (T, B, D·H) ("out") and every Y_h ("h_n")."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    graph_nodes, initializers, graph_inputs = [], [], [helper.make_tensor_value_info("X", TensorProto.FLOAT,
                                                                                       [steps, batch, inputs])]

    def constant(name, array):
        array = np.asarray(array)
        if constants:
            graph_nodes.append(helper.make_node("Constant", [], [name], value=numpy_helper.from_array(array, name)))
        else:
            initializers.append(numpy_helper.from_array(array, name))
        return name

    x, finals = "X", []
    for k, (op, attributes, extra) in enumerate(nodes):
        d = 2 if attributes.get("direction") == "bidirectional" else 1
        gates = {"RNN": 1, "LSTM": 4, "GRU": 3}[op]
        size = inputs if k == 0 else d * hidden
        w = (0.5 * rng.standard_normal((d, gates * hidden, size))).astype(np.float32)
        r = (0.5 * rng.standard_normal((d, gates * hidden, hidden))).astype(np.float32)
        b = (0.5 * rng.standard_normal((d, 2 * gates * hidden))).astype(np.float32)
        w_name = constant(f"W{k}", w)
        if "W" in extra:  # W as a graph input: not stored in the file
            w_name = extra["W"]
            graph_inputs.append(helper.make_tensor_value_info(w_name, TensorProto.FLOAT, list(w.shape)))
        node_inputs = [x, w_name, constant(f"R{k}", r), constant(f"B{k}", b) if extra.get("bias", True) else ""]
        if "P" in extra:
            node_inputs += ["", "", "", constant(f"P{k}", extra["P"])]
        outputs = [f"Y{k}", f"Y_h{k}"]
        graph_nodes.append(helper.make_node(op, node_inputs, outputs, name=f"node{k}", hidden_size=hidden,
                                            **attributes))
        finals.append(f"Y_h{k}")
        if link == "squeeze" and d == 1:
            graph_nodes.append(helper.make_node("Squeeze", [f"Y{k}", constant(f"axes{k}", np.array([1]))], [f"X{k}"]))
        elif link == "none":
            graph_nodes.append(helper.make_node("Identity", [f"Y{k}"], [f"X{k}"]))
        else:
            graph_nodes.append(helper.make_node("Transpose", [f"Y{k}"], [f"T{k}"], perm=[0, 2, 1, 3]))
            graph_nodes.append(helper.make_node("Reshape", [f"T{k}", constant(f"shape{k}", np.array([0, 0, -1]))],
                                                [f"X{k}"]))
        x = f"X{k}"
    graph_nodes.append(helper.make_node("Identity", [x], ["out"]))
    graph_nodes.append(helper.make_node("Concat", finals, ["h_n"], axis=0))
    graph = helper.make_graph(graph_nodes, "hand_built", graph_inputs,
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [steps, batch, "DH"]),
                               helper.make_tensor_value_info("h_n", TensorProto.FLOAT, ["LD", batch, hidden])],
                              initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


HAND_BUILT = {
    "RNN": ("RNN", {}, {}),
    "RNN-relu": ("RNN", {"activations": ["Relu"]}, {}),
    "RNN-relu-bi": ("RNN", {"activations": ["Relu", "Relu"], "direction": "bidirectional"}, {}),
    "LSTM": ("LSTM", {}, {}),
    "LSTM-bi-explicit": ("LSTM", {"direction": "bidirectional", "activations": ["Sigmoid", "Tanh", "Tanh"] * 2,
                                  "input_forget": 0}, {}),
    "LSTM-zero-P": ("LSTM", {}, {"P": np.zeros((1, 3 * H), np.float32)}),
    "GRU": ("GRU", {"linear_before_reset": 1}, {}),
    "GRU-bi-no-bias": ("GRU", {"linear_before_reset": 1, "direction": "bidirectional"}, {"bias": False}),
}


@pytest.mark.parametrize("constants", [False, True], ids=["initializers", "Constant_nodes"])
@pytest.mark.parametrize("stack", [1, 2], ids=["1node", "2nodes"])
@pytest.mark.parametrize("kind", list(HAND_BUILT))
def test_hand_built_graphs_give_ort_outputs(onnx, ort, kind, stack, constants):
    op, attributes, extra = HAND_BUILT[kind]
    link = "transpose" if stack == 2 and kind == "LSTM" else "squeeze"  # both links a one-direction Y may take
    model = hand_built(onnx, [(op, attributes, extra)] * stack, constants=constants, link=link)
    onnx.checker.check_model(model)
    x = np.random.default_rng(16).standard_normal((T, N, F)).astype(np.float32)
    out, h_n = session(ort, model.SerializeToString()).run(None, {"X": x})
    layer = RNN.from_onnx(model)
    assert layer.num_layers == stack
    assert layer.bidirectional == (attributes.get("direction") == "bidirectional")
    assert layer.cell == ("relu" if "relu" in kind else op.lower() if op != "RNN" else "tanh")
    y, h = layer.forward(x, training=False)
    assert_close(out, y, "Y")
    assert_close(h_n, states_tuple(h)[0], "Y_h")


REFUSALS = {
    "RNN-reverse": ("RNN", {"direction": "reverse"}, {}, "direction='reverse'"),
    "RNN-sigmoid": ("RNN", {"activations": ["Sigmoid"]}, {}, r"activations=\['Sigmoid'\]"),
    "RNN-mixed-activations": ("RNN", {"activations": ["Tanh", "Relu"], "direction": "bidirectional"}, {},
                              r"activations=\['Tanh', 'Relu'\]"),
    "LSTM-activations": ("LSTM", {"activations": ["Sigmoid", "Tanh", "Relu"]}, {}, "activations="),
    "GRU-activations": ("GRU", {"linear_before_reset": 1, "activations": ["HardSigmoid", "Tanh"]}, {},
                        "activations="),
    "LSTM-clip": ("LSTM", {"clip": 3.0}, {}, "clip=3.0"),
    "GRU-clip": ("GRU", {"linear_before_reset": 1, "clip": 1.5}, {}, "clip=1.5"),
    "LSTM-input_forget": ("LSTM", {"input_forget": 1}, {}, "input_forget=1"),
    "GRU-linear_before_reset": ("GRU", {"linear_before_reset": 0}, {}, "linear_before_reset=0"),
    "GRU-linear_before_reset-default": ("GRU", {}, {}, "linear_before_reset=0"),
    "LSTM-peepholes": ("LSTM", {}, {"P": np.ones((1, 3 * H), np.float32)}, "peepholes"),
    "RNN-layout": ("RNN", {"layout": 1}, {}, "layout=1"),
    "LSTM-computed-W": ("LSTM", {}, {"W": "W_input"}, "input W .*computed in the graph"),
}


@pytest.mark.parametrize(("op", "attributes", "extra", "message"), list(REFUSALS.values()), ids=list(REFUSALS))
def test_refusals(onnx, op, attributes, extra, message):
    model = hand_built(onnx, [(op, attributes, extra)])
    with pytest.raises(ValueError, match=message) as info:
        RNN.from_onnx(model)
    assert "node 'node0'" in str(info.value)  # the message names the node


def test_refused_stacks(onnx):
    lstm, gru = ("LSTM", {}, {}), ("GRU", {"linear_before_reset": 1}, {})
    with pytest.raises(ValueError, match="LSTM node 'node1' is an LSTM .* and GRU node 'node0' a GRU"):
        RNN.from_onnx(hand_built(onnx, [gru, lstm]))
    with pytest.raises(ValueError, match="one number of directions"):
        RNN.from_onnx(hand_built(onnx, [lstm, ("LSTM", {"direction": "bidirectional"}, {})], link="transpose"))
    with pytest.raises(ValueError, match=r"reads the Y of node 'node0' through nothing \(Y as is\)"):
        RNN.from_onnx(hand_built(onnx, [lstm, lstm], link="none"))

    # two nodes reading the graph's X: two stacks
    model = hand_built(onnx, [lstm])
    second = onnx.helper.make_node("LSTM", ["X", "W0", "R0", "B0"], ["Y9", "Y_h9"], name="other", hidden_size=H)
    model.graph.node.append(second)
    with pytest.raises(ValueError, match="2 RNN/LSTM/GRU nodes that form 2 separate stacks"):
        RNN.from_onnx(model)


def test_not_onnx(onnx, tmp_path):
    for content in (b"not an onnx file at all\n", b"\x00\x01\x02garbage" * 10):
        (tmp_path / "bad.onnx").write_bytes(content)
        with pytest.raises(ValueError, match="bad.onnx' is not an ONNX model"):
            RNN.from_onnx(tmp_path / "bad.onnx")
    (tmp_path / "empty.onnx").write_bytes(b"")
    with pytest.raises(ValueError, match="empty.onnx' is not an ONNX model"):
        RNN.from_onnx(tmp_path / "empty.onnx")
    with pytest.raises(ValueError, match="bytes.*not an ONNX model"):
        RNN.from_onnx(b"\xff\xff\xff")
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        RNN.from_onnx(tmp_path / "missing.onnx")
    with pytest.raises(TypeError, match="path to an .onnx file"):
        RNN.from_onnx(42)
    dense_only = onnx.helper.make_model(onnx.helper.make_graph(
        [onnx.helper.make_node("Relu", ["X"], ["Y"])], "g",
        [onnx.helper.make_tensor_value_info("X", onnx.TensorProto.FLOAT, [1])],
        [onnx.helper.make_tensor_value_info("Y", onnx.TensorProto.FLOAT, [1])]))
    with pytest.raises(ValueError, match=r"no RNN, LSTM or GRU node.*operators: Relu"):
        RNN.from_onnx(dense_only)


def test_from_onnx_options_are_checked(onnx, tmp_path):
    RNN(F, H).to_onnx(tmp_path / "l.onnx")
    with pytest.raises(ValueError, match="dtype"):
        RNN.from_onnx(tmp_path / "l.onnx", dtype="int8")
    with pytest.raises(ValueError, match="backend"):
        RNN.from_onnx(tmp_path / "l.onnx", backend="cuda")
    with pytest.raises(TypeError, match="batch_first"):
        RNN.from_onnx(tmp_path / "l.onnx", batch_first="yes")
    with pytest.raises(TypeError, match="unexpected keyword"):
        RNN.from_onnx(tmp_path / "l.onnx", cell="lstm")


TORCH_MODULES = {
    "LSTM-2bi": lambda nn: nn.LSTM(F, H, num_layers=2, bidirectional=True),
    "GRU-2": lambda nn: nn.GRU(F, H, num_layers=2),
    "RNN-relu-batch_first": lambda nn: nn.RNN(F, H, nonlinearity="relu", batch_first=True),
    "RNN-tanh-2bi": lambda nn: nn.RNN(F, H, num_layers=2, bidirectional=True),
}


@pytest.mark.parametrize("kind", list(TORCH_MODULES))
def test_torch_onnx_export(onnx, kind):
    """torch.onnx.export's graphs (the TorchScript exporter: the default one needs onnxscript)."""
    torch = pytest.importorskip("torch", reason="torch is not installed")
    module = TORCH_MODULES[kind](torch.nn).eval()
    x = torch.randn((N, T, F) if module.batch_first else (T, N, F))
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's deprecation and batch-size notes
            torch.onnx.export(module, (x,), buffer, dynamo=False)
    except Exception as exc:  # noqa: BLE001 (whatever keeps torch from exporting here: skip, saying what)
        pytest.skip(f"torch.onnx.export does not work here: {type(exc).__name__}: {exc}")
    layer = RNN.from_onnx(buffer.getvalue(), batch_first=module.batch_first)
    state = {name: value.detach().numpy() for name, value in module.state_dict().items()}
    assert list(layer.params) == list(state)
    for name, array in state.items():
        np.testing.assert_array_equal(layer.params[name], array, err_msg=name)
    with torch.no_grad():
        want, _ = module(x)
    assert_close(layer.forward(x.numpy(), training=False)[0], want.numpy(), "y")


# -- files, the command line, the optional dependency -------------------------------------------------

def test_write_is_atomic(onnx, tmp_path, monkeypatch):
    from rnnkit import _onnx

    path = tmp_path / "layer.onnx"
    path.write_bytes(b"the previous file")

    def crash(*args):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(_onnx.os, "fsync", crash)
    with pytest.raises(OSError, match="simulated"):
        RNN(F, H).to_onnx(path)
    assert path.read_bytes() == b"the previous file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["layer.onnx"]  # no temporary file left
    monkeypatch.undo()
    RNN(F, H).to_onnx(path)
    assert path.read_bytes().startswith(b"\x08")  # a ModelProto now (field 1, ir_version)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["layer.onnx"]
    if os.name == "posix":  # created as open() creates files: 0o666 less the umask
        umask = os.umask(0)
        os.umask(umask)
        RNN(F, H).to_onnx(tmp_path / "new.onnx")
        assert (tmp_path / "new.onnx").stat().st_mode & 0o777 == 0o666 & ~umask
    with pytest.raises(FileNotFoundError):
        RNN(F, H).to_onnx(tmp_path / "no such directory" / "l.onnx")


def test_cli_export_round_trip(onnx, ort, tmp_path, capsys):
    rng = np.random.default_rng(17)
    model = Seq2Seq(F, H, O, cell="gru", bidirectional=True, seed=18)
    X = rng.standard_normal((12, T, F)).astype(np.float32)
    model.fit(X, rng.integers(0, O, (12, 4)), epochs=2, verbose=0)
    model.save(tmp_path / "model.npz")
    assert main(["export", str(tmp_path / "model.npz"), str(tmp_path / "model.onnx"), "--max-steps", "6"]) == 0
    assert "wrote" in capsys.readouterr().out
    checked(onnx, tmp_path / "model.onnx")
    np.testing.assert_array_equal(run(ort, tmp_path / "model.onnx", {"X": X})["labels"],
                                  model.predict(X, max_steps=6))
    assert main(["export", str(tmp_path / "model.npz"), str(tmp_path / "default.onnx")]) == 0
    np.testing.assert_array_equal(run(ort, tmp_path / "default.onnx", {"X": X})["labels"], model.predict(X))


def test_cli_export_float64_and_opset(ort, tmp_path, capsys):
    model = make_model(ManyToOne, "lstm", dtype="float64", task="regression")
    model.save(tmp_path / "m.npz")
    assert main(["export", str(tmp_path / "m.npz"), str(tmp_path / "m.onnx")]) == 1
    assert "float64" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "m.npz"), str(tmp_path / "m.onnx"), "--float32", "--opset", "15"]) == 0
    X = model_input(model, np.random.default_rng(19))
    assert_close(run(ort, tmp_path / "m.onnx", {"X": X})["outputs"], model.predict(X.astype(np.float64)), "outputs")


def test_cli_export_errors(onnx, tmp_path, capsys):
    (tmp_path / "bad.npz").write_bytes(b"not a model")
    assert main(["export", str(tmp_path / "bad.npz"), str(tmp_path / "out.onnx")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert "bad.npz" in err
    assert "Traceback" not in err
    assert main(["export", str(tmp_path / "missing.npz"), str(tmp_path / "out.onnx")]) == 1
    assert "missing.npz" in capsys.readouterr().err
    make_model(ManyToOne, "tanh").save(tmp_path / "m.npz")
    assert main(["export", str(tmp_path / "m.npz"), str(tmp_path / "out.onnx"), "--max-steps", "3"]) == 1
    assert "max_steps is for the decoders" in capsys.readouterr().err
    assert not (tmp_path / "out.onnx").exists()
    with pytest.raises(SystemExit) as info:  # argparse: a missing argument
        main(["export", str(tmp_path / "m.npz")])
    assert info.value.code == 2


def test_missing_onnx(tmp_path, monkeypatch, capsys):
    """Without the onnx package: a clear ImportError, and the command line says it and fails."""
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'rnnkit\[onnx\]'"):
        RNN(F, H).to_onnx(tmp_path / "l.onnx")
    with pytest.raises(ImportError, match=r"pip install 'rnnkit\[onnx\]'"):
        RNN.from_onnx(tmp_path / "l.onnx")
    model = make_model(ManyToOne, "tanh")
    with pytest.raises(ImportError, match=r"pip install 'rnnkit\[onnx\]'"):
        model.to_onnx(tmp_path / "m.onnx")
    model.save(tmp_path / "m.npz")
    assert main(["export", str(tmp_path / "m.npz"), str(tmp_path / "m.onnx")]) == 1
    assert "pip install 'rnnkit[onnx]'" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()


def test_import_rnnkit_does_not_import_onnx():
    code = "import sys, rnnkit; rnnkit.RNN(2, 3); assert 'onnx' not in sys.modules, 'onnx was imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
