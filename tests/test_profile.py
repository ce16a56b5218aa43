"""The kernels' opt-in phase clock (BENCHMARKS.md, "Where the time goes") and the script that reads it."""

import importlib.util
import pathlib

import numpy as np
import pytest
import rnnkit
from helpers import make_problem, upstream
from rnnkit import _core

ROOT = pathlib.Path(__file__).resolve().parent.parent
PHASES = ("setup", "input_gemm", "recurrent_gemm", "cell", "barrier", "weight_grad_gemm", "dx_gemm")


@pytest.fixture
def profiling():
    _core._set_profiling(True)
    yield
    _core._set_profiling(False)


def run(cell, problem, grads):
    if cell in ("tanh", "relu"):
        y, h_n, cache = rnnkit.rnn_forward(**problem, nonlinearity=cell)
        return (y, h_n), lambda: rnnkit.rnn_backward(cache, grads["dy"], grads["dh_n"])
    if cell == "lstm":
        y, h_n, c_n, cache = rnnkit.lstm_forward(**problem)
        return (y, h_n, c_n), lambda: rnnkit.lstm_backward(cache, grads["dy"], grads["dh_n"], grads["dc_n"])
    y, h_n, cache = rnnkit.gru_forward(**problem)
    return (y, h_n), lambda: rnnkit.gru_backward(cache, grads["dy"], grads["dh_n"])


@pytest.mark.parametrize("cell", ["tanh", "lstm", "gru"])
@pytest.mark.parametrize("num_threads", [1, 2])
def test_phases_add_up_and_belong_to_their_pass(cell, profiling, threads, num_threads):
    """The phases tile the call, and each pass has its own; with two threads the caller may find a
    phase's items all taken (the pool's helpers claim what is free), so only one thread asserts
    that every phase of the pass shows time on the caller."""
    threads(num_threads)
    problem = make_problem(cell, 12, 5, 24, 40, np.float32)
    grads = upstream(cell, 12, 5, 40, np.float32)
    # Every mark attributes the time since the previous one, so the phases tile the call: never more
    # than its total, and most of it.  The call is ~0.2 ms, so a preemption of the caller between the
    # call's start and its first mark can leave most of one call unattributed: the lower bound holds
    # for the best of three calls (a clock that dropped phases would fail all three).
    best = {"forward": 0.0, "backward": 0.0}
    for _ in range(3):
        _, backward = run(cell, problem, grads)
        forward = _core._last_profile()
        backward()
        back = _core._last_profile()
        for name, profile in (("forward", forward), ("backward", back)):
            assert set(profile) == set(PHASES) | {"total"}
            assert all(profile[p] >= 0 for p in PHASES), (name, profile)
            attributed = sum(profile[p] for p in PHASES)
            assert attributed <= profile["total"] * (1 + 1e-9), (name, profile)
            best[name] = max(best[name], attributed / profile["total"])
    assert min(best.values()) >= 0.5, best
    for phase in ("weight_grad_gemm", "dx_gemm"):
        assert forward[phase] == 0, phase
    assert back["input_gemm"] == 0
    if num_threads == 1:
        for phase in ("input_gemm", "recurrent_gemm", "cell"):
            assert forward[phase] > 0, phase
        for phase in ("weight_grad_gemm", "dx_gemm", "recurrent_gemm", "cell"):
            assert back[phase] > 0, phase


def test_profiling_changes_no_result_and_is_off_by_default():
    problem = make_problem("lstm", 9, 3, 16, 24, np.float32)
    grads = upstream("lstm", 9, 3, 24, np.float32)
    plain, backward = run("lstm", problem, grads)
    plain_grads = backward()
    _core._set_profiling(True)
    try:
        timed, backward = run("lstm", problem, grads)
        timed_grads = backward()
        recorded = _core._last_profile()
    finally:
        _core._set_profiling(False)
    for a, b in zip(plain + plain_grads, timed + timed_grads):
        np.testing.assert_array_equal(a, b)
    assert recorded["total"] > 0
    # with the clock off, a call leaves the last profile alone
    run("tanh", make_problem("tanh", 4, 2, 3, 5, np.float32), upstream("tanh", 4, 2, 5, np.float32))
    assert _core._last_profile() == recorded


def test_profile_phases_script_prints_one_row_per_pass(capsys):
    spec = importlib.util.spec_from_file_location("profile_phases", ROOT / "benchmarks" / "profile_phases.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    script.CASES["tiny"] = (6, 2, 8, 16)
    script.main(["--cells", "tanh,gru", "--cases", "tiny", "--repeats", "2", "--threads", "1"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith(("| tanh", "| gru"))]
    assert [tuple(c.strip() for c in r.strip("|").split("|")[:3]) for r in rows] == [
        ("tanh", "tiny", "forward"), ("tanh", "tiny", "backward"), ("gru", "tiny", "forward"), ("gru", "tiny", "backward")]
    for row in rows:
        numbers = [float(c) for c in row.strip("|").split("|")[3:] if c.strip()]
        wall, phases = numbers[0], numbers[1:]
        assert wall > 0, row
        assert all(0 <= p <= wall + 1e-3 for p in phases), row
