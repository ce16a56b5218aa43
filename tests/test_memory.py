"""Repeated calls do not grow resident memory: kernel scratch comes from a per-thread arena that is
reused, and nothing is kept between calls beyond it."""

import os
import sys

import numpy as np
import pytest
import rnnkit
from helpers import CELLS, backward, forward, make_problem, upstream
from rnnkit import _core


def resident_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
def test_a_thousand_forward_backward_calls_do_not_grow_resident_memory():
    problems = {cell: (make_problem(cell, 20, 4, 16, 32, np.float32), upstream(cell, 20, 4, 32, np.float32))
                for cell in CELLS}

    def step(cell):
        outputs, cache = forward(rnnkit, cell, problems[cell][0])
        backward(rnnkit, cell, cache, problems[cell][1])

    for _ in range(50):  # warm-up: arenas, NumPy's allocator caches
        for cell in CELLS:
            step(cell)
    before = resident_bytes()
    for i in range(1000):
        step(CELLS[i % len(CELLS)])
    growth = resident_bytes() - before
    assert growth < 2 * 2**20, f"resident memory grew by {growth / 2**20:.1f} MiB over 1000 calls"


def test_scratch_is_bounded_by_the_chunk_not_the_sequence():
    """The backward's scratch for dpre covers one chunk of ~512 rows, not all T*B rows: ten times
    more timesteps take (almost) no more scratch."""
    sizes = []
    for steps in (200, 2000):
        problem = make_problem("lstm", steps, 8, 16, 64, np.float32)
        outputs, cache = forward(rnnkit, "lstm", problem)
        backward(rnnkit, "lstm", cache, upstream("lstm", steps, 8, 64, np.float32))
        sizes.append(_core._last_scratch_bytes())
    assert 0 < sizes[1] <= sizes[0] * 1.05
    dpre_all_rows = 2000 * 8 * 4 * 64 * 4
    assert sizes[1] < dpre_all_rows / 4


@pytest.mark.parametrize("lengths", [False, True], ids=["full", "lengths"])
def test_inference_scratch_does_not_grow_with_the_sequence(lengths):
    """training=False keeps no per-step buffer: its scratch (chunk of the input projection, the
    state ring) is the same for 100 and 1000 steps, and far below what saving would take."""
    sizes = []
    for steps in (100, 1000):
        problem = make_problem("lstm", steps, 16, 32, 64, np.float32)
        problem["h0"] = problem["c0"] = None
        kwargs = {"lengths": np.full(16, steps)} if not lengths else {"lengths": np.arange(16) * steps // 16 + 1}
        rnnkit.lstm_forward(**problem, training=False, **kwargs)
        sizes.append(_core._last_scratch_bytes())
    assert 0 < sizes[1] <= sizes[0] * 1.05, sizes
    saved_all_steps = 1000 * 16 * 6 * 64 * 4  # gates + c_t + y of every step
    assert sizes[1] < saved_all_steps / 10
