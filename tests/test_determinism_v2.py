"""Bitwise determinism of the kernels v2 (lengths, reverse, Plan, bidirectional layers): the same bits for
1, 2, 3 and 4 threads on every SIMD path, and the same bits while other work competes for the cores
(BLAS matmuls in a Python thread; processes and a thread that only spin).  No timing is asserted."""

import os
import subprocess
import sys
import threading

import numpy as np
import pytest
import rnnkit
from helpers import CELLS, backward, forward, make_problem, upstream

THREAD_COUNTS = (2, 3, 4, 1)
# (T, B, I, H) and lengths (unsorted, with zeros and with T).  "rows": few units, many rows, so the
# threads split the batch rows too; "odd": H = 37 leaves a tail on every SIMD width.
CASES = {
    "odd": ((7, 5, 6, 37), [3, 7, 0, 5, 1]),
    "rows": ((9, 30, 7, 4), [8, 0, 1, 2, 9, 8, 3, 0, 5, 9, 4, 6, 7, 1, 9, 2, 0, 3, 8, 5, 6, 9, 1, 4, 7, 2, 3, 9, 0, 6]),
    "no-lengths": ((6, 4, 5, 20), None),
}
assert 0 in CASES["rows"][1]
assert 9 in CASES["rows"][1]
DTYPES = {"f32": np.float32, "f64": np.float64}


def kernel_pass(cell, problem, grads, lengths, reverse):
    """Every output and gradient of one functional forward + backward, and an inference forward."""
    options = {"lengths": lengths, "reverse": reverse}
    outputs, cache = forward(rnnkit, cell, {**problem, **options})
    gradients = backward(rnnkit, cell, cache, grads)
    inferred, none = forward(rnnkit, cell, {**problem, **options, "training": False})
    assert none is None
    return (*outputs, *gradients, *inferred)


def plan_pass(cell, problem, lengths, reverse):
    plan = rnnkit.Plan(cell, problem["w_ih"], problem["w_hh"], problem["b_ih"], problem["b_hh"])
    c0 = problem.get("c0")
    kwargs = {"c0": c0} if cell == "lstm" else {}
    return tuple(plan.forward(problem["x"], problem["h0"], **kwargs, lengths=lengths, reverse=reverse,
                              training=False))


def layer_pass(cell, dtype, seed=0):
    """A bidirectional 2-layer RNN: training forward + backward (all outputs and parameter gradients), then
    an inference forward twice (the second one on the weights it packed for the first)."""
    steps, batch, inputs, hidden = 6, 5, 7, 21
    layer = rnnkit.RNN(inputs, hidden, cell=cell, num_layers=2, bidirectional=True, dtype=dtype, seed=seed)
    rng = np.random.default_rng(seed + 1)
    x = rng.standard_normal((steps, batch, inputs)).astype(dtype)
    dy = rng.standard_normal((steps, batch, 2 * hidden)).astype(dtype)
    num_states = 2 if cell == "lstm" else 1
    h0 = [rng.standard_normal((4, batch, hidden)).astype(dtype) for _ in range(num_states)]
    dh_n = [rng.standard_normal((4, batch, hidden)).astype(dtype) for _ in range(num_states)]
    pack = tuple if cell == "lstm" else (lambda states: states[0])
    y, h_n = layer.forward(x, pack(h0))
    dx, dh0 = layer.backward(dy, pack(dh_n))
    results = [y, *(h_n if cell == "lstm" else (h_n,)), dx, *(dh0 if cell == "lstm" else (dh0,))]
    results += [layer.grads[name] for name in sorted(layer.grads)]
    for _ in range(2):
        y_inf, h_inf = layer.forward(x, pack(h0), training=False)
        results += [y_inf, *(h_inf if cell == "lstm" else (h_inf,))]
    return [np.array(r) for r in results]


def assert_all_equal(got, want, what):
    assert len(got) == len(want), what
    for k, (a, b) in enumerate(zip(got, want)):
        assert a is not None, f"{what}: result {k} is None"
        assert b is not None, f"{what}: baseline {k} is None"
        np.testing.assert_array_equal(a, b, err_msg=f"{what}: result {k}")


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("case", CASES, ids=CASES.keys())
@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
@pytest.mark.parametrize("cell", CELLS)
def test_kernels_are_bitwise_identical_for_any_thread_count(isa, threads, cell, dtype, case, reverse):
    shape, lengths = CASES[case]
    problem = make_problem(cell, *shape, dtype, seed=5, scale=2.0)
    grads = upstream(cell, shape[0], shape[1], shape[3], dtype, seed=6)
    threads(1)
    baseline = kernel_pass(cell, problem, grads, lengths, reverse)
    plan_baseline = plan_pass(cell, problem, lengths, reverse)
    # (inference equals training bitwise too)
    assert_all_equal(baseline[-len(plan_baseline):], baseline[:len(plan_baseline)], "training vs inference")
    assert_all_equal(plan_baseline, baseline[:len(plan_baseline)], "plan vs functional")
    for n in THREAD_COUNTS:
        threads(n)
        assert_all_equal(kernel_pass(cell, problem, grads, lengths, reverse), baseline, f"{isa} {n} threads")
        assert_all_equal(plan_pass(cell, problem, lengths, reverse), plan_baseline, f"{isa} {n} threads, Plan")


