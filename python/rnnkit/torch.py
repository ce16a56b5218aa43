"""rnnkit's kernels behind torch.nn.RNN, LSTM and GRU: change one import, keep the training script.

    from rnnkit.torch import GRU        # instead of torch.nn.GRU
    rnnkit.torch.replace_rnns(model)    # or: every torch.nn.RNN / LSTM / GRU inside a model, in place

Legend: T timesteps, B batch, I input features, H hidden units, L layers, D directions (2 when
bidirectional), S states per cell (1: h; 2 for the LSTM: (h, c)), N real tokens of a PackedSequence.

``RNN``, ``LSTM`` and ``GRU`` are subclasses of torch's own modules (``isinstance(m, torch.nn.GRU)``
holds), so the constructor with its positional arguments, its checks and warnings, the parameters
(names, shapes, U(-1/sqrt(H), 1/sqrt(H)) initialisation), ``state_dict``, ``all_weights``,
``_flat_weights``, ``flatten_parameters`` (a no-op on the CPU), ``repr`` and pickling are torch's, and
state_dicts move both ways unchanged.  Only ``forward`` is rnnkit's: it takes what torch's takes (a
tensor (T, B, I) — (B, T, I) with ``batch_first`` —, an unbatched (T, I), or a PackedSequence, and
h0 / (h0, c0) or None) and returns torch's structures: (y, h_n) — (y, (h_n, c_n)) for the LSTM —,
y a PackedSequence for packed input, h_n in the batch's own (unsorted) order.

What rnnkit refuses, where torch would run: other devices than the CPU, dtypes other than float32 and
float64, and the LSTM's ``proj_size``.  Each raises a ValueError (at construction) or RuntimeError (in
forward, for tensors moved since) that says so; use torch's module for those.

How a call runs:
- The whole stack (every layer, both directions) is one ``torch.autograd.Function``: its forward turns
  the tensors into NumPy views (no copies for contiguous CPU tensors; NumPy copies of the others) and
  runs the kernels, both directions of a layer at once; its backward runs the kernels' BPTT and returns
  the gradients of the input, h0 (c0) and every parameter that needs one.  It is not twice
  differentiable; ``backward(retain_graph=True)`` and a second backward work, as torch's.
- Nothing that needs a gradient (``torch.no_grad()``, ``torch.inference_mode()``, or no input nor
  parameter requiring grad): no Function and nothing saved — the kernels' inference pass.
- A PackedSequence runs as lengths: its data goes to the kernels as it is, their packed rows (N, I),
  with the batch in torch's sorted order (h0 and h_n, and their gradients, are permuted to and from
  it in NumPy); y and dx come back as packed rows, so no padding is made, read or computed.
- Copies (of non-contiguous tensors, permuted states) are NumPy's: a torch op would wake torch's OpenMP
  threads, which spin on the cores for a while afterwards — the very cores the kernels' threads need.
- Dropout between layers (``dropout``, in training mode only, as torch) multiplies each layer's
  output but the last by torch's own noise, ``bernoulli_(1 - p) / (1 - p)`` drawn from torch's
  generator in the layout torch's module draws it (the (T, B, D·H) output; the (N, D·H) packed data
  for packed input), so ``torch.manual_seed`` makes it reproducible — and the same draws as torch's.

Threads: the kernels use ``rnnkit.get_num_threads()`` threads, torch's ops torch's.  The calls that
autograd records (a training step's forward and backward) take their helper threads from torch's own
OpenMP runtime (``use_torch_threads``): after each parallel torch op (an optimizer step, say) torch's
idle OpenMP workers spin for milliseconds, and rnnkit's own helpers would have to fight them for the
cores; as torch's threads, they are the helpers already awake.  One such call at a time does: one made
while another is running (from another thread) takes rnnkit's pool.  Inference calls keep the pool
too: a server's threads share its helpers, where every thread would otherwise bring a team of
spinning OpenMP threads of its own.  The results are the same bits either way.
"""

from __future__ import annotations

import contextlib
import functools
import inspect

try:
    import torch  # (absolute: this module's own name shadows nothing)
