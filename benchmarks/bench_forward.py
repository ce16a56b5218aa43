"""First benchmark: rnnkit.rnn_forward (C++) against rnnkit.reference.rnn_forward (NumPy), float32.

    python benchmarks/bench_forward.py [--threads N] [--rounds R]

Each implementation's output is checked against the reference before it is timed.  Timing alternates
blocks of calls between the two implementations over several rounds and reports medians, pausing at
each switch (OpenBLAS's idle workers spin for 0.1-0.3 s after a matmul on this machine) and making
one untimed call at the start of each block.
"""

import argparse
import time

import numpy as np

import rnnkit
from rnnkit import reference

CASES = {"S1 latency": (50, 1, 128, 128), "S2 training": (100, 32, 256, 256)}


def time_block(fn, calls):
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=rnnkit.get_num_threads())
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--pause", type=float, default=0.3, help="seconds of rest at each switch")
    args = parser.parse_args()
    rnnkit.set_num_threads(args.threads)
    print(f"rnnkit {rnnkit.__version__}, SIMD path {rnnkit.simd_isa()}, {rnnkit.get_num_threads()} threads, float32")
    print(f"{'case':<14}{'T,B,I,H':>18}{'rnnkit ms':>12}{'reference ms':>14}{'speed-up':>10}")
    for name, (T, B, I, H) in CASES.items():
        rng = np.random.default_rng(0)
        bound = 1 / np.sqrt(H)
        x = rng.standard_normal((T, B, I)).astype(np.float32)
        w_ih, w_hh = (rng.uniform(-bound, bound, s).astype(np.float32) for s in [(H, I), (H, H)])
        b_ih, b_hh = (rng.uniform(-bound, bound, H).astype(np.float32) for _ in range(2))
        implementations = {
            "rnnkit": lambda: rnnkit.rnn_forward(x, None, w_ih, w_hh, b_ih, b_hh),
            "reference": lambda: reference.rnn_forward(x, None, w_ih, w_hh, b_ih, b_hh),
        }
        want = implementations["reference"]()[0]
        got = implementations["rnnkit"]()[0]
        error = np.abs(got - want).max() / np.abs(want).max()
        if error > 1e-4:
            raise SystemExit(f"{name}: rnnkit differs from the reference by {error:.2e}; not timing it")
        # Calls per block: about 50 ms of work for the slower one.
        calls = max(1, int(0.05 / time_block(implementations["reference"], 1)))
        times = {k: [] for k in implementations}
        for fn in implementations.values():
            time_block(fn, calls)  # warm-up
        for _ in range(args.rounds):
            for key, fn in implementations.items():
                time.sleep(args.pause)
                fn()
                times[key].append(time_block(fn, calls))
        fast, slow = (np.median(times[k]) * 1e3 for k in ("rnnkit", "reference"))
        print(f"{name:<14}{f'{T},{B},{I},{H}':>18}{fast:>12.3f}{slow:>14.3f}{slow / fast:>9.1f}x")


if __name__ == "__main__":
    main()
