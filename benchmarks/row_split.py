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
from rnnkit import _core

CASES = [(100, 64, 32, 32, "tanh"), (100, 64, 32, 32, "gru"), (50, 128, 16, 16, "lstm"),
         (100, 32, 16, 24, "tanh"), (200, 256, 8, 16, "lstm")]
GATES = {"tanh": 1, "lstm": 4, "gru": 3}


def train_step(cell, T, B, I, H, rng):
    G = GATES[cell]
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    w_ih = rng.uniform(-0.3, 0.3, (G * H, I)).astype(np.float32)
    w_hh = rng.uniform(-0.3, 0.3, (G * H, H)).astype(np.float32)
    b = np.zeros(G * H, np.float32)
    dy = rng.standard_normal((T, B, H)).astype(np.float32)
    if cell == "tanh":
        return lambda: rnnkit.rnn_backward(rnnkit.rnn_forward(x, None, w_ih, w_hh, b, b)[-1], dy, None)
    if cell == "gru":
        return lambda: rnnkit.gru_backward(rnnkit.gru_forward(x, None, w_ih, w_hh, b, b)[-1], dy, None)
    return lambda: rnnkit.lstm_backward(rnnkit.lstm_forward(x, None, None, w_ih, w_hh, b, b)[-1], dy, None, None)


def main():
    rng = np.random.default_rng(0)
    print(f"rnnkit {rnnkit.__version__}, {rnnkit.simd_isa()}; forward+backward, float32, ms")
    print("| cell | T | B | I | H | plan at 2 threads (threads, block groups, row groups) | 1 thread | 2 threads | speed-up |")
    print("|---|---|---|---|---|---|---|---|---|")
    for T, B, I, H, cell in CASES:
        step = train_step(cell, T, B, I, H, rng)
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