except ImportError as error:  # pragma: no cover - exercised in a subprocess without torch
    raise ImportError("rnnkit.torch needs PyTorch, which is not installed: pip install torch "
                      "(the rest of rnnkit works without it)") from error

import numpy as np
from torch.autograd.function import once_differentiable
from torch.nn.utils.rnn import PackedSequence

from . import _core
from .functional import SavedPass, run_backward, run_plans

__all__ = ["GRU", "LSTM", "RNN", "replace_rnns", "use_torch_threads"]

_DTYPES = (torch.float32, torch.float64)


@functools.lru_cache(maxsize=None)
def _torch_openmp():
    """The OpenMP runtime torch's ops run on (a path or soname), or None (another parallel backend,
    or not found).  Read once: the process's mappings take a millisecond to scan."""
    if "parallel backend: OpenMP" not in torch.__config__.parallel_info():
        return None
    import os
    torch_dir = os.path.dirname(os.path.abspath(torch.__file__))
    try:  # the copy torch loaded (wheels bundle their own), from the process's mappings
        with open("/proc/self/maps") as maps:
            paths = {line.split(None, 5)[5].strip() for line in maps if line.count(" ") >= 5 and "omp" in line}
    except OSError:
        paths = set()
    names = ("libgomp", "libiomp5", "libomp")
    found = sorted(p for p in paths if os.path.basename(p).startswith(names))
    for path in found:
        if path.startswith(torch_dir):
            return path
    return found[0] if found else "libgomp.so.1"


@contextlib.contextmanager
def _on_torch_threads():
    """This thread's kernel calls take torch's OpenMP threads as helpers (if registered) inside the block."""
    previous = _core._thread_uses_openmp(True)
    try:
        yield
    finally:
        _core._thread_uses_openmp(previous)


def use_torch_threads(enabled: bool = True) -> bool:
    """Let the bridge's training calls (the autograd Function's forward and backward) take their helper
    threads from torch's OpenMP runtime (the default once rnnkit.torch is imported; one call at a time,
    the others on rnnkit's pool), or, with ``enabled=False``, from rnnkit's own pool like every other
    call.  Returns whether torch's threads
    are in use: False when torch's parallel backend is not an OpenMP runtime rnnkit can join (then
    rnnkit's pool does the work, as without torch).  Results are bitwise the same either way."""
    if not enabled:
        _core._use_openmp_threads("")
        return False
    library = _torch_openmp()
    return bool(library) and _core._use_openmp_threads(library)
_CELL = {"RNN_TANH": "tanh", "RNN_RELU": "relu", "LSTM": "lstm", "GRU": "gru"}
_BASE_SIGNATURE = inspect.signature(torch.nn.RNNBase.__init__)


class _Stack:
    """What one forward call runs: the cell, the stack's shape, lengths and dropout (the Function's
    first, non-tensor argument)."""

    __slots__ = ("batch", "cell", "directions", "dropout", "hidden", "input_size", "inverse", "layers", "lengths",
                 "lstm", "order", "packed", "per_direction", "rows_count", "steps")

    def __init__(self, module, steps, batch, dropout, packed=None):
        self.cell = _CELL[module.mode]
        self.lstm = module.mode == "LSTM"
        self.layers, self.hidden, self.input_size = module.num_layers, module.hidden_size, module.input_size
        self.directions = 2 if module.bidirectional else 1
        self.per_direction = 4 if module.bias else 2  # flat weights per layer and direction
        self.steps, self.batch = steps, batch
        self.dropout = dropout  # the probability, 0 when this call drops nothing
        # Packed input: None, or (lengths sorted longest first, order, inverse) — the data's rows go to
        # the kernels as they are (their packed rows), the batch in torch's sorted order: order[j] is
        # the batch row at sorted position j (None: the identity), inverse its inverse.
        self.packed = packed is not None
        self.lengths, self.order, self.inverse = packed if packed is not None else (None, None, None)
        self.rows_count = int(self.lengths.sum()) if self.packed else steps * batch  # (packed: the data's N)

    def weights(self, flat):
        """Per layer and direction (w_ih, w_hh, b_ih, b_hh) as C-contiguous NumPy arrays (biases None
        without bias)."""
        arrays = [_numpy(w) for w in flat]
        out = []
        for k in range(0, len(arrays), self.per_direction):
            w = arrays[k:k + self.per_direction]
            out.append(tuple(w) if self.per_direction == 4 else (w[0], w[1], None, None))
        return out

    def rows(self):
        """The leading shape of one layer's input or output: (T, B), or (N,) packed rows."""
        return (self.rows_count,) if self.packed else (self.steps, self.batch)

    def noise(self, shape, dtype):
        """The multiplier of one layer's output (T, B, D·H) — (N, D·H) packed: torch's dropout noise,
        drawn as torch's module draws it (for packed input, over the packed data)."""
        p = self.dropout
        if p == 1:  # (as torch: everything dropped, nothing drawn)
            return np.zeros(shape, dtype)
        torch_dtype = torch.float64 if dtype == np.float64 else torch.float32
        return torch.empty(shape, dtype=torch_dtype).bernoulli_(1 - p).div_(1 - p).numpy()

    def sorted_states(self, states):
        """(L·D, B, H) states in the batch's order, as the kernels take them for packed input (sorted)."""
        return states if self.order is None else tuple(None if s is None else np.take(s, self.order, axis=1)
                                                       for s in states)

    def batch_states(self, states):
        """The kernels' states of packed input, back in the batch's order."""
        return states if self.order is None else tuple(np.take(s, self.inverse, axis=1) for s in states)


