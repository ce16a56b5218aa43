"""Trainable layers on top of the kernels: a torch.nn.RNN-compatible recurrent layer, and Dense.

Legend: T timesteps, B batch, I input features, H hidden units, G gates, L layers, D directions
(2 when bidirectional), S states per cell (1: h; 2 for the LSTM: (h, c)).

Both layers keep their parameters in ``layer.params`` (live arrays, updated in place by the
optimizers) and, after ``backward``, the gradients in ``layer.grads`` (same keys, overwritten by each
backward).  ``state_dict()`` returns copies under PyTorch's names; ``load_state_dict`` copies in.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np

from . import _cells, _core
from . import _validation as v

__all__ = ["RNN", "Dense"]


# ---------------------------------------------------------------------------------------------------
# argument checks shared by the layers and the models

def check_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_bool(name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return bool(value)


def check_dtype(dtype) -> np.dtype:
    if dtype is None:
        raise ValueError("dtype must be 'float32' or 'float64', got None")
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt not in v.FLOAT_DTYPES:  # (a NumPy dtype compares equal to None)
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return dt


def check_backend(backend) -> str:
    if backend not in _cells.BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(map(repr, _cells.BACKENDS))}, got {backend!r}")
    return backend


def make_rng(seed) -> np.random.Generator:
    """A Generator from None, an int or a Generator (used as is)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
        raise TypeError(f"seed must be None, an int or a numpy.random.Generator, got {type(seed).__name__}")
    return np.random.default_rng(seed)


def child_rng(rng: np.random.Generator) -> np.random.Generator:
    """A Generator independent of ``rng``, spawned from its seed sequence (as ``Generator.spawn``, which
    NumPy < 1.25 lacks), so ``rng``'s own stream is left as it was; one with no seed sequence to spawn
    from gives one draw instead."""
    bit_generator = rng.bit_generator
    seed_seq = getattr(bit_generator, "seed_seq", getattr(bit_generator, "_seed_seq", None))
    if isinstance(seed_seq, np.random.SeedSequence):
        return np.random.Generator(type(bit_generator)(seed_seq.spawn(1)[0]))
    return np.random.default_rng(int(rng.integers(2**63)))


def to_numpy(value):
    """Torch tensors (even ones that require grad, or live on a GPU) become NumPy arrays; the rest passes."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        return value.detach().cpu().numpy()
    return value


def layer_array(name: str, value, dtype: np.dtype, owner: str) -> np.ndarray:
    """A C-contiguous array of the layer's dtype: arrays of another float dtype are refused (as torch
    does), nested lists take the layer's dtype."""
    is_data = isinstance(value, (list, tuple))
    arrays, got = v.as_float_arrays({name: value}, dtype=dtype if is_data else None)
    if got != dtype:
        raise TypeError(f"{name} has dtype {got}; {owner} has dtype {dtype} (convert the input, or build the "
                        f"layer with dtype='{got}')")
    return arrays[name]


def uniform_init(rng: np.random.Generator, bound: float, shape: tuple, dtype: np.dtype) -> np.ndarray:
    """U(-bound, bound) drawn in float64, so float32 and float64 layers with one seed start alike."""
    return rng.uniform(-bound, bound, shape).astype(dtype)


INITS = ("torch", "orthogonal", "identity")


def check_dropout(value) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"dropout must be a number in [0, 1), got {value!r} ({type(value).__name__})")
    if not 0 <= value < 1:  # (NaN fails it too)
        raise ValueError(f"dropout must be in [0, 1), got {value!r}")
    return float(value)


def check_init(value) -> str:
    if not (isinstance(value, str) and value in INITS):
        raise ValueError(f"init must be one of {', '.join(map(repr, INITS))}, got {value!r}")
    return value


def orthogonal(rng: np.random.Generator, size: int) -> np.ndarray:
    """A (size, size) orthogonal matrix, uniformly distributed (Haar): Q of a Gaussian matrix's QR with
    its columns' signs fixed by R's diagonal, as torch.nn.init.orthogonal_ and Keras' Orthogonal do
    (without the fix Q's diagonal would lean to one sign).  float64."""
    q, r = np.linalg.qr(rng.standard_normal((size, size)))
    return q * np.where(np.diag(r) < 0, -1.0, 1.0)


