"""Adapters for the peers: PyTorch, Keras (TensorFlow) and ONNX Runtime, each given rnnkit's weights.

Every peer is imported only when it is asked for, and set to the benchmark's thread count.
Layouts: torch's is rnnkit's (time-major, gate rows [i|f|g|o] for LSTM and [r|z|n] for GRU).  Keras
is batch-first and stores transposed weights; its GRU gate order is [z|r|h] with a (2, 3H) bias when
reset_after=True (torch's GRU).  ONNX's LSTM order is [i|o|f|c], its GRU order [z|r|h]; its GRU with
linear_before_reset=1 is torch's GRU.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile

import numpy as np

from .problems import Problem
from .runner import Runner, Unavailable, reorder_gates

# --------------------------------------------------------------------------------------------------
# PyTorch


def torch_adapter(p: Problem) -> Runner:
    try:
        import torch
    except ImportError as exc:
        raise Unavailable(f"torch not importable: {exc}") from None
    torch.set_num_threads(p.threads)
    case = p.case
    if p.cell in ("tanh", "relu"):
        module = torch.nn.RNN(case.inputs, case.hidden, nonlinearity=p.cell)
    else:
        module = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[p.cell](case.inputs, case.hidden)
    parameters = [module.weight_ih_l0, module.weight_hh_l0, module.bias_ih_l0, module.bias_hh_l0]
    with torch.no_grad():
        for parameter, value in zip(parameters, (p.w_ih, p.w_hh, p.b_ih, p.b_hh)):
            parameter.copy_(torch.from_numpy(value))
    x = torch.from_numpy(p.x)
    h0 = torch.from_numpy(p.h0)[None]
    state = (h0, torch.from_numpy(p.c0)[None]) if p.cell == "lstm" else h0
    x_leaf = x.clone().requires_grad_(True)
    dy = torch.from_numpy(p.dy)

    def forward():
        with torch.no_grad():
            return module(x, state)[0]

    def train():
        y = module(x_leaf, state)[0]
        return torch.autograd.grad(y, [x_leaf, *parameters], grad_outputs=dy)

    def gradients(result):
        return dict(zip(("dx", "dw_ih", "dw_hh", "db_ih", "db_hh"), (g.numpy() for g in result)))

    return Runner(forward, lambda y: y.numpy(), train, gradients, lambda: torch.set_num_threads(p.threads))


def _torch(threads: int):
    try:
        import torch
    except ImportError as exc:
        raise Unavailable(f"torch not importable: {exc}") from None
    torch.set_num_threads(threads)
    return torch


def _torch_module(torch, p: Problem, reverse: Problem | None = None):
    """torch.nn.RNN / LSTM / GRU with the problem's weights (and ``reverse``'s as the reverse direction)."""
    case = p.case
    options = {"bidirectional": reverse is not None}
    if p.cell in ("tanh", "relu"):
        module = torch.nn.RNN(case.inputs, case.hidden, nonlinearity=p.cell, **options)
    else:
        module = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[p.cell](case.inputs, case.hidden, **options)
    directions = [("", p)] + ([("_reverse", reverse)] if reverse is not None else [])
    parameters = []
    with torch.no_grad():
        for suffix, q in directions:
            for name, value in zip(("weight_ih", "weight_hh", "bias_ih", "bias_hh"), (q.w_ih, q.w_hh, q.b_ih, q.b_hh)):
                parameter = getattr(module, f"{name}_l0{suffix}")
                parameter.copy_(torch.from_numpy(value))
                parameters.append(parameter)
    return module, parameters


def _torch_state(torch, problems):
    """The (D, B, H) initial state(s) of torch's module from each direction's problem."""
    h0 = torch.from_numpy(np.stack([q.h0 for q in problems]))
    return (h0, torch.from_numpy(np.stack([q.c0 for q in problems]))) if problems[0].cell == "lstm" else h0


def torch_packed_adapter(p: Problem, lengths: np.ndarray) -> Runner:
    """The ragged case's torch peer: pack_padded_sequence(x, lengths, enforce_sorted=False) into the
    module, pad_packed_sequence back to (T, B, H), and the backward of sum(y·dy) on that padded output."""
    torch = _torch(p.threads)
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    module, parameters = _torch_module(torch, p)
    state = _torch_state(torch, [p])
    x = torch.from_numpy(p.x)
    x_leaf = x.clone().requires_grad_(True)
    dy = torch.from_numpy(p.dy)
    lengths = torch.from_numpy(np.asarray(lengths, np.int64))  # on the CPU, as pack_padded_sequence wants
    steps = p.case.steps

    def run(inputs):
        packed = pack_padded_sequence(inputs, lengths, enforce_sorted=False)
        return pad_packed_sequence(module(packed, state)[0], total_length=steps)[0]

    def forward():
        with torch.no_grad():
            return run(x)

    def train():
        loss = (run(x_leaf) * dy).sum()
        return torch.autograd.grad(loss, [x_leaf, *parameters])

    def gradients(result):
        return dict(zip(("dx", "dw_ih", "dw_hh", "db_ih", "db_hh"), (g.numpy() for g in result)))

    return Runner(forward, lambda y: y.numpy(), train, gradients, lambda: torch.set_num_threads(p.threads))


def torch_cell_adapter(p: Problem) -> Runner:
    """The per-call case's torch reference: one step of torch.nn.RNNCell (vanilla cells), under no_grad."""
    torch = _torch(p.threads)
    if p.cell not in ("tanh", "relu"):
        raise Unavailable(f"the per-call case runs torch.nn.RNNCell, for tanh and relu, not {p.cell}")
    module = torch.nn.RNNCell(p.case.inputs, p.case.hidden, nonlinearity=p.cell)
    with torch.no_grad():
        for name, value in zip(("weight_ih", "weight_hh", "bias_ih", "bias_hh"), (p.w_ih, p.w_hh, p.b_ih, p.b_hh)):
            getattr(module, name).copy_(torch.from_numpy(value))
    x, h0 = torch.from_numpy(p.x[0]), torch.from_numpy(p.h0)

    def forward():
        with torch.no_grad():
            return module(x, h0)

    return Runner(forward, lambda h: h.numpy()[None], enter=lambda: torch.set_num_threads(p.threads))