def _numpy(tensor):
    """A NumPy view of a CPU tensor, or a C-contiguous copy of one that is not (the kernels read rows
    with unit stride).  The copy is NumPy's, not torch's: a torch copy would wake torch's OpenMP threads,
    which then spin for milliseconds on the cores the kernels' threads are about to use."""
    try:
        array = tensor.numpy()  # (every caller runs with grad mode off, where this needs no detach)
    except RuntimeError:  # (a tensor with the conjugate or negative bit set, or grad mode on)
        array = tensor.detach().resolve_conj().resolve_neg().numpy()
    return array if array.flags.c_contiguous else np.ascontiguousarray(array)


def _run_stack(stack, x, states0, weights, save):
    """Every layer of the stack over x (T, B, I) — or packed input's (N, I) rows.

    states0: None or a tuple of S arrays (L·D, B, H); weights: from ``stack.weights``; save: keep what
    the backward needs.  Returns y (T, B, D·H) — (N, D·H) for packed input —, a tuple of S arrays
    (L·D, B, H), the saved passes (per layer a list of SavedPass; None unless ``save``) and the dropout
    masks (one per layer but the last).
    """
    batch, hidden, directions = stack.batch, stack.hidden, stack.directions
    rows = stack.rows()
    num_states = 2 if stack.lstm else 1
    if states0 is not None:
        states0 = stack.sorted_states(states0)
    states_n = tuple(np.empty((stack.layers * directions, batch, hidden), x.dtype) for _ in range(num_states))
    saved, masks = [], []
    layer_input = x
    for layer in range(stack.layers):
        # One output per layer: the directions write their halves in place, at once.
        out = np.empty((*rows, directions * hidden), x.dtype)
        halves = [out[..., d * hidden:(d + 1) * hidden] for d in range(directions)] if directions > 1 else [out]
        indices = [layer * directions + d for d in range(directions)]
        layer_states0 = [None if states0 is None else tuple(s[i] for s in states0) for i in indices]
        # (plans that borrow the weights, packed by the call's threads: the weights stay alive with the
        # saved passes, and the Function saves them, so torch refuses a backward after they changed)
        plans = [_core.Plan._borrowing(stack.cell, *weights[i]) for i in indices]
        _, layer_states_n, layer_saved = run_plans(plans, layer_input, layer_states0, stack.lengths, save,
                                                   ys=halves)
        for d, i in enumerate(indices):
            for s in range(num_states):
                states_n[s][i] = layer_states_n[d][s]
        if save:
            saved.append([SavedPass(one, weights[i][:2]) for one, i in zip(layer_saved, indices)])
        layer_input = out
        if stack.dropout > 0 and layer < stack.layers - 1:
            # A new array: the saved pass refers to out (its h_t), which must stay undropped.
            masks.append(stack.noise(out.shape, x.dtype))
            layer_input = out * masks[-1]
    return layer_input, stack.batch_states(states_n), (saved if save else None), masks


