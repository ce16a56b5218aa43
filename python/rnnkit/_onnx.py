"""ONNX interop: ``RNN.to_onnx``, ``Model.to_onnx`` (export) and ``RNN.from_onnx`` (import).

Needs the ``onnx`` package (``pip install 'rnnkit[onnx]'``), imported only when one of these is called;
``import rnnkit`` never imports it.  The files are meant for ONNX Runtime (1.16 and newer)::

    model.to_onnx("model.onnx")                      # or: python -m rnnkit export model.npz model.onnx
    session = onnxruntime.InferenceSession("model.onnx")
    labels = session.run(["labels"], {"X": X.astype(np.float32), "lengths": lengths})[0]  # == predict

Legend: T timesteps, B (N for the models) batch, I input features, H hidden units, G gates (1 RNN,
4 LSTM, 3 GRU), L layers, D directions (2 when bidirectional), O the head's outputs.

Mapping (one ONNX node per layer of the stack, ``direction="forward"`` or ``"bidirectional"``)
--------------------------------------------------------------------------------------------------

==========  =============  =====================================================================
rnnkit      ONNX operator  what changes
==========  =============  =====================================================================
"tanh"      RNN            (activations default, Tanh)
"relu"      RNN            ``activations=["Relu"] * D``
"lstm"      LSTM           gate blocks: torch's [i f g o] are ONNX's [i o f c]
"gru"       GRU            gate blocks: torch's [r z n] are ONNX's [z r h]; ``linear_before_reset=1``
                           (torch's GRU applies the reset gate after the recurrent product)
==========  =============  =====================================================================

Per node: ``W`` (D, G·H, I) stacks weight_ih_l{k} and weight_ih_l{k}_reverse, ``R`` (D, G·H, H) the
weight_hh, ``B`` (D, 2·G·H) is [bias_ih | bias_hh] per direction, all in ONNX's gate order.  ONNX's
``Y`` (T, D, B, H) becomes the next node's X (T, B, D·H) by ``Squeeze(axes=[1])`` (one direction) or
``Transpose(perm=[0, 2, 1, 3])`` + ``Reshape`` (two; [forward | reverse] as rnnkit's y), as torch.onnx
writes it too; ``Y_h`` / ``Y_c`` (D, B, H) of every node, concatenated, are h_n / c_n.  ``lengths``
become ``sequence_lens`` (int32): ONNX Runtime then runs each row's real steps only, the reverse
direction from the row's last real step, gives each row's last real state in ``Y_h`` and writes 0 to
``Y`` at the padding (the tests check it) — what rnnkit computes; only for a row of length 0 it gives
0 in ``Y_h`` / ``Y_c`` where rnnkit gives h0 / c0, so the layer's graph puts h0 / c0 there.

Export: the layer (``export_layer``)
------------------------------------

Inputs: ``x`` (T, B, I) float32, (B, T, I) for a ``batch_first`` layer (batched only); ``lengths``
(B,) int64, each row's real steps in [0, T]; ``h0`` (L·D, B, H) float32 and, for the LSTM, ``c0``.
``lengths``, ``h0`` and ``c0`` are optional: they are initializers that a feed overrides (ONNX
Runtime lists them in ``session.get_overridable_initializers()``, not ``get_inputs()``, and logs a
warning that they are not folded as constants, which is intended).  Their defaults: ``lengths`` [-1]
(a negative length means all T steps), ``h0`` / ``c0`` zeros (L·D, 1, H), broadcast to the batch.
Outputs: ``y`` (x's layout, D·H features, 0 at the padding), ``h_n`` (L·D, B, H) and for the LSTM
``c_n``: ``layer.forward(x, h0, lengths=lengths)``'s results.

Export: the models (``export_model``)
-------------------------------------

Inputs, batch-first as the models' API: ``X`` float32 — (N, T, F) for ManyToOne, ManyToMany and
Seq2Seq, (N, F) for OneToOne and OneToMany — or with ``vocab_size`` int64 token ids (N, T) / (N,),
embedded by a Gather; the sequence models also take ``lengths`` (N,) int64 in [1, T], optional as the
layer's (default: every row has all T steps).  Outputs: ``outputs`` float32, the head's logits
(classification) or values (regression, always with its last axis O, which predict drops when
O == 1), and for classification ``labels`` int64, their ArgMax: what ``predict`` returns.

- OneToOne (N, O) and ManyToOne (N, O): the top layer's last real state (bidirectional: the forward
  direction's beside the reverse direction's state after step 0) through the head (MatMul + Add).
- ManyToMany (N, T, O): the head on every step; at the padding (t >= lengths[n]) ``outputs`` is 0 and
  ``labels`` -1.
- OneToMany and Seq2Seq (N, max_steps, O): greedy generation in an ONNX ``Loop`` of ``max_steps``
  iterations (export option, default ``model.steps``, predict's default).  The decoder starts from
  h0 = tanh(Dense(X)) (OneToMany) or from the encoder's final states, layer by layer (Seq2Seq; a
  bidirectional encoder's two directions summed); its first input is zeros, each next input the
  one-hot ArgMax of the outputs (classification) or the outputs themselves (regression).  Every
  decoder layer's states are carried between iterations.  With ``end_token``, a row's ``labels`` after
  its end token (which is kept) are -1 and its ``outputs`` 0, as rnnkit's own step-by-step predict
  gives them before it cuts each sequence (predict returns row[:first end token or -1]); the Loop
  always runs ``max_steps`` iterations, so the shapes do not depend on the data.

Options of both: ``opset`` (default 17; from 14 up to what the installed onnx knows — ONNX Runtime
1.16 runs up to 19) and ``dtype``.  ONNX
Runtime has no float64 kernels for RNN, LSTM and GRU (it refuses such a file), so a float64 layer or
model is refused unless ``dtype="float32"`` is given: the weights are then written as float32 and the
graph computes in float32.  Files are written atomically (a temporary file in the same directory,
fsync'ed, then renamed over the target): a crash never leaves a half-written file.

Import (``layer_from_onnx``)
----------------------------

The RNN / LSTM / GRU nodes of the graph's main graph (not of Loop / If / Scan bodies) must form one
stack: one node, or a chain in which each node's X is the previous node's Y (mapped as above); their
weights must be initializers or Constant nodes.  The inverse gate mappings give torch's layout.
``sequence_lens``, ``initial_h`` and ``initial_c`` are run-time inputs, not weights: the layer takes
them as forward's ``lengths`` and ``h0``.  Refused (ValueError naming the attribute and its value):
``direction="reverse"`` (rnnkit's layer runs forward, or both ways), activations other than the
defaults (RNN: Tanh, or Relu -> cell="relu"; LSTM: Sigmoid, Tanh, Tanh; GRU: Sigmoid, Tanh), ``clip``,
``input_forget=1``, a GRU with ``linear_before_reset=0``, LSTM peepholes (a non-zero ``P`` input),
``layout=1``, and nodes that differ in cell, size or directions.
"""

