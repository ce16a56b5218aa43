"""Data-parallel training over MPI (rnnkit.distributed): under ``mpiexec -n 2`` and ``-n 3`` every model
trains to the single-process losses with parameters bitwise alike on every rank; bad input on one
rank is reported on all of them; a rank that raises ends the job instead of hanging it.

The MPI runs are subprocesses (``mpiexec -n N python distributed_worker.py ...``) with a timeout, so a
deadlock fails the test instead of hanging the suite.  They need mpi4py and an ``mpiexec`` (the
``mpi`` extra: the mpich wheel puts one next to the Python executable) and skip without them.
"""

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import distributed_worker as worker
import numpy as np
import pytest
import rnnkit._model
from rnnkit import Model
from rnnkit.distributed import _share_of_cores, shard

WORKER = Path(worker.__file__)
TIMEOUT = 60  # seconds for one mpiexec run: a hang fails here instead of blocking CI


def find_mpiexec():
    beside = Path(sys.executable).parent / "mpiexec"
    return str(beside) if beside.exists() else shutil.which("mpiexec")


MPIEXEC = find_mpiexec()
needs_mpi = pytest.mark.skipif(
    importlib.util.find_spec("mpi4py") is None or MPIEXEC is None,
    reason="needs mpi4py and mpiexec: pip install mpi4py mpich (the 'mpi' extra)")


def run_mpi(ranks, scenario, out, env=None):
    """mpiexec -n ranks python distributed_worker.py scenario out -> (exit status, stderr, seconds, result)."""
    started = time.perf_counter()
    # its own process group, so that a timeout ends every rank, not only mpiexec
    process = subprocess.Popen([MPIEXEC, "-n", str(ranks), sys.executable, str(WORKER), scenario, str(out)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                               cwd=WORKER.parent, start_new_session=True)
    try:
        _, stderr = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail(f"mpiexec -n {ranks} ({scenario}) still ran after {TIMEOUT}s: a deadlock")
    seconds = time.perf_counter() - started
    result_file = out / "result.json"
    result = json.loads(result_file.read_text()) if result_file.exists() else None
    return process.returncode, stderr, seconds, result


def relative_error(got, want):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.max(np.abs(got - want)) / max(float(np.max(np.abs(want))), 1e-300))


# -- without MPI ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [1, 2, 3, 7])
@pytest.mark.parametrize("count", [0, 1, 2, 7, 32])
def test_shards_split_a_batch_into_contiguous_shares_that_differ_by_at_most_one(count, size):
    shares = [range(count)[shard(count, rank, size)] for rank in range(size)]
    assert [i for share in shares for i in share] == list(range(count))
    assert max(map(len, shares)) - min(map(len, shares)) <= 1


def test_each_rank_gets_its_share_of_the_node_or_the_cores_it_is_bound_to():
    unbound = [[0, 1, 2, 3, 4, 5, 6, 7]] * 3
    assert [_share_of_cores(unbound, r) for r in range(3)] == [2, 2, 2]
    assert _share_of_cores([[0, 1]] * 3, 0) == 1  # more ranks than cores: still one thread each
    bound = [[0, 1, 2], [3, 4, 5], [6, 7]]
    assert [_share_of_cores(bound, r) for r in range(3)] == [3, 3, 2]
    mixed = [[0, 1, 2, 3], [0, 1, 2, 3], [4, 5, 6, 7]]  # two ranks share a socket, one has its own
    assert [_share_of_cores(mixed, r) for r in range(3)] == [2, 2, 4]


