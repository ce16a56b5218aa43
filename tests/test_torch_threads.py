"""rnnkit.torch runs the helpers of its training calls on torch's own OpenMP threads
(rnnkit.torch.use_torch_threads): no thread of rnnkit's pool is started, the results are bitwise those of
rnnkit's pool and of one thread,
late helpers and concurrent callers change nothing, and a forked child goes back to the pool.
(Skipped without torch, or where torch's parallel backend is not OpenMP.)"""

import multiprocessing
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

torch = pytest.importorskip("torch")
rt = pytest.importorskip("rnnkit.torch")
import rnnkit
from rnnkit import _core

pytestmark = [
    pytest.mark.skipif(not _core.threads_enabled(), reason="a build without threads has no helpers to place"),
    pytest.mark.skipif(not rt._torch_openmp(), reason="torch's parallel backend here is not an OpenMP runtime"),
]


@pytest.fixture
def split_everything():
    """Two threads for both libraries, and every call split between them however small."""
    saved = (rnnkit.get_num_threads(), torch.get_num_threads(), _core._min_work_per_thread(), _core._openmp_threads())
    rnnkit.set_num_threads(2)
    torch.set_num_threads(2)
    _core._set_min_work_per_thread(1)
    yield
    rnnkit.set_num_threads(saved[0])
    torch.set_num_threads(saved[1])
    _core._set_min_work_per_thread(saved[2])
    _core._set_helper_delay_us(0)
    _core._use_openmp_threads(saved[3])


def problem(seed):
    """A 2-layer bidirectional LSTM and an input (made from torch's global generator: main thread only)."""
    torch.manual_seed(seed)
    return rt.LSTM(7, 24, num_layers=2, bidirectional=True), torch.randn(9, 5, 7)


def forward_backward(seed=0, made=None):
    """The LSTM's output, final states and every gradient, as NumPy arrays."""
    module, x = made or problem(seed)
    module.zero_grad()
    x = x.clone().requires_grad_(True)
    y, (h_n, c_n) = module(x)
    (y.square().sum() + h_n.sum() + c_n.sum()).backward()
    return [t.detach().numpy().copy() for t in (y, h_n, c_n, x.grad)] + [p.grad.numpy().copy() for p in module.parameters()]


def assert_bitwise(a, b):
    assert len(a) == len(b)
    for u, v in zip(a, b):
        assert u.tobytes() == v.tobytes()


def test_importing_rnnkit_torch_uses_torchs_openmp_threads():
    library = _core._openmp_threads()
    assert library and "omp" in os.path.basename(library), library
    with open("/proc/self/maps") as maps:
        assert library in maps.read() or library == "libgomp.so.1"
    assert rnnkit.info()["openmp_runtime"] == library
    rt.use_torch_threads(False)
    assert rnnkit.info()["openmp_runtime"] is None
    assert rt.use_torch_threads() and rnnkit.info()["openmp_runtime"] == library


def test_results_are_bitwise_the_same_on_torchs_threads_rnnkits_pool_and_one_thread(split_everything):
    assert rt.use_torch_threads(True)
    on_torch = forward_backward()
    assert rt.use_torch_threads(False) is False and _core._openmp_threads() == ""
    on_pool = forward_backward()
    rnnkit.set_num_threads(1)
    alone = forward_backward()
    assert_bitwise(on_torch, on_pool)
    assert_bitwise(on_torch, alone)
    # and the same values as torch's module (that the split work is right, not only the same)
    torch.manual_seed(0)
    theirs = torch.nn.LSTM(7, 24, num_layers=2, bidirectional=True)
    x = torch.randn(9, 5, 7)
    np.testing.assert_allclose(theirs(x)[0].detach().numpy(), on_torch[0], rtol=1e-5, atol=1e-6)


def test_late_helpers_on_torchs_threads_change_nothing(split_everything):
    rt.use_torch_threads(True)
    expected = forward_backward(seed=3)
    _core._set_helper_delay_us(3000)  # every helper arrives after the caller has (mostly) finished
    assert_bitwise(forward_backward(seed=3), expected)