from __future__ import annotations

import numbers
import os
from dataclasses import dataclass

import numpy as np

from . import _validation as v
from ._core import __version__
from ._model import atomic_write
from .layers import check_backend, check_bool, check_dtype, check_int
from .models import ManyToMany, ManyToOne, OneToMany, OneToOne, Seq2Seq

DEFAULT_OPSET = 17
MIN_OPSET = 14  # RNN, LSTM and GRU as they are now (opset 14); every other operator used is older
OPERATORS = {"tanh": "RNN", "relu": "RNN", "lstm": "LSTM", "gru": "GRU"}
# ONNX's gate block j is torch's block TORCH_TO_ONNX[cell][j]
TORCH_TO_ONNX = {"tanh": (0,), "relu": (0,), "lstm": (0, 3, 1, 2), "gru": (1, 0, 2)}
ONNX_TO_TORCH = {cell: tuple(int(i) for i in np.argsort(order)) for cell, order in TORCH_TO_ONNX.items()}
DEFAULT_ACTIVATIONS = {"RNN": ("Tanh",), "LSTM": ("Sigmoid", "Tanh", "Tanh"), "GRU": ("Sigmoid", "Tanh")}
INSTALL = "pip install 'rnnkit[onnx]'"


def _require_onnx():
    try:
        import onnx
        from onnx import numpy_helper  # noqa: F401  (a submodule: imported for onnx.numpy_helper)
    except ImportError as exc:
        raise ImportError(f"ONNX export and import need the onnx package, which is not importable here ({exc}); "
                          f"install it with: {INSTALL}") from None
    return onnx


def _reorder(rows: np.ndarray, order: tuple) -> np.ndarray:
    """Gate blocks of ``rows`` (G·H along axis 0) taken in ``order``."""
    blocks = np.split(rows, len(order), axis=0)
    return np.concatenate([blocks[i] for i in order], axis=0)


def onnx_weights(layer, index: int, dtype) -> tuple:
    """W (D, G·H, I), R (D, G·H, H), B (D, 2·G·H) of layer ``index`` of an rnnkit.RNN, ONNX's layout."""
    order = TORCH_TO_ONNX[layer.cell]
    per_direction = [[_reorder(w, order) for w in layer._weights(index, d)] for d in range(layer.num_directions)]
    W = np.stack([w_ih for w_ih, _, _, _ in per_direction])
    R = np.stack([w_hh for _, w_hh, _, _ in per_direction])
    B = np.stack([np.concatenate([b_ih, b_hh]) for _, _, b_ih, b_hh in per_direction])
    return tuple(np.ascontiguousarray(a, dtype) for a in (W, R, B))


def torch_weights(cell: str, W: np.ndarray, R: np.ndarray, B: np.ndarray, direction: int) -> tuple:
    """(weight_ih, weight_hh, bias_ih, bias_hh) of one direction from ONNX's W, R, B (the inverse)."""
    order = ONNX_TO_TORCH[cell]
    rows = W.shape[1]
    return (_reorder(W[direction], order), _reorder(R[direction], order),
            _reorder(B[direction, :rows], order), _reorder(B[direction, rows:], order))


def _node_attributes(cell: str, directions: int) -> dict:
    attributes = {"direction": "bidirectional" if directions == 2 else "forward"}
    if cell == "relu":
        attributes["activations"] = ["Relu"] * directions
    if cell == "gru":
        attributes["linear_before_reset"] = 1
    return attributes


# ---------------------------------------------------------------------------------------------------
# export: building a graph

class _Graph:
    """The nodes of one ONNX graph being built.  A loop body (``body()``) shares the names and the
    initializers of the graph it is in: its nodes read the weights from the outer scope."""

    def __init__(self, onnx, dtype, shared=None):
        self.onnx, self.dtype = onnx, np.dtype(dtype)
        self.elem = onnx.helper.np_dtype_to_tensor_dtype(self.dtype)
        self.nodes: list = []
        self._shared = shared if shared is not None else {"names": set(), "initializers": [], "constants": {}}

    def body(self) -> _Graph:
        return _Graph(self.onnx, self.dtype, self._shared)

    @property
    def initializers(self) -> list:
        return self._shared["initializers"]

    def name(self, base: str) -> str:
        """A value name not used yet (``base`` itself if it is free)."""
        names = self._shared["names"]
        name, n = base, 1
        while name in names:
            name, n = f"{base}_{n}", n + 1
        names.add(name)
        return name

    def tensor(self, base: str, array) -> str:
        """An initializer holding ``array``; returns its name."""
        name = self.name(base)
        self.initializers.append(self.onnx.numpy_helper.from_array(np.array(array, order="C"), name))
        return name

    def weight(self, base: str, array) -> str:
        """A float initializer in the graph's dtype."""
        return self.tensor(base, np.asarray(array, self.dtype))

    def const(self, value, dtype=np.int64, *, scalar=False) -> str:
        """A small constant (a 1-D array, or a 0-d one with ``scalar``), made once and shared."""
        array = np.asarray(value, dtype)
        array = array.reshape(()) if scalar else array.reshape(-1)
        key = (array.dtype.str, array.shape, array.tobytes())
        constants = self._shared["constants"]
        if key not in constants:
            constants[key] = self.tensor("const", array)
        return constants[key]

    def op(self, op_type: str, inputs: list, *, outputs=1, name=None, **attributes):
        """Append a node; ``outputs`` is a count (fresh names) or a list of names.  Returns the output
        name (one output) or the list of names."""
        base = name or op_type.lower()
        if isinstance(outputs, int):
            outputs = [self.name(base if i == 0 else f"{base}_{i}") for i in range(outputs)]
        self.nodes.append(self.onnx.helper.make_node(op_type, list(inputs), list(outputs), name=outputs[0],
                                                     **attributes))
        return outputs[0] if len(outputs) == 1 else outputs

    # -- small pieces -------------------------------------------------------------------------------

    def dim(self, x: str, axis: int, *, scalar=False) -> str:
        """x.shape[axis] as an int64 (1,) tensor, or a 0-d one with ``scalar``."""
        return self.op("Gather", [self.op("Shape", [x]), self.const(axis, scalar=scalar)], axis=0)

    def squeeze(self, x: str, axis: int) -> str:
        return self.op("Squeeze", [x, self.const([axis])])

    def unsqueeze(self, x: str, axes) -> str:
        return self.op("Unsqueeze", [x, self.const(axes)])

    def transpose(self, x: str, perm) -> str:
        return self.op("Transpose", [x], perm=list(perm))

    def slice(self, x: str, axis: int, start: int, end: int) -> str:
        return self.op("Slice", [x, self.const([start]), self.const([end]), self.const([axis])])

    def dense(self, layer, x: str, name: str) -> str:
        """A Dense layer on the last axis of x: MatMul by weightᵀ, Add bias."""
        weight_t = self.weight(f"{name}.weight_t", layer.params["weight"].T)
        bias = self.weight(f"{name}.bias", layer.params["bias"])
        return self.op("Add", [self.op("MatMul", [x, weight_t]), bias], name=name)

    def value_info(self, name: str, elem, shape, doc: str = ""):
        return self.onnx.helper.make_tensor_value_info(name, elem, shape, doc_string=doc)

    def graph(self, name: str, inputs: list, outputs: list, doc: str = "", initializers=None):
        return self.onnx.helper.make_graph(self.nodes, name, inputs, outputs, initializer=initializers or [],
                                           doc_string=doc)


