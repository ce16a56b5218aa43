"""Bitwise determinism: the same bits for any thread count and from run to run, and the GIL is
released while a kernel runs."""

import threading
import time

import numpy as np
import pytest

import rnnkit
from helpers import CELLS, backward, forward, make_problem, make_rnn_problem, upstream

SHAPES = {"odd": (7, 5, 13, 37), "chunks": (60, 11, 9, 70), "wide": (3, 40, 100, 300)}


def forward_backward(cell, problem, grads):
    outputs, cache = forward(rnnkit, cell, problem)
    return (*outputs, *backward(rnnkit, cell, cache, grads))


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("cell", CELLS)
def test_results_are_bitwise_identical_for_any_thread_count(isa, threads, dtype, cell, shape):
    problem = make_problem(cell, *shape, dtype)
    grads = upstream(cell, shape[0], shape[1], shape[3], dtype)
    threads(1)
    baseline = forward_backward(cell, problem, grads)
    for n in (2, 3, 4, 1):
        threads(n)
        for got, want in zip(forward_backward(cell, problem, grads), baseline):
            np.testing.assert_array_equal(got, want, err_msg=f"{n} threads")


def test_set_num_threads_round_trips(threads):
    for n in (1, 3, 2):
        threads(n)
        assert rnnkit.get_num_threads() == n


def test_gil_is_released_while_a_kernel_runs(threads):
    """While one Python thread is inside a long kernel call, another keeps running Python code.
    With the GIL held, the second thread would stall for the whole call."""
    threads(1)
    problem = make_rnn_problem(40, 16, 512, 512, np.float32)
    start = time.perf_counter()
    rnnkit.rnn_forward(**problem)
    one_call = time.perf_counter() - start
    calls = max(1, int(0.4 / one_call))

    def worker():
        for _ in range(calls):
            rnnkit.rnn_forward(**problem)

    t = threading.Thread(target=worker)
    largest_gap, last = 0.0, time.perf_counter()
    t.start()
    while t.is_alive():
        now = time.perf_counter()
        largest_gap, last = max(largest_gap, now - last), now
    t.join()
    total = calls * one_call
    assert largest_gap < max(0.5 * total, 0.1), f"Python stalled {largest_gap:.3f}s during {total:.3f}s of kernels"
