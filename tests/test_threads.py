"""Bitwise determinism: the same bits for any thread count and from run to run, and the GIL is
released while a kernel runs."""

import os
import pathlib
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import rnnkit
from helpers import CELLS, backward, forward, make_problem, make_rnn_problem, upstream
from rnnkit import _core

# (T, B, I, H).  "rows": one block of units on every path (H <= nr) and several row tiles, so the
# threads split the batch rows.
SHAPES = {"odd": (7, 5, 13, 37), "chunks": (60, 11, 9, 70), "wide": (3, 40, 100, 300), "rows": (9, 30, 7, 4)}


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


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_threads_split_rows_only_when_the_unit_blocks_run_out(isa, threads, dtype):
    """The per-step work is shared by unit blocks; rows are split as well only when there are more
    threads than blocks — as in the "rows" shape above, so the bitwise test covers that split."""
    _, batch, _, hidden = SHAPES["rows"]
    if not rnnkit.info()["threads"]:  # the portable build without OpenMP runs every call on one thread
        threads(4)
        assert tuple(_core._step_plan(batch, hidden, 1, dtype)) == (1, 1, 1)
        return
    for n in (2, 3, 4):
        threads(n)
        used, block_groups, row_groups = _core._step_plan(batch, hidden, 1, dtype)
        assert 2 <= used <= n  # (no more threads than blocks x row tiles)
        assert block_groups == 1
        assert 1 < row_groups <= used
    # plenty of blocks (H = 256 is 8 to 16 blocks on every path): the rows stay whole
    threads(2)
    assert tuple(_core._step_plan(32, 256, 1, dtype)) == (2, 2, 1)
    threads(8)
    assert tuple(_core._step_plan(32, 256, 4, dtype)) == (8, 8, 1)
    # one sequence (B = 1) has one row tile: nothing to split, the team stops at the block count
    threads(16)
    used, block_groups, row_groups = _core._step_plan(1, 64, 1, dtype)
    assert row_groups == 1
    assert used == block_groups
    with pytest.raises(TypeError, match="dtype"):
        _core._step_plan(4, 4, 1, "int8")


def test_a_team_smaller_than_asked_for_still_computes_every_row(tmp_path):
    """OpenMP may start fewer threads than a call asks for (OMP_THREAD_LIMIT, nested regions): the
    share of work must follow the team that actually runs, or rows go missing."""
    script = tmp_path / "limited.py"
    script.write_text(
        "import sys, numpy as np, rnnkit\n"
        "from rnnkit import _core\n"
        f"sys.path.insert(0, {str(pathlib.Path(__file__).parent)!r})\n"
        "from helpers import CELLS, backward, forward, make_problem, upstream\n"
        "_core._set_min_work_per_thread(1)\n"
        "rnnkit.set_num_threads(4)\n"
        f"shape = {SHAPES['rows']!r}\n"
        "for cell in CELLS:\n"
        "    p = make_problem(cell, *shape, np.float64)\n"
        "    g = upstream(cell, shape[0], shape[1], shape[3], np.float64)\n"
        "    got, cache = forward(rnnkit, cell, p)\n"
        "    want, ref_cache = forward(rnnkit.reference, cell, p)\n"
        "    got = (*got, *backward(rnnkit, cell, cache, g))\n"
        "    want = (*want, *backward(rnnkit.reference, cell, ref_cache, g))\n"
        "    for a, b in zip(got, want):\n"
        "        if a is not None or b is not None:\n"
        "            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9, err_msg=cell)\n"
        "print('ok', _core._step_plan(shape[1], shape[3], 1, 'float64'))\n")
    env = {**os.environ, "OMP_THREAD_LIMIT": "2"}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("ok"), done.stdout


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


@pytest.mark.parametrize("value, problem", [("abc", "is not a positive integer"), ("0", "is not a positive integer"),
                                            ("-2", "is not a positive integer"),
                                            ("5000", "is more than the 1024 threads")])
def test_a_bad_rnnkit_num_threads_is_named_at_import(value, problem):
    """RNNKIT_NUM_THREADS that the kernels cannot use gets a RuntimeWarning at import naming it and the
    thread count used instead (before, it was ignored without a word); a good one gets none."""
    env = {**os.environ, "RNNKIT_NUM_THREADS": value, "OMP_NUM_THREADS": "1"}
    code = "import rnnkit; print(rnnkit.get_num_threads())"
    out = subprocess.run([sys.executable, "-W", "always", "-c", code], env=env, capture_output=True, text=True,
                         timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    used = int(out.stdout)
    assert f"RuntimeWarning: RNNKIT_NUM_THREADS={value!r} {problem}" in out.stderr
    assert f"rnnkit uses {used} thread{'s' if used != 1 else ''} " in out.stderr
    assert used == (1024 if value == "5000" else 1) or not rnnkit.info()["threads"]
    good = subprocess.run([sys.executable, "-W", "always", "-c", code], env={**env, "RNNKIT_NUM_THREADS": "3"},
                          capture_output=True, text=True, timeout=60, check=False)
    assert "RNNKIT_NUM_THREADS" not in good.stderr
    assert int(good.stdout) == (3 if rnnkit.info()["threads"] else 1)


def test_idle_helpers_stop_spinning_soon_after_the_last_call():
    """A helper spins for up to about twice the gaps it has seen between calls (at most 400 us) before
    it sleeps, so that calls a hundred or two microseconds apart find it awake; once the calls stop,
    the process must stop using the cores.  A helper that never slept would burn the whole idle second."""
    code = (
        "import time, numpy as np, rnnkit\n"
        "from rnnkit import _core\n"
        "_core._set_min_work_per_thread(1)\n"
        "rnnkit.set_num_threads(2)\n"
        "rng = np.random.default_rng(0)\n"
        "x = rng.standard_normal((20, 1, 8), dtype=np.float32)\n"
        "w_ih, w_hh = (rng.standard_normal((32, n), dtype=np.float32) * 0.1 for n in (8, 32))\n"
        "b = np.zeros(32, np.float32)\n"
        "for gap in (0, 0.0001, 0.0002):\n"  # (gaps that teach the helper to spin long)
        "    for _ in range(300):\n"
        "        rnnkit.rnn_forward(x, None, w_ih, w_hh, b, b, training=False)\n"
        "        if gap: time.sleep(gap)\n"
        "time.sleep(0.05)\n"
        "cpu, wall = time.process_time(), time.perf_counter()\n"
        "time.sleep(1.0)\n"
        "print(time.process_time() - cpu, time.perf_counter() - wall)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    cpu, wall = map(float, out.stdout.split())
    assert cpu < 0.1 * wall, f"{cpu:.3f} s of CPU in {wall:.3f} s with no call running"