def _stack(g: _Graph, layer, x: str, sequence_lens: str, initial, name: str):
    """The nodes of an rnnkit.RNN's stack on x (T, B, I), time-major.

    ``sequence_lens``: an int32 (B,) value or "" (every row all T steps); ``initial``: None (zeros) or,
    per layer, the tuple of its S states (D, B, H).  Returns y (T, B, D·H) and, per layer, the tuple of
    its final states (D, B, H) (Y_h, and Y_c for the LSTM).
    """
    cell, directions, hidden = layer.cell, layer.num_directions, layer.hidden_size
    num_states = layer._cell.num_states
    finals = []
    for index in range(layer.num_layers):
        W, R, B = onnx_weights(layer, index, g.dtype)
        inputs = [x, g.weight(f"{name}.W_l{index}", W), g.weight(f"{name}.R_l{index}", R),
                  g.weight(f"{name}.B_l{index}", B), sequence_lens]
        if initial is not None:
            inputs += list(initial[index])
        y, *states = g.op(OPERATORS[cell], inputs, outputs=1 + num_states, name=f"{name}_l{index}",
                          hidden_size=hidden, **_node_attributes(cell, directions))
        finals.append(tuple(states))
        if directions == 1:  # (T, 1, B, H) -> (T, B, H)
            x = g.squeeze(y, 1)
        else:  # (T, 2, B, H) -> (T, B, 2, H) -> (T, B, 2·H): [forward | reverse]
            x = g.op("Reshape", [g.transpose(y, (0, 2, 1, 3)), g.const([0, 0, directions * hidden])])
    return x, finals


def _sequence_lens(g: _Graph, lengths: str, x: str):
    """sequence_lens (int32, (B,)) from the ``lengths`` input (a negative length: all T steps) for
    the time-major x; also returns the int64 lengths (B,)."""
    steps = g.dim(x, 0, scalar=True)
    full = g.op("Where", [g.op("Less", [lengths, g.const(0, scalar=True)]), steps, lengths])
    lengths = g.op("Expand", [full, g.dim(x, 1)], name="lengths_per_row")
    return g.op("Cast", [lengths], to=g.onnx.TensorProto.INT32), lengths


def _initial_states(g: _Graph, states: list, layer) -> list:
    """Per layer, the tuple of its states (D, B, H), sliced from the full (L·D, B, H) ``states``."""
    d, layers = layer.num_directions, layer.num_layers
    if layers == 1:
        return [tuple(states)]
    return [tuple(g.slice(s, 0, k * d, (k + 1) * d) for s in states) for k in range(layers)]


def _concat(g: _Graph, parts: list, axis: int, output: str) -> str:
    if len(parts) == 1:
        return g.op("Identity", parts, outputs=[output])
    return g.op("Concat", parts, outputs=[output], axis=axis)


# ---------------------------------------------------------------------------------------------------
# export: options, files

def _export_dtype(obj, dtype) -> np.dtype:
    """The dtype of the exported graph: float32 (see the module docstring)."""
    if dtype is not None and check_dtype(dtype) != np.float32:
        raise ValueError(f"dtype={dtype!r}: ONNX Runtime has no float64 kernels for RNN, LSTM and GRU, so the "
                         f"export writes float32 only (dtype=None or 'float32')")
    if obj.dtype != np.float32 and dtype is None:
        raise ValueError(f"this {type(obj).__name__} has dtype {obj.dtype}, and ONNX Runtime has no float64 "
                         f"kernels for RNN, LSTM and GRU (it would refuse the file); pass dtype='float32' to "
                         f"export the weights cast to float32 (the graph then computes in float32)")
    return np.dtype(np.float32)


def _check_opset(onnx, opset) -> int:
    if isinstance(opset, bool) or not isinstance(opset, numbers.Integral):
        raise TypeError(f"opset must be an int, got {type(opset).__name__}")
    newest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= newest:
        raise ValueError(f"opset must be in [{MIN_OPSET}, {newest}] (the installed onnx knows opsets up to "
                         f"{newest}; ONNX Runtime 1.16 runs up to 19), got {opset}")
    return int(opset)


def _model_proto(onnx, graph, opset: int, doc: str, metadata: dict):
    opsets = [onnx.helper.make_opsetid("", opset)]
    model = onnx.helper.make_model(graph, opset_imports=opsets, producer_name="rnnkit",
                                   producer_version=__version__, doc_string=doc)
    # the oldest IR version that has this opset: newer onnx packages write one older runtimes refuse
    model.ir_version = onnx.helper.find_min_ir_version_for(opsets)
    onnx.helper.set_model_props(model, {k: str(value) for k, value in metadata.items()})
    onnx.checker.check_model(model)
    return model


