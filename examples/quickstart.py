"""A first look at rnnkit: a vanilla RNN forward and backward pass, checked against the reference."""

import time

import numpy as np
import rnnkit
from rnnkit import reference

T, B, I, H = 100, 32, 256, 256
rng = np.random.default_rng(0)
bound = 1 / np.sqrt(H)
x = rng.standard_normal((T, B, I)).astype(np.float32)
w_ih = rng.uniform(-bound, bound, (H, I)).astype(np.float32)
w_hh = rng.uniform(-bound, bound, (H, H)).astype(np.float32)
b_ih = rng.uniform(-bound, bound, H).astype(np.float32)
b_hh = rng.uniform(-bound, bound, H).astype(np.float32)
dy = rng.standard_normal((T, B, H)).astype(np.float32)

print(f"rnnkit {rnnkit.__version__}: SIMD path {rnnkit.simd_isa()}, {rnnkit.get_num_threads()} threads")
for name, api in [("rnnkit (C++)", rnnkit), ("reference (NumPy)", reference)]:
    api.rnn_forward(x, None, w_ih, w_hh, b_ih, b_hh)  # warm-up
    start = time.perf_counter()
    y, h_n, cache = api.rnn_forward(x, None, w_ih, w_hh, b_ih, b_hh)
    grads = api.rnn_backward(cache, dy, None)
    elapsed = time.perf_counter() - start
    print(f"{name:<18} forward+backward T={T} B={B} I=H={H}: {elapsed * 1e3:7.2f} ms,"
          f" |y| = {np.linalg.norm(y):.4f}, |dW_hh| = {np.linalg.norm(grads[3]):.4f}")
