"""The optimizer update in the core against the NumPy formula it reproduces (issue 14): one Adam
step (with the gradient norm) alone, and whole fits of small models, where the update's share of a
batch is largest.  The two sides alternate within one run; medians of the repetitions.

    python benchmarks/optimizer_step.py
"""

import argparse
import statistics
import time

import numpy as np
import rnnkit
from rnnkit import optim


def step_time(hidden, inputs, core, repeats):
    rng = np.random.default_rng(0)
    shapes = [(3 * hidden, inputs), (3 * hidden, hidden), (3 * hidden,), (3 * hidden,), (10, hidden), (10,)]
    params = {f"p{i}": rng.standard_normal(s).astype(np.float32) for i, s in enumerate(shapes)}
    grads = {k: rng.standard_normal(v.shape).astype(np.float32) for k, v in params.items()}
    optim.CORE_UPDATES = core
    opt = optim.Adam(params, lr=1e-3)
    opt.step(grads)
    start = time.perf_counter()
    for _ in range(repeats):
        optim.clip_grad_norm(grads, 1e9)
        opt.step(grads)
    return (time.perf_counter() - start) / repeats


def fit_rate(hidden, core, samples=4096):
    """(samples/s, the optimizer steps' share of the fit's time) of one epoch."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((samples, 20, 16)).astype(np.float32)
    y = rng.integers(0, 10, samples)
    optim.CORE_UPDATES = core
    model = rnnkit.ManyToOne(16, hidden, 10, cell="gru", seed=0)
    spent = [0.0]
    step = optim.Adam.step

    def timed(self, grads):
        begin = time.perf_counter()
        step(self, grads)
        spent[0] += time.perf_counter() - begin

    optim.Adam.step = timed
    try:
        start = time.perf_counter()
        model.fit(x, y, epochs=1, batch_size=32, verbose=0)
        elapsed = time.perf_counter() - start
    finally:
        optim.Adam.step = step
    return samples / elapsed, spent[0] / elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"rnnkit {rnnkit.__version__}, SIMD {rnnkit.simd_isa()}, {rnnkit.get_num_threads()} threads; float32")
    print(f"{'case':38s} {'core':>12s} {'NumPy':>12s} {'ratio':>7s}")
    for hidden, inputs in ((32, 16), (128, 32), (512, 128)):
        n = 2000 if hidden < 512 else 100
        times = {True: [], False: []}
        for _ in range(args.repeats):
            for core in (True, False):
                times[core].append(step_time(hidden, inputs, core, n))
        a, b = statistics.median(times[True]), statistics.median(times[False])
        print(f"{'Adam step + norm, GRU H=' + str(hidden):38s} {a * 1e6:9.1f} us {b * 1e6:9.1f} us {b / a:6.2f}x")
    for hidden in (32, 128):
        rates, shares = {True: [], False: []}, {True: [], False: []}
        for _ in range(args.repeats):
            for core in (True, False):
                rate, share = fit_rate(hidden, core)
                rates[core].append(rate)
                shares[core].append(share)
        a, b = statistics.median(rates[True]), statistics.median(rates[False])
        print(f"{'fit, GRU H=' + str(hidden) + ' T=20 batch 32 (samples/s)':38s} {a:12.0f} {b:12.0f} {a / b:6.2f}x")
        a, b = statistics.median(shares[True]), statistics.median(shares[False])
        print(f"{'  its Adam steps, share of the fit':38s} {a * 100:11.1f}% {b * 100:11.1f}%")
    optim.CORE_UPDATES = True


if __name__ == "__main__":
    main()
