"""Hostile inputs against every kernel entry point, by class.  Run as a script (tests/test_hostile.py
does so in a subprocess, so that a crash fails the test instead of killing the test run).

Each call must raise TypeError, ValueError, MemoryError or OverflowError — or, where the input is
still valid data, return what the reference returns.  Prints one JSON line: per class, the number of
calls tried, refused and accepted; exits 1 if any call did anything else.
"""

import copy
import json
import sys
import traceback

import numpy as np
import rnnkit
from rnnkit import _core, reference

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from helpers import CELLS, backward, forward, make_problem, upstream

ALLOWED = (TypeError, ValueError, MemoryError, OverflowError)
RESULTS: dict = {}
FAILURES: list = []


def attempt(kind, fn, check=None):
    """Run fn(); count the outcome under `kind`.  `check(result)` validates an accepted call."""
    counts = RESULTS.setdefault(kind, {"tried": 0, "refused": 0, "accepted": 0})
    counts["tried"] += 1
    try:
        result = fn()
    except ALLOWED as exc:
        counts["refused"] += 1
        if not str(exc):
            FAILURES.append(f"{kind}: {type(exc).__name__} without a message")
        return
    except Exception:  # noqa: BLE001 - anything else is a finding
        FAILURES.append(f"{kind}: {traceback.format_exc(limit=3)}")
        return
    counts["accepted"] += 1
    if check is not None:
        try:
            check(result)
        except Exception:  # noqa: BLE001
            FAILURES.append(f"{kind}: accepted with a wrong result: {traceback.format_exc(limit=3)}")


def run_with(cell, problem, **options):
    """The cell's forward with keyword options (lengths, reverse, training)."""
    if cell == "lstm":
        *out, cache = rnnkit.lstm_forward(**problem, **options)
    elif cell == "gru":
        *out, cache = rnnkit.gru_forward(**problem, **options)
    else:
        *out, cache = rnnkit.rnn_forward(**problem, nonlinearity=cell, **options)
    return tuple(out), cache


def matches_reference(cell, problem, **options):
    """Same NaN and inf pattern as the reference, finite values within 1e-4 of its largest."""
    def check(result):
        if options:
            want = {"lstm": reference.lstm_forward, "gru": reference.gru_forward}.get(cell)
            want = (want(**problem, **options) if want else
                    reference.rnn_forward(**problem, nonlinearity=cell, **options))[:-1]
        else:
            want, _ = forward(reference, cell, problem)
        for g, w in zip(result[0], want):
            np.testing.assert_array_equal(np.isnan(g), np.isnan(w))
            np.testing.assert_array_equal(np.isposinf(g), np.isposinf(w))
            np.testing.assert_array_equal(np.isneginf(g), np.isneginf(w))
            finite = np.isfinite(w)
            scale = max(1.0, float(np.abs(w[finite]).max(initial=0)))
            assert np.abs(g[finite] - w[finite]).max(initial=0) <= 1e-4 * scale
    return check


KIND = {"tanh": "rnn", "relu": "rnn", "lstm": "lstm", "gru": "gru"}
# The saved arrays each cell's backward reads (forging another one changes nothing).
USES = {"rnn": {"x", "y", "w_hh", "h0", "w_ih"}, "lstm": {"x", "y", "w_hh", "h0", "w_ih", "gates", "cells"},
        "gru": {"x", "y", "w_hh", "h0", "w_ih", "gates", "hidden_n"}}


WRONG_TYPES = ["abc", b"abc", {"a": 1}, {1, 2}, object(), print, 1 + 2j, slice(1), Ellipsis]
WRONG_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint64, np.bool_, np.complex64,
                np.complex128, np.float16, np.longdouble, object, "U4", "S4", "datetime64[s]",
                np.dtype([("a", np.float32), ("b", np.float32)])]