def test_concurrent_callers_on_torchs_threads(split_everything):
    rt.use_torch_threads(True)
    problems = {seed: problem(seed) for seed in range(4)}
    expected = {seed: forward_backward(made=problems[seed]) for seed in range(4)}
    results, errors = {}, []

    def work(seed):
        try:
            results[seed] = [forward_backward(made=problems[seed]) for _ in range(3)]
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and len(results) == 4
    for seed, runs in results.items():
        for got in runs:
            assert_bitwise(got, expected[seed])


def _child(queue):
    try:
        forgotten = _core._openmp_threads()
        refused = rt.use_torch_threads(True)  # (the parent's runtime has no threads here)
        queue.put(((forgotten, refused, _core._openmp_threads()), forward_backward(seed=5)))
    except Exception as error:  # pragma: no cover - reported by the parent
        queue.put(repr(error))


@pytest.mark.skipif(sys.platform != "linux", reason="fork")
def test_a_forked_child_goes_back_to_rnnkits_pool(split_everything):
    rt.use_torch_threads(True)
    expected = forward_backward(seed=5)  # (torch's OpenMP threads have run regions before the fork)
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_child, args=(queue,))
    child.start()
    try:
        got = queue.get(timeout=120)  # a child that waited on the parent's OpenMP threads would hang here
    finally:
        child.join(timeout=30)
        if child.is_alive():  # pragma: no cover
            child.kill()
    assert not isinstance(got, str), got
    (forgotten, refused, after), arrays = got
    assert forgotten == "" and refused is False and after == ""
    assert_bitwise(arrays, expected)


def test_a_library_that_is_not_a_loaded_openmp_runtime_is_refused(split_everything):
    rt.use_torch_threads(True)
    before = _core._openmp_threads()
    assert _core._use_openmp_threads("/nonexistent/libgomp.so.1") is False
    assert _core._use_openmp_threads("libm.so.6") is False  # loaded, but no GOMP_parallel
    assert _core._openmp_threads() == before


def test_training_calls_start_no_thread_of_rnnkits_own():
    """In a fresh process: torch's OpenMP threads run the helpers' share of the training calls (forward
    and backward), so they start no thread; an inference call, or any call after
    use_torch_threads(False), runs on rnnkit's pool, which starts its helper."""
    code = textwrap.dedent("""
        import os, torch, rnnkit, rnnkit.torch as rt
        from rnnkit import _core
        torch.set_num_threads(2); rnnkit.set_num_threads(2); _core._set_min_work_per_thread(1)
        torch.ones(1 << 22).sin_()          # a parallel torch op: torch's OpenMP worker exists now
        threads = lambda: len(os.listdir("/proc/self/task"))
        module = rt.GRU(16, 64)
        x = torch.randn(20, 8, 16)
        before = threads()
        module(x)[0].sum().backward()
        training = threads()
        with torch.no_grad():
            module(x)
        inference = threads()
        rt.use_torch_threads(False)
        module(x)[0].sum().backward()
        print(before, training, inference, threads())
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    before, training, inference, after = map(int, out.stdout.split())
    assert training == before
    assert inference == before + 1  # (the pool's one helper)
    assert after == inference  # (its helper again: no new thread)


def test_a_region_held_up_by_a_late_helper_sends_the_next_calls_to_the_pool():
    """A region returns only when all its threads have: when one arrives late (descheduled by another
    busy process; here a helper delay) the caller waits after its work is done, which rnnkit's pool
    never does — so the calls of the next second go to the pool (it starts its helper)."""
    code = textwrap.dedent("""
        import os, torch, rnnkit, rnnkit.torch as rt
        from rnnkit import _core
        torch.set_num_threads(2); rnnkit.set_num_threads(2); _core._set_min_work_per_thread(1)
        torch.ones(1 << 22).sin_()
        threads = lambda: len(os.listdir("/proc/self/task"))
        module = rt.GRU(16, 64)
        x = torch.randn(20, 8, 16)
        module(x)[0].sum().backward()
        before = threads()
        _core._set_helper_delay_us(20000)   # the helper arrives 20 ms late: the caller waits for it
        module(x)[0].sum().backward()
        _core._set_helper_delay_us(0)
        module(x)[0].sum().backward()       # within the second: on the pool
        print(before, threads())
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    before, after = map(int, out.stdout.split())
    assert after == before + 1  # (the pool's helper)
