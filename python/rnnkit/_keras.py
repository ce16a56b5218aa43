"""Keras weight interop for rnnkit.RNN: ``RNN.from_keras`` and ``RNN.to_keras_weights``.

Legend: I input features, H hidden units (Keras' ``units``), G gates (1 SimpleRNN, 4 LSTM, 3 GRU).

Keras (any backend) keeps one direction of one recurrent layer as ``layer.get_weights()``:
``[kernel (I, G·H), recurrent_kernel (H, G·H), bias]``, the bias left out when ``use_bias=False``.
The mapping to torch's layout, which rnnkit uses:

- kernel and recurrent_kernel are the transposes of weight_ih (G·H, I) and weight_hh (G·H, H);
- SimpleRNN (bias (H,)) and LSTM (bias (4H,)) have ONE bias where torch has two: it loads into
  bias_ih, bias_hh is zero, and ``to_keras_weights`` returns bias_ih + bias_hh (only the sum enters
  the equations);
- LSTM gate blocks [i | f | c | o] are torch's [i | f | g | o];
- GRU (reset_after=True) gate blocks [z | r | h] become torch's [r | z | n], and its bias (2, 3H) is
  (input bias, recurrent bias): after the reordering, exactly bias_ih and bias_hh;
- ``Bidirectional(layer)`` holds the forward layer's weights, then the backward layer's; with
  merge_mode="concat" its output is [forward | backward], as a bidirectional rnnkit.RNN's.

What rnnkit cannot compute exactly is refused (ValueError): other activations (SimpleRNN: tanh or
relu; LSTM/GRU: tanh with a sigmoid recurrent activation), GRU with reset_after=False (the reset gate
applied before the recurrent product), go_backwards=True outside a Bidirectional, stateful layers,
other merge modes, and layers that differ in cell, units or directions.  Dropout and
recurrent_dropout act only while Keras trains, so they are dropped: the rnnkit layer gives the Keras
layer's inference output (rnnkit has no dropout).  Nothing from Keras is imported: layers are
recognised by their class name, ``get_config()`` and ``get_weights()``, so Keras 3 on any backend
works.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _cells
from . import _validation as v
from .layers import check_backend, check_bool, check_dtype, to_numpy

KERAS_LAYERS = ("SimpleRNN", "LSTM", "GRU")
KERAS_NAME = {"tanh": "SimpleRNN", "relu": "SimpleRNN", "lstm": "LSTM", "gru": "GRU"}
ROLES = ("kernel", "recurrent_kernel", "bias")
ACCEPTED = ("from_keras takes a Keras SimpleRNN, LSTM or GRU layer, a Bidirectional wrapping one, a list of "
            "them (stacked: num_layers), or weight arrays as layer.get_weights() returns them")


@dataclass
class _Layer:
    """One Keras layer (or one layer's weight list): what it is and its arrays, per direction."""

    where: str                   # how messages name it
    cell: str                    # "tanh", "relu", "lstm" or "gru"
    directions: list             # per direction: [kernel, recurrent_kernel] + [bias] if it has one
    names: list                  # per direction: the message names of those arrays
    units: int | None = None     # from the Keras config (None for bare weights: read from the shapes)


def _swap_gru_gates(rows: np.ndarray, cell: str) -> np.ndarray:
    """Keras' GRU gate blocks [z | r | h] <-> torch's [r | z | n] along axis 0 (the swap is its own
    inverse); the other cells' blocks already agree."""
    if cell != "gru":
        return rows
    hidden = rows.shape[0] // 3
    return np.concatenate([rows[hidden:2 * hidden], rows[:hidden], rows[2 * hidden:]])


# ---------------------------------------------------------------------------------------------------
# from Keras

def from_keras(cls, source, *, cell=None, batch_first=True, dtype=None, backend="cpp"):
    """An ``cls`` (rnnkit.RNN) computing what the Keras layer(s) or weights ``source`` compute; see
    ``RNN.from_keras``."""
    batch_first = check_bool("batch_first", batch_first)
    backend = check_backend(backend)
    if dtype is not None:
        dtype = check_dtype(dtype)
    if cell is not None:
        _cells.make_cell(cell)  # TypeError / ValueError for anything but a known cell name

    if _is_keras_layer(source):
        layers = [_read_keras_layer(source, f"Keras layer {_layer_name(source)}", batch_first)]
    elif isinstance(source, (list, tuple)) and source and all(_is_keras_layer(s) for s in source):
        layers = [_read_keras_layer(s, f"layers[{k}] (Keras layer {_layer_name(s)})", batch_first)
                  for k, s in enumerate(source)]
    elif isinstance(source, (list, tuple)) and source:
        if any(_is_keras_layer(s) for s in source):
            raise TypeError("from_keras got a list that mixes Keras layers and other objects; pass Keras layers "
                            "only, or weight arrays only")
        if cell is None:
            raise TypeError("from_keras needs cell= ('tanh', 'relu', 'lstm' or 'gru') to read bare weight "
                            "arrays (a Keras layer says it itself)")
        nested = [isinstance(s, (list, tuple)) for s in source]
        if all(nested):
            layers = [_read_weights(list(s), cell, f"weights[{k}]") for k, s in enumerate(source)]
        elif not any(nested):
            layers = [_read_weights(list(source), cell, "weights")]
        else:
            raise TypeError("from_keras got weights that mix arrays and lists: pass one layer's arrays "
                            "(layer.get_weights()), or a list of such lists, one per stacked layer")
    elif isinstance(source, (list, tuple)):
        raise ValueError(f"from_keras got an empty {type(source).__name__}; {ACCEPTED}")
    else:
        raise TypeError(f"{ACCEPTED}; got {type(source).__name__}")

    if cell is not None:
        for layer in layers:
            if layer.cell != cell:
                raise ValueError(f"{layer.where} is {_describe(layer.cell, article=True)}, but cell={cell!r} was "
                                 f"asked for")
    _check_stack(layers)
    return _build(cls, layers, batch_first, dtype, backend)


def _is_keras_layer(obj) -> bool:
    return callable(getattr(obj, "get_config", None)) and callable(getattr(obj, "get_weights", None))


def _layer_name(layer) -> str:
    return repr(getattr(layer, "name", type(layer).__name__))


def _describe(cell: str, *, article: bool = False) -> str:
    """How messages name a cell: Keras' class (and activation)."""
    name = f"SimpleRNN with activation={cell!r}" if cell in ("tanh", "relu") else KERAS_NAME[cell]
    return (("an " if cell == "lstm" else "a ") + name) if article else name


def _read_keras_layer(layer, where: str, batch_first: bool) -> _Layer:
    kind = type(layer).__name__
    if kind == "Bidirectional":
        merge_mode = layer.get_config().get("merge_mode")
        if merge_mode != "concat":
            raise ValueError(f"{where} has merge_mode={merge_mode!r}; rnnkit's bidirectional output concatenates "
                             f"[forward | backward], which is Keras' merge_mode='concat' only")
        forward = _read_direction(layer.forward_layer, f"{where}, forward layer {_layer_name(layer.forward_layer)}",
                                  backwards=False, batch_first=batch_first)
        backward = _read_direction(layer.backward_layer,
                                   f"{where}, backward layer {_layer_name(layer.backward_layer)}",
                                   backwards=True, batch_first=batch_first)
        if (forward.cell, forward.units) != (backward.cell, backward.units):
            raise ValueError(f"{where} has a forward {_describe(forward.cell)} with {forward.units} units and a "
                             f"backward {_describe(backward.cell)} with {backward.units}; an rnnkit layer has one "
                             f"cell and one size for both directions")
        return _Layer(where, forward.cell, forward.directions + backward.directions,
                      forward.names + backward.names, forward.units)
    return _read_direction(layer, where, backwards=False, batch_first=batch_first)


def _read_direction(layer, where: str, *, backwards: bool, batch_first: bool) -> _Layer:
    """One SimpleRNN / LSTM / GRU layer, its config checked for what rnnkit computes exactly."""
    kind = type(layer).__name__
    if kind not in KERAS_LAYERS:
        raise TypeError(f"{ACCEPTED}; {where} is {'an' if kind[0] in 'AEIOU' else 'a'} {kind}")
    config = layer.get_config()

    def refuse(what: str):
        raise ValueError(f"{where} has {what}")

    if bool(config.get("go_backwards", False)) != backwards:
        if backwards:
            refuse("go_backwards=False, but it is the backward layer of a Bidirectional")
        refuse("go_backwards=True: it reads the sequence backwards and returns its outputs in reversed time "
               "order, which a unidirectional rnnkit layer does not do (a Bidirectional's backward half does)")
    if config.get("stateful", False):
        refuse("stateful=True; rnnkit keeps no state between calls (pass the previous call's h_n as h0 "
               "instead), so build the Keras layer without stateful to convert it")
    if config.get("time_major", False) and batch_first:  # Keras 2 only
        refuse("time_major=True (inputs (T, B, I)); call from_keras(..., batch_first=False) for that layout")
    activation = config.get("activation")
    if kind == "SimpleRNN":
        if activation not in ("tanh", "relu"):
            refuse(f"activation={activation!r}; rnnkit's SimpleRNN cells are 'tanh' and 'relu'")
        cell = activation
    else:
        recurrent_activation = config.get("recurrent_activation")
        if activation != "tanh" or recurrent_activation != "sigmoid":
            refuse(f"activation={activation!r} and recurrent_activation={recurrent_activation!r}; rnnkit's "
                   f"{kind} computes activation='tanh' with recurrent_activation='sigmoid' only")
        if kind == "GRU" and config.get("reset_after") is not True:
            refuse("reset_after=False: its reset gate multiplies h_{t-1} before the recurrent product; rnnkit's "
                   "GRU (like torch's and cuDNN's) applies it after (Keras' reset_after=True)")
        cell = kind.lower()
    units = config.get("units")
    use_bias = bool(config.get("use_bias", True))
    arrays = list(layer.get_weights())
    if not arrays:
        refuse("no weights yet (it is not built): call it on an input, or layer.build((batch, timesteps, "
               "features)), first")
    expected = 3 if use_bias else 2
    if len(arrays) != expected:
        article = "an" if kind == "LSTM" else "a"
        refuse(f"{len(arrays)} weight arrays; {article} {kind} with use_bias={use_bias} has {expected} "
               f"({', '.join(ROLES[:expected])})")
    names = [f"{role} of {where}" for role in ROLES[:expected]]
    return _Layer(where, cell, [arrays], [names], units)


def _read_weights(arrays: list, cell: str, where: str) -> _Layer:
    """One layer's bare weight list: 2 or 3 arrays per direction (without or with the bias)."""
    per_direction = {2: (1, 2), 3: (1, 3), 4: (2, 2), 6: (2, 3)}.get(len(arrays))
    if per_direction is None:
        raise ValueError(f"{where} has {len(arrays)} arrays; {_describe(cell, article=True)} layer has 3 (kernel, "
                         f"recurrent_kernel, bias), 2 without a bias, and twice that when Bidirectional")
    directions, count = per_direction
    labels = ("", ) if directions == 1 else ("forward ", "backward ")
    return _Layer(where, cell,
                  [arrays[d * count:(d + 1) * count] for d in range(directions)],
                  [[f"{where}[{d * count + i}] ({labels[d]}{ROLES[i]})" for i in range(count)]
                   for d in range(directions)])


def _check_stack(layers: list) -> None:
    """Stacked layers must share what one rnnkit.RNN shares: the cell, the size and the directions."""
    first = layers[0]
    for layer in layers[1:]:
        if layer.cell != first.cell:
            raise ValueError(f"{layer.where} is {_describe(layer.cell, article=True)} and {first.where} "
                             f"{_describe(first.cell, article=True)}; an rnnkit layer has one cell in all its layers")
        if len(layer.directions) != len(first.directions):
            raise ValueError(f"{layer.where} and {first.where} differ in being Bidirectional; an rnnkit layer is "
                             f"bidirectional in all its layers or in none")
        if layer.units is not None and first.units is not None and layer.units != first.units:
            raise ValueError(f"{layer.where} has {layer.units} units and {first.where} {first.units}; an rnnkit "
                             f"layer has one hidden size in all its layers")


def _build(cls, layers: list, batch_first: bool, dtype, backend):
    cell = layers[0].cell
    gates = _cells.make_cell(cell).gates
    directions = len(layers[0].directions)
    named = {name: to_numpy(array) for layer in layers
             for names, arrays in zip(layer.names, layer.directions) for name, array in zip(names, arrays)}
    if dtype is None:  # the weights' own dtype: float32 or float64, all alike
        arrays, dtype = v.as_float_arrays(named)
    else:
        arrays = {name: v.as_float_arrays({name: value})[0][name].astype(dtype, copy=False)
                  for name, value in named.items()}

    first_kernel, first_recurrent = layers[0].names[0][:2]
    v.check_ndim(first_kernel, arrays[first_kernel], 2, "(input_size, gates * units)")
    v.check_ndim(first_recurrent, arrays[first_recurrent], 2, "(units, gates * units)")
    input_size = arrays[first_kernel].shape[0]
    hidden = layers[0].units if layers[0].units is not None else arrays[first_recurrent].shape[0]
    rows = gates * hidden
    what = f"for {_describe(cell, article=True)} with {hidden} units"
    state_dict = {}
    for index, layer in enumerate(layers):
        inputs = input_size if index == 0 else directions * hidden
        for direction, names in enumerate(layer.names):
            after = f" after a layer of {inputs} outputs" if index else ""
            v.check_shape(names[1], arrays[names[1]], (hidden, rows), f"(units, {gates}·units) {what}")
            v.check_shape(names[0], arrays[names[0]], (inputs, rows), f"(input features, {gates}·units) {what}{after}")
            w_ih = _swap_gru_gates(arrays[names[0]].T, cell)
            w_hh = _swap_gru_gates(arrays[names[1]].T, cell)
            if len(names) == 3:
                b_ih, b_hh = _biases(arrays[names[2]], names[2], cell, hidden, what)
            else:  # use_bias=False: zero biases compute the same
                b_ih = b_hh = np.zeros(rows, dtype)
            for kind, array in zip(("weight_ih", "weight_hh", "bias_ih", "bias_hh"), (w_ih, w_hh, b_ih, b_hh)):
                state_dict[cls._name(kind, index, direction)] = array

    layer = cls(input_size, hidden, cell=cell, num_layers=len(layers), bidirectional=directions == 2,
                batch_first=batch_first, dtype=dtype, backend=backend, seed=0)
    layer.load_state_dict(state_dict)
    return layer


def _biases(bias: np.ndarray, name: str, cell: str, hidden: int, what: str):
    """(b_ih, b_hh) in torch's layout from Keras' bias."""
    rows = _cells.make_cell(cell).gates * hidden
    if cell != "gru":
        v.check_shape(name, bias, (rows,), f"{what} (Keras has one bias; rnnkit's bias_hh is set to zero)")
        return bias, np.zeros_like(bias)
    if bias.shape == (rows,):
        raise ValueError(f"{name} has shape {v.fmt_shape(bias.shape)}, the bias of a GRU with reset_after=False, "
                         f"whose reset gate multiplies h_(t-1) before the recurrent product; rnnkit's GRU (like "
                         f"torch's and cuDNN's) is Keras' reset_after=True, with a bias of shape (2, {rows})")
    v.check_shape(name, bias, (2, rows), f"{what} (reset_after=True: the input bias, then the recurrent bias)")
    return _swap_gru_gates(bias[0], cell), _swap_gru_gates(bias[1], cell)


# ---------------------------------------------------------------------------------------------------
# to Keras

def to_keras_weights(layer, *, use_bias=True) -> list:
    """The arrays Keras' ``set_weights`` takes for the equivalent Keras layer; see ``RNN.to_keras_weights``."""
    use_bias = check_bool("use_bias", use_bias)
    cell = layer.cell
    per_layer = []
    for index in range(layer.num_layers):
        arrays = []
        for direction in range(layer.num_directions):
            w_ih, w_hh, b_ih, b_hh = layer._weights(index, direction)
            # copies (.copy() is C order), never views of the live parameters
            arrays += [_swap_gru_gates(w_ih, cell).T.copy(), _swap_gru_gates(w_hh, cell).T.copy()]
            if cell == "gru":
                bias = np.stack([_swap_gru_gates(b_ih, cell), _swap_gru_gates(b_hh, cell)])
            else:
                bias = b_ih + b_hh
            if use_bias:
                arrays.append(bias)
            elif np.any(bias):
                b_ih_name, b_hh_name = (layer._name(kind, index, direction) for kind in ("bias_ih", "bias_hh"))
                which = f"{b_ih_name} and {b_hh_name} are" if cell == "gru" else f"{b_ih_name} + {b_hh_name} is"
                raise ValueError(f"use_bias=False, but {which} not zero: a Keras layer with use_bias=False could "
                                 f"not compute what this layer does")
        per_layer.append(arrays)
    return per_layer[0] if layer.num_layers == 1 else per_layer