def _save(onnx, g: _Graph, name: str, inputs: list, outputs: list, doc: str, opset: int, metadata: dict,
          path) -> None:
    model = _model_proto(onnx, g.graph(name, inputs, outputs, doc, g.initializers), opset, doc, metadata)
    data = model.SerializeToString()
    atomic_write(path, lambda file: file.write(data))


def _optional_input(g: _Graph, name: str, default: np.ndarray, shape: list, doc: str):
    """An input with a default: an initializer of that name, listed among the graph's inputs (a feed
    overrides it).  Returns its value info."""
    g.initializers.append(g.onnx.numpy_helper.from_array(default, name))
    elem = g.onnx.helper.np_dtype_to_tensor_dtype(default.dtype)
    return g.value_info(name, elem, shape, doc)


LENGTHS_DOC = ("each row's number of real steps; optional: the default [-1], or any negative length, means all "
               "T steps")


# ---------------------------------------------------------------------------------------------------
# export: the layer

def export_layer(layer, path, *, opset=DEFAULT_OPSET, dtype=None) -> None:
    """Write ``layer`` (an rnnkit.RNN) to ``path`` as an ONNX graph of one RNN / LSTM / GRU node per
    layer: inputs x, lengths, h0 (c0), outputs y, h_n (c_n), as ``layer.forward(x, h0,
    lengths=lengths)``; see the module docstring for the shapes and the options."""
    onnx = _require_onnx()
    opset = _check_opset(onnx, opset)
    g = _Graph(onnx, _export_dtype(layer, dtype))
    lstm = layer._cell.num_states == 2
    state_names = ["h0", "c0"] if lstm else ["h0"]
    for reserved in ["x", "lengths", *state_names, "y", "h_n", "c_n"]:
        g.name(reserved)
    L, D, H = layer.num_layers, layer.num_directions, layer.hidden_size
    layout = ["B", "T"] if layer.batch_first else ["T", "B"]
    inputs = [g.value_info("x", g.elem, [*layout, layer.input_size],
                           f"({', '.join(layout)}, input_size) float32, the layer's layout")]
    inputs.append(_optional_input(g, "lengths", np.array([-1], np.int64), ["B"], f"(B,) int64, {LENGTHS_DOC}"))
    for state in state_names:
        inputs.append(_optional_input(g, state, np.zeros((L * D, 1, H), g.dtype), [L * D, "B", H],
                                      f"(num_layers * num_directions, B, H) initial {state[0]}; optional: zeros"))

    x = g.transpose("x", (1, 0, 2)) if layer.batch_first else "x"
    sequence_lens, lengths = _sequence_lens(g, "lengths", x)
    states_shape = g.op("Concat", [g.const([L * D]), g.dim(x, 1), g.const([H])], axis=0)
    initial = _initial_states(g, [g.op("Expand", [state, states_shape]) for state in state_names], layer)
    y, finals = _stack(g, layer, x, sequence_lens, initial, "rnn")
    # ONNX Runtime's Y_h / Y_c of a row of length 0 are 0; rnnkit's (and the row's meaning): its h0 / c0
    empty = g.unsqueeze(g.op("Equal", [lengths, g.const(0, scalar=True)]), [0, 2])  # (1, B, 1)
    finals = [tuple(g.op("Where", [empty, start, final]) for start, final in zip(starts, states))
              for starts, states in zip(initial, finals)]
    if layer.batch_first:
        g.op("Transpose", [y], outputs=["y"], perm=[1, 0, 2])
    else:
        g.op("Identity", [y], outputs=["y"])
    outputs = [g.value_info("y", g.elem, [*layout, D * H], f"({', '.join(layout)}, D*H): every step's output "
                            "(0 at the padding), [forward | reverse]")]
    for s, name in enumerate(["h_n", "c_n"][:len(state_names)]):
        _concat(g, [states[s] for states in finals], 0, name)
        outputs.append(g.value_info(name, g.elem, [L * D, "B", H],
                                    f"(num_layers * num_directions, B, H): each row's last real {name[0]}"))
    doc = (f"rnnkit.{layer!r}: inputs x, lengths (optional), {', '.join(state_names)} (optional); outputs y, "
           f"{'h_n, c_n' if lstm else 'h_n'} (see rnnkit._onnx)")
    metadata = {"rnnkit.class": "RNN", "rnnkit.cell": layer.cell, "rnnkit.batch_first": layer.batch_first}
    _save(onnx, g, "rnnkit_rnn", inputs, outputs, doc, opset, metadata, path)


# ---------------------------------------------------------------------------------------------------
# export: the models

@dataclass
class _ModelGraph:
    """A model's graph in the making: the builder, its inputs' value infos, and the model."""

    g: _Graph
    model: object
    inputs: list
    max_steps: int | None = None  # the decoders: the steps to generate
    batch: str = ""  # N as an int64 (1,) value


def export_model(model, path, *, opset=DEFAULT_OPSET, dtype=None, max_steps=None) -> None:
    """Write ``model`` (any rnnkit topology) to ``path`` as an ONNX graph whose outputs are predict's
    results: ``outputs`` (logits or values) and, for classification, ``labels``.  ``max_steps`` (the
    decoders only; default ``model.steps``) is the number of steps the greedy generation runs.  See
    the module docstring for the inputs, outputs and options."""
    onnx = _require_onnx()
    opset = _check_opset(onnx, opset)
    kind = type(model).__name__
    builders = {OneToOne: _one_to_one, ManyToOne: _many_to_one, ManyToMany: _many_to_many,
                OneToMany: _generate, Seq2Seq: _generate}
    build = next((b for cls, b in builders.items() if isinstance(model, cls)), None)
    if build is None:
        raise TypeError(f"export_model takes an rnnkit model (OneToOne, OneToMany, ManyToOne, ManyToMany or Seq2Seq), "
                        f"got {kind}")
    if model.generates:
        if max_steps is None:
            max_steps = model.steps
            if max_steps is None:
                raise ValueError(f"this {kind} has not been fitted, so it has no default number of steps to "
                                 f"generate: pass max_steps=")
        max_steps = check_int("max_steps", max_steps)
    elif max_steps is not None:
        raise ValueError(f"max_steps is for the decoders (OneToMany, Seq2Seq), which generate; a {kind} has as many "
                         f"outputs as its input has steps")
    m = _ModelGraph(_Graph(onnx, _export_dtype(model, dtype)), model, [], max_steps=max_steps)
    for reserved in ("X", "lengths", "outputs", "labels"):
        m.g.name(reserved)
    outputs = build(m, *_model_inputs(m))
    output_infos = [m.g.value_info(name, elem, shape, doc) for name, elem, shape, doc in outputs]
    doc = (f"rnnkit.{model!r}: inputs {', '.join(info.name for info in m.inputs)}; outputs "
           f"{', '.join(o[0] for o in outputs)} (see rnnkit._onnx)")
    metadata = {"rnnkit.class": kind, "rnnkit.task": model.task, "rnnkit.output_size": model.output_size}
    if model.generates:
        metadata["rnnkit.max_steps"] = max_steps
        if model.end_token is not None:
            metadata["rnnkit.end_token"] = model.end_token
    _save(onnx, m.g, f"rnnkit_{kind.lower()}", m.inputs, output_infos, doc, opset, metadata, path)


