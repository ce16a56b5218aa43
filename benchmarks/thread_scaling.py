"""Thread scaling of rnnkit (and torch, when importable) on the benchmark cases, float32.

    python benchmarks/thread_scaling.py --threads 1 2 4 8 16 [--cells tanh lstm gru] [--json PATH]

For each cell, case and thread count: the median time of a forward pass and of forward+backward,
GFLOP/s (2*T*B*G*H*(I+H) per forward pass, three times that for forward+backward) and the speed-up
over one thread.  rnnkit's outputs are checked against the NumPy reference once per case, and its
results are checked to be bitwise identical at every thread count.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
import rnnkit
from rnnkit import reference

CASES = {
    "S1": (50, 1, 128, 128),
    "S2": (100, 32, 256, 256),
    "S3": (50, 16, 1760, 1760),
    "S4": (1000, 8, 64, 256),
}
GATES = {"tanh": 1, "relu": 1, "lstm": 4, "gru": 3}


def problem(cell, steps, batch, inputs, hidden):
    rng = np.random.default_rng(0)
    bound = 1 / np.sqrt(hidden)
    rows = GATES[cell] * hidden
    p = {"x": rng.standard_normal((steps, batch, inputs), dtype=np.float32)}
    for name, shape in [("w_ih", (rows, inputs)), ("w_hh", (rows, hidden)), ("b_ih", (rows,)), ("b_hh", (rows,))]:
        p[name] = rng.uniform(-bound, bound, shape).astype(np.float32)
    return p


def run(api, cell, p, backward):
    if cell == "lstm":
        y, h, c, cache = api.lstm_forward(p["x"], None, None, p["w_ih"], p["w_hh"], p["b_ih"], p["b_hh"])
        grads = api.lstm_backward(cache, np.ones_like(y), None, None) if backward else ()
    elif cell == "gru":
        y, h, cache = api.gru_forward(p["x"], None, p["w_ih"], p["w_hh"], p["b_ih"], p["b_hh"])
        grads = api.gru_backward(cache, np.ones_like(y), None) if backward else ()
    else:
        y, h, cache = api.rnn_forward(p["x"], None, p["w_ih"], p["w_hh"], p["b_ih"], p["b_hh"], nonlinearity=cell)
        grads = api.rnn_backward(cache, np.ones_like(y), None) if backward else ()
    return (y, *grads)


def torch_runner(cell, p, backward):
    import torch

    steps, batch, inputs = p["x"].shape
    hidden = p["w_hh"].shape[1]
    cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}.get(cell)
    module = cls(inputs, hidden) if cls else torch.nn.RNN(inputs, hidden, nonlinearity=cell)
    with torch.no_grad():
        for name, value in [("weight_ih_l0", "w_ih"), ("weight_hh_l0", "w_hh"), ("bias_ih_l0", "b_ih"),
                            ("bias_hh_l0", "b_hh")]:
            getattr(module, name).copy_(torch.from_numpy(p[value]))
    x = torch.from_numpy(p["x"])

    def call():
        if backward:
            xg = x.clone().requires_grad_(True)
            y, _ = module(xg)
            y.backward(torch.ones_like(y))
            return y
        with torch.no_grad():
            return module(x)[0]

    return call


def median_time(fn, seconds=0.6, min_calls=3):
    fn()
    start = time.perf_counter()
    fn()
    once = time.perf_counter() - start
    calls = max(min_calls, int(seconds / max(once, 1e-6)))
    samples = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return float(np.median(samples))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--cells", nargs="+", default=["tanh", "lstm", "gru"])
    parser.add_argument("--cases", nargs="+", default=["S1", "S2", "S3"])
    parser.add_argument("--torch", action="store_true", help="also time torch at each thread count")
    parser.add_argument("--seconds", type=float, default=0.6, help="time per measurement")
    parser.add_argument("--json")
    args = parser.parse_args()
    torch = None
    if args.torch:
        import torch
    print(f"rnnkit {rnnkit.__version__} {rnnkit.simd_isa()}, {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}")
    rows = []
    for cell in args.cells:
        for case in args.cases:
            steps, batch, inputs, hidden = CASES[case]
            p = problem(cell, steps, batch, inputs, hidden)
            flops = 2 * steps * batch * GATES[cell] * hidden * (inputs + hidden)
            want = run(reference, cell, p, False)[0]
            got = run(rnnkit, cell, p, False)[0]
            error = float(np.abs(got - want).max() / np.abs(want).max())
            assert error < 1e-4, f"{cell} {case}: rnnkit differs from the reference by {error:.2e}"
            baseline_bits = None
            base = {}
            for n in args.threads:
                rnnkit.set_num_threads(n)
                bits = run(rnnkit, cell, p, True)
                if baseline_bits is None:
                    baseline_bits = bits
                else:
                    assert all(np.array_equal(a, b) for a, b in zip(bits, baseline_bits)), f"{cell} {case} {n} threads: bits differ"
                for label, backward in [("fwd", False), ("fwd+bwd", True)]:
                    seconds = median_time(lambda b=backward: run(rnnkit, cell, p, b), args.seconds)
                    work = flops * (3 if backward else 1)
                    base.setdefault(label, seconds)
                    row = {"cell": cell, "case": case, "pass": label, "threads": n, "impl": "rnnkit", "ms": seconds * 1e3,
                           "gflops": work / seconds / 1e9, "speedup_vs_1": base[label] / seconds}
                    if torch is not None:
                        torch.set_num_threads(n)
                        t = median_time(torch_runner(cell, p, backward), args.seconds)
                        row["torch_ms"] = t * 1e3
                        row["vs_torch"] = t / seconds
                    rows.append(row)
                    extra = f"  torch {row['torch_ms']:9.3f} ms ({row['vs_torch']:.2f}x)" if "torch_ms" in row else ""
                    print(f"{cell:5s} {case} {label:8s} {n:3d} threads {row['ms']:9.3f} ms {row['gflops']:7.1f} GF/s "
                          f"x{row['speedup_vs_1']:.2f}{extra}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cpus": os.cpu_count(), "isa": rnnkit.simd_isa(), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
