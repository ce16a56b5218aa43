"""Where the time of one call goes: the kernels' phase clock, per case and pass.

    python benchmarks/profile_phases.py                       # tanh, lstm, gru on S1-S4, 2 threads
    python benchmarks/profile_phases.py --cells tanh --cases S2 --threads 1

The C++ kernels time their phases when ``rnnkit._core._set_profiling(True)`` is on (one clock read at
each phase change, on the team's first thread; the other threads' time shows as the first thread's
barrier wait): setup (packing W_hh, zeroing), the input GEMM, the per-step recurrent products, the cell's
element-wise work, barrier waits, the weight-gradient GEMMs and the dx GEMM.  "python" is the rest of
the call's wall time: argument checks, output allocation, the cache.  For each pass the call with the
smallest wall time of ``--repeats`` is reported, in milliseconds.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import rnnkit
from rnnkit import _core

CASES = {"S1": (50, 1, 128, 128), "S2": (100, 32, 256, 256), "S3": (50, 16, 1760, 1760), "S4": (1000, 8, 64, 256)}
GATES = {"tanh": 1, "relu": 1, "lstm": 4, "gru": 3}
PHASES = ("setup", "input_gemm", "recurrent_gemm", "cell", "barrier", "weight_grad_gemm", "dx_gemm", "python")


def problem(cell, T, B, I, H, seed=0):
    rng = np.random.default_rng(seed)
    G, k = GATES[cell], 1.0 / np.sqrt(H)
    u = lambda *s: rng.uniform(-k, k, s).astype(np.float32)
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    return x, u(G * H, I), u(G * H, H), u(G * H), u(G * H), rng.standard_normal((T, B, H)).astype(np.float32)


def passes(cell, x, w_ih, w_hh, b_ih, b_hh, dy):
    if cell in ("tanh", "relu"):
        fwd = lambda: rnnkit.rnn_forward(x, None, w_ih, w_hh, b_ih, b_hh, nonlinearity=cell)
        bwd = lambda out: rnnkit.rnn_backward(out[2], dy, None)
    elif cell == "lstm":
        fwd = lambda: rnnkit.lstm_forward(x, None, None, w_ih, w_hh, b_ih, b_hh)
        bwd = lambda out: rnnkit.lstm_backward(out[-1], dy, None, None)
    else:
        fwd = lambda: rnnkit.gru_forward(x, None, w_ih, w_hh, b_ih, b_hh)
        bwd = lambda out: rnnkit.gru_backward(out[-1], dy, None)
    return fwd, bwd


def profiled(call):
    start = time.perf_counter()
    result = call()
    wall = time.perf_counter() - start
    phases = dict(_core._last_profile())
    phases["python"] = wall - phases.pop("total")
    phases["wall"] = wall
    return result, phases


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", default="tanh,lstm,gru")
    parser.add_argument("--cases", default="S1,S2,S3,S4")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=0, help="calls per pass (default: 21 small, 5 S3)")
    args = parser.parse_args(argv)
    rnnkit.set_num_threads(args.threads)
    print(f"rnnkit {rnnkit.__version__}, {rnnkit.simd_isa()}, {args.threads} threads, float32; ms, best of the repeats")
    print("| cell | case | pass | wall | " + " | ".join(PHASES) + " |")
    print("|---|---|---|---|" + "---|" * len(PHASES))
    for cell in args.cells.split(","):
        for case in args.cases.split(","):
            T, B, I, H = CASES[case]
            fwd, bwd = passes(cell, *problem(cell, T, B, I, H))
            repeats = args.repeats or (5 if H > 1000 else 21)
            _core._set_profiling(True)
            try:
                best = {"forward": None, "backward": None}
                for _ in range(repeats):
                    out, f = profiled(fwd)
                    _, b = profiled(lambda bwd=bwd, out=out: bwd(out))
                    for name, p in (("forward", f), ("backward", b)):
                        if best[name] is None or p["wall"] < best[name]["wall"]:
                            best[name] = p
            finally:
                _core._set_profiling(False)
            for name, p in best.items():
                cells = " | ".join(f"{p.get(k, 0) * 1e3:.3f}" if p.get(k, 0) > 0 else "" for k in PHASES)
                print(f"| {cell} | {case} | {name} | {p['wall'] * 1e3:.3f} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
