"""Serving (issue 13): one step's latency, greedy generation, and throughput from many threads.

    python benchmarks/serving.py                       # the three cases below, in full (a few minutes)
    python benchmarks/serving.py --quick               # a smoke test (seconds)
    python benchmarks/serving.py --only step generate  # some of the cases: step, generate, serve
    python benchmarks/serving.py --threads 1 --serving-threads 4 --seconds 5 --json out.json

Everything is float32, torch and rnnkit on the same number of threads (torch.set_num_threads(n),
rnnkit.set_num_threads(n); all cores by default).  The methods of a case are timed side by side in one
run, interleaved (in a rotated order, round after round), so that a drift of the machine's speed (2x
over minutes on a shared VM) hits them alike; ratios are taken within a round, and the tables give
their median with the spread (min-max) over rounds.  "other load" is how many cores other processes
kept busy during a case (from /proc/stat); above 0.1 it is flagged: rerun on a quiet machine then.

1. step: one ``stream.step(x_t)`` of ``rnnkit.RNN(128, 128, cell=...).stream(batch_size=1)``, x_t a
   preallocated C-contiguous (1, 128) array, timed from Python as a tight loop of N calls (N sized to a
   block of ~40 ms per method; the median of --rounds blocks), for the cells tanh, gru and lstm, against
   - torch: nn.RNNCell / GRUCell / LSTMCell under torch.no_grad() with the layer's weights, x a
     preallocated (1, 128) tensor, the state fed back each call;
   - numpy: the plain NumPy formula of one step with preallocated weights (tanh:
     ``np.tanh(x @ W_ih.T + b_ih + h @ W_hh.T + b_hh)``; GRU and LSTM: torch's equations), the state
     fed back.
   For context, ``stream.feed`` of a 100-step chunk, per step: the C++ cost of a step without the
   Python call around it.  Before timing, 16 steps of every method are checked against the layer's forward (training=False)
   within 1e-4, and NumPy's against the stream's; the script stops if one differs.
1b. large: the same step at H=I=256 (--large-size; GRU and LSTM), whose weights (1.5-2 MB) do not fit
   one core's L2: with one thread against --threads (such a step shares each layer's units with the
   kernels' helper threads), torch's cell for context.
2. generate: the demo's dates task ('27 nov 2026' -> '2026-11-27'; rnnkit.demo._dates_task): a
   Seq2Seq(16, 128, DATE_OUTPUT_SIZE, cell="lstm", vocab_size, end_token=DATE_END, seed=0) trained
   briefly (--train-samples samples, --epochs epochs, lr 5e-3: enough that it writes end tokens), then
   100 test sources generated one at a time, ``model.predict([src])`` each, against "the layer-per-token
   path": a loop that generates with one full layer call per token (``decoder(step_input, state,
   training=False)``, ``head(h[0])``, argmax, one-hot feedback, stopping at the end token; the encoder
   state from ``model._initial_state`` under ``model._inference()``).  Both must give the same tokens.
   ``model.predict(all 100)`` (one batch) is timed too, for context, and so is what both
   one-at-a-time paths share before the first token (the source's checks and the encoder,
   ``model._initial_state``): taken off both, it gives the ratio of the decoding alone.
3. serve: one ManyToMany(128, 128, 10, cell="gru") model; --serving-threads (8) Python threads each
   stream their own sessions (100 steps, then ``reset()``) through their own stream of the model, for
   --seconds (3) of wall time, against one thread doing the same; steps/s summed over the threads.  Two
   kinds of stream: the layer's (``model.layers["rnn"].stream(1)``: h_t out) and the model's
   (``model.stream(1)``: the head's label out, its Dense + argmax in NumPy).  For context, a third
   kind feeds each session in one call (``stream.feed``, the 100 steps in C++ without the GIL): what
   the cores give when the GIL is not taken and given back at every step.  "cores used" is this
   process's CPU time over the wall time.  Each thread's first session is checked against the layer's
   forward (h within 1e-4; labels equal).

Goals (issue 13):
  step: median <= 4 us (tanh), <= 6 us (gru, lstm); >= 5x faster than torch's cell; >= 2x faster
        than one NumPy step;
  generate: predict one at a time >= 5x faster than the layer-per-token loop;
  serve: 8 threads >= 1.6x the steps/s of one thread (on a 2-core machine; for each kind of stream).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time

import numpy as np
import rnnkit
import torch
from rnnkit import datasets as ds
from rnnkit._model import from_state_tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ragged_fit import busy_seconds, machine

CELLS = ("tanh", "gru", "lstm")
STEP_METHODS = ("rnnkit stream.step", "torch cell", "numpy step", "rnnkit stream.feed")
FEED_CHUNK = 100  # stream.feed (context): the C++ cost of a step without Python's per-call cost
STEP_GOAL_US = {"tanh": 4.0, "gru": 6.0, "lstm": 6.0}
TORCH_CELLS = {"tanh": torch.nn.RNNCell, "gru": torch.nn.GRUCell, "lstm": torch.nn.LSTMCell}
GEN_METHODS = ("predict, one at a time", "layer-per-token loop", "predict, batch of 100",
               "encoder only, one at a time")
SERVE_KINDS = {"layer": "layer.stream(1).step (h_t)", "model": "model.stream(1).step (label)",
               "feed": "layer.stream(1).feed(session) (context)"}
SIZE = 128  # H = I = 128


# -- the machine ----------------------------------------------------------------------------------

class OtherLoad:
    """``with OtherLoad() as load: ...``; then ``load.cores``: the cores other processes kept busy, and
    ``load.mine``: the cores this process used."""

    def __enter__(self):
        self._start, self._wall = busy_seconds(), time.perf_counter()
        return self

    def __exit__(self, *exc):
        (total, mine), (total0, mine0) = busy_seconds(), self._start
        self.wall = time.perf_counter() - self._wall
        self.cores = max(0.0, (total - total0) - (mine - mine0)) / self.wall
        self.mine = (mine - mine0) / self.wall
        return False


def source_state():
    """The commit the library was measured at, and how many of its files differ from it."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        import subprocess
        commit = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                check=True).stdout.strip()
        changed = subprocess.run(["git", "-C", root, "status", "--porcelain", "--", "python", "src", "CMakeLists.txt"],
                                 capture_output=True, text=True, check=True).stdout.splitlines()
        return commit, len(changed)
    except (OSError, subprocess.CalledProcessError):
        return "unknown", 0