def dropout_mask(rng: np.random.Generator, p: float, shape: tuple, dtype: np.dtype) -> np.ndarray:
    """Inverted dropout's multiplier: 0 with probability p, else 1/(1-p) (so the mean is kept), drawn in
    float64 so float32 and float64 layers with one seed drop alike."""
    return np.where(rng.random(shape) < p, 0.0, 1.0 / (1.0 - p)).astype(dtype)


# ---------------------------------------------------------------------------------------------------

class RNN:
    """A multi-layer, optionally bidirectional recurrent layer with torch.nn.RNN's interface.

    ``RNN(input_size, hidden_size, *, cell="tanh", num_layers=1, bidirectional=False,
    batch_first=False, dropout=0.0, init="torch", unit_forget_bias=False, dtype="float32",
    backend="cpp", seed=None)``

    - ``forward(x, h0=None, *, lengths=None) -> (y, h_n)`` (also ``layer(x, h0)``): x is (T, B, I), or (B, T, I) when
      ``batch_first``, or (T, I) unbatched; y is (T, B, D·H) (batch-first too when x is), a
      bidirectional layer's [forward | reverse], and h_n is (L·D, B, H), ordered layer by layer,
      forward before reverse.
      For a cell with two states (the LSTM) h0 and h_n are the pair (h, c), as in torch.nn.LSTM.
      y is read-only: the backward pass reads it.
    - ``backward(dy, dh_n=None) -> (dx, dh0)`` after a forward: gradients of
      sum(y·dy) + sum(h_n·dh_n) (dy may be None too); the parameter gradients go to ``self.grads``.
    - ``state_dict()`` / ``load_state_dict(sd)`` use torch's names (``weight_ih_l0``,
      ``weight_hh_l1_reverse``, ``bias_ih_l0``, ...); sd may hold NumPy arrays or torch tensors, so
      ``layer.load_state_dict(torch_module.state_dict())`` reproduces the torch module.

    Parameters start as torch's do: U(-1/sqrt(H), 1/sqrt(H)), drawn from ``seed``.
    ``backend="numpy"`` runs the same layer on the NumPy reference.

    - ``dropout`` (torch.nn.RNN's): in training forwards, each layer's output but the last's (both
      directions' [forward | reverse] together) is multiplied, before the next layer reads it, by a
      fresh mask of 0 (probability ``dropout``) and 1/(1-dropout); inference (``training=False``)
      never drops, and the backward applies the forward's masks (``dropout_masks``).  The masks come
      from the layer's own Generator, spawned from ``seed``: layers built alike draw the same masks
      call after call.  With ``num_layers=1`` there is nothing to drop: a UserWarning, as torch.
    - ``init``: how each (H, H) gate block of every ``weight_hh`` starts — "torch" (the uniform above),
      "orthogonal" (a random orthogonal matrix: Keras' recurrent default) or "identity" (IRNN, Le et
      al. 2015, meant for ``cell="relu"``).  The other parameters start as with "torch", bit for bit
      (the orthogonal matrices come from a stream of their own, spawned from ``seed``).
    - ``unit_forget_bias`` (LSTM; Keras'): the forget gate's biases start at bias_ih = 1, bias_hh = 0,
      so that the gate starts mostly open.
    """

    def __init__(self, input_size, hidden_size, *, cell="tanh", num_layers=1, bidirectional=False,
                 batch_first=False, dropout=0.0, init="torch", unit_forget_bias=False, dtype="float32",
                 backend="cpp", seed=None):
        self.input_size = check_int("input_size", input_size)
        self.hidden_size = check_int("hidden_size", hidden_size)
        self.num_layers = check_int("num_layers", num_layers)
        self.bidirectional = check_bool("bidirectional", bidirectional)
        self.batch_first = check_bool("batch_first", batch_first)
        self.dtype = check_dtype(dtype)
        self.backend = check_backend(backend)
        self._cell = _cells.make_cell(cell)
        self.cell = cell
        self.dropout = check_dropout(dropout)
        self.init = check_init(init)
        self.unit_forget_bias = check_bool("unit_forget_bias", unit_forget_bias)
        if self.unit_forget_bias and self._cell.kind != "lstm":
            raise ValueError(f"unit_forget_bias=True is for the LSTM (it sets its forget gate's bias); this "
                             f"layer's cell is {cell!r}")
        if self.dropout > 0 and self.num_layers == 1:
            warnings.warn("dropout adds dropout after all but the last recurrent layer, so a non-zero dropout "
                          f"expects num_layers greater than 1, but got dropout={dropout!r} and num_layers=1",
                          UserWarning, stacklevel=2)
        rng = make_rng(seed)
        gates_hidden = self._cell.gates * self.hidden_size
        bound = 1.0 / np.sqrt(self.hidden_size)
        self.params: dict[str, np.ndarray] = {}
        for layer in range(self.num_layers):
            inputs = self.input_size if layer == 0 else self.hidden_size * self.num_directions
            for direction in range(self.num_directions):
                shapes = {"weight_ih": (gates_hidden, inputs), "weight_hh": (gates_hidden, self.hidden_size),
                          "bias_ih": (gates_hidden,), "bias_hh": (gates_hidden,)}
                for kind, shape in shapes.items():
                    self.params[self._name(kind, layer, direction)] = uniform_init(rng, bound, shape, self.dtype)
        # Spawned after the draws above (spawning draws nothing): whatever the options, the torch-style
        # parameters, and the layers a model builds after this one from the same Generator, stay the same.
        self._dropout_rng = child_rng(rng)
        self._start_options(child_rng(rng) if self.init == "orthogonal" else None)
        self._shapes = {name: array.shape for name, array in self.params.items()}
        self.grads: dict[str, np.ndarray] = {}
        self._saved = None  # what the last forward kept for the backward
        self.training = True  # the default of forward's training=
        self._plans = {}  # (layer, direction) -> (plan, weights version, SIMD path, array ids), for inference

    def _start_options(self, rng) -> None:
        """Apply ``init`` to every weight_hh and ``unit_forget_bias`` to the biases (torch's gate order:
        the LSTM's i, f, g, o)."""
        hidden = self.hidden_size
        for layer in range(self.num_layers):
            for direction in range(self.num_directions):
                if self.init != "torch":
                    weight_hh = self.params[self._name("weight_hh", layer, direction)]
                    for gate in range(self._cell.gates):
                        block = orthogonal(rng, hidden) if self.init == "orthogonal" else np.eye(hidden)
                        weight_hh[gate * hidden:(gate + 1) * hidden] = block
                if self.unit_forget_bias:
                    self.params[self._name("bias_ih", layer, direction)][hidden:2 * hidden] = 1
                    self.params[self._name("bias_hh", layer, direction)][hidden:2 * hidden] = 0

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def __getstate__(self):
        """Pickling (joblib, scikit-learn's n_jobs): the parameters and options; neither what the last
        forward kept for a backward nor the packed plans (made again when needed)."""
        state = dict(self.__dict__)
        state["_saved"], state["_plans"] = None, {}
        return state

    @staticmethod
    def _name(kind: str, layer: int, direction: int) -> str:
        return f"{kind}_l{layer}" + ("_reverse" if direction else "")

    def _weights(self, layer: int, direction: int):
        """The four parameters of one layer and direction, checked: ``params`` is a public dict, and
        the kernels below may assume C-contiguous arrays of the layer's dtype and shapes."""
        weights = []
        for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            name = self._name(kind, layer, direction)
            array = self.params[name]
            if (not isinstance(array, np.ndarray) or array.dtype != self.dtype or not array.flags.c_contiguous
                    or array.shape != self._shapes[name]):
                raise TypeError(f"params[{name!r}] must be a C-contiguous {self.dtype} array of shape "
                                f"{v.fmt_shape(self._shapes[name])}; use load_state_dict to set parameters")
            weights.append(array)
        return weights

    def __repr__(self):
        extra = "".join(f", {k}={getattr(self, k)!r}" for k, default in
                        [("num_layers", 1), ("bidirectional", False), ("batch_first", False), ("dropout", 0.0),
                         ("init", "torch"), ("unit_forget_bias", False)]
                        if getattr(self, k) != default)
        return (f"RNN({self.input_size}, {self.hidden_size}, cell={self.cell!r}{extra}, "
                f"dtype='{self.dtype}', backend={self.backend!r})")

    # -- state ------------------------------------------------------------------------------------

    def state_dict(self) -> dict:
        """Copies of the parameters under torch's names, in torch's order."""
        return {name: array.copy() for name, array in self.params.items()}

    def load_state_dict(self, state_dict) -> None:
        """Copy parameters in (cast to the layer's dtype); keys and shapes must match exactly."""
        load_params(self.params, state_dict, f"this {type(self).__name__}")

    # -- Keras interop (rnnkit._keras; imported on use, as it builds on this module) ----------------

    @classmethod
    def from_keras(cls, layer_or_weights, *, cell=None, batch_first=True, dtype=None, backend="cpp"):
        """The RNN that computes what a Keras SimpleRNN, LSTM or GRU (reset_after=True) layer computes.

        ``layer_or_weights``: a Keras layer, a ``Bidirectional`` (merge_mode="concat") wrapping one, a
        list of such layers (stacked: ``num_layers``, each one's input the previous one's output), or
        the arrays ``layer.get_weights()`` returns (then ``cell`` says which cell; a list of such lists
        stacks layers).  ``dtype=None`` keeps the weights' float32/float64.  Keras is batch-first, hence
        the default ``batch_first=True``.  Anything rnnkit cannot compute exactly is refused with a
        ValueError; the mapping rules are in ``rnnkit._keras``.
        """
        from ._keras import from_keras
        return from_keras(cls, layer_or_weights, cell=cell, batch_first=batch_first, dtype=dtype,
                          backend=backend)

    def to_keras_weights(self, *, use_bias=True) -> list:
        """The arrays the equivalent Keras layer's ``set_weights`` takes, in Keras' order and this
        layer's dtype: [kernel, recurrent_kernel, bias] per direction (forward, then backward); for
        ``num_layers > 1`` a list of such lists, one per layer.  ``use_bias=False`` leaves the biases
        out, for a Keras layer built with ``use_bias=False`` (refused unless they are zero)."""
        from ._keras import to_keras_weights
        return to_keras_weights(self, use_bias=use_bias)

    # -- ONNX interop (rnnkit._onnx; needs the onnx package) -----------------------------------------

    def to_onnx(self, path, **options) -> None:
        """Write this layer as an ONNX graph of RNN / LSTM / GRU nodes (one per layer; bidirectional
        and ``sequence_lens`` for lengths); see ``rnnkit._onnx.export_layer``."""
        from ._onnx import export_layer
        return export_layer(self, path, **options)

    @classmethod
    def from_onnx(cls, path_or_model, **options):
        """The RNN computing the recurrent nodes of an ONNX graph; see ``rnnkit._onnx.layer_from_onnx``."""
        from ._onnx import layer_from_onnx
        return layer_from_onnx(cls, path_or_model, **options)

    # -- forward ----------------------------------------------------------------------------------

    def _states_in(self, name, value, batch, unbatched):
        """A tuple of S arrays (L·D, B, H) from the user's h0 / dh_n (None stays None)."""
        if value is None:
            return None
        num_states = self._cell.num_states
        if num_states > 1:
            if not isinstance(value, (tuple, list)) or len(value) != num_states:
                raise TypeError(f"{name} must be a tuple of {num_states} arrays (h, c) for cell={self.cell!r}, "
                                f"got {type(value).__name__}")
            parts = [(f"{name}[{i}]", part) for i, part in enumerate(value)]
        else:
            parts = [(name, value)]
        layers = self.num_layers * self.num_directions
        expected = (layers, self.hidden_size) if unbatched else (layers, batch, self.hidden_size)
        states = []
        for part_name, part in parts:
            array = layer_array(part_name, to_numpy(part), self.dtype, "this layer")
            v.check_shape(part_name, array, expected,
                          "(num_layers * num_directions, " + ("H)" if unbatched else "B, H)"))
            states.append(array[:, None] if unbatched else array)
        return tuple(states)

    def _states_out(self, states, unbatched):
        states = tuple(s[:, 0] if unbatched else s for s in states)
        return states[0] if len(states) == 1 else states

    def forward(self, x, h0=None, *, lengths=None, training=None, return_cells=False):
        """Run the layer: returns (y, h_n); see the class docstring for the shapes.

        ``return_cells=True`` (LSTM): also the top layer's every c_t, (T, B, D·H) laid out as y (0 at
        the padding): returns (y, (h_n, c_n), cells) — what torch users loop over LSTMCell for.

        ``lengths``: None, or (B,) integers in [0, T], one per sequence of the batch, in any order:
        torch's ``pack_padded_sequence(x, lengths, enforce_sorted=False)``.  Row b then runs only its
        steps 0 .. lengths[b]-1 (no work is done on the padding), y is 0 at the padding, and h_n is
        each row's last real state (the reverse direction: its state after step 0).  Every layer of a
        stack and both directions use the lengths; the backward ignores dy at the padding.

        ``training`` defaults to the layer's ``training`` attribute (True unless set, as torch's
        ``module.training``); only training forwards drop (``dropout``), each with new masks.
        ``training=False`` (inference: what the models' predict and score use)
        saves nothing for the backward, and runs on weights packed once and kept between calls; they are packed again
        after an optimizer step or ``load_state_dict`` (after changing ``params`` in place some other
        way, call ``invalidate()``).
        """
        training = self.training if training is None else check_bool("training", training)
        x = layer_array("x", to_numpy(x), self.dtype, "this layer")
        if x.ndim not in (2, 3):
            layout = "(B, T, I)" if self.batch_first else "(T, B, I)"
            raise ValueError(f"x must have 3 dimensions {layout} or 2 (T, I) unbatched, got shape {v.fmt_shape(x.shape)}")
        unbatched = x.ndim == 2
        if unbatched:
            x = x[:, None]
        elif self.batch_first:
            x = np.ascontiguousarray(x.transpose(1, 0, 2))
        steps, batch, inputs = x.shape
        if inputs != self.input_size:
            raise ValueError(f"x has {inputs} features (shape {v.fmt_shape(x.shape)}); this layer's input_size is "
                             f"{self.input_size}")
        return_cells = check_bool("return_cells", return_cells)
        if return_cells and self._cell.kind != "lstm":
            raise ValueError(f"return_cells=True is for the LSTM (the cell state c_t); this layer's cell is {self.cell!r}")
        if lengths is not None and unbatched:
            raise ValueError("lengths needs batched x (3 dimensions); an unbatched x (T, I) is one sequence "
                             "of length T: slice it instead")
        lengths = v.check_lengths(lengths, steps, batch)
        if lengths is not None and np.all(lengths == steps):
            lengths = None  # every row full: the same result, on the kernels' fast path
        states0 = self._states_in("h0", h0, batch, unbatched)

        hidden, directions, num_states = self.hidden_size, self.num_directions, self._cell.num_states
        h_n = tuple(np.empty((self.num_layers * directions, batch, hidden), self.dtype) for _ in range(num_states))
        saved, masks = [], []
        layer_input = x
        for layer in range(self.num_layers):
            # One (T, B, D·H) output per layer; the directions write their halves in place, at once.
            out = np.empty((steps, batch, directions * hidden), self.dtype)
            indices = [layer * directions + d for d in range(directions)]
            layer_states0 = None if states0 is None else [tuple(s[i] for s in states0) for i in indices]
            weights = [self._weights(layer, d) for d in range(directions)]
            # (return_cells: the top layer runs a training pass, which keeps every c_t)
            saves = training or (return_cells and layer == self.num_layers - 1)
            plans = None if saves or self.backend != "cpp" else self._plans_for(layer, weights)
            states_n, layer_saved = self._cell.forward(layer_input, layer_states0, weights, out, lengths=lengths,
                                                       training=saves, backend=self.backend, plans=plans)
            if return_cells and layer == self.num_layers - 1:
                cells = self._cells_of(layer_saved, steps, batch)
            for d, index in enumerate(indices):
                for s in range(num_states):
                    h_n[s][index] = states_n[d][s]
            saved.append(layer_saved)
            layer_input = out
            if training and self.dropout > 0 and layer < self.num_layers - 1:
                # A new array: the saved pass refers to out (its h_t), which must stay undropped.
                masks.append(dropout_mask(self._dropout_rng, self.dropout, out.shape, self.dtype))
                layer_input = out * masks[-1]
        # (inference: nothing left to a backward)
        self._saved = (saved, x.shape, unbatched, masks) if training else None
        y = layer_input
        if training:
            y.flags.writeable = False
        if unbatched:
            y = y[:, 0]
        elif self.batch_first:
            y = y.transpose(1, 0, 2)
        if return_cells:
            cells = cells[:, 0] if unbatched else cells.transpose(1, 0, 2) if self.batch_first else cells
            return y, self._states_out(h_n, unbatched), cells
        return y, self._states_out(h_n, unbatched)

    __call__ = forward

    @property
    def dropout_masks(self) -> tuple:
        """The masks the last training forward multiplied each layer's output by (all layers but the
        last; what ``backward`` applies), laid out as y — (T, B, D·H), batch-first or unbatched as x
        was — holding 0 and 1/(1-dropout); () when it dropped nothing or the last forward was inference.
        Read-only."""
        if self._saved is None:
            return ()
        _, _, unbatched, masks = self._saved
        views = []
        for mask in masks:
            view = mask[:, 0] if unbatched else mask.transpose(1, 0, 2) if self.batch_first else mask[...]
            view.flags.writeable = False
            views.append(view)
        return tuple(views)

    def _cells_of(self, saved, steps, batch):
        """Every c_t (T, B, D·H) of a layer's training pass, 0 at the padding."""
        backend, passes, _ = saved
        hidden = self.hidden_size
        cells = np.zeros((steps, batch, len(passes) * hidden), self.dtype)
        for d, one in enumerate(passes):
            half = cells[..., d * hidden:(d + 1) * hidden]
            if backend == "cpp":
                _core.saved_cells(one.core, half)
            else:
                half[...] = one.cells
        return cells

    def stream(self, batch_size=1):
        """A stream over this layer: ``step(x_t)`` feeds one timestep of B independent sessions and
        returns the top layer's h_t; see ``rnnkit.streams``.  The stream holds the weights packed as they
        are now (a snapshot: make a new stream after training) and the state of every row."""
        from .streams import layer_stream
        return layer_stream(self, batch_size)

    def invalidate(self) -> None:
        """Forget the packed weights kept for inference (after changing ``params`` in place by hand)."""
        self._plans = {}

    def _stream_plans(self):
        """Every layer's inference plan (a unidirectional layer), for a _core.Stream."""
        return [self._plans_for(layer, [self._weights(layer, 0)])[0] for layer in range(self.num_layers)]

    def _plans_for(self, layer, weights):
        """The inference plans of one layer's directions: kept while the weights are the same arrays,
        no optimizer step or load_state_dict has happened since, and the SIMD path is the same."""
        plans = []
        version, isa = _cells.weights_version(), _core.simd_isa()
        for d, w in enumerate(weights):
            key = (layer, d)
            ids = tuple(id(a) for a in w)
            kept = self._plans.get(key)
            if kept is None or kept[1:] != (version, isa, ids):
                kept = (self._cell.plan(*w), version, isa, ids)
                self._plans[key] = kept
            plans.append(kept[0])
        return plans

    # -- backward ---------------------------------------------------------------------------------

    def backward(self, dy, dh_n=None, *, need_dx=True):
        """BPTT through the last forward: returns (dx, dh0) and fills ``self.grads``.

        dy has the shape of y (or is None: zeros); dh_n that of h_n (or None).  dx has the shape of x;
        dh0 that of h_n (a pair (dh0, dc0) for the LSTM), also when the forward's h0 was None.  After
        a forward with lengths, dy at the padding is ignored and dx is 0 there.  ``need_dx=False``:
        dx is None, and the kernels skip its work (the input's gradient is about a tenth of a layer's
        backward); every other gradient is the same.
        """
        if self._saved is None:
            raise RuntimeError("backward() needs a forward() first (with training=True)")
        saved, (steps, batch, inputs), unbatched, masks = self._saved
        hidden, directions = self.hidden_size, self.num_directions
        if dy is not None:
            dy = layer_array("dy", to_numpy(dy), self.dtype, "this layer")
            want = (steps, directions * hidden) if unbatched else (
                (batch, steps, directions * hidden) if self.batch_first else (steps, batch, directions * hidden))
            v.check_shape("dy", dy, want, "(the shape of the forward's y)")
            if unbatched:
                dy = dy[:, None]
            elif self.batch_first:
                dy = np.ascontiguousarray(dy.transpose(1, 0, 2))
        dstates_n = self._states_in("dh_n", dh_n, batch, unbatched)

        dstates0 = tuple(np.empty((self.num_layers * directions, batch, hidden), self.dtype)
                         for _ in range(self._cell.num_states))
        grads = {}
        d_output = dy  # gradient wrt the current layer's (T, B, D·H) output
        for layer in reversed(range(self.num_layers)):
            layer_inputs = inputs if layer == 0 else directions * hidden
            d_input = None if layer == 0 and not need_dx else np.empty((steps, batch, layer_inputs), self.dtype)
            indices = [layer * directions + d for d in range(directions)]
            layer_dstates = None if dstates_n is None else [tuple(s[i] for s in dstates_n) for i in indices]
            results = self._cell.backward(saved[layer], d_output, layer_dstates, d_input, batch=batch)
            for d, (dstate0, *dweights) in enumerate(results):
                for s, dstate in enumerate(dstate0):
                    dstates0[s][indices[d]] = dstate
                for kind, dweight in zip(("weight_ih", "weight_hh", "bias_ih", "bias_hh"), dweights):
                    grads[self._name(kind, layer, d)] = dweight
            # (through the dropout between this layer and the one below: the same mask)
            d_output = d_input * masks[layer - 1] if masks and layer > 0 else d_input
        self.grads = {name: grads[name] for name in self.params}
        dx = d_output
        if dx is None:
            pass
        elif unbatched:
            dx = dx[:, 0]
        elif self.batch_first:
            dx = dx.transpose(1, 0, 2)
        return dx, self._states_out(dstates0, unbatched)


