"""What this machine gives right now: the second core, one core's L2 read rate, the batch-1 LSTM's floor.

    python benchmarks/machine_probe.py                 # both parts
    python benchmarks/machine_probe.py --samples 40    # a longer look at the second core

1. **The second core.** One process alternates blocks of 8 LSTM forward+backward calls (T=50, B=64,
   I=32, H=128, float32) at 1 and at 2 threads, ``--samples`` times, 2 s apart, and prints each
   pair's times and speed-up.  On a shared VM the 1-thread time stays put while the 2-thread one
   flips between a speed-up near 2 and one near 1 when the host takes the second vCPU's core away:
   benchmarks run in that state show every 2-thread ratio lower (BENCHMARKS.md, fifth session).
2. **The batch-1 floor.** NumPy's ``sdot`` over L2-sized arrays at 1 BLAS thread (one core's L2
   read rate), then the phase clock of rnnkit's batch-1 LSTM forward (T=50, I=32, H=128, inference,
   best of 200 calls) at 1 and 2 threads: its recurrent product streams W_hh (4H x H floats) from L2
   every step, so bytes per step / the L2 rate bounds it from below.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import rnnkit
from profile_phases import passes, problem
from rnnkit import _core
from threadpoolctl import threadpool_limits


def second_core(samples):
    fwd, bwd = passes("lstm", *problem("lstm", 50, 64, 32, 128))
    print("1. the second core: 8 LSTM forward+backward calls (T=50 B=64 I=32 H=128) at 1 and 2 threads")
    speedups = []
    for _ in range(samples):
        row = []
        for threads in (1, 2):
            rnnkit.set_num_threads(threads)
            for _ in range(2):
                bwd(fwd())
            start = time.perf_counter()
            for _ in range(8):
                bwd(fwd())
            row.append((time.perf_counter() - start) / 8)
        speedups.append(row[0] / row[1])
        print(f"  {time.strftime('%H:%M:%S')}  1 thread {row[0] * 1e3:6.2f} ms  2 threads {row[1] * 1e3:6.2f} ms  "
              f"speed-up {speedups[-1]:.2f}", flush=True)
        time.sleep(2)
    print(f"  speed-up over the samples: {min(speedups):.2f}-{max(speedups):.2f}, median "
          f"{float(np.median(speedups)):.2f}\n")


def l2_rate():
    print("2. one core's L2 read rate (NumPy sdot, 1 BLAS thread, best of 7 blocks)")
    with threadpool_limits(1):
        best = {}
        for kb in (16, 128, 256, 512):
            a = np.random.default_rng(0).random(kb * 256, dtype=np.float32)
            calls = max(50, 200_000 // kb)
            for _ in range(20):
                a.dot(a)
            best[kb] = min(_timed(lambda: a.dot(a), calls) for _ in range(7))
    overhead = best[16] - 16 * 1024 / 200e9  # (the call's own time: a 16 KB dot from L1 at ~200 GB/s)
    for kb in (128, 256, 512):
        print(f"  {kb:4d} KB: {best[kb] * 1e6:6.2f} us a call, {kb * 1024 / (best[kb] - overhead) / 1e9:6.1f} GB/s")
    return best


def _timed(call, calls):
    start = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - start) / calls


def batch1_lstm():
    T, I, H = 50, 32, 128
    x, w_ih, w_hh, b_ih, b_hh, _ = problem("lstm", T, 1, I, H)
    print(f"\n3. the batch-1 LSTM forward (T={T} I={I} H={H}, inference), phase clock, best of 200 calls, us")
    _core._set_profiling(True)
    try:
        for threads in (1, 2):
            rnnkit.set_num_threads(threads)
            best = None
            for _ in range(200):
                start = time.perf_counter()
                rnnkit.lstm_forward(x, None, None, w_ih, w_hh, b_ih, b_hh, training=False)
                wall = time.perf_counter() - start
                if best is None or wall < best[0]:
                    best = (wall, dict(_core._last_profile()))
            wall, phases = best
            product = phases["recurrent_gemm"]
            rate = 4 * H * H * 4 * T / product / 1e9
            print(f"  {threads} thread(s): call {wall * 1e6:6.1f}; "
                  + ", ".join(f"{name} {v * 1e6:.1f}" for name, v in phases.items() if v > 0 and name != "total")
                  + f"; the product reads W_hh at {rate:.0f} GB/s ({product / T * 1e6:.2f} us a step)")
    finally:
        _core._set_profiling(False)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=25, help="1-vs-2-thread pairs (0: skip that part)")
    args = parser.parse_args()
    print(f"rnnkit {rnnkit.__version__}, {rnnkit.simd_isa()}, {rnnkit.get_num_threads()} threads by default\n")
    threads = rnnkit.get_num_threads()
    try:
        if args.samples:
            second_core(args.samples)
        l2_rate()
        batch1_lstm()
    finally:
        rnnkit.set_num_threads(threads)


if __name__ == "__main__":
    main()
