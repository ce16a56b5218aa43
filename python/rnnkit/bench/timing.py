"""Validation against the oracle, and timing in alternating blocks.

Timing: every implementation is warmed up, then timed in blocks of calls (about ``block_seconds`` of
work each); the blocks of the implementations alternate over several rounds, in a rotated order, and
the median per-call time over the rounds is reported.  At each switch the harness rests for ``pause``
seconds and makes one untimed call (unless one call is longer than a block): OpenMP and OpenBLAS
worker threads keep spinning for 0.1–0.3 s after a parallel region and would slow whatever runs next.
"""

from __future__ import annotations

import gc
import os
import statistics
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

# float32 implementations that sum in different orders agree to a few 1e-6 of the largest value on
# S1-S4 (S4's 1000 steps included); a wrong weight layout, gate order or missing bias is off by 1e-2.
TOLERANCE = 1e-4


def relative_error(got, want) -> float:
    """max |got - want| / max |want|, in float64; inf when the shapes differ, NaN when got has NaN."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        return float("inf")
    scale = max(float(np.max(np.abs(want), initial=0.0)), 1e-30)
    return float(np.max(np.abs(got - want), initial=0.0)) / scale


@dataclass
class Check:
    ok: bool
    error: float      # the largest relative error over the compared arrays
    detail: str       # which array, and how far off, when not ok


def check_outputs(got: dict, want: dict, tolerance: float = TOLERANCE) -> Check:
    """Compare the arrays named in both dicts (y, or dx/dw_ih/...); at least one must be shared."""
    shared = [name for name in want if name in got and want[name] is not None]
    if not shared:
        return Check(False, float("inf"), f"nothing to compare: got {sorted(got)}, expected some of {sorted(want)}")
    errors = {name: relative_error(got[name], want[name]) for name in shared}
    worst = max(errors, key=lambda name: errors[name] if errors[name] == errors[name] else float("inf"))
    error = errors[worst]
    if not error <= tolerance:  # also catches NaN
        shape = np.shape(got[worst])
        if shape != np.shape(want[worst]):
            return Check(False, error, f"{worst} has shape {shape}, expected {np.shape(want[worst])}")
        return Check(False, error, f"{worst} differs from the oracle by {error:.2e} (tolerance {tolerance:.0e})")
    return Check(True, error, "")


def busy_seconds() -> tuple:
    """(CPU seconds every process has used — /proc/stat's non-idle time — and this process's own, all
    its threads): their differences over a measurement give the cores other processes kept busy.  NaN
    where /proc/stat does not exist."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
        total = (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # not idle, not iowait
    except (OSError, ValueError, IndexError):
        total = float("nan")
    mine = os.times()
    return total, mine.user + mine.system


def other_load(start: tuple, end: tuple, wall: float) -> float | None:
    """Cores other processes kept busy between two busy_seconds() readings ``wall`` seconds apart
    (None without /proc/stat; /proc/stat counts 10 ms ticks, so a short interval says little)."""
    others = (end[0] - start[0]) - (end[1] - start[1])
    if others != others or wall <= 0:  # NaN
        return None
    return max(0.0, others) / wall


@dataclass
class Timing:
    seconds: list      # per-call time of each round's block
    calls: int         # calls per block
    other_load: float | None = None  # cores other processes kept busy during the alternation

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def spread(self) -> float:
        """The interquartile range over the rounds relative to the median: how noisy the measurement was."""
        if len(self.seconds) < 2:
            return 0.0
        q1, _, q3 = statistics.quantiles(self.seconds, n=4, method="inclusive")
        return (q3 - q1) / self.median


def _block(function: Callable, calls: int, before: Callable | None = None) -> float:
    """Per-call seconds of ``calls`` calls; with ``before``, each call follows an untimed ``before()``
    and only the calls themselves are timed (one clock pair per call)."""
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        if before is None:
            start = time.perf_counter()
            for _ in range(calls):
                function()
            return (time.perf_counter() - start) / calls
        total = 0.0
        for _ in range(calls):
            before()
            start = time.perf_counter()
            function()
            total += time.perf_counter() - start
        return total / calls
    finally:
        if gc_was_enabled:
            gc.enable()


def measure(functions: dict, *, rounds: int, pause: float, block_seconds: float,
            enter: dict | None = None, before: dict | None = None, max_calls: int = 10_000) -> dict:
    """Time each function of ``functions`` ({name: callable}) in alternating blocks; {name: Timing}.

    ``enter`` ({name: callable}) is run before each of that function's blocks (to set thread counts).
    ``before`` ({name: callable}) is run, untimed, right before each of that function's calls (the
    contention case: a NumPy matmul); such a block times its calls one by one, and is sized by the
    time of a call and its ``before`` together.
    """
    enter = enter or {}
    before = before or {}
    names = list(functions)
    calls = {}
    single = {}
    for name in names:  # warm-up, then size the blocks from the fastest of three single calls
        time.sleep(pause)
        enter.get(name, lambda: None)()
        prepare = before.get(name)
        if prepare:
            prepare()
        functions[name]()
        once, prepared = [], []
        while not once or (len(once) < 3 and sum(once) < max(2 * block_seconds, 1.0)):  # fewer for calls over ~0.5 s
            if prepare:
                start = time.perf_counter()
                prepare()
                prepared.append(time.perf_counter() - start)
            once.append(_block(functions[name], 1))
        single[name] = min(once)
        per_call = single[name] + min(prepared, default=0.0)  # what a block spends per call
        calls[name] = int(min(max_calls, max(1, round(block_seconds / max(per_call, 1e-9)))))
    samples = {name: [] for name in names}
    started, busy = time.perf_counter(), busy_seconds()
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:  # (no gc.collect() here: with TensorFlow loaded one takes ~0.4 s)
            time.sleep(pause)
            enter.get(name, lambda: None)()
            if single[name] < block_seconds:  # a call longer than a block gains nothing from it
                if name in before:
                    before[name]()
                functions[name]()  # untimed: wakes the thread pools, refills the caches
            samples[name].append(_block(functions[name], calls[name], before.get(name)))
    load = other_load(busy, busy_seconds(), time.perf_counter() - started)
    return {name: Timing(samples[name], calls[name], load) for name in names}