def spread(values, fmt=".2f"):
    return f"{min(values):{fmt}}-{max(values):{fmt}}"


def rotated(items, r):
    items = list(items)
    return items[r % len(items):] + items[:r % len(items)]


def verdict(met):
    return "MET" if met else "not met"


def fail(message):
    raise SystemExit(f"FAIL: {message}; not timing a wrong result")


# -- 1. one step --------------------------------------------------------------------------------

def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def numpy_step(cell, w_ih, w_hh, b_ih, b_hh):
    """step(x, state) -> state: one step of the plain NumPy formula (torch's equations)."""
    hidden = w_hh.shape[1]
    if cell == "tanh":
        def step(x, h):
            return np.tanh(x @ w_ih.T + b_ih + h @ w_hh.T + b_hh)
    elif cell == "gru":
        def step(x, h):
            gi, gh = x @ w_ih.T + b_ih, h @ w_hh.T + b_hh
            r = sigmoid(gi[:, :hidden] + gh[:, :hidden])
            z = sigmoid(gi[:, hidden:2 * hidden] + gh[:, hidden:2 * hidden])
            n = np.tanh(gi[:, 2 * hidden:] + r * gh[:, 2 * hidden:])
            return (1 - z) * n + z * h
    else:
        def step(x, state):
            h, c = state
            g = x @ w_ih.T + b_ih + h @ w_hh.T + b_hh
            i, f = sigmoid(g[:, :hidden]), sigmoid(g[:, hidden:2 * hidden])
            o = sigmoid(g[:, 3 * hidden:])
            c = f * c + i * np.tanh(g[:, 2 * hidden:3 * hidden])
            return o * np.tanh(c), c
    return step


def torch_cell(cell, layer):
    p = layer.params
    net = TORCH_CELLS[cell](layer.input_size, layer.hidden_size)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(net, name).copy_(torch.from_numpy(np.array(p[name + "_l0"])))
    net.eval()
    return net