def _model_inputs(m: _ModelGraph):
    """The graph inputs X (and lengths), the embedding; returns the float input time-major ((T, N, F),
    or (N, F) without a time axis), sequence_lens and the int64 lengths ("" for models without)."""
    g, model = m.g, m.model
    timed = model.x_ndim == 3
    ids = model.vocab_size is not None
    shape = ["N", "T"] if timed else ["N"]
    layout = ", ".join(shape)
    if ids:
        doc = f"({layout}) int64 token ids in [0, {model.vocab_size})"
        m.inputs.append(g.value_info("X", g.onnx.TensorProto.INT64, shape, doc))
    else:
        doc = f"({layout}, {model.input_size}) float32"
        m.inputs.append(g.value_info("X", g.elem, [*shape, model.input_size], doc))
    m.batch = g.dim("X", 0)
    x = g.transpose("X", (1, 0) if ids else (1, 0, 2)) if timed else "X"
    if ids:
        weight = g.weight("embed.weight", model.layers["embed"].params["weight"])
        x = g.op("Gather", [weight, x], name="embed", axis=0)
    if not timed:
        return x, "", ""
    m.inputs.append(_optional_input(g, "lengths", np.array([-1], np.int64), ["N"],
                                    f"(N,) int64, {LENGTHS_DOC}"))
    sequence_lens, lengths = _sequence_lens(g, "lengths", x)
    return x, sequence_lens, lengths


def _head_outputs(m: _ModelGraph, values: str, shape: list, mask=None) -> list:
    """The graph outputs from the head's values (``shape``): ``outputs`` and, for classification,
    ``labels`` (ArgMax); where ``mask`` (bool, ``shape`` less the last axis) is False, 0 and -1.
    Returns (name, element type, shape, doc) per output."""
    g, model = m.g, m.model
    what = "logits" if model.task == "classification" else "values"
    if mask is not None:
        values = g.op("Where", [g.unsqueeze(mask, -1), values, g.const(0, g.dtype, scalar=True)])
    g.op("Identity", [values], outputs=["outputs"])
    padding = " (0 at the padding)" if mask is not None else ""
    results = [("outputs", g.elem, shape, f"({_layout(shape)}) float32 {what}{padding}")]
    if model.task == "classification":
        labels = g.op("ArgMax", [values], axis=-1, keepdims=0)
        if mask is not None:
            labels = g.op("Where", [mask, labels, g.const(-1, scalar=True)])
        g.op("Identity", [labels], outputs=["labels"])
        padding = " (-1 at the padding)" if mask is not None else ""
        results.append(("labels", g.onnx.TensorProto.INT64, shape[:-1],
                        f"({_layout(shape[:-1])}) int64 labels, what predict returns{padding}"))
    return results


def _layout(shape) -> str:
    return ", ".join(map(str, shape))


def _top_state(g: _Graph, finals: list, directions: int) -> str:
    """The top layer's final h (D, N, H) as (N, D·H): [forward | reverse]."""
    top = finals[-1][0]
    if directions == 1:
        return g.squeeze(top, 0)
    return g.op("Reshape", [g.transpose(top, (1, 0, 2)), g.const([0, -1])])


def _one_to_one(m, x, sequence_lens, lengths):
    model = m.model
    _, finals = _stack(m.g, model.layers["rnn"], m.g.unsqueeze(x, 0), "", None, "rnn")  # one step
    values = m.g.dense(model.layers["head"], _top_state(m.g, finals, 1), "head")
    return _head_outputs(m, values, ["N", model.output_size])


def _many_to_one(m, x, sequence_lens, lengths):
    model = m.model
    _, finals = _stack(m.g, model.layers["rnn"], x, sequence_lens, None, "rnn")
    values = m.g.dense(model.layers["head"], _top_state(m.g, finals, model.num_directions), "head")
    return _head_outputs(m, values, ["N", model.output_size])


def _many_to_many(m, x, sequence_lens, lengths):
    g, model = m.g, m.model
    y, _ = _stack(g, model.layers["rnn"], x, sequence_lens, None, "rnn")
    values = g.dense(model.layers["head"], g.transpose(y, (1, 0, 2)), "head")  # (N, T, O)
    steps = g.op("Range", [g.const(0, scalar=True), g.dim(x, 0, scalar=True), g.const(1, scalar=True)])
    mask = g.op("Less", [g.unsqueeze(steps, 0), g.unsqueeze(lengths, 1)], name="real_steps")  # (N, T)
    return _head_outputs(m, values, ["N", "T", model.output_size], mask)


def _decoder_start(m, x, sequence_lens) -> list:
    """The decoder's initial states: per layer, the tuple of its S states (1, N, H)."""
    g, model = m.g, m.model
    decoder = model.layers["decoder"]
    L, H, S = decoder.num_layers, decoder.hidden_size, decoder._cell.num_states
    if isinstance(model, OneToMany):  # tanh(Dense(x)) (N, S·L·H) -> (S, L, N, H)
        h0 = g.op("Tanh", [g.dense(model.layers["init"], x, "init")])
        states = g.transpose(g.op("Reshape", [h0, g.const([0, S, L, H])]), (1, 2, 0, 3))
        return [tuple(g.squeeze(g.slice(g.slice(states, 0, s, s + 1), 1, k, k + 1), 0) for s in range(S))
                for k in range(L)]
    _, finals = _stack(g, model.layers["encoder"], x, sequence_lens, None, "encoder")  # Seq2Seq
    if model.bidirectional:  # the sum of each layer's two directions
        return [tuple(g.op("ReduceSum", [s, g.const([0])], keepdims=1) for s in states) for states in finals]
    return finals


