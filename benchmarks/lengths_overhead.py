"""What the lengths path costs per real step, at the layer level (GRU forward + backward).

    python benchmarks/lengths_overhead.py [--rounds 3]

B=64 rows, I=32, H=128 (the shape of benchmarks/ragged_fit.py).  Four cases, interleaved per round
(medians of 30 calls each): a rectangular batch of T=62 steps; the same work as lengths of 61-63 in a
T=63 array (what a bucketed batch is); a rectangular T=100 batch (the padded fit's); random lengths
in [25, 100] (mean 62.5: an unbucketed batch).  The first two do the same real steps: their ratio is
the lengths path's overhead per real step.  rect T=100 over lengths 25-100 bounds what lengths can
gain at the kernel level on this data (100 / 62.5 = 1.6 from the work alone).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import rnnkit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    hidden, inputs, batch = 128, 32, 64
    layer = rnnkit.RNN(inputs, hidden, cell="gru", seed=0)
    cases = {
        "rect T=62": (62, None),
        "lengths 61-63 (T=63)": (63, np.array([61 + i % 3 for i in range(batch)])),
        "rect T=100": (100, None),
        "lengths 25-100": (100, rng.integers(25, 101, batch)),
    }
    data = {name: rng.standard_normal((steps, batch, inputs)).astype(np.float32) for name, (steps, _) in cases.items()}

    def median_ms(name, calls=30):
        x, lengths = data[name], cases[name][1]
        times = []
        for _ in range(calls):
            started = time.perf_counter()
            _, h_n = layer(x, lengths=lengths)
            layer.backward(None, h_n)
            times.append(time.perf_counter() - started)
        return float(np.median(times)) * 1e3

    print(f"rnnkit {rnnkit.__version__}, {rnnkit.get_num_threads()} threads, SIMD {rnnkit.simd_isa()}; "
          f"GRU B={batch} I={inputs} H={hidden}, forward+backward, ms (median of 30)")
    print("round  " + "  ".join(f"{name:>20}" for name in cases) + "   overhead  kernel gain")
    for r in range(args.rounds):
        ms = {name: median_ms(name) for name in cases}
        overhead = ms["lengths 61-63 (T=63)"] / ms["rect T=62"]
        gain = ms["rect T=100"] / ms["lengths 25-100"]
        print(f"{r + 1:>5}  " + "  ".join(f"{ms[name]:>20.2f}" for name in cases) + f"   {overhead:7.2f}x  {gain:9.2f}x")


if __name__ == "__main__":
    main()