@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
@pytest.mark.parametrize("cell", CELLS)
def test_bidirectional_two_layer_rnn_is_bitwise_identical_for_any_thread_count(isa, threads, cell, dtype):
    threads(1)
    baseline = layer_pass(cell, dtype)
    assert any(np.abs(g).max() > 0 for g in baseline)
    for n in THREAD_COUNTS:
        threads(n)
        assert_all_equal(layer_pass(cell, dtype), baseline, f"{isa} {n} threads, layer")


def test_one_plan_reused_across_thread_counts_is_bitwise_identical(isa, threads):
    """The same Plan object (packed once) gives the same bits whatever the thread count at call time."""
    shape, lengths = CASES["rows"]
    problem = make_problem("gru", *shape, np.float32, seed=8)
    plan = rnnkit.Plan("gru", problem["w_ih"], problem["w_hh"], problem["b_ih"], problem["b_hh"])
    threads(1)
    want = plan.forward(problem["x"], problem["h0"], lengths=lengths, reverse=True)
    for n in THREAD_COUNTS:
        threads(n)
        assert_all_equal(plan.forward(problem["x"], problem["h0"], lengths=lengths, reverse=True), want, f"{n}")


# ---- under contention ---------------------------------------------------------------------------------

def contention_jobs():
    jobs = []
    for k, cell in enumerate(CELLS):
        for case, reverse in (("odd", True), ("rows", False)):
            shape, lengths = CASES[case]
            dtype = np.float32 if k % 2 else np.float64
            problem = make_problem(cell, *shape, dtype, seed=k)
            grads = upstream(cell, shape[0], shape[1], shape[3], dtype, seed=k + 10)
            jobs.append((cell, problem, grads, lengths, reverse))
    return jobs


def run_jobs(jobs):
    results = []
    for cell, problem, grads, lengths, reverse in jobs:
        results.append(kernel_pass(cell, problem, grads, lengths, reverse))
        results.append(plan_pass(cell, problem, lengths, reverse))
    results.append(layer_pass("lstm", np.float32))
    results.append(layer_pass("gru", np.float64))
    return results


SPINNER = "print('spinning', flush=True)\nwhile True:\n    pass"


class Background:
    """Work that competes for the cores while the block runs: "matmul" (a Python thread doing 512x512
    float32 matmuls, BLAS threads and all), or "spin" (one spinning process per core, plus a Python
    thread spinning on small NumPy operations)."""

    def __init__(self, kind):
        self.kind, self.stop, self.threads, self.processes, self.rounds = kind, threading.Event(), [], [], [0]

    def _matmul(self):
        rng = np.random.default_rng(0)
        a = rng.standard_normal((512, 512)).astype(np.float32)
        b = rng.standard_normal((512, 512)).astype(np.float32)
        while not self.stop.is_set():
            a = (a @ b) * np.float32(1e-3)
            self.rounds[0] += 1

    def _small_ops(self):
        v = np.ones(8)
        while not self.stop.is_set():
            for _ in range(100):
                v = np.sqrt(v + 1.0)
            self.rounds[0] += 1

    def __enter__(self):
        if self.kind == "spin":
            for _ in range(max(2, os.cpu_count() or 2)):
                self.processes.append(subprocess.Popen([sys.executable, "-c", SPINNER], stdout=subprocess.PIPE))
            for p in self.processes:
                assert p.stdout.readline().strip() == b"spinning"
        target = self._matmul if self.kind == "matmul" else self._small_ops
        self.threads.append(threading.Thread(target=target, daemon=True))
        for t in self.threads:
            t.start()
        while self.rounds[0] == 0:  # the thread is running before the block starts
            self.stop.wait(0.001)
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=30)
        for p in self.processes:
            p.kill()
            p.wait(timeout=30)
            p.stdout.close()
        return False


@pytest.mark.parametrize("kind", ["matmul", "spin"])
def test_results_are_bitwise_identical_under_contention(threads, kind):
    jobs = contention_jobs()
    threads(1)
    quiet = run_jobs(jobs)
    with Background(kind) as background:
        noisy = {}
        for n in (2, 4, 3) * 3:
            threads(n)
            noisy.setdefault(n, []).append(run_jobs(jobs))
    assert background.rounds[0] > 0, "the background work never ran"
    for n, repeats in noisy.items():
        for results in repeats:
            assert len(results) == len(quiet)
            for k, (got, want) in enumerate(zip(results, quiet)):
                assert_all_equal(got, want, f"{kind}, {n} threads, job {k}")