def main():
    rng = np.random.default_rng(0)
    for cell in CELLS:
        base = make_problem(cell, 3, 2, 4, 5, np.float32)
        run = lambda p, c=cell: forward(rnnkit, c, p)
        for name in base:
            for value in WRONG_TYPES:
                attempt("wrong type", lambda: run({**base, name: value}))
            for dtype in WRONG_DTYPES:
                shape = base[name].shape if base[name] is not None else (2, 5)
                bad = np.zeros(shape, dtype=dtype)
                attempt("non-float dtype", lambda: run({**base, name: bad}))
            for ndim in range(5):
                shape = tuple(int(d) for d in rng.integers(1, 4, ndim))
                attempt("wrong ndim or shape", lambda: run({**base, name: np.zeros(shape, np.float32)}))
            if name in ("x", "w_ih", "w_hh"):
                attempt("None where an array is required", lambda: run({**base, name: None}))
            attempt("ragged nested list", lambda: run({**base, name: [[1.0, 2.0], [3.0]]}))
            huge = np.broadcast_to(np.float32(0), (10**6,) * max(1, base[name].ndim if base[name] is not None else 2))
            attempt("astronomical logical size", lambda: run({**base, name: huge}))
        # every pairwise disagreement: perturb one dimension of one array
        for name, array in base.items():
            if array is None:
                continue
            for axis in range(array.ndim):
                for delta in (-1, 1, 7):
                    shape = list(array.shape)
                    shape[axis] = max(0, shape[axis] + delta)
                    if tuple(shape) == array.shape:
                        continue
                    bad = np.zeros(shape, np.float32)
                    # a (0, ...)-sized x or a different I/T/B alone is consistent data; the oracle decides
                    attempt("shape disagreement", lambda: run({**base, name: bad}),
                            matches_reference(cell, {**base, name: bad}))
        # mixed float dtypes, and non-finite data (valid: results must match the reference)
        for name in base:
            mixed = {**base, name: base[name].astype(np.float64)}
            attempt("mixed float dtypes", lambda: run(mixed))
            poisoned = {k: (v.copy() if v is not None else None) for k, v in base.items()}
            poisoned[name].flat[0] = rng.choice([np.nan, np.inf, -np.inf])
            attempt("NaN / inf data", lambda: run(poisoned), matches_reference(cell, poisoned))
        # backward: wrong caches, forged caches, bad upstream gradients
        outputs, cache = forward(rnnkit, cell, base)
        grads = upstream(cell, 3, 2, 5, np.float32)
        for other in CELLS:
            if KIND[other] != KIND[cell]:
                _, other_cache = forward(rnnkit, other, make_problem(other, 3, 2, 4, 5, np.float32))
                attempt("cache from another cell", lambda: backward(rnnkit, cell, other_cache, grads))
        _, numpy_cache = forward(reference, cell, base)
        attempt("cache from the other backend", lambda: backward(rnnkit, cell, numpy_cache, grads))
        for field, bad in [("x", np.zeros((3, 2, 9), np.float32)), ("y", np.zeros((3, 7, 5), np.float32)),
                           ("w_hh", np.zeros((1, 1), np.float32)), ("h0", np.zeros((9, 9), np.float32)),
                           ("x", np.zeros((3, 2, 4), np.float64)), ("gates", np.zeros((1,), np.float32)),
                           ("cells", np.zeros((3, 2, 5), np.float32)), ("hidden_n", np.zeros((3, 2, 1), np.float32)), ("w_ih", "x")]:
            if field not in USES[KIND[cell]]:
                continue
            forged = copy.copy(cache)
            setattr(forged, field, bad)
            attempt("forged cache", lambda: backward(rnnkit, cell, forged, grads))
        for gname in grads:
            for bad in [grads[gname].astype(np.float64), np.zeros((1, 2), np.float32), "dy", grads[gname][..., :-1]]:
                attempt("bad upstream gradient", lambda: backward(rnnkit, cell, cache, {**grads, gname: bad}))
        # lengths, reverse and training: refused unless valid, and valid ones match the reference
        for lengths in [[3], [3, 3, 3], [[3, 3]], [-1, 2], [4, 1], [1.0, 2.0], [True, False], [np.nan, 1],
                        np.array([1.5, 2]), "ab", np.array([2**40, 1]), np.array([1, 2], np.float32), {"a": 1}]:
            attempt("bad lengths", lambda: run_with(cell, base, lengths=lengths))
        for flag in ("reverse", "training"):
            for value in [1, 0, "yes", None, 1.0, np.array([True])]:
                attempt("bad flag", lambda: run_with(cell, base, **{flag: value}))
        for lengths in [[0, 0], [3, 0], [1, 3], np.array([2, 2], np.uint8)]:
            for reverse in (False, True):
                attempt("odd but valid lengths", lambda: run_with(cell, base, lengths=lengths, reverse=reverse),
                        matches_reference(cell, base, lengths=lengths, reverse=reverse))
        # the private module, called directly with outputs that do not fit
        plan = _core.Plan(cell, base["w_ih"], base["w_hh"], base["b_ih"], base["b_hh"])
        x = base["x"]
        c = [np.empty((2, 5), np.float32)] if cell == "lstm" else [None]
        for y, h_n in [(np.empty((3, 2, 4), np.float32), np.empty((2, 5), np.float32)),
                       (np.empty((3, 2, 5), np.float64), np.empty((2, 5), np.float32)),
                       (np.empty((3, 2, 5), np.float32)[::-1], np.empty((2, 5), np.float32)),
                       (np.empty((3, 2, 5), np.float32), np.empty((5, 2), np.float32).T),
                       (np.empty((3, 2, 5), np.float32), np.empty((2, 5), np.float32)[:, :4]),
                       (np.empty((3, 2, 5), np.float32), None), ([0.0] * 30, np.empty((2, 5), np.float32))]:
            attempt("private module, bad outputs",
                    lambda: _core.forward([plan], [False], x, [None], [None], None, True, [y], [h_n], c))
        good_y, good_h = np.empty((3, 2, 5), np.float32), np.empty((2, 5), np.float32)
        for lengths in [np.array([1, 2], np.int32), np.array([4, 1]), np.array([-1, 1]), np.array([1, 2, 3]),
                        np.array([[1, 2]]), [1, 2]]:
            attempt("private module, bad lengths",
                    lambda: _core.forward([plan], [False], x, [None], [None], lengths, True, [good_y], [good_h], c))
        for plans, reverse in [([], []), ([plan, plan, plan], [False, True, False]), ([plan], []), ([None], [False]),
                               (["plan"], [False])]:
            attempt("private module, bad plans",
                    lambda: _core.forward(plans, reverse, x, [None], [None], None, True, [good_y], [good_h], c))
    for value in [0, -1, 10**9, 2**63, -(2**63), 2.0, 1.5, "2", None, True, np.float32(2), [2], float("nan")]:
        attempt("set_num_threads", lambda: rnnkit.set_num_threads(value))
    for value in ["", "AVX512", "neon", "avx1024", None, 1, b"avx2"]:
        attempt("set_simd_isa", lambda: rnnkit.set_simd_isa(value))
    for nonlinearity in ["sigmoid", "", None, 1, "Tanh", "relu6"]:
        attempt("unknown nonlinearity", lambda: rnnkit.rnn_forward(**make_problem("tanh", 2, 1, 3, 4, np.float32),
                                                                  nonlinearity=nonlinearity))
    rnnkit.set_num_threads(2)
    print(json.dumps(RESULTS))
    for failure in FAILURES:
        print(failure, file=sys.stderr)
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