def test_without_a_communicator_nothing_mpi_is_imported_and_without_mpi4py_fit_works():
    script = textwrap.dedent("""
        import sys
        import numpy as np
        if sys.argv[1] == "blocked":
            sys.modules["mpi4py"] = None  # as if it were not installed
        import rnnkit
        x = np.random.default_rng(0).standard_normal((20, 3, 2))
        model = rnnkit.ManyToOne(2, 4, 2, seed=0)
        model.fit(x, (x[:, 0, 0] > 0).astype(int), epochs=1, verbose=0, comm=None)
        imported = [name for name, module in sys.modules.items() if name.split(".")[0] == "mpi4py" and module]
        assert not imported, f"imported {imported}"
        if sys.argv[1] == "blocked":
            try:
                model.fit(x, (x[:, 0, 0] > 0).astype(int), epochs=1, verbose=0, comm=object())
            except ImportError as exc:
                assert "rnnkit[mpi]" in str(exc), exc
            else:
                raise AssertionError("fit(comm=...) without mpi4py did not raise ImportError")
        print("checked", sys.argv[1])
    """)
    for mode in ("installed", "blocked"):
        done = subprocess.run([sys.executable, "-c", script, mode], capture_output=True, text=True, timeout=TIMEOUT)
        assert done.returncode == 0, done.stderr
        assert f"checked {mode}" in done.stdout


# -- under mpiexec --------------------------------------------------------------------------------------

def single_process_run(index):
    """CASES[index] trained by one process (comm=None): (history, model, largest gradient norm seen)."""
    model, x, y, fit = worker.make_case(index)
    norms = []
    clip_grad_norm = rnnkit._model.clip_grad_norm

    def recording(grads, max_norm):
        norms.append(clip_grad_norm(grads, max_norm))
        return norms[-1]

    rnnkit._model.clip_grad_norm = recording
    try:
        history = model.fit(x, y, **fit).history_
    finally:
        rnnkit._model.clip_grad_norm = clip_grad_norm
    return history, model, max(norms, default=0.0)