def _backward_stack(stack, saved, masks, dy, dstates_n, dtype, need_dx=True):
    """BPTT through ``_run_stack``'s saved passes: dy (T, B, D·H) — (N, D·H) for packed input — or None,
    dstates_n None or a tuple of S arrays (L·D, B, H) (None entries: zeros).  Returns dx (T, B, I) —
    (N, I) packed; None unless ``need_dx``: then the kernels skip its products —, the tuple of S
    dstates0 and, per layer and direction, (dw_ih, dw_hh, db_ih, db_hh), each its own array."""
    batch, inputs = stack.batch, stack.input_size
    rows = stack.rows()
    hidden, directions = stack.hidden, stack.directions
    num_states = 2 if stack.lstm else 1
    if dstates_n is not None:
        dstates_n = stack.sorted_states(dstates_n)
    dstates0 = tuple(np.empty((stack.layers * directions, batch, hidden), dtype) for _ in range(num_states))
    dweights = [None] * (stack.layers * directions)
    d_output = dy  # gradient wrt the current layer's output
    for layer in reversed(range(stack.layers)):
        d_input = None if layer == 0 and not need_dx else np.empty(
            (*rows, inputs if layer == 0 else directions * hidden), dtype)
        indices = [layer * directions + d for d in range(directions)]
        if d_output is None or directions == 1:
            dys = [d_output] * directions
        else:
            dys = [d_output[..., d * hidden:(d + 1) * hidden] for d in range(directions)]
        layer_dstates = [None if dstates_n is None else tuple(None if s is None else s[i] for s in dstates_n)
                         for i in indices]
        results = run_backward(saved[layer], dys, layer_dstates, d_input, batch=batch)
        for (dstate0, dw_ih, dw_hh, db_ih, db_hh), i in zip(results, indices):
            for s, dstate in enumerate(dstate0):
                dstates0[s][i] = dstate
            # (the kernels alias db_hh to db_ih where the two are equal; torch wants two tensors)
            dweights[i] = (dw_ih, dw_hh, db_ih, db_ih.copy() if db_hh is db_ih else db_hh)
        if masks and layer > 0:
            d_input *= masks[layer - 1]  # through the dropout below this layer: the same mask
        d_output = d_input
    return d_output, stack.batch_states(dstates0), dweights


class _StackFunction(torch.autograd.Function):
    """The whole stack as one autograd node: apply(stack, x, h0, c0, *flat_weights) with x (T, B, I) of
    any strides (packed input: the (N, I) data), h0 / c0 (L·D, B, H) or None; returns
    (y (T, B, D·H) — packed: (N, D·H) —, h_n[, c_n])."""

    @staticmethod
    def forward(ctx, stack, x, h0, c0, *flat_weights):
        ctx.set_materialize_grads(False)  # unused outputs give None: the kernels take None as zeros
        x_array = _numpy(x)
        states0 = None if h0 is None else (_numpy(h0),) + ((_numpy(c0),) if stack.lstm else ())
        with _on_torch_threads():  # (torch's threads as the helpers: use_torch_threads)
            y, states_n, saved, masks = _run_stack(stack, x_array, states0, stack.weights(flat_weights), save=True)
        ctx.stack, ctx.saved, ctx.masks, ctx.dtype = stack, saved, masks, x_array.dtype
        outputs = (torch.from_numpy(y), *(torch.from_numpy(s) for s in states_n))
        # The saved passes read x, y and the weights in place: saving them makes torch refuse a backward
        # after one was changed in place (the version check, as torch's own modules), instead of
        # computing wrong gradients.
        ctx.save_for_backward(x, outputs[0], *flat_weights)
        return outputs

    @staticmethod
    @once_differentiable
    def backward(ctx, dy, dh_n, dc_n=None):
        ctx.saved_tensors  # noqa: B018 - torch's check that x and y were not modified in place
        stack, needs = ctx.stack, ctx.needs_input_grad
        dy = None if dy is None else _numpy(dy)
        dstates_n = None
        if dh_n is not None or dc_n is not None:
            dstates_n = (None if dh_n is None else _numpy(dh_n),) + (
                (None if dc_n is None else _numpy(dc_n),) if stack.lstm else ())
        # (the saved passes stay with ctx, for a backward with retain_graph=True; torch frees ctx with
        # the graph, and refuses a second backward without retain_graph at ctx.saved_tensors above)
        with _on_torch_threads():
            dx, dstates0, dweights = _backward_stack(stack, ctx.saved, ctx.masks, dy, dstates_n, ctx.dtype,
                                                     need_dx=needs[1])
        grads = [None, torch.from_numpy(dx) if needs[1] else None]
        grads.append(torch.from_numpy(dstates0[0]) if needs[2] else None)
        grads.append(torch.from_numpy(dstates0[1]) if stack.lstm and needs[3] else None)
        flat = [g for one in dweights for g in one[:stack.per_direction]]
        grads.extend(torch.from_numpy(g) if need else None for g, need in zip(flat, needs[4:]))
        return tuple(grads)


