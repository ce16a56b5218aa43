"""An embedding table, torch.nn.Embedding's layout: integer ids in, rows of ``weight`` out.

``Embedding(num_embeddings, embedding_dim, *, padding_idx=None, dtype="float32", seed=None)`` holds
``weight`` (num_embeddings, embedding_dim), initialised N(0, 1) as torch does (the ``padding_idx`` row
zero).  ``forward(ids)`` is the gather ``weight[ids]``: ids of any shape give ids.shape +
(embedding_dim,).  ``backward(dy)`` scatters dy back onto the rows the ids named, summing the rows of
repeated ids in a fixed order (so the gradient is the same on every run), and leaves the
``padding_idx`` row of the gradient zero, so that row is never trained.

Like ``rnnkit.layers.Dense``: the parameter lives in ``emb.params["weight"]`` (a live array, updated in
place by the optimizers), its gradient, after ``backward``, in ``emb.grads["weight"]`` (a new array
each backward); ``state_dict()`` returns copies under torch's name, and ``load_state_dict`` copies in
(NumPy arrays or torch tensors: ``emb.load_state_dict(torch_emb.state_dict())``).
"""

from __future__ import annotations

import numbers

import numpy as np

from . import _validation as v
from .layers import check_dtype, check_int, layer_array, load_params, make_rng, to_numpy

__all__ = ["Embedding"]


def _check_padding_idx(padding_idx, num_embeddings: int):
    """None, or the row index in [0, num_embeddings) (a negative one counts from the end, as in torch)."""
    if padding_idx is None:
        return None
    if isinstance(padding_idx, (bool, np.bool_)) or not isinstance(padding_idx, numbers.Integral):
        raise TypeError(f"padding_idx must be None or an int, got {type(padding_idx).__name__}")
    padding_idx = int(padding_idx)
    if not -num_embeddings <= padding_idx < num_embeddings:
        raise ValueError(f"padding_idx must be in [-num_embeddings, num_embeddings) = [{-num_embeddings}, "
                         f"{num_embeddings}), got {padding_idx}")
    return padding_idx % num_embeddings


def _position(shape: tuple, flat_index: int) -> str:
    """``ids[i, j]`` for the element at ``flat_index`` (C order) of an array of ``shape``; ``ids`` for 0-d."""
    if not shape:
        return "ids"
    return "ids[" + ", ".join(str(int(i)) for i in np.unravel_index(flat_index, shape)) + "]"