def _generate(m, x, sequence_lens, lengths):
    """Greedy generation in a Loop of max_steps iterations (OneToMany, Seq2Seq).

    Carried from one iteration to the next: the step's input (1, N, O), every decoder layer's states
    (1, N, H), and with an end token the rows that have ended (N,) bool.  Scanned (stacked over the
    iterations): the step's values (N, O) and, for classification, its labels (N,)."""
    g, model = m.g, m.model
    T = g.onnx.TensorProto
    O = model.output_size
    classify = model.task == "classification"
    ends = classify and model.end_token is not None
    states0 = [s for states in _decoder_start(m, x, sequence_lens) for s in states]  # layer by layer
    step0 = g.op("ConstantOfShape", [g.op("Concat", [g.const([1]), m.batch, g.const([O])], axis=0)],
                 name="first_input", value=g.onnx.helper.make_tensor("value", g.elem, [1], [0.0]))
    carried0 = [step0, *states0]
    if ends:
        carried0.append(g.op("ConstantOfShape", [m.batch], name="not_done",
                             value=g.onnx.helper.make_tensor("value", T.BOOL, [1], [False])))
    body, scanned = _greedy_step(g, model, ends)
    results = g.op("Loop", [g.const(m.max_steps, scalar=True), g.const(True, np.bool_, scalar=True), *carried0],
                   outputs=len(carried0) + scanned, name="generate", body=body)
    g.op("Transpose", [results[len(carried0)]], outputs=["outputs"], perm=[1, 0, 2])  # (steps, N, O) -> (N, ...)
    what = "logits" if classify else "values"
    after = " (0 after the row's end token)" if ends else ""
    infos = [("outputs", g.elem, ["N", m.max_steps, O],
              f"(N, {m.max_steps}, {O}) float32 {what} of each generated step{after}")]
    if classify:
        g.op("Transpose", [results[len(carried0) + 1]], outputs=["labels"], perm=[1, 0])
        after = (f" (-1 after the row's end token {model.end_token}, which is kept; predict returns each row up "
                 f"to its first end token or -1)") if ends else ""
        infos.append(("labels", T.INT64, ["N", m.max_steps], f"(N, {m.max_steps}) int64 generated labels{after}"))
    return infos


def _greedy_step(g: _Graph, model, ends: bool):
    """The Loop's body: one step of every decoder layer, the head, the next input (and with an end
    token, ``ends``, the rows that have ended); returns the body graph and how many values it scans."""
    T = g.onnx.TensorProto
    decoder, head = model.layers["decoder"], model.layers["head"]
    L, H, O, S = decoder.num_layers, decoder.hidden_size, model.output_size, decoder._cell.num_states
    classify = model.task == "classification"
    body = g.body()
    names_in = [body.name(n) for n in ["iteration", "condition", "step_input",
                                       *(f"decoder_state{s}_l{k}" for k in range(L) for s in range(S))]]
    if ends:
        names_in.append(body.name("done"))
    states_in = names_in[3:3 + L * S]
    layer_input, states_out = names_in[2], []
    for k in range(L):
        W, R, B = onnx_weights(decoder, k, g.dtype)  # initializers of the outer graph
        inputs = [layer_input, g.weight(f"decoder.W_l{k}", W), g.weight(f"decoder.R_l{k}", R),
                  g.weight(f"decoder.B_l{k}", B), "", *states_in[k * S:(k + 1) * S]]
        y, *states = body.op(OPERATORS[decoder.cell], inputs, outputs=1 + S, name=f"decoder_l{k}",
                             hidden_size=H, **_node_attributes(decoder.cell, 1))
        states_out += states
        layer_input = body.squeeze(y, 1)  # (1, N, H)
    values = body.dense(head, body.squeeze(layer_input, 0), "head")  # (N, O)
    scan = [values]
    if classify:
        labels = body.op("ArgMax", [values], axis=-1, keepdims=0)
        feedback = body.op("OneHot", [labels, body.const([O]), body.const([0, 1], g.dtype)], axis=-1)
        scan.append(labels)
    else:
        feedback = values
    names_out = [body.op("Identity", [names_in[1]]), body.unsqueeze(feedback, 0), *states_out]
    if ends:  # after a row's end token: labels -1, outputs 0
        done = names_in[-1]
        scan = [body.op("Where", [body.unsqueeze(done, 1), g.const(0, g.dtype, scalar=True), values]),
                body.op("Where", [done, g.const(-1, scalar=True), labels])]
        names_out.append(body.op("Or", [done, body.op("Equal", [labels, g.const(model.end_token, scalar=True)])]))

    f, N = g.elem, "N"
    types = [(T.INT64, []), (T.BOOL, []), (f, [1, N, O])] + [(f, [1, N, H])] * (L * S) + [(T.BOOL, [N])]
    inputs = [body.value_info(name, *types[i]) for i, name in enumerate(names_in)]
    outputs = [body.value_info(name, *types[i + 1]) for i, name in enumerate(names_out)]
    outputs += [body.value_info(name, *kind) for name, kind in zip(scan, [(f, [N, O]), (T.INT64, [N])])]
    return body.graph("greedy_step", inputs, outputs), len(scan)


# ---------------------------------------------------------------------------------------------------
# import

@dataclass
class _Node:
    """One recurrent node read from a graph."""

    label: str        # how messages name it: "LSTM node 'name'"
    cell: str
    directions: int
    hidden: int
    W: np.ndarray
    R: np.ndarray
    B: np.ndarray


PASS_THROUGH = ("Squeeze", "Transpose", "Reshape", "Identity")