class Dense:
    """A fully connected layer, torch.nn.Linear's layout: y = x Wᵀ + b.

    ``Dense(input_size, output_size, *, dtype="float32", seed=None)``; weight (output_size,
    input_size) and bias (output_size,), initialised U(-1/sqrt(input_size), 1/sqrt(input_size)).
    ``forward(x)`` maps (..., input_size) to (..., output_size); ``backward(dy) -> dx`` fills
    ``self.grads`` ({"weight", "bias"}).
    """

    def __init__(self, input_size, output_size, *, dtype="float32", seed=None):
        self.input_size = check_int("input_size", input_size)
        self.output_size = check_int("output_size", output_size)
        self.dtype = check_dtype(dtype)
        rng = make_rng(seed)
        bound = 1.0 / np.sqrt(self.input_size)
        self.params = {"weight": uniform_init(rng, bound, (self.output_size, self.input_size), self.dtype),
                       "bias": uniform_init(rng, bound, (self.output_size,), self.dtype)}
        self.grads: dict[str, np.ndarray] = {}
        self._x = None

    def __repr__(self):
        return f"Dense({self.input_size}, {self.output_size}, dtype='{self.dtype}')"

    def state_dict(self) -> dict:
        return {name: array.copy() for name, array in self.params.items()}

    def load_state_dict(self, state_dict) -> None:
        load_params(self.params, state_dict, "this Dense")

    def forward(self, x):
        x = layer_array("x", to_numpy(x), self.dtype, "this layer")
        if x.ndim < 1 or x.shape[-1] != self.input_size:
            raise ValueError(f"x has shape {v.fmt_shape(x.shape)}; expected (..., {self.input_size}) "
                             f"(the last axis is input_size)")
        self._x = x
        rows = x.reshape(-1, self.input_size)  # one GEMM over every leading index
        return (rows @ self.params["weight"].T + self.params["bias"]).reshape(x.shape[:-1] + (self.output_size,))

    __call__ = forward

    def backward(self, dy):
        if self._x is None:
            raise RuntimeError("backward() needs a forward() first")
        x = self._x
        dy = layer_array("dy", to_numpy(dy), self.dtype, "this layer")
        v.check_shape("dy", dy, x.shape[:-1] + (self.output_size,), "(the shape of the forward's output)")
        dy2 = dy.reshape(-1, self.output_size)
        self.grads = {"weight": dy2.T @ x.reshape(-1, self.input_size), "bias": dy2.sum(axis=0)}
        return (dy2 @ self.params["weight"]).reshape(x.shape)


def load_params(params: dict, state_dict, owner: str) -> None:
    """Copy ``state_dict`` into the arrays of ``params`` in place (so optimizers keep their references)."""
    if not hasattr(state_dict, "keys"):
        raise TypeError(f"state_dict must be a mapping of names to arrays, got {type(state_dict).__name__}")
    missing = [k for k in params if k not in state_dict]
    unexpected = [k for k in state_dict if k not in params]
    if missing or unexpected:
        raise ValueError(f"state_dict does not fit {owner}: missing keys {missing}, unexpected keys {unexpected}")
    arrays = {}
    for name, target in params.items():
        value = to_numpy(state_dict[name])
        arrays_, _ = v.as_float_arrays({name: value})
        array = arrays_[name]
        v.check_shape(name, array, target.shape, f"(the shape of {name} in {owner})")
        arrays[name] = array
    for name, array in arrays.items():  # all checked before any is copied
        params[name][...] = array
    _cells.weights_changed()