class StepMethods:
    """The three methods of one cell: ``run[name](n)`` does n steps (the state fed back), and
    ``outputs[name](xs)`` the h of each step of xs (T, 1, I) from a zero state, for the check."""

    def __init__(self, cell, seed=0):
        self.cell, self.lstm = cell, cell == "lstm"
        self.layer = rnnkit.RNN(SIZE, SIZE, cell=cell, seed=seed)
        self.torch = torch_cell(cell, self.layer)
        p = self.layer.params
        self.numpy = numpy_step(cell, *(np.array(p[k + "_l0"]) for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")))
        rng = np.random.default_rng(seed + 1)
        self.x = np.ascontiguousarray(rng.standard_normal((1, SIZE), dtype=np.float32))
        self.x_torch = torch.from_numpy(self.x.copy())
        self.stream = self.layer.stream(batch_size=1)
        self.feed_stream = self.layer.stream(batch_size=1)
        self.chunk = np.ascontiguousarray(rng.standard_normal((FEED_CHUNK, 1, SIZE), dtype=np.float32))
        self._torch_state = self._zero_torch()
        self._numpy_state = self._zero_numpy()
        self.run = {"rnnkit stream.step": self._run_stream, "torch cell": self._run_torch,
                    "numpy step": self._run_numpy, "rnnkit stream.feed": self._run_feed}
        self.steps_per_call = {"rnnkit stream.feed": FEED_CHUNK}

    def _zero_torch(self):
        h = torch.zeros(1, SIZE)
        return (h, torch.zeros(1, SIZE)) if self.lstm else h

    def _zero_numpy(self):
        h = np.zeros((1, SIZE), np.float32)
        return (h, np.zeros((1, SIZE), np.float32)) if self.lstm else h

    def _run_stream(self, n):
        step, x = self.stream.step, self.x
        for _ in range(n):
            step(x)

    def _run_feed(self, n):
        feed, chunk = self.feed_stream.feed, self.chunk
        for _ in range(n):
            feed(chunk)

    def _run_torch(self, n):
        net, x, state = self.torch, self.x_torch, self._torch_state
        with torch.no_grad():
            for _ in range(n):
                state = net(x, state)
        self._torch_state = state

    def _run_numpy(self, n):
        step, x, state = self.numpy, self.x, self._numpy_state
        for _ in range(n):
            state = step(x, state)
        self._numpy_state = state

    def check(self, steps=16):
        """Max abs errors of each method against the layer's forward (and NumPy's against the stream's)."""
        xs = np.random.default_rng(7).standard_normal((steps, 1, SIZE), dtype=np.float32)
        forward, _ = self.layer(xs, training=False)
        forward = np.asarray(forward)[:, 0]
        stream = self.layer.stream(batch_size=1)
        ours = np.stack([np.array(stream.step(np.ascontiguousarray(xs[t]))).reshape(-1) for t in range(steps)])
        fed = np.array(self.layer.stream(batch_size=1).feed(xs)).reshape(steps, -1)
        state, theirs = self._zero_torch(), []
        with torch.no_grad():
            for t in range(steps):
                state = self.torch(torch.from_numpy(xs[t].copy()), state)
                theirs.append((state[0] if self.lstm else state).numpy()[0].copy())
        state, plain = self._zero_numpy(), []
        for t in range(steps):
            state = self.numpy(xs[t], state)
            plain.append((state[0] if self.lstm else state)[0].copy())
        errors = {"rnnkit stream.step": np.abs(ours - forward).max(), "torch cell": np.abs(np.stack(theirs) - forward).max(),
                  "numpy step": np.abs(np.stack(plain) - forward).max(), "rnnkit stream.feed": np.abs(fed - forward).max(),
                  "numpy step vs stream": np.abs(np.stack(plain) - ours).max()}
        errors = {k: float(e) for k, e in errors.items()}
        for name, error in errors.items():
            if not error <= 1e-4:
                fail(f"{self.cell}: {name} differs from rnnkit's layer forward by {error:.3g}")
        return errors


def calibrate(run, block_s):
    """Calls per block so that a block lasts about block_s."""
    run(200)  # warm-up
    started = time.perf_counter()
    run(200)
    per_call = (time.perf_counter() - started) / 200
    return max(20, int(block_s / per_call))


def bench_step(args):
    print(f"\n## 1. one step, B=1, H=I={SIZE}, float32: median of {args.rounds} blocks of N calls "
          f"(N for ~{args.block * 1e3:.0f} ms per block), cells and methods interleaved", flush=True)
    cases = {cell: StepMethods(cell) for cell in CELLS}
    checks = {cell: case.check() for cell, case in cases.items()}
    for cell, errors in checks.items():
        print(f"check {cell}: max abs error vs layer forward: " +
              ", ".join(f"{k} {e:.1e}" for k, e in errors.items()))
    calls = {cell: {m: calibrate(case.run[m], args.block) for m in STEP_METHODS} for cell, case in cases.items()}
    times = {cell: {m: [] for m in STEP_METHODS} for cell in CELLS}
    with OtherLoad() as load:
        for r in range(args.rounds):
            for cell in rotated(CELLS, r):
                for m in rotated(STEP_METHODS, r):
                    n, run = calls[cell][m], cases[cell].run[m]
                    started = time.perf_counter()
                    run(n)
                    steps = n * cases[cell].steps_per_call.get(m, 1)
                    times[cell][m].append((time.perf_counter() - started) / steps * 1e6)
    print(f"other load during the timing: {load.cores:.2f} cores ({load.wall:.1f} s)")
    print()
    print("| cell | rnnkit stream.step (µs) | torch cell (µs) | numpy step (µs) | torch / rnnkit (spread) "
          f"| numpy / rnnkit (spread) | stream.feed({FEED_CHUNK} steps) per step (µs) |")
    print("|---|---|---|---|---|---|---|")
    summary, goals = {}, {}
    for cell in CELLS:
        t = times[cell]
        med = {m: statistics.median(t[m]) for m in STEP_METHODS}
        vs_torch = [a / b for a, b in zip(t["torch cell"], t["rnnkit stream.step"])]
        vs_numpy = [a / b for a, b in zip(t["numpy step"], t["rnnkit stream.step"])]
        summary[cell] = {"median_us": med, "calls_per_block": calls[cell], "torch_over_rnnkit": statistics.median(vs_torch),
                         "torch_over_rnnkit_spread": [min(vs_torch), max(vs_torch)],
                         "numpy_over_rnnkit": statistics.median(vs_numpy),
                         "numpy_over_rnnkit_spread": [min(vs_numpy), max(vs_numpy)],
                         "stream_us_spread": [min(t["rnnkit stream.step"]), max(t["rnnkit stream.step"])]}
        print(f"| {cell} | {med['rnnkit stream.step']:.2f} ({spread(t['rnnkit stream.step'])}) | "
              f"{med['torch cell']:.1f} | {med['numpy step']:.1f} | "
              f"{statistics.median(vs_torch):.1f}× ({spread(vs_torch, '.1f')}) | "
              f"{statistics.median(vs_numpy):.1f}× ({spread(vs_numpy, '.1f')}) | {med['rnnkit stream.feed']:.2f} |")
        goals[f"{cell} step <= {STEP_GOAL_US[cell]:g} us"] = {
            "value": med["rnnkit stream.step"], "goal": STEP_GOAL_US[cell], "met": med["rnnkit stream.step"] <= STEP_GOAL_US[cell]}
        goals[f"{cell} step >= 5x torch cell"] = {"value": statistics.median(vs_torch), "goal": 5.0,
                                                  "met": statistics.median(vs_torch) >= 5.0}
        goals[f"{cell} step >= 2x numpy step"] = {"value": statistics.median(vs_numpy), "goal": 2.0,
                                                  "met": statistics.median(vs_numpy) >= 2.0}
    print()
    for label, g in goals.items():
        unit = " us" if label.split()[2] == "<=" else "x"
        print(f"goal {label}: {g['value']:.2f}{unit} -> {verdict(g['met'])}")
    return {"checks": checks, "times_us": times, "summary": summary, "goals": goals, "other_load": load.cores}


def bench_large_step(args):
    """A step large enough to take helpers (a layer's weights beyond one core's L2): one thread
    against --threads, interleaved; torch's cell on --threads for context."""
    size = args.large_size
    print(f"\n## 1b. one step of H=I={size}, B=1, float32: rnnkit.set_num_threads(1) against {args.threads}, "
          f"median of {args.rounds} blocks, interleaved", flush=True)
    rows, out = [], {}
    rng = np.random.default_rng(5)
    x = np.ascontiguousarray(rng.standard_normal((1, size), dtype=np.float32))
    for cell in ("gru", "lstm"):
        layer = rnnkit.RNN(size, size, cell=cell, seed=0)
        stream, net = layer.stream(1), torch_cell(cell, layer)
        x_torch = torch.from_numpy(x.copy())
        forward = np.asarray(layer(x[None], training=False)[0])[0]
        for n in (1, args.threads):  # each thread count against the forward before timing
            rnnkit.set_num_threads(n)
            stream.reset()
            if not float(np.abs(np.asarray(stream.step(x)) - forward).max()) <= 1e-4:
                fail(f"{cell} H={size}: the stream's step on {n} thread(s) differs from the forward")

        def run_stream(k, threads):
            rnnkit.set_num_threads(threads)
            for _ in range(k):
                stream.step(x)

        def run_torch(k):
            state = None
            with torch.no_grad():
                for _ in range(k):
                    state = net(x_torch, state)

        methods = {"1 thread": lambda k: run_stream(k, 1), f"{args.threads} threads": lambda k: run_stream(k, args.threads),
                   f"torch cell, {args.threads} threads": run_torch}
        calls = {m: calibrate(run, args.block) for m, run in methods.items()}
        times = {m: [] for m in methods}
        for r in range(args.rounds):
            for m in rotated(list(methods), r):
                started = time.perf_counter()
                methods[m](calls[m])
                times[m].append((time.perf_counter() - started) / calls[m] * 1e6)
        rnnkit.set_num_threads(args.threads)
        one, many = times["1 thread"], times[f"{args.threads} threads"]
        ratio = [a / b for a, b in zip(one, many)]
        med = {m: statistics.median(t) for m, t in times.items()}
        out[cell] = {"median_us": med, "one_over_many": statistics.median(ratio), "spread": [min(ratio), max(ratio)]}
        rows.append(f"| {cell} | {med['1 thread']:.2f} | {med[f'{args.threads} threads']:.2f} | "
                    f"{statistics.median(ratio):.2f}× ({spread(ratio)}) | {med[f'torch cell, {args.threads} threads']:.1f} |")
    print()
    print(f"| cell | 1 thread (µs) | {args.threads} threads (µs) | 1 / {args.threads} (spread) | torch cell (µs) |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))
    return {"summary": out, "goals": {}}


# -- 2. generation --------------------------------------------------------------------------------

def layer_per_token(model, src, max_steps):
    """Greedy generation with one full layer call per token: the path before the decoder's cached plans."""
    decoder, head = model.layers["decoder"], model.layers["head"]
    outputs, end = model.output_size, model.end_token
    tokens = []
    with model._inference():
        state = from_state_tuple(model._initial_state(model._check_x([src]).take(np.arange(1))))
        step_input = np.zeros((1, 1, outputs), model.dtype)
        for _ in range(max_steps):
            h, state = decoder(step_input, state, training=False)
            label = int(head(h[0]).argmax(axis=-1)[0])
            if label == end:
                break
            tokens.append(label)
            step_input = np.zeros((1, 1, outputs), model.dtype)
            step_input[0, 0, label] = 1
    return np.array(tokens, np.int64)


def encoder_only(model, src):
    """What both one-at-a-time paths do before the first token: the source's checks and the encoder."""
    with model._inference():
        return model._initial_state(model._check_x([src]).take(np.arange(1)))


def bench_generate(args):
    sources, targets = ds.make_dates(5000, seed=0)
    X, Y = ds.encode_dates(sources, targets)
    n_test = args.test_sources
    X_train, Y_train, X_test, Y_test = X[:args.train_samples], Y[:args.train_samples], X[4000:4000 + n_test], Y[4000:4000 + n_test]
    print(f"\n## 2. generation: Seq2Seq(16, 128, {ds.DATE_OUTPUT_SIZE}, cell='lstm') on the dates task, trained "
          f"{args.epochs} epoch(s) on {len(X_train)} samples (lr 5e-3); {n_test} test sources, {args.repeats} rounds",
          flush=True)
    model = rnnkit.Seq2Seq(16, 128, ds.DATE_OUTPUT_SIZE, cell="lstm", vocab_size=len(ds.DATE_SOURCE_VOCAB),
                           end_token=ds.DATE_END, seed=0)
    started = time.perf_counter()
    history = model.fit(X_train, Y_train, epochs=args.epochs, lr=5e-3, verbose=0).history_
    train_s = time.perf_counter() - started
    max_steps = model.steps

    # the check: both paths give the same tokens for every test source
    one_by_one = [model.predict([src], max_steps=max_steps)[0] for src in X_test]
    reference = [layer_per_token(model, src, max_steps) for src in X_test]
    batch = model.predict(X_test, max_steps=max_steps)
    for i, (a, b, c) in enumerate(zip(one_by_one, reference, batch)):
        if not (np.array_equal(a, b) and np.array_equal(a, c)):
            fail(f"test source {i}: predict([src]) gives {a.tolist()}, the layer-per-token loop {b.tolist()}, "
                 f"the batch predict {np.asarray(c).tolist()}")
    tokens = sum(len(t) for t in one_by_one)
    ended = sum(len(t) < max_steps for t in one_by_one)
    exact = sum(np.array_equal(p, y) for p, y in zip(one_by_one, Y_test))
    print(f"trained in {train_s:.1f} s (final loss {history['loss'][-1]:.3f}); check: the three paths give the same "
          f"tokens for all {n_test} sources; {tokens / n_test:.1f} tokens per source (max_steps {max_steps}), "
          f"{ended}/{n_test} ended by the end token, {exact}/{n_test} exact dates")

    runs = {
        "predict, one at a time": lambda: [model.predict([src], max_steps=max_steps) for src in X_test],
        "layer-per-token loop": lambda: [layer_per_token(model, src, max_steps) for src in X_test],
        "predict, batch of 100": lambda: model.predict(X_test, max_steps=max_steps),
        "encoder only, one at a time": lambda: [encoder_only(model, src) for src in X_test],
    }
    for run in runs.values():
        run()  # warm-up
    times = {m: [] for m in GEN_METHODS}
    with OtherLoad() as load:
        for r in range(args.repeats):
            for m in rotated(GEN_METHODS, r):
                started = time.perf_counter()
                runs[m]()
                times[m].append(time.perf_counter() - started)
    print(f"other load during the timing: {load.cores:.2f} cores ({load.wall:.1f} s)")
    print()
    print("| method | ms per source | sources/s | tokens/s | × layer-per-token (spread) |")
    print("|---|---|---|---|---|")
    summary = {}
    for m in GEN_METHODS:
        ratio = [b / a for a, b in zip(times[m], times["layer-per-token loop"])]
        per = statistics.median(times[m]) / n_test
        summary[m] = {"ms_per_source": per * 1e3, "sources_per_s": 1 / per, "tokens_per_s": tokens / n_test / per,
                      "ratio_to_layer_loop": statistics.median(ratio), "ratio_spread": [min(ratio), max(ratio)]}
        print(f"| {m} | {per * 1e3:.3f} | {1 / per:.0f} | {tokens / n_test / per:.0f} | "
              f"{statistics.median(ratio):.2f}× ({spread(ratio)}) |")
    # without the cost both share (the source's checks and the encoder): the decoding alone
    decode = [(loop - enc) / (ours - enc) for ours, loop, enc in zip(
        times["predict, one at a time"], times["layer-per-token loop"], times["encoder only, one at a time"])]
    summary["decoding only (encoder time taken off both)"] = {"ratio_to_layer_loop": statistics.median(decode),
                                                              "ratio_spread": [min(decode), max(decode)]}
    print(f"| decoding only (the encoder's time taken off both) | | | | {statistics.median(decode):.2f}× "
          f"({spread(decode)}) |")
    value = summary["predict, one at a time"]["ratio_to_layer_loop"]
    goals = {"predict one at a time >= 5x layer-per-token loop": {"value": value, "goal": 5.0, "met": value >= 5.0}}
    print()
    for label, g in goals.items():
        print(f"goal {label}: {g['value']:.2f}x (spread {spread(summary['predict, one at a time']['ratio_spread'])}) "
              f"-> {verdict(g['met'])}")
    return {"train_s": train_s, "train_loss": history["loss"], "max_steps": max_steps, "tokens_per_source": tokens / n_test,
            "ended": ended, "exact": exact, "times_s": times, "summary": summary, "goals": goals,
            "other_load": load.cores}


# -- 3. serving from many threads ------------------------------------------------------------------

def serve(model, kind, threads, seconds, inputs, checks):
    """threads Python threads, each streaming its own sessions through its own stream for seconds:
    (steps/s summed, steps per thread).  Each thread's first session's outputs go to checks[k]."""
    counts, ends, errors = [0] * threads, [0.0] * threads, []
    clock = {}

    def started():  # run by one thread once all have arrived, before any goes on
        clock["start"] = time.perf_counter()
        clock["deadline"] = clock["start"] + seconds

    barrier = threading.Barrier(threads, action=started)

    def worker(k):
        try:
            stream = model.stream(1) if kind == "model" else model.layers["rnn"].stream(1)
            xs = inputs[k]
            step, feed, steps = stream.step, stream.feed, len(xs)
            checks[k] = np.array(feed(xs)) if kind == "feed" else np.array([np.array(step(x)) for x in xs])
            stream.reset()
            barrier.wait()
            deadline, done = clock["deadline"], 0
            while time.perf_counter() < deadline:
                if kind == "feed":
                    feed(xs)
                else:
                    for t in range(steps):
                        step(xs[t])
                stream.reset()
                done += steps
            counts[k], ends[k] = done, time.perf_counter()
        except BaseException as exc:  # noqa: BLE001 (raised below)
            errors.append(exc)
            barrier.abort()

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    if errors:
        raise errors[0]
    start = clock["start"]
    return sum(counts) / (max(ends) - start), counts


def bench_serve(args):
    n_threads = args.serving_threads
    configs = [(kind, t) for kind in SERVE_KINDS for t in (1, n_threads)]
    print(f"\n## 3. serving: one ManyToMany({SIZE}, {SIZE}, 10, cell='gru') model, sessions of {args.session} steps "
          f"at B=1, {args.seconds:g} s per run, {args.repeats} rounds", flush=True)
    model = rnnkit.ManyToMany(SIZE, SIZE, 10, cell="gru", seed=0)
    rng = np.random.default_rng(3)
    inputs = [np.ascontiguousarray(rng.standard_normal((args.session, 1, SIZE), dtype=np.float32))
              for _ in range(n_threads)]
    # the reference of each thread's first session: the layer's forward (and the head's labels)
    reference_h = [np.asarray(model.layers["rnn"](x, training=False)[0])[:, 0] for x in inputs]
    reference_labels = [np.asarray(model.layers["head"](h)).argmax(axis=-1) for h in reference_h]
    rates = {c: [] for c in configs}
    loads = {c: [] for c in configs}
    used = {c: [] for c in configs}
    for r in range(args.repeats):
        for config in rotated(configs, r):
            kind, threads = config
            checks = [None] * threads
            with OtherLoad() as load:
                rate, counts = serve(model, kind, threads, args.seconds, inputs, checks)
            for k, got in enumerate(checks):
                if kind != "model":
                    error = float(np.abs(got.reshape(args.session, SIZE) - reference_h[k]).max())
                    if not error <= 1e-4:
                        fail(f"thread {k} of {threads}: its layer stream differs from the layer's forward by {error:.3g}")
                elif not np.array_equal(got.reshape(-1), reference_labels[k]):
                    fail(f"thread {k} of {threads}: its model stream's labels differ from the forward's + head's")
            rates[config].append(rate)
            loads[config].append(load.cores)
            used[config].append(load.mine)
            print(f"  round {r + 1}: {SERVE_KINDS[kind]:40s} {threads} thread(s): {rate:8.0f} steps/s "
                  f"(per thread {min(counts) / args.seconds:.0f}-{max(counts) / args.seconds:.0f}), "
                  f"cores used {load.mine:.2f}, other load {load.cores:.2f}", flush=True)
    print()
    print(f"| stream | 1 thread (steps/s) | {n_threads} threads (steps/s) | {n_threads} threads / 1 (spread) "
          f"| cores used (1 / {n_threads}) |")
    print("|---|---|---|---|---|")
    summary, goals = {}, {}
    for kind, what in SERVE_KINDS.items():
        one, many = rates[(kind, 1)], rates[(kind, n_threads)]
        ratio = [b / a for a, b in zip(one, many)]
        summary[kind] = {"one_thread": statistics.median(one), "many_threads": statistics.median(many),
                         "ratio": statistics.median(ratio), "ratio_spread": [min(ratio), max(ratio)],
                         "cores_used": [statistics.median(used[(kind, 1)]), statistics.median(used[(kind, n_threads)])]}
        print(f"| {what} | {statistics.median(one):.0f} | {statistics.median(many):.0f} | "
              f"{statistics.median(ratio):.2f}× ({spread(ratio)}) | {statistics.median(used[(kind, 1)]):.2f} / "
              f"{statistics.median(used[(kind, n_threads)]):.2f} |")
        if kind == "feed":
            continue
        goals[f"{kind} stream: {n_threads} threads >= 1.6x one thread"] = {
            "value": statistics.median(ratio), "goal": 1.6, "met": statistics.median(ratio) >= 1.6}
    print()
    for label, g in goals.items():
        print(f"goal {label}: {g['value']:.2f}x -> {verdict(g['met'])}")
    return {"rates": {f"{k} x{t}": v for (k, t), v in rates.items()},
            "other_load": {f"{k} x{t}": v for (k, t), v in loads.items()},
            "cores_used": {f"{k} x{t}": v for (k, t), v in used.items()}, "summary": summary, "goals": goals}


# -- main -----------------------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", choices=("step", "large", "generate", "serve"), default=None,
                        help="run only these cases")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch's and rnnkit's threads")
    parser.add_argument("--rounds", type=int, default=21, help="step: blocks per method")
    parser.add_argument("--block", type=float, default=0.04, help="step: seconds per block (sets N)")
    parser.add_argument("--large-size", type=int, default=256, help="large: H = I of the large step")
    parser.add_argument("--repeats", type=int, default=5, help="generate and serve: rounds")
    parser.add_argument("--train-samples", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--test-sources", type=int, default=100)
    parser.add_argument("--serving-threads", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=3.0, help="serve: wall time of a run")
    parser.add_argument("--session", type=int, default=100, help="serve: steps of a session")
    parser.add_argument("--quick", action="store_true", help="a few seconds in all, for a smoke test")
    parser.add_argument("--json", default=None, help="write every number here")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.block, args.repeats = 3, 0.005, 1
        args.train_samples, args.epochs, args.test_sources = 200, 1, 20
        args.seconds, args.session = 0.3, 20
    cases = args.only or ["step", "large", "generate", "serve"]

    torch.set_num_threads(args.threads)
    rnnkit.set_num_threads(args.threads)
    print(f"rnnkit {rnnkit.__version__} ({rnnkit.simd_isa()}), torch {torch.__version__}, numpy {np.__version__}; "
          f"{machine()}, {os.cpu_count()} CPUs, {args.threads} threads each (torch.set_num_threads, "
          f"rnnkit.set_num_threads)")
    commit, changed = source_state()
    print(f"measured at commit {commit}" + (f" with {changed} library file(s) changed from it" if changed else ""))
    results = {}
    with OtherLoad() as load:
        if "step" in cases:
            results["step"] = bench_step(args)
        if "large" in cases:
            results["large"] = bench_large_step(args)
        if "generate" in cases:
            results["generate"] = bench_generate(args)
        if "serve" in cases:
            results["serve"] = bench_serve(args)
    print(f"\nother load over the whole run: {load.cores:.2f} cores ({load.wall:.0f} s)")
    if load.cores > 0.1:
        print(f"WARNING: other processes kept {load.cores:.2f} cores busy on average: torch's threads and the "
              f"thread scaling suffer most from that: rerun on a quiet machine")
    goals = {label: g for case in results.values() for label, g in case["goals"].items()}
    met = sum(g["met"] for g in goals.values())
    print(f"goals met: {met}/{len(goals)}" + ("" if met == len(goals) else "; not met: " + "; ".join(
        label for label, g in goals.items() if not g["met"])))

    if args.json:
        with open(args.json, "w") as f:
            json.dump({"command": " ".join([os.path.basename(sys.executable)] + sys.argv),
                       "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": machine(), "cpus": os.cpu_count(),
                       "rnnkit": rnnkit.__version__, "isa": rnnkit.simd_isa(), "torch": torch.__version__,
                       "numpy": np.__version__, "commit": commit, "library_files_changed": changed, "args": vars(args), "other_load": load.cores, "results": results},
                      f, indent=1, default=lambda o: o.item() if hasattr(o, "item") else str(o))


if __name__ == "__main__":
    main()