def layer_from_onnx(cls, source, *, dtype=None, backend="cpp", batch_first=False):
    """The ``cls`` (rnnkit.RNN) computing the recurrent nodes of an ONNX model.

    ``source``: a path to an .onnx file, its bytes, or an ``onnx.ModelProto``.  ``dtype=None`` keeps
    the weights' float32 / float64; ``batch_first`` sets the layer's layout (the ONNX nodes are
    time-major).  What is read and what is refused: see the module docstring.
    """
    onnx = _require_onnx()
    batch_first = check_bool("batch_first", batch_first)
    backend = check_backend(backend)
    if dtype is not None:
        dtype = check_dtype(dtype)
    model, where = _load_model(onnx, source)
    graph = model.graph
    recurrent = [n for n in graph.node if n.op_type in DEFAULT_ACTIVATIONS and n.domain in ("", "ai.onnx")]
    if not recurrent:
        found = sorted({n.op_type for n in graph.node})
        raise ValueError(f"{where} has no RNN, LSTM or GRU node in its main graph (its operators: "
                         f"{', '.join(found) or 'none'}); from_onnx reads a stack of such nodes (those inside "
                         f"a Loop, If or Scan body are not read)")
    constants = _constants(onnx, graph)
    chain = _chain(onnx, recurrent, graph, constants, where)
    nodes = [_read_node(onnx, node, i, where, constants) for i, node in enumerate(chain)]
    first = nodes[0]
    for node in nodes[1:]:
        if (node.cell, node.hidden, node.directions) != (first.cell, first.hidden, first.directions):
            raise ValueError(f"{where}: {node.label} is {_describe(node)} and {first.label} {_describe(first)}; an "
                             f"rnnkit layer has one cell, one hidden size and one number of directions in all its "
                             f"layers")
        if node.W.shape[2] != first.directions * first.hidden:
            raise ValueError(f"{where}: {node.label} has {node.W.shape[2]} input features (W of shape "
                             f"{v.fmt_shape(node.W.shape)}); after a layer of {first.directions} x {first.hidden} "
                             f"outputs it needs {first.directions * first.hidden}")

    arrays = {}
    for index, node in enumerate(nodes):
        for d in range(node.directions):
            for kind, array in zip(("weight_ih", "weight_hh", "bias_ih", "bias_hh"),
                                   torch_weights(node.cell, node.W, node.R, node.B, d)):
                arrays[cls._name(kind, index, d)] = array
    if dtype is None:
        found = {a.dtype for a in arrays.values()}
        if not found <= set(v.FLOAT_DTYPES) or len(found) > 1:
            raise ValueError(f"{where} has weights of dtype {', '.join(sorted(map(str, found)))}; without dtype= "
                             f"from_onnx keeps float32 or float64 weights of one dtype: pass dtype='float32' "
                             f"or 'float64' to convert them")
        dtype = found.pop()
    arrays = {name: array.astype(dtype, copy=False) for name, array in arrays.items()}
    layer = cls(first.W.shape[2], first.hidden, cell=first.cell, num_layers=len(nodes),
                bidirectional=first.directions == 2, batch_first=batch_first, dtype=dtype, backend=backend, seed=0)
    layer.load_state_dict(arrays)
    return layer


def _describe(node: _Node) -> str:
    op = OPERATORS[node.cell]
    article = "a bidirectional " if node.directions == 2 else ("a " if op == "GRU" else "an ")
    return f"{article}{op} (cell={node.cell!r}) of {node.hidden} units"


def _load_model(onnx, source):
    """(ModelProto, how messages name it) from a path, bytes or a ModelProto."""
    from google.protobuf.message import DecodeError  # protobuf comes with onnx

    unreadable = (DecodeError, ValueError, OSError, EOFError)
    if isinstance(source, onnx.ModelProto):
        model, where = source, "the ONNX model"
    elif isinstance(source, (bytes, bytearray, memoryview)):
        where = "the serialized model (bytes)"
        try:
            model = onnx.load_model_from_string(bytes(source))
        except unreadable as exc:
            raise ValueError(f"{where} is not an ONNX model: {type(exc).__name__}: {exc}") from None
    elif isinstance(source, (str, os.PathLike)):
        where = f"ONNX file {os.fspath(source)!r}"
        if not os.path.exists(source):
            raise FileNotFoundError(f"{where} does not exist")
        try:
            model = onnx.load(source)
        except (FileNotFoundError, IsADirectoryError, PermissionError):
            raise
        except unreadable as exc:
            raise ValueError(f"{where} is not an ONNX model: {type(exc).__name__}: {exc}") from None
    else:
        raise TypeError(f"from_onnx takes a path to an .onnx file, its bytes or an onnx.ModelProto, got "
                        f"{type(source).__name__}")
    if not model.opset_import and not model.graph.node:
        raise ValueError(f"{where} is not an ONNX model (it has no graph and no opset)")
    return model, where


def _constants(onnx, graph) -> dict:
    """name -> array of the graph's initializers and simple Constant nodes."""
    arrays = {init.name: onnx.numpy_helper.to_array(init) for init in graph.initializer}
    for node in graph.node:
        if node.op_type != "Constant" or len(node.attribute) != 1 or not node.output:
            continue
        attribute = node.attribute[0]
        value = onnx.helper.get_attribute_value(attribute)
        if attribute.name == "value":
            arrays[node.output[0]] = onnx.numpy_helper.to_array(value)
        elif attribute.name in ("value_float", "value_floats", "value_int", "value_ints"):
            arrays[node.output[0]] = np.asarray(value, np.float32 if "float" in attribute.name else np.int64)
    return arrays


def _attributes(onnx, node) -> dict:
    values = {}
    for attribute in node.attribute:
        value = onnx.helper.get_attribute_value(attribute)
        if isinstance(value, bytes):
            value = value.decode()
        elif isinstance(value, list):
            value = [x.decode() if isinstance(x, bytes) else x for x in value]
        values[attribute.name] = value
    return values


def _chain(onnx, nodes: list, graph, constants: dict, where: str) -> list:
    """The recurrent nodes in stack order: each one's X the previous one's Y (through the reshaping
    between them, checked); ValueError unless they form exactly one chain."""
    producers = {out: node for node in graph.node for out in node.output if out}
    by_y = {n.output[0]: n for n in nodes if n.output and n.output[0]}  # Y -> its node
    previous, following = {}, {}
    for node in nodes:
        name, path = node.input[0] if node.input else "", []
        while name in producers and producers[name].op_type in PASS_THROUGH and name not in by_y:
            path.append(producers[name])
            name = producers[name].input[0] if producers[name].input else ""
        if name not in by_y:
            continue  # the first node of a stack: X from the graph's inputs or other nodes
        source = by_y[name]
        _check_link(onnx, source, node, path[::-1], constants, where)
        if id(source) in following:
            raise ValueError(f"{where}: two recurrent nodes ({following[id(source)].name!r} and {node.name!r}) read "
                             f"the Y of {source.name!r}; from_onnx reads one stack of nodes, each one's Y the "
                             f"next one's X")
        previous[id(node)], following[id(source)] = source, node
    starts = [n for n in nodes if id(n) not in previous]
    if len(starts) != 1:
        names = ", ".join(repr(n.name or n.op_type) for n in starts)
        raise ValueError(f"{where} has {len(nodes)} RNN/LSTM/GRU nodes that form {len(starts) or 'no'} separate "
                         f"stacks (first nodes: {names or 'none: they form a cycle'}); from_onnx reads one stack: "
                         f"one node, or nodes each of whose X is the previous one's Y (through Squeeze, or "
                         f"Transpose + Reshape)")
    chain = [starts[0]]
    while id(chain[-1]) in following:
        chain.append(following[id(chain[-1])])
    if len(chain) != len(nodes):
        raise ValueError(f"{where}: its RNN/LSTM/GRU nodes do not form one stack")
    return chain