def _packed_layout(batch_sizes, sorted_indices, unsorted_indices):
    """(lengths, order, inverse) of a PackedSequence for the kernels' packed rows: lengths (B,) int64
    of the sorted batch (longest first, non-increasing), order the sorted position -> batch row
    permutation and inverse its inverse (both None when the batch is already in that order)."""
    sizes = batch_sizes.numpy().astype(np.int64, copy=False)  # (T,), non-increasing
    steps, batch = len(sizes), int(sizes[0])
    # sorted row j runs the steps whose batch size exceeds j
    lengths = (steps - np.searchsorted(sizes[::-1], np.arange(batch), side="right")).astype(np.int64, copy=False)
    if sorted_indices is None:
        return lengths, None, None
    return lengths, sorted_indices.numpy(), unsorted_indices.numpy()


class _Bridge:
    """The forward pass shared by RNN, LSTM and GRU (mixed in before torch's class)."""

    def __init__(self, *args, **kwargs):
        name = type(self).__name__
        base_args, base_kwargs = list(args), dict(kwargs)
        if isinstance(self, torch.nn.RNN):  # (torch's RNN takes nonlinearity 4th; RNNBase does not)
            if len(base_args) > 3:
                del base_args[3]
            base_kwargs.pop("nonlinearity", None)
        try:
            bound = _BASE_SIGNATURE.bind(None, "mode", *base_args, **base_kwargs).arguments
        except TypeError:
            bound = {}  # torch's constructor below says what is wrong, in its own words
        device = bound.get("device")
        if device is not None and torch.device(device).type != "cpu":
            raise ValueError(f"device: rnnkit.torch.{name} runs on the CPU only, got device={device!r}; "
                             f"use torch.nn.{name} on other devices")
        if bound.get("proj_size", 0) != 0 and isinstance(self, torch.nn.LSTM):
            raise ValueError(f"proj_size: rnnkit.torch.LSTM has no projections, got proj_size={bound['proj_size']!r}; "
                             "use torch.nn.LSTM for an LSTM with proj_size > 0")
        super().__init__(*args, **kwargs)
        dtype = self._flat_weights[0].dtype  # (dtype=None: torch.get_default_dtype())
        if dtype not in _DTYPES:
            raise ValueError(f"dtype: rnnkit.torch.{name} computes in torch.float32 or torch.float64, got {dtype}; "
                             f"use torch.nn.{name} for other dtypes")

    def _update_flat_weights(self):
        """torch's refresh of _flat_weights (parameters swapped by torch.func.functional_call, or
        replaced), after a fast check: when each one is still the module's own parameter of its name,
        nothing changed (torch's own check looks every name up through Module.__getattr__: 10 us of a
        batch-1 call)."""
        params = self._parameters
        for name, weight in zip(self._flat_weights_names, self._flat_weights):
            if params.get(name) is not weight:
                return super()._update_flat_weights()
        return None

    def forward(self, input, hx=None):  # (torch's argument names)
        """torch's forward: see the module docstring."""
        self._update_flat_weights()  # (as torch: parameters swapped by torch.func.functional_call)
        weights = self._flat_weights
        _check_weights(self, weights)
        name = type(self).__name__
        lstm = self.mode == "LSTM"
        packed = isinstance(input, PackedSequence)
        unbatched = False
        packed_layout = None
        if packed:
            data, batch_sizes, sorted_indices, unsorted_indices = input
            _check_device("input", data, name)
            self.check_input(data, batch_sizes)  # torch's checks and messages
            steps, batch = len(batch_sizes), int(batch_sizes[0])
            packed_layout = _packed_layout(batch_sizes, sorted_indices, unsorted_indices)
            x = data
        else:
            if not isinstance(input, torch.Tensor):
                raise TypeError(f"{name}: input must be a Tensor or a PackedSequence, got {type(input).__name__}")
            _check_device("input", input, name)
            if input.dim() not in (2, 3):
                raise ValueError(f"{name}: Expected input to be 2D or 3D, got {input.dim()}D instead")
            unbatched = input.dim() == 2
            if unbatched:
                x = input.unsqueeze(1)
            else:
                x = input.transpose(0, 1) if self.batch_first else input
            self.check_input(x, None)
            steps, batch = x.shape[0], x.shape[1]
            if steps == 0:
                raise RuntimeError("Expected sequence length to be larger than 0 in RNN")  # (torch's)
        states = None if hx is None else self._states_in(hx, batch, unbatched, packed, weights[0].dtype)
        # (x and the states go in as they are, views included: the Function copies what is not contiguous)

        grad = torch.is_grad_enabled() and (
            x.requires_grad or any(w.requires_grad for w in weights)
            or (states is not None and any(s.requires_grad for s in states)))
        stack = _Stack(self, steps, batch, self.dropout if self.training else 0.0, packed_layout)
        if grad:
            h0, c0 = (None, None) if states is None else (states[0], states[1] if lstm else None)
            y, *states_n = _StackFunction.apply(stack, x, h0, c0, *weights)
        else:
            arrays0 = None if states is None else tuple(_numpy(s) for s in states)
            # (rnnkit's pool: a server's threads share its helpers; torch's threads help training)
            y, arrays_n, _, _ = _run_stack(stack, _numpy(x), arrays0, stack.weights(weights), save=False)
            y, states_n = torch.from_numpy(y), [torch.from_numpy(s) for s in arrays_n]

        if packed:
            y = PackedSequence(y, batch_sizes, sorted_indices, unsorted_indices)
        elif unbatched:
            y, states_n = y.squeeze(1), [s.squeeze(1) for s in states_n]
        elif self.batch_first:
            y = y.transpose(0, 1)
        return y, (tuple(states_n) if lstm else states_n[0])

    def _states_in(self, hx, batch, unbatched, packed, dtype):
        """The user's h0 (or (h0, c0)) as a tuple of contiguous (L·D, B, H) tensors, checked as torch
        checks them (and for the CPU and the weights' dtype)."""
        name = type(self).__name__
        lstm = self.mode == "LSTM"
        if lstm:
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise TypeError(f"{name}: hx must be a tuple (h0, c0) of two tensors, got {type(hx).__name__}")
            parts = list(hx)
        else:
            parts = [hx]
        for i, part in enumerate(parts):
            label = f"hx[{i}]" if lstm else "hx"
            if not isinstance(part, torch.Tensor):
                raise TypeError(f"{name}: {label} must be a Tensor, got {type(part).__name__}")
            _check_device(label, part, name)
        wanted = 2 if unbatched else 3
        if not packed and any(p.dim() != wanted for p in parts):
            kind = "unbatched 2-D" if unbatched else "batched 3-D"
            got = f"({parts[0].dim()}-D, {parts[1].dim()}-D) tensors" if lstm else f"{parts[0].dim()}-D tensor"
            raise RuntimeError(f"For {kind} input, {'hx and cx' if lstm else 'hx'} should also be {wanted}-D but "
                               f"got {got}")
        if unbatched:
            parts = [p.unsqueeze(1) for p in parts]
        expected = (self.num_layers * (2 if self.bidirectional else 1), batch, self.hidden_size)
        for i, part in enumerate(parts):
            label = f"hidden[{i}]" if lstm else "hidden"
            self.check_hidden_size(part, expected, f"Expected {label} size {{}}, got {{}}")
            if part.dtype != dtype:  # (torch: a RuntimeError from its matmul)
                raise RuntimeError(f"{name}: {'hx' if not lstm else f'hx[{i}]'} has dtype {part.dtype}; the weights "
                                 f"have dtype {dtype} (convert it: hx.to({dtype}))")
        return tuple(parts)