def torch_bidirectional_adapter(p: Problem, reverse: Problem) -> Runner:
    """torch's bidirectional module (forward direction p, reverse direction ``reverse``), under no_grad."""
    torch = _torch(p.threads)
    module, _ = _torch_module(torch, p, reverse)
    state = _torch_state(torch, [p, reverse])
    x = torch.from_numpy(p.x)

    def forward():
        with torch.no_grad():
            return module(x, state)[0]

    return Runner(forward, lambda y: y.numpy(), enter=lambda: torch.set_num_threads(p.threads))


# --------------------------------------------------------------------------------------------------
# Keras 3 on TensorFlow

KERAS_GRU_ORDER = (1, 0, 2)  # keras [z | r | h] from torch [r | z | n]; the permutation is its own inverse
_tensorflow_threads: list = []  # the thread count TensorFlow was configured with (it can be set once)


@contextlib.contextmanager
def _quiet_stderr():
    """Send the process's stderr (file descriptor 2, where C++ logs go) to a file; replay it on error."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as log:
        os.dup2(log.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            log.seek(0)
            sys.stderr.write(log.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _tensorflow(threads: int):
    """Import TensorFlow and Keras with TF's intra- and inter-op thread pools at ``threads``."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ log; its errors still raise in Python
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    try:
        with _quiet_stderr():  # the import prints a banner from C++ that no setting turns off
            import keras
            import tensorflow as tf
    except ImportError as exc:
        raise Unavailable(f"tensorflow/keras not importable: {exc}") from None
    if keras.backend.backend() != "tensorflow":
        raise Unavailable(f"Keras uses the {keras.backend.backend()} backend; set KERAS_BACKEND=tensorflow")
    if not _tensorflow_threads:
        try:  # only possible before TensorFlow's runtime starts
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:
            pass
        _tensorflow_threads.append(tf.config.threading.get_intra_op_parallelism_threads())
    if _tensorflow_threads[0] not in (threads, 0):
        raise Unavailable(f"TensorFlow was already started with {_tensorflow_threads[0]} threads, not {threads}")
    return tf, keras


