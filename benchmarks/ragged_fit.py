"""End-to-end training on ragged sequences (issue 12): rnnkit's fit against a plain torch loop.

    python benchmarks/ragged_fit.py                    # F=32 H=128 C=10 T=100 N=4096, batch 64, 3 epochs
    python benchmarks/ragged_fit.py --quick            # a small smoke test (seconds)
    python benchmarks/ragged_fit.py --T 200 --hidden 256 --samples 2048 --epochs 3 --threads 2 --json out.json

A ManyToOne GRU (F inputs, H hidden units, C classes) is fitted on N sequences whose lengths are drawn
uniformly from [T/4, T], a learnable synthetic task: the label is the sign pattern of the sums over
time of the first ceil(log2 C) features, read as a binary number, modulo C.  Everything is float32;
Adam with lr 1e-3, batch size 64, the gradients clipped to global norm 5 (fit's default clip=5.0;
torch: clip_grad_norm_), cross-entropy on the logits of the last real state, torch and rnnkit on the
same number of threads (torch.set_num_threads(n), rnnkit.set_num_threads(n); all cores by default),
every model starting from the same weights (rnnkit's, seed 0, copied into torch).  Methods:

- torch: pack_padded_sequence(enforce_sorted=False) + nn.GRU + nn.Linear on h_n[-1], a fresh shuffle
  each epoch, each batch cut from the zero-padded (N, T, F) tensor to its longest sequence;
- torch, bucketed: the same loop on rnnkit's batches of similar lengths (rnnkit._data.batch_order);
- rnnkit ragged: ``fit(X_list, y)``, the list of (T_i, F) arrays, bucketed by length (the default);
- rnnkit ragged, bucket=False: the same list, batches of a plain shuffle;
- rnnkit padded: ``fit(X_pad, y)``, the (N, T, F) array zero-padded to T without lengths — what a user
  did before lengths existed (every sequence runs all T steps, its padding included).

Each method trains --epochs epochs; the first is warm-up and the speed of a run is N / the median time
of the others (rnnkit: history["time"]; torch: the same span timed around its epoch loop).  The whole
comparison is repeated --repeats times (3), the methods in a rotated order each time, so that a drift
of the machine's speed hits them alike; ratios are taken within a repeat, and the table gives their
median with the spread (min-max) over repeats.  "other load" is how many cores other processes kept
busy during a run (from /proc/stat): on 2 cores a neighbour's process slows torch's threads far more
than rnnkit's (10x and more per epoch, seen here), so a load above 0.1 is flagged: rerun then.
NumPy's BLAS threads are left as a user meets them (fit limits BLAS to one thread while it trains).
"final loss" is the mean training loss of the last epoch (median over repeats): close values show that
the methods train the same model.  The padded model's is higher: its last state comes after the zero
padding, which the ragged models never see.

Before timing, a tiny case checks that rnnkit's ragged logits equal torch's packed GRU + Linear with
the same weights within 1e-4 (float32); the script stops if they do not.

Goals (issue 12): rnnkit ragged >= 2x torch, and rnnkit ragged >= 1.5x rnnkit padded.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time

import numpy as np
import rnnkit
import torch
from rnnkit._data import batch_order
from rnnkit.bench.timing import busy_seconds  # (CPU seconds of every process and of this one)
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

GOALS = [("rnnkit ragged / torch", "rnnkit ragged", "torch", 2.0),
         ("rnnkit ragged / rnnkit padded", "rnnkit ragged", "rnnkit padded", 1.5)]
METHODS = ["torch", "torch, bucketed", "rnnkit ragged", "rnnkit ragged, bucket=False", "rnnkit padded"]


def make_data(rng, n, steps, features, classes):
    """A ragged list of (T_i, F) float32 arrays, T_i uniform in [T/4, T], and labels from the sign
    pattern of the first ceil(log2 C) features' sums over time."""
    bits = max(1, math.ceil(math.log2(classes)))
    if bits > features:
        raise SystemExit(f"the task needs at least {bits} features for {classes} classes")
    lengths = rng.integers(max(1, steps // 4), steps + 1, n)
    xs = [rng.standard_normal((length, features), dtype=np.float32) for length in lengths]
    sums = np.stack([x[:, :bits].sum(axis=0) for x in xs])
    labels = ((sums > 0) * (1 << np.arange(bits))).sum(axis=1) % classes
    padded = np.zeros((n, steps, features), np.float32)
    for i, x in enumerate(xs):
        padded[i, :len(x)] = x
    return xs, padded, lengths.astype(np.int64), labels.astype(np.int64)


class TorchGRU(nn.Module):
    """The torch model: a GRU on the packed batch, a Linear head on the last real state h_n[-1]."""

    def __init__(self, features, hidden, classes):
        super().__init__()
        self.rnn = nn.GRU(features, hidden, batch_first=True)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x, lengths):
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        _, h_n = self.rnn(packed)
        return self.head(h_n[-1])


def torch_copy(model: rnnkit.ManyToOne) -> TorchGRU:
    """A TorchGRU with the rnnkit model's weights (rnnkit uses torch's names and layouts)."""
    rnn, head = model.layers["rnn"].params, model.layers["head"].params
    net = TorchGRU(model.input_size, model.hidden_size, model.output_size)
    with torch.no_grad():
        for name, param in net.rnn.named_parameters():
            param.copy_(torch.from_numpy(np.array(rnn[name])))
        net.head.weight.copy_(torch.from_numpy(np.array(head["weight"])))
        net.head.bias.copy_(torch.from_numpy(np.array(head["bias"])))
    return net


def check_logits():
    """rnnkit's ragged logits against torch's packed forward with the same weights, on a tiny case."""
    rng = np.random.default_rng(1)
    features, hidden, classes = 3, 5, 4
    lengths = [1, 7, 3, 7, 2, 5]
    xs = [rng.standard_normal((length, features), dtype=np.float32) for length in lengths]
    model = rnnkit.ManyToOne(features, hidden, classes, cell="gru", seed=3)
    batch = model._check_x(xs).take(np.arange(len(xs)))
    with model._inference():
        ours = np.asarray(model._forward(batch, None))
    padded = np.zeros((len(xs), max(lengths), features), np.float32)
    for i, x in enumerate(xs):
        padded[i, :len(x)] = x
    with torch.no_grad():
        theirs = torch_copy(model)(torch.from_numpy(padded), torch.tensor(lengths)).numpy()
    error = float(np.abs(ours - theirs).max())
    if ours.shape != theirs.shape or not error <= 1e-4:
        raise SystemExit(f"FAIL: rnnkit's ragged logits differ from torch's packed GRU by {error:.3g} "
                         f"(shapes {ours.shape}, {theirs.shape}); not timing a wrong model")
    return error


def train_torch(init, data, args, bucket):
    """The plain torch loop; returns per-epoch (seconds, mean loss)."""
    _, padded, lengths, labels = data
    net = torch_copy(init)
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    loss_fn = nn.CrossEntropyLoss()
    x_all, len_all, y_all = torch.from_numpy(padded), torch.from_numpy(lengths), torch.from_numpy(labels)
    rng = np.random.default_rng(0)
    times, losses = [], []
    for _ in range(args.epochs):
        started = time.perf_counter()
        if bucket:
            batches = batch_order(rng, len(labels), args.batch_size, lengths)
        else:
            order = rng.permutation(len(labels))
            batches = [order[start:start + args.batch_size] for start in range(0, len(order), args.batch_size)]
        total = 0.0
        for idx in batches:
            idx = torch.from_numpy(idx)
            lens = len_all[idx]
            xb = x_all[idx, :int(lens.max())]
            loss = loss_fn(net(xb, lens), y_all[idx])
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            opt.step()
            total += loss.item() * len(idx)
        times.append(time.perf_counter() - started)
        losses.append(total / len(labels))
    return times, losses


def train_rnnkit(data, args, padded, bucket=True):
    xs, pad, _, labels = data
    model = rnnkit.ManyToOne(xs[0].shape[1], args.hidden, args.classes, cell="gru", seed=0)
    history = model.fit(pad if padded else xs, labels, epochs=args.epochs, batch_size=args.batch_size,
                        lr=args.lr, bucket=bucket, verbose=0).history_
    return history["time"], history["loss"]


def run_method(name, init, data, args):
    if name == "torch":
        return train_torch(init, data, args, bucket=False)
    if name == "torch, bucketed":
        return train_torch(init, data, args, bucket=True)
    if name == "rnnkit ragged":
        return train_rnnkit(data, args, padded=False)
    if name == "rnnkit ragged, bucket=False":
        return train_rnnkit(data, args, padded=False, bucket=False)
    return train_rnnkit(data, args, padded=True)


def machine():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def spread(values):
    return f"{min(values):.2f}-{max(values):.2f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--T", type=int, default=100, help="longest sequence; lengths uniform in [T/4, T]")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--samples", type=int, default=4096)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--epochs", type=int, default=3, help="the first is warm-up (at least 2)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--quick", action="store_true", help="a small case for a smoke test")
    parser.add_argument("--json", default=None, help="write every number here")
    args = parser.parse_args()
    if args.quick:
        args.T, args.hidden, args.samples, args.epochs = 40, 32, 512, 2
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (the first is warm-up)")

    torch.set_num_threads(args.threads)
    rnnkit.set_num_threads(args.threads)
    error = check_logits()
    print(f"rnnkit {rnnkit.__version__} ({rnnkit.simd_isa()}), torch {torch.__version__}; {machine()}, "
          f"{os.cpu_count()} CPUs, {args.threads} threads each")
    print(f"check: rnnkit ragged logits = torch packed GRU within {error:.1e}")
    print(f"GRU F={args.features} H={args.hidden} C={args.classes}, N={args.samples}, lengths uniform in "
          f"[{max(1, args.T // 4)}, {args.T}], batch {args.batch_size}, Adam lr={args.lr:g}, clip 5, float32; "
          f"{args.epochs} epochs (first = warm-up) x {args.repeats} repeats", flush=True)

    data = make_data(np.random.default_rng(0), args.samples, args.T, args.features, args.classes)
    init = rnnkit.ManyToOne(args.features, args.hidden, args.classes, cell="gru", seed=0)
    runs = {name: [] for name in METHODS}
    for repeat in range(args.repeats):
        order = METHODS[repeat % len(METHODS):] + METHODS[:repeat % len(METHODS)]
        for name in order:
            (total, mine), started = busy_seconds(), time.perf_counter()
            times, losses = run_method(name, init, data, args)
            (total2, mine2), wall = busy_seconds(), time.perf_counter() - started
            others = max(0.0, (total2 - total) - (mine2 - mine)) / wall  # cores the other processes kept busy
            rate = args.samples / statistics.median(times[1:])
            runs[name].append({"epoch_s": times, "loss": losses, "samples_per_s": rate, "other_load": others,
                               "wall_s": wall})
            print(f"  repeat {repeat + 1}: {name:28s} {rate:8.0f} samples/s  epochs "
                  + " ".join(f"{t:.2f}s" for t in times) + f"  loss {losses[-1]:.4f}  other load {others:.2f}",
                  flush=True)

    every = [run for rows in runs.values() for run in rows]
    # (/proc/stat counts in 10 ms ticks: a run under a second says little alone)
    load = max([sum(r["other_load"] * r["wall_s"] for r in every) / sum(r["wall_s"] for r in every)]
               + [r["other_load"] for r in every if r["wall_s"] >= 1])
    if load > 0.1:
        print(f"WARNING: other processes kept up to {load:.2f} cores busy during a run; torch's threads suffer "
              f"most from that: rerun on a quiet machine")
    ratio = {name: [runs[name][r]["samples_per_s"] / runs["torch"][r]["samples_per_s"] for r in range(args.repeats)]
             for name in METHODS}
    print()
    print("| method | samples/s | × torch (spread) | final loss |")
    print("|---|---|---|---|")
    summary = {}
    for name in METHODS:
        rate = statistics.median(run["samples_per_s"] for run in runs[name])
        loss = statistics.median(run["loss"][-1] for run in runs[name])
        summary[name] = {"samples_per_s": rate, "ratio_to_torch": statistics.median(ratio[name]),
                         "ratio_spread": [min(ratio[name]), max(ratio[name])], "final_loss": loss}
        print(f"| {name} | {rate:.0f} | {statistics.median(ratio[name]):.2f}× ({spread(ratio[name])}) | {loss:.4f} |")
    print()
    goals = {}
    for label, top, bottom, target in GOALS:
        values = [runs[top][r]["samples_per_s"] / runs[bottom][r]["samples_per_s"] for r in range(args.repeats)]
        value = statistics.median(values)
        met = value >= target
        goals[label] = {"ratio": value, "spread": [min(values), max(values)], "goal": target, "met": met}
        print(f"goal {label} >= {target}x: {value:.2f}x (spread {spread(values)}) -> {'MET' if met else 'not met'}")

    if args.json:
        with open(args.json, "w") as f:
            json.dump({"command": " ".join([os.path.basename(sys.executable)] + sys.argv),
                       "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": machine(), "cpus": os.cpu_count(),
                       "rnnkit": rnnkit.__version__, "isa": rnnkit.simd_isa(), "torch": torch.__version__,
                       "args": vars(args), "check_max_abs_error": error, "max_other_load": load, "runs": runs, "summary": summary,
                       "goals": goals}, f, indent=1)


if __name__ == "__main__":
    main()