class Embedding:
    """A lookup table of ``num_embeddings`` vectors of ``embedding_dim`` floats: torch.nn.Embedding.

    ``Embedding(num_embeddings, embedding_dim, *, padding_idx=None, dtype="float32", seed=None)``

    - ``forward(ids)`` (also ``emb(ids)``): ids are integers in [0, num_embeddings), of any shape (a
      NumPy integer array, nested lists of ints, a CPU torch integer tensor, or one int); returns
      ids.shape + (embedding_dim,) in the layer's dtype.
    - ``backward(dy)`` after a forward: dy has the shape of the forward's output; fills
      ``self.grads["weight"]`` (rows of repeated ids summed, the ``padding_idx`` row zero) and
      returns None (ids have no gradient).
    - ``padding_idx`` (may be negative: -1 is the last row) starts zero and gets no gradient.
    """

    def __init__(self, num_embeddings, embedding_dim, *, padding_idx=None, dtype="float32", seed=None):
        self.num_embeddings = check_int("num_embeddings", num_embeddings)
        self.embedding_dim = check_int("embedding_dim", embedding_dim)
        self.padding_idx = _check_padding_idx(padding_idx, self.num_embeddings)
        self.dtype = check_dtype(dtype)
        rng = make_rng(seed)
        shape = (self.num_embeddings, self.embedding_dim)
        v.check_allocatable("weight", shape, self.dtype.itemsize)
        # N(0, 1) drawn in float64, so float32 and float64 tables with one seed start alike
        weight = rng.standard_normal(shape).astype(self.dtype)
        if self.padding_idx is not None:
            weight[self.padding_idx] = 0
        self.params: dict[str, np.ndarray] = {"weight": weight}
        self.grads: dict[str, np.ndarray] = {}
        self._ids = None  # the last forward's ids (an intp array of their shape), for the backward

    def __repr__(self):
        padding = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        return f"Embedding({self.num_embeddings}, {self.embedding_dim}{padding}, dtype='{self.dtype}')"

    # -- state ------------------------------------------------------------------------------------

    def state_dict(self) -> dict:
        """A copy of the table under torch's name: {"weight": array}."""
        return {name: array.copy() for name, array in self.params.items()}

    def load_state_dict(self, state_dict) -> None:
        """Copy the table in (cast to the layer's dtype); the key and the shape must match exactly.
        The ``padding_idx`` row is copied as given (torch does not zero it on load either)."""
        load_params(self.params, state_dict, "this Embedding")

    def _weight(self) -> np.ndarray:
        """``params["weight"]``, checked: ``params`` is a public dict."""
        weight = self.params["weight"]
        shape = (self.num_embeddings, self.embedding_dim)
        if not isinstance(weight, np.ndarray) or weight.dtype != self.dtype or weight.shape != shape:
            raise TypeError(f"params['weight'] must be a {self.dtype} array of shape {v.fmt_shape(shape)}; "
                            f"use load_state_dict to set parameters")
        return weight

    # -- forward ----------------------------------------------------------------------------------

    def _check_ids(self, ids) -> np.ndarray:
        """ids as an intp array of their shape; TypeError for anything but integers, ValueError for an
        id outside [0, num_embeddings) (the first one, in C order)."""
        ids = to_numpy(ids)
        if isinstance(ids, np.ma.MaskedArray):
            raise TypeError("ids is a masked array; fill it (a.filled(value)) or drop the masked entries first")
        is_data = isinstance(ids, (list, tuple))
        try:
            array = np.asarray(ids)
        except (ValueError, TypeError, RuntimeError) as exc:
            raise ValueError(f"ids could not be converted to an array: {exc}") from None
        if is_data and array.size == 0 and array.dtype.kind == "f":
            array = array.astype(np.intp)  # [] (or [[], []]): no ids, not float ids
        if array.dtype.kind not in "iu":
            raise TypeError(f"ids must be integers, got an array of dtype {array.dtype}")
        n = self.num_embeddings
        bad = array >= n
        if array.dtype.kind == "i":
            bad |= array < 0
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            value = array.reshape(-1)[first]
            raise ValueError(f"{_position(array.shape, first)} = {value} is out of range; expected "
                             f"0 <= id < num_embeddings = {n}")
        return array.astype(np.intp)  # a copy: the caller may change their ids before the backward

    def forward(self, ids) -> np.ndarray:
        """The rows of ``weight`` the ids name: ids.shape + (embedding_dim,), a new array."""
        weight = self._weight()
        ids = self._check_ids(ids)
        out_shape = ids.shape + (self.embedding_dim,)
        v.check_allocatable("the output", out_shape, self.dtype.itemsize)
        out = weight[ids.reshape(-1)].reshape(out_shape)  # fancy indexing: a copy, even for one id
        self._ids = ids
        return out

    __call__ = forward

    # -- backward ---------------------------------------------------------------------------------

    def backward(self, dy) -> None:
        """Fill ``self.grads["weight"]`` with the gradient of sum(out·dy) for the last forward's out.

        Row i is the sum of dy over the positions where ids == i, in the order those positions come
        (C order): a stable sort of the ids groups them, and one ``np.add.reduceat`` sums each group,
        so the result does not depend on the run or the thread count.  The ``padding_idx`` row is 0.
        """
        if self._ids is None:
            raise RuntimeError("backward() needs a forward() first")
        ids = self._ids
        dim = self.embedding_dim
        dy = layer_array("dy", to_numpy(dy), self.dtype, "this layer")
        v.check_shape("dy", dy, ids.shape + (dim,), "(the shape of the forward's output: ids.shape + (embedding_dim,))")
        grad = np.zeros((self.num_embeddings, dim), self.dtype)
        flat = ids.reshape(-1)
        if flat.size:
            order = np.argsort(flat, kind="stable")
            sorted_ids = flat[order]
            starts = np.flatnonzero(np.concatenate(([True], sorted_ids[1:] != sorted_ids[:-1])))
            grad[sorted_ids[starts]] = np.add.reduceat(dy.reshape(-1, dim)[order], starts, axis=0)
        if self.padding_idx is not None:
            grad[self.padding_idx] = 0
        self.grads = {"weight": grad}