def _check_device(label, tensor, name):
    if tensor.device.type != "cpu":
        raise RuntimeError(f"{name}: {label} is on device {tensor.device}; rnnkit.torch.{name} runs on the CPU "
                           f"only (move it with .cpu(), or use torch.nn.{name} there)")


def _check_weights(module, weights):
    """Parameters moved or cast since the construction (module.to(...), .half())."""
    name = type(module).__name__
    first = weights[0]
    if first.device.type != "cpu" or first.dtype not in _DTYPES:
        for label, w in zip(module._flat_weights_names, weights):
            if w.device.type != "cpu":
                raise RuntimeError(f"{name}: parameter {label} is on device {w.device}; rnnkit.torch.{name} runs on "
                                   f"the CPU only (module.cpu(), or torch.nn.{name} on other devices)")
            if w.dtype not in _DTYPES:
                raise ValueError(f"{name}: parameter {label} has dtype {w.dtype}; rnnkit.torch.{name} computes in "
                                 f"torch.float32 or torch.float64 (module.float() or module.double())")


def _check_module(module, qualified):
    """What rnnkit cannot run, refused with the module's name."""
    where = f"{qualified} ({type(module).__name__})" if qualified else type(module).__name__
    if module.proj_size:
        raise ValueError(f"{where}: proj_size={module.proj_size}; rnnkit has no LSTM projections (keep "
                         "torch.nn.LSTM for it)")
    for label, w in zip(module._flat_weights_names, module._flat_weights):
        if w is None or w.device.type != "cpu" or w.dtype not in _DTYPES:
            got = "missing" if w is None else f"{w.dtype} on {w.device}"
            raise ValueError(f"{where}: parameter {label} is {got}; rnnkit runs float32 or float64 parameters on "
                             "the CPU (the dtype argument, module.float() / .double() / .cpu())")