def _check_link(onnx, source, node, path: list, constants: dict, where: str) -> None:
    """The nodes between one recurrent node's Y (T, D, B, H) and the next one's X must make it
    (T, B, D·H): Squeeze(axes=[1]) when D = 1, or Transpose(perm=[0, 2, 1, 3]) + Reshape to 3 axes."""
    steps = [n for n in path if n.op_type != "Identity"]
    kinds = [n.op_type for n in steps]
    ok = False
    if kinds == ["Squeeze"]:
        axes = _attributes(onnx, steps[0]).get("axes")
        if axes is None and len(steps[0].input) > 1:
            axes = constants.get(steps[0].input[1])
        ok = axes is not None and [int(a) for a in np.asarray(axes).reshape(-1)] in ([1], [-3])
    elif kinds == ["Transpose", "Reshape"]:
        perm = _attributes(onnx, steps[0]).get("perm")
        shape = constants.get(steps[1].input[1]) if len(steps[1].input) > 1 else None
        ok = (perm is not None and list(perm) == [0, 2, 1, 3] and shape is not None
              and np.asarray(shape).size == 3)
    if not ok:
        through = " -> ".join(kinds) if kinds else "nothing (Y as is)"
        raise ValueError(f"{where}: node {node.name!r} reads the Y of node {source.name!r} through {through}; "
                         f"from_onnx maps Y (T, D, B, H) to the next X (T, B, D*H) by Squeeze(axes=[1]) (one "
                         f"direction) or Transpose(perm=[0, 2, 1, 3]) + Reshape, as rnnkit and torch.onnx write it")


def _read_node(onnx, node, index: int, file: str, constants: dict) -> _Node:
    """One node (``index`` in the stack) of the model ``file`` names: its cell, sizes and weights, its
    attributes checked for what rnnkit computes exactly."""
    op = node.op_type
    attributes = _attributes(onnx, node)
    label = f"{op} node {node.name!r}" if node.name else f"{op} node #{index} of the stack"
    where = f"{file}: {label}"

    def refuse(what: str):
        raise ValueError(f"{where} has {what}")

    direction = attributes.get("direction", "forward")
    if direction == "reverse":
        refuse("direction='reverse'; rnnkit's layer runs forward, or both ways (bidirectional), but not in "
               "reverse alone")
    if direction not in ("forward", "bidirectional"):
        refuse(f"direction={direction!r}, which ONNX does not define")
    directions = 2 if direction == "bidirectional" else 1
    if attributes.get("layout", 0) != 0:
        refuse(f"layout={attributes['layout']!r} (batch-major tensors); from_onnx reads layout=0 (time-major) "
               f"nodes, and makes a batch-first layer with batch_first=True")
    default = list(DEFAULT_ACTIVATIONS[op]) * directions
    activations = attributes.get("activations", default)
    cell = op.lower()
    if op == "RNN":
        kinds = {a.lower() for a in activations}
        if len(activations) != directions or len(kinds) != 1 or not kinds <= {"tanh", "relu"}:
            refuse(f"activations={activations!r}; rnnkit's RNN cells are Tanh and Relu (cell='relu'), the same "
                   f"in both directions")
        cell = kinds.pop()
    elif [a.lower() for a in activations] != [a.lower() for a in default]:
        refuse(f"activations={activations!r}; rnnkit's {op} computes the default activations "
               f"{default!r} only")
    if "clip" in attributes:
        refuse(f"clip={attributes['clip']!r}; rnnkit's cells do not clip their gate inputs")
    if attributes.get("input_forget", 0):
        refuse(f"input_forget={attributes['input_forget']!r} (the input and forget gates coupled); rnnkit's LSTM "
               f"has independent gates (input_forget=0)")
    if op == "GRU" and attributes.get("linear_before_reset", 0) != 1:
        refuse(f"linear_before_reset={attributes.get('linear_before_reset', 0)!r}: its reset gate multiplies "
               f"h_(t-1) before the recurrent product; rnnkit's GRU (like torch's) applies it after "
               f"(linear_before_reset=1)")

    def weight(position: int, role: str, required: bool):
        name = node.input[position] if len(node.input) > position else ""
        if not name:
            if required:
                refuse(f"no {role} input")
            return None
        if name not in constants:
            refuse(f"input {role} ({name!r}) computed in the graph; from_onnx reads weights stored in the "
                   f"file (initializers or Constant nodes)")
        return constants[name]

    W, R = weight(1, "W", True), weight(2, "R", True)
    gates = v.GATES[op.lower()]
    v.check_ndim(f"{where}: W", W, 3, "(num_directions, gates * hidden_size, input_size)")
    v.check_ndim(f"{where}: R", R, 3, "(num_directions, gates * hidden_size, hidden_size)")
    hidden = attributes.get("hidden_size", R.shape[-1])
    rows = gates * hidden
    v.check_shape(f"{where}: W", W, (directions, rows, W.shape[2]),
                  f"(num_directions, {gates} * hidden_size, input_size) with hidden_size={hidden}")
    v.check_shape(f"{where}: R", R, (directions, rows, hidden),
                  f"(num_directions, {gates} * hidden_size, hidden_size) with hidden_size={hidden}")
    B = weight(3, "B", False)
    if B is None:
        B = np.zeros((directions, 2 * rows), W.dtype)
    v.check_shape(f"{where}: B", B, (directions, 2 * rows), "(num_directions, 2 * gates * hidden_size): [Wb | Rb]")
    if op == "LSTM":
        P = weight(7, "P", False)
        if P is not None and np.any(P):
            refuse("peepholes (a non-zero P input); rnnkit's LSTM has none")
    return _Node(label, cell, directions, int(hidden), W, R, B)
