"""Thread-safety contract: any number of Python threads may call the kernels at once, with any
shapes and dtypes, while others change the thread count; each call gives exactly the serial result.
(Each call opens its own OpenMP team and takes scratch from its calling thread's own arena; the
thread count is read once at the start of a call.)"""

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import rnnkit
from helpers import backward, forward, make_problem, upstream
from rnnkit import _core

JOBS = [
    ("tanh", (7, 3, 5, 17), np.float32),
    ("relu", (4, 9, 13, 40), np.float64),
    ("lstm", (6, 2, 8, 33), np.float32),
    ("gru", (5, 5, 3, 21), np.float64),
    ("lstm", (3, 12, 20, 64), np.float64),
    ("gru", (9, 1, 4, 70), np.float32),
    ("tanh", (30, 20, 3, 16), np.float64),
    ("relu", (2, 1, 1, 1), np.float32),
]


def run(job):
    cell, shape, dtype = job
    problem = make_problem(cell, *shape, dtype, seed=shape[3])
    outputs, cache = forward(rnnkit, cell, problem)
    return (*outputs, *backward(rnnkit, cell, cache, upstream(cell, shape[0], shape[1], shape[3], dtype)))


def test_eight_threads_at_once_give_exactly_the_serial_results(threads):
    threads(2)
    serial = [run(job) for job in JOBS]
    stop = threading.Event()

    def churn_thread_count():
        n = 0
        while not stop.is_set():
            rnnkit.set_num_threads(1 + n % 3)
            n += 1

    churner = threading.Thread(target=churn_thread_count)
    churner.start()
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            concurrent = list(pool.map(run, JOBS * 4))
    finally:
        stop.set()
        churner.join()
    for i, result in enumerate(concurrent):
        for got, want in zip(result, serial[i % len(JOBS)]):
            if want is None:
                assert got is None
            else:
                np.testing.assert_array_equal(got, want, err_msg=f"job {JOBS[i % len(JOBS)]}")


def test_helpers_that_arrive_after_the_call_has_returned_read_nothing_it_freed(threads):
    """Helpers the OS deschedules join a call late: the caller finishes every phase alone, returns
    and frees its arguments (the weights' plan, what a forward saved), and the helper then runs
    through the finished program.  A test hook makes every helper that late.  The results must be
    the serial ones; under the sanitizer build (CI), a helper reading a freed plan is a
    heap-use-after-free report (the job holds its own references)."""
    threads(2)
    serial = [run(job) for job in JOBS]
    layer = rnnkit.RNN(6, 40, cell="lstm", num_layers=2, seed=0)
    x = np.random.default_rng(0).standard_normal((5, 2, 6)).astype(np.float32)
    stepped = layer.stream(2).feed(x)  # (a stream's step takes helpers too)
    _core._set_helper_delay_us(2000)
    try:
        for _ in range(3):
            for i, job in enumerate(JOBS):
                for got, want in zip(run(job), serial[i]):
                    if want is None:
                        assert got is None
                    else:
                        np.testing.assert_array_equal(got, want, err_msg=f"job {job}")
            np.testing.assert_array_equal(layer.stream(2).feed(x), stepped)
    finally:
        _core._set_helper_delay_us(0)