def keras_adapter(p: Problem) -> Runner:
    tf, keras = _tensorflow(p.threads)
    steps, batch, inputs, hidden = p.case.steps, p.case.batch, p.case.inputs, p.case.hidden
    w_ih, w_hh, b_ih, b_hh = p.w_ih, p.w_hh, p.b_ih, p.b_hh
    if p.cell == "gru":
        w_ih, w_hh, b_ih, b_hh = (reorder_gates(a, KERAS_GRU_ORDER, hidden) for a in (w_ih, w_hh, b_ih, b_hh))
        layer = keras.layers.GRU(hidden, return_sequences=True, reset_after=True)
        bias = np.stack([b_ih, b_hh])
    elif p.cell == "lstm":
        layer = keras.layers.LSTM(hidden, return_sequences=True)
        bias = b_ih + b_hh
    else:
        layer = keras.layers.SimpleRNN(hidden, activation=p.cell, return_sequences=True)
        bias = b_ih + b_hh
    layer.build((batch, steps, inputs))
    layer.set_weights([w_ih.T, w_hh.T, bias])
    x = tf.constant(p.x.transpose(1, 0, 2))  # Keras is batch-first
    state = [tf.constant(p.h0)] + ([tf.constant(p.c0)] if p.cell == "lstm" else [])
    dy = tf.constant(p.dy.transpose(1, 0, 2))
    weights = layer.trainable_weights  # kernel, recurrent_kernel, bias

    # tf.function without XLA: what Keras 3 compiles a model to on a CPU-only machine (jit_compile="auto").
    @tf.function
    def forward():
        return layer(x, initial_state=state)

    @tf.function
    def train():
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, initial_state=state)
        return tape.gradient(y, [x, *weights], output_gradients=dy)

    def gradients(result):
        dx, dkernel, drecurrent, dbias = (np.asarray(g) for g in result)
        grads = {"dx": dx.transpose(1, 0, 2), "dw_ih": dkernel.T, "dw_hh": drecurrent.T}
        if p.cell == "gru":
            grads["dw_ih"], grads["dw_hh"] = (reorder_gates(grads[k], KERAS_GRU_ORDER, hidden) for k in ("dw_ih", "dw_hh"))
            grads["db_ih"], grads["db_hh"] = (reorder_gates(d, KERAS_GRU_ORDER, hidden) for d in dbias)
        else:  # one bias b = b_ih + b_hh: its gradient is both
            grads["db_ih"] = grads["db_hh"] = dbias
        return grads

    return Runner(forward, lambda y: np.asarray(y).transpose(1, 0, 2), train, gradients)


# --------------------------------------------------------------------------------------------------
# ONNX Runtime (forward only: it is an inference engine)

ONNX_OPERATORS = {"tanh": "RNN", "relu": "RNN", "lstm": "LSTM", "gru": "GRU"}
ONNX_GATE_ORDER = {"tanh": (0,), "relu": (0,), "lstm": (0, 3, 1, 2), "gru": (1, 0, 2)}  # from torch's
ONNX_OPSET = 14


def onnx_model(p: Problem):
    """A one-node ONNX model of the cell with the problem's weights as initializers."""
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError as exc:
        raise Unavailable(f"onnx not importable: {exc}") from None
    steps, batch, inputs, hidden = p.case.steps, p.case.batch, p.case.inputs, p.case.hidden
    order = ONNX_GATE_ORDER[p.cell]
    weights = {
        "W": reorder_gates(p.w_ih, order, hidden)[None],  # (1, G·H, I)
        "R": reorder_gates(p.w_hh, order, hidden)[None],  # (1, G·H, H)
        "B": np.concatenate([reorder_gates(p.b_ih, order, hidden), reorder_gates(p.b_hh, order, hidden)])[None],  # (1, 2·G·H)
    }
    node_inputs = ["X", "W", "R", "B", "", "initial_h"] + (["initial_c"] if p.cell == "lstm" else [])
    attributes = {"hidden_size": hidden}
    if p.cell in ("tanh", "relu"):
        attributes["activations"] = [p.cell.capitalize()]
    if p.cell == "gru":
        attributes["linear_before_reset"] = 1
    node = helper.make_node(ONNX_OPERATORS[p.cell], node_inputs, ["Y"], **attributes)
    state_inputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, batch, hidden]) for name in node_inputs[5:]]
    graph = helper.make_graph(
        [node], f"rnnkit_bench_{p.cell}",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [steps, batch, inputs]), *state_inputs],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [steps, 1, batch, hidden])],
        initializer=[numpy_helper.from_array(np.ascontiguousarray(v, np.float32), name) for name, v in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)])
    model.ir_version = 7  # the IR version of opset 14; newer onnx packages write one older runtimes refuse
    onnx.checker.check_model(model)
    return model


def onnx_adapter(p: Problem) -> Runner:
    try:
        import onnxruntime
    except ImportError as exc:
        raise Unavailable(f"onnxruntime not importable: {exc}") from None
    model = onnx_model(p)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = p.threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only
    session = onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    feeds = {"X": p.x, "initial_h": p.h0[None]}
    if p.cell == "lstm":
        feeds["initial_c"] = p.c0[None]

    def forward():
        return session.run(["Y"], feeds)[0]

    return Runner(forward, lambda y: y[:, 0])
