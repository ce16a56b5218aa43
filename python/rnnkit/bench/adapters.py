"""What the benchmark runs: one small adapter per (cell, implementation), gathered in ``ADAPTERS``.

An adapter takes a ``Problem`` (torch-layout weights, float32) and returns a ``Runner``: the calls to
time — a forward pass, and forward + backward where the implementation has one — and the functions
that read their results back as NumPy arrays in rnnkit's layout, so the harness can check them against
the oracle before it times anything.  An adapter that cannot run raises ``Unavailable`` with the reason
("not installed", "not available in this build"); the harness reports it and goes on.

Forward + backward means the gradients of sum(y * dy) — dh_n (and dc_n) zero — with respect to x and
the weights.  Gradients are returned as a dict with any of dx, dw_ih, dw_hh, db_ih, db_hh, in torch's
layout; the harness compares the keys the oracle also has.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from typing import Callable

from . import peers
from .problems import Problem
from .runner import Runner, Unavailable, gradients_from_tuple


@dataclass(frozen=True)
class Implementation:
    label: str     # column heading
    module: str    # importable module that must exist ("" for always)
    about: str     # one line for the report


IMPLEMENTATIONS = {
    "rnnkit": Implementation("rnnkit", "", "rnnkit's C++ kernels (rnn_forward / rnn_backward, lstm_*, gru_*)"),
    "rnnkit-1t": Implementation("rnnkit 1T", "", "the same on 1 thread: its bracket is the thread scaling"),
    "numpy": Implementation("NumPy ref", "", "rnnkit.reference, the NumPy oracle: a loop over time, one matmul pair per step"),
    "torch": Implementation("torch", "torch", "torch.nn.RNN / LSTM / GRU; forward under no_grad, backward by autograd"),
    "keras": Implementation("Keras", "tensorflow", "keras.layers.SimpleRNN / LSTM / GRU (reset_after) in a tf.function "
                            "without XLA (what Keras 3 compiles to on a CPU), batch-first; backward by GradientTape"),
    "onnx": Implementation("ONNX RT", "onnxruntime", "ONNX Runtime's RNN / LSTM / GRU operator in a one-node model; forward only"),
    # the kernels-v2 cases' own variants (kernels_v2; not columns of the S1-S4 table)
    "rnnkit-padded": Implementation("rnnkit padded", "", "rnnkit on the same padded batch, without lengths"),
    "torch-padded": Implementation("torch padded", "torch", "torch.nn.RNN / LSTM / GRU on the padded batch"),
    "torch-packed": Implementation("torch packed", "torch", "pack_padded_sequence(enforce_sorted=False), the module, "
                                   "pad_packed_sequence; backward of a loss on the unpacked output"),
    "rnnkit-after-matmul": Implementation("after matmul", "", "each call right after a NumPy 512×512 float32 matmul "
                                          "(OpenBLAS on its default threads)"),
    "rnnkit-inference": Implementation("training=False", "", "rnnkit.rnn_forward(..., training=False): no cache"),
    "rnnkit-plan": Implementation("Plan", "", "rnnkit.Plan(...).forward(x, h0), timed from Python (its overhead included)"),
    "numpy-step": Implementation("NumPy step", "", "one step in NumPy: tanh(x·W_ihᵀ + h·W_hhᵀ + b), pre-transposed weights"),
    "torch-cell": Implementation("torch RNNCell", "torch", "one step of torch.nn.RNNCell under no_grad"),
    "rnnkit-1dir": Implementation("one direction", "", "rnnkit.RNN(bidirectional=False).forward(training=False)"),
    "torch-bidir": Implementation("torch bidir", "torch", "torch.nn.RNN / LSTM / GRU(bidirectional=True) under no_grad"),
}
# The order of the columns; the oracle is the first of ORACLES that the cell has.
ORDER = ("rnnkit", "rnnkit-1t", "numpy", "torch", "keras", "onnx")
ORACLES = ("numpy", "torch")


def missing_module(name: str) -> str | None:
    """Why an implementation cannot run at all here (its library is not importable), else None."""
    module = IMPLEMENTATIONS[name].module
    if module and importlib.util.find_spec(module) is None:
        return f"{module} not installed"
    if name == "onnx" and importlib.util.find_spec("onnx") is None:
        return "onnx not installed"
    return None


# --------------------------------------------------------------------------------------------------
# rnnkit and its NumPy reference share an API, so one adapter per cell serves both.


def _require(module, name: str, where: str):
    function = getattr(module, name, None)
    if function is None:
        raise Unavailable(f"{where}.{name} not available in this build")
    return function


def _set_threads(threads: int | None) -> Callable[[], None]:
    if threads is None:
        return lambda: None
    import rnnkit

    return functools.partial(rnnkit.set_num_threads, threads)


def _module(backend: str):
    import rnnkit

    return (rnnkit, "rnnkit") if backend == "rnnkit" else (rnnkit.reference, "rnnkit.reference")


def rnnkit_vanilla(p: Problem, backend: str = "rnnkit", threads: int | None = None) -> Runner:
    module, where = _module(backend)
    rnn_forward, rnn_backward = _require(module, "rnn_forward", where), _require(module, "rnn_backward", where)

    def forward():
        return rnn_forward(p.x, p.h0, p.w_ih, p.w_hh, p.b_ih, p.b_hh, nonlinearity=p.nonlinearity)

    def train():
        _, _, cache = forward()
        return rnn_backward(cache, p.dy, None)

    return Runner(forward, lambda r: r[0], train, gradients_from_tuple, _set_threads(threads))


def rnnkit_lstm(p: Problem, backend: str = "rnnkit", threads: int | None = None) -> Runner:
    module, where = _module(backend)
    lstm_forward, lstm_backward = _require(module, "lstm_forward", where), _require(module, "lstm_backward", where)

    def forward():
        return lstm_forward(p.x, p.h0, p.c0, p.w_ih, p.w_hh, p.b_ih, p.b_hh)  # (y, h_n, c_n, cache)

    def train():
        *_, cache = forward()
        return lstm_backward(cache, p.dy, None, None)

    return Runner(forward, lambda r: r[0], train, gradients_from_tuple, _set_threads(threads))


def rnnkit_gru(p: Problem, backend: str = "rnnkit", threads: int | None = None) -> Runner:
    module, where = _module(backend)
    gru_forward, gru_backward = _require(module, "gru_forward", where), _require(module, "gru_backward", where)

    def forward():
        return gru_forward(p.x, p.h0, p.w_ih, p.w_hh, p.b_ih, p.b_hh)  # (y, h_n, cache)

    def train():
        _, _, cache = forward()
        return gru_backward(cache, p.dy, None)

    return Runner(forward, lambda r: r[0], train, gradients_from_tuple, _set_threads(threads))


def _row(rnnkit_adapter) -> dict:
    """One cell's adapters: rnnkit's and the reference's are per cell; the peers' read the cell from the problem."""
    return {
        "rnnkit": lambda p: rnnkit_adapter(p, "rnnkit", p.threads),
        "rnnkit-1t": lambda p: rnnkit_adapter(p, "rnnkit", 1),
        "numpy": lambda p: rnnkit_adapter(p, "numpy"),
        "torch": peers.torch_adapter,
        "keras": peers.keras_adapter,
        "onnx": peers.onnx_adapter,
    }


# ADAPTERS[cell][implementation](problem) -> Runner
ADAPTERS: dict[str, dict[str, Callable[[Problem], Runner]]] = {
    "tanh": _row(rnnkit_vanilla),
    "relu": _row(rnnkit_vanilla),
    "lstm": _row(rnnkit_lstm),
    "gru": _row(rnnkit_gru),
}


def make_runner(name: str, cell: str, problem: Problem) -> Runner:
    """The runner, or Unavailable with the reason it cannot run."""
    reason = missing_module(name)
    if reason:
        raise Unavailable(reason)
    return ADAPTERS[cell][name](problem)
