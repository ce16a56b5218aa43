"""S1 (T=50 B=1 I=H=128) as a busy machine meets it, and both directions at the kernel level.

    python benchmarks/busy_and_bidir.py

For tanh, LSTM and GRU, float32, rnnkit's default threads, each a median of 400 calls through a
plan (training=False): one direction; two directions in one call (``_core.forward`` with two plans,
the bidirectional layer's kernel call, without the layer's Python); and one direction again while
another Python process spins on one core.
"""

import subprocess
import sys
import time

import numpy as np
from rnnkit import _core

T, B, I, H = 50, 1, 128, 128
GATES = {"tanh": 1, "lstm": 4, "gru": 3}


def median_us(f, calls=400):
    f()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e6


def runner(cell, rng, directions):
    G = GATES[cell]
    weights = [rng.uniform(-0.1, 0.1, s).astype(np.float32) for s in [(G * H, I), (G * H, H), (G * H,), (G * H,)]]
    plans = [_core.Plan(cell, *weights) for _ in range(directions)]
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    y = np.empty((T, B, directions * H), np.float32)
    halves = [y[..., d * H:(d + 1) * H] for d in range(directions)]
    h_n = [np.empty((B, H), np.float32) for _ in range(directions)]
    c_n = [np.empty((B, H), np.float32) if cell == "lstm" else None for _ in range(directions)]
    reverse = [bool(d) for d in range(directions)]
    none = [None] * directions
    return lambda: _core.forward(plans, reverse, x, none, none, None, False, halves, h_n, c_n)


def main():
    rng = np.random.default_rng(0)
    quiet = {cell: (median_us(runner(cell, rng, 1)), median_us(runner(cell, rng, 2))) for cell in GATES}
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    time.sleep(0.5)
    try:
        loaded = {cell: median_us(runner(cell, rng, 1)) for cell in GATES}
    finally:
        busy.kill()
    for cell, (one, two) in quiet.items():
        print(f"{cell}: one direction {one:.0f} us, two {two:.0f} us ({two / one:.2f}x); "
              f"with a busy process {loaded[cell]:.0f} us ({loaded[cell] / one:.2f}x quiet)")


if __name__ == "__main__":
    main()