class RNN(_Bridge, torch.nn.RNN):
    """torch.nn.RNN (tanh or relu) on rnnkit's kernels: the same constructor, parameters and results."""


class LSTM(_Bridge, torch.nn.LSTM):
    """torch.nn.LSTM on rnnkit's kernels (without proj_size): the same constructor, parameters and results."""


class GRU(_Bridge, torch.nn.GRU):
    """torch.nn.GRU on rnnkit's kernels: the same constructor, parameters and results."""


_REPLACEMENTS = {torch.nn.RNN: RNN, torch.nn.LSTM: LSTM, torch.nn.GRU: GRU}


def replace_rnns(module):
    """Make every torch.nn.RNN, LSTM and GRU inside ``module`` (``module`` itself included) run on
    rnnkit, in place; returns {qualified name: module} of those it changed ("" for ``module`` itself),
    in ``named_modules()`` order.

    Each one stays the same object — its class becomes rnnkit.torch's subclass — so its parameters
    (the very Parameter objects: an optimizer built before keeps updating them), hooks, training mode
    and dtype are kept, and so is every reference to it.  (To keep a torch copy, ``copy.deepcopy``
    first.)  Only modules of exactly torch's classes change: subclasses of them (ones with a forward of
    their own) and rnnkit's modules are left alone.  One rnnkit cannot run (another device, another
    dtype, proj_size) is refused with a ValueError naming it, before any module changes.
    """
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    targets = {name: m for name, m in module.named_modules() if type(m) in _REPLACEMENTS}
    for name, m in targets.items():
        _check_module(m, name or "module")
    for m in targets.values():
        m.__class__ = _REPLACEMENTS[type(m)]
    return targets


use_torch_threads()