@needs_mpi
@pytest.mark.parametrize("ranks", [1, 2, 3])
def test_data_parallel_training_gives_the_single_process_losses_on_every_rank_alike(ranks, tmp_path):
    """One rank: bitwise the single-process run (float64).  Two and three (uneven shares, a batch of
    two split three ways): the same losses, scores and weights to rounding, and the ranks alike."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    if ranks == 3:
        env["OMP_NUM_THREADS"] = "2"  # an explicit thread count is kept, not replaced by the rank's share
    status, stderr, _, result = run_mpi(ranks, "train", tmp_path, env)
    assert status == 0, stderr[-3000:]
    assert result["size"] == ranks
    owned = max(1, len(os.sched_getaffinity(0)) // ranks)  # mpiexec binds nothing: the node's CPUs, shared
    assert result["threads_per_rank"] == owned
    # OMP_NUM_THREADS=2 sets OpenMP's default; a build without OpenMP runs on one thread whatever it says
    expected_threads = (2 if rnnkit.info()["threads"] else 1) if ranks == 3 else owned

    assert len(result["cases"]) == len(worker.CASES)
    for index, (case, got) in enumerate(zip(worker.CASES, result["cases"])):
        model_cls, task, dtype, options = case
        what = f"case {index}: {model_cls.__name__} {task} {dtype} {options}"
        want, reference, largest_norm = single_process_run(index)
        tolerance = (0.0 if ranks == 1 else 1e-10) if dtype == "float64" else 1e-5
        assert got["identical"], f"{what}: parameters differ between ranks"
        assert got["threads_in_fit"] == [expected_threads], what
        for key in ("loss", "val_loss", "val_score"):
            assert len(got["history"][key]) == worker.EPOCHS, what
            error = relative_error(got["history"][key], want[key])
            assert error <= tolerance, (what, key, got["history"][key], want[key])
        assert len(got["history"]["comm_time"]) == worker.EPOCHS
        if options.get("clip", 5.0) is not None and options.get("clip", 5.0) < 1:
            assert largest_norm > options["clip"], f"{what}: clipping never happened, so it was not tested"
        # rank 0's file: any single process loads it, and it is the single-process model
        loaded = Model.load(tmp_path / f"case{index}.npz")
        for name, value in reference.params.items():
            assert relative_error(loaded.params[name], value) <= tolerance, (what, name)
        x = worker.make_case(index)[1]
        if isinstance(x, list):  # sequences of their own lengths: a list of predictions
            got_pred, want_pred = loaded.predict(x), reference.predict(x)
            assert len(got_pred) == len(want_pred), what
            for a, b in zip(got_pred, want_pred):
                np.testing.assert_array_equal(a, b, err_msg=what)
        elif task == "classification":
            np.testing.assert_array_equal(loaded.predict(x), reference.predict(x), err_msg=what)
        else:
            assert relative_error(loaded.predict(x), reference.predict(x)) <= tolerance, what
    assert result["threads_after"] == [result["threads_after"][0]] * ranks


@needs_mpi
def test_bad_input_on_one_rank_is_reported_on_every_rank_and_nothing_deadlocks(tmp_path):
    status, stderr, _, result = run_mpi(2, "errors", tmp_path)
    assert status == 0, stderr[-3000:]
    rank0, rank1 = result["ranks"]
    # rank 1's own error on rank 1; on rank 0 the same type, naming rank 1 and the reason
    for key, reason in [("bad_label", "labels must lie in [0, output_size)"), ("bad_epochs", "epochs must be >= 1"),
                        ("bad_threads", "num_threads must be between 1 and")]:
        assert rank1[key][0] == "ValueError", rank1[key]
        assert reason in rank1[key][1], rank1[key]
        assert rank0[key][0] == "ValueError", rank0[key]
        assert rank0[key][1].startswith("fit failed on rank 1 of 2: ValueError: "), rank0[key]
        assert reason in rank0[key][1], rank0[key]
    # arguments that differ between ranks: the same ValueError everywhere, naming what differs
    for key, names in [("fewer_samples", ["same X:", "shape (22, 4, 3)", "shape (23, 4, 3)"]),
                       ("batch_size", ["same batch_size:", "batch_size=9", "batch_size=8"])]:
        assert rank0[key] == rank1[key], key
        assert rank0[key][0] == "ValueError", rank0[key]
        assert all(name in rank0[key][1] for name in names), rank0[key]
    # NaN gradients on rank 1 only: every rank stops at the same batch, weights alike and finite
    assert rank0["nan_on_one_rank"] == rank1["nan_on_one_rank"]
    assert rank0["nan_on_one_rank"][0] == "FloatingPointError"
    assert "epoch 2, batch 3 of 3: the gradient norm is nan" in rank0["nan_on_one_rank"][1]
    assert rank0["identical_after_nan"]
    assert rank0["finite_after_nan"]
    assert rank1["finite_after_nan"]
    # a parameter changed on one rank behind fit's back: the epoch's checksum catches it, on every rank
    assert rank0["tampered"] == rank1["tampered"]
    assert rank0["tampered"][0] == "RuntimeError"
    assert "parameters differ between ranks after epoch 1" in rank0["tampered"][1]
    assert rank0["good_after"] == rank1["good_after"] == ["ok", ""]


@needs_mpi
def test_a_rank_that_raises_during_training_ends_the_whole_job_with_an_error(tmp_path):
    status, stderr, seconds, result = run_mpi(2, "raises", tmp_path)
    assert status != 0
    assert result is None
    assert seconds < 20, f"the job took {seconds:.1f}s to end"
    assert "injected failure on rank 1" in stderr
    assert "rank 1 of 2 failed during fit; aborting every rank" in stderr


EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "distributed_train.py"


def _example_losses(command):
    done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, cwd=EXAMPLE.parent,
                          env={k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("training loss per epoch: ")]
    return [float(v) for v in line.split(": ")[1].split()]


@needs_mpi
def test_the_example_trains_to_the_single_process_losses_in_float64():
    """The README's claim for examples/distributed_train.py, at a small size: one process and two ranks
    give the same training losses to rounding in float64 (over many more steps, rounding differences grow
    and the two become different trainings of the same model: the README gives the numbers)."""
    options = [str(EXAMPLE), "--samples", "1500", "--epochs", "2", "--dtype", "float64"]
    one = _example_losses([sys.executable, *options])
    two = _example_losses([MPIEXEC, "-n", "2", sys.executable, *options])
    assert len(one) == len(two) == 2
    assert relative_error(two, one) <= 1e-9, (one, two)
