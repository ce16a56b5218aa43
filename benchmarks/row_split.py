"""Small hidden sizes on 1 and 2 threads: what splitting the batch rows between threads buys.

    python benchmarks/row_split.py

With H <= 32 there is one block of units on AVX-512 (nr = 32), and before the row split (commit
4ed40d6) such a call ran on one thread whatever set_num_threads said; now the threads share the
batch rows of every step.  So "1 thread" here is also what those shapes got before.  Forward +
backward, float32, median of 30 calls, the best of three alternating rounds.
"""

import time

import numpy as np
import rnnkit
from profile_phases import GATES, passes, problem
from rnnkit import _core

CASES = [(100, 64, 32, 32, "tanh"), (100, 64, 32, 32, "gru"), (50, 128, 16, 16, "lstm"),
         (100, 32, 16, 24, "tanh"), (200, 256, 8, 16, "lstm")]


def train_step(cell, T, B, I, H):
    fwd, bwd = passes(cell, *problem(cell, T, B, I, H))
    return lambda: bwd(fwd())


def main():
    print(f"rnnkit {rnnkit.__version__}, {rnnkit.simd_isa()}; forward+backward, float32, ms")
    print("| cell | T | B | I | H | plan at 2 threads (threads, block groups, row groups) | 1 thread | 2 threads | speed-up |")
    print("|---|---|---|---|---|---|---|---|---|")
    for T, B, I, H, cell in CASES:
        step = train_step(cell, T, B, I, H)
        times = {1: [], 2: []}
        for n in (1, 2, 1, 2, 1, 2):
            rnnkit.set_num_threads(n)
            step()
            calls = []
            for _ in range(30):
                start = time.perf_counter()
                step()
                calls.append(time.perf_counter() - start)
            times[n].append(1e3 * float(np.median(calls)))
        rnnkit.set_num_threads(2)
        plan = tuple(_core._step_plan(B, H, GATES[cell], "float32"))
        one, two = min(times[1]), min(times[2])
        print(f"| {cell} | {T} | {B} | {I} | {H} | {plan} | {one:.3f} | {two:.3f} | {one / two:.2f}× |", flush=True)


if __name__ == "__main__":
    main()
