"""The PyTorch bridge (issue 15): one torch script with torch.nn.X, then with rnnkit.torch.X.

    python benchmarks/torch_bridge.py                 # the full comparison (a few minutes on 2 cores)
    python benchmarks/torch_bridge.py --quick         # a smoke test (seconds)
    python benchmarks/torch_bridge.py --repeats 9 --threads 2 --json out.json

Cases (float32; torch.set_num_threads equal to rnnkit's thread count; the same initial weights):
- train: a classifier on the last state — X(I=32, H=128, batch_first=True) + Linear(H, 10) on h_n[-1],
  cross-entropy, Adam (lr 1e-3), clip_grad_norm_(5) — over batches of 64 sequences of T=50 steps, for
  GRU, tanh RNN and LSTM.  samples/s over a block of steps.
- train packed: the same loop on variable-length batches (lengths uniform in [T/4, T]), each batch
  packed with pack_padded_sequence(enforce_sorted=False) inside the timed loop (as a script does).
- infer: ``with torch.no_grad(): module(x)`` at batch 1, T=50 (the module alone).
- the training loops again with ``torch.set_num_threads(1)`` around the rnnkit side's blocks only
  (--rnnkit-torch-threads; rnnkit keeps its threads): torch's idle OpenMP workers spin for milliseconds
  after each parallel torch op; with one torch thread there are none.  And again with the kernels'
  helpers on rnnkit's own pool (--own-pool; ``rnnkit.torch.use_torch_threads(False)``), where those
  spinning workers take the cores the helpers need, instead of being the helpers (the default).
  Diagnostics, not goals: the goals compare equal thread counts and the default settings.
- overhead: the bridge's forward+backward (``y.backward(dy)``) minus the bare kernels
  (rnnkit.functional.run_plans / run_backward on NumPy arrays, the plans packed per call as the bridge
  does) on the same sizes, at the training size and at a tiny one (T=5, B=2, I=H=8); and the bridge's
  no_grad forward minus the bare inference kernels at batch 1.

Timing: every side is warmed up, then the sides' repetitions alternate (the order rotated each round),
so a drift of the machine's speed hits them alike; each figure is the median over --repeats rounds, and
each ratio is taken within a round (median given).  "other load" is how many cores other processes
kept busy during the run (from /proc/stat): on a shared 2-core machine torch's threads suffer from a
neighbour far more than rnnkit's, so a load above 0.1 is flagged.

Before timing, each training case checks that one step gives torch's loss and gradients within 1e-4
(float32); the script stops if not.

Goals (issue 15): train >= 1.8x torch for GRU and tanh, >= 1.2x for LSTM; train packed >= 3x;
infer >= 3x torch for each cell.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import time

import numpy as np
import rnnkit
import rnnkit.torch as rt
import torch
from rnnkit import _core
from rnnkit.bench import timing as bench_timing
from rnnkit.functional import SavedPass, run_backward, run_plans
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

CELLS = {"gru": (nn.GRU, rt.GRU, {}), "tanh": (nn.RNN, rt.RNN, {"nonlinearity": "tanh"}),
         "lstm": (nn.LSTM, rt.LSTM, {})}
ALSO = "rnnkit, torch threads"  # an extra side: the same rnnkit loop, torch.set_num_threads(N) around it
POOL = "rnnkit, own pool"  # another: the same rnnkit loop with the kernels' helpers on rnnkit's own pool
GOALS = {("train", "gru"): 1.8, ("train", "tanh"): 1.8, ("train", "lstm"): 1.2,
         ("train packed", "gru"): 3.0, ("train packed", "tanh"): 3.0, ("train packed", "lstm"): 3.0,
         ("infer", "gru"): 3.0, ("infer", "tanh"): 3.0, ("infer", "lstm"): 3.0}


class Classifier(nn.Module):
    def __init__(self, rnn, classes):
        super().__init__()
        self.rnn, self.head = rnn, nn.Linear(rnn.hidden_size, classes)

    def forward(self, x):
        _, h_n = self.rnn(x)
        h_n = h_n[0] if isinstance(h_n, tuple) else h_n
        return self.head(h_n[-1])


def make_models(cell, args):
    """(torch's classifier, rnnkit's) with the same initial weights."""
    torch_cls, ours_cls, kwargs = CELLS[cell]
    torch.manual_seed(0)
    theirs = Classifier(torch_cls(args.inputs, args.hidden, batch_first=True, **kwargs), args.classes)
    ours = Classifier(ours_cls(args.inputs, args.hidden, batch_first=True, **kwargs), args.classes)
    ours.load_state_dict(theirs.state_dict())
    return theirs, ours


def make_batches(args, packed, count=8):
    """count (x (B, T, I), labels (B,), lengths (B,) or None) batches, fixed for every side."""
    generator = torch.Generator().manual_seed(1)
    batches = []
    for _ in range(count):
        x = torch.randn(args.batch, args.steps, args.inputs, generator=generator)
        labels = torch.randint(0, args.classes, (args.batch,), generator=generator)
        lengths = torch.randint(max(1, args.steps // 4), args.steps + 1, (args.batch,), generator=generator)
        batches.append((x, labels, lengths if packed else None))
    return batches


def train_steps(model, optimizer, batches, steps):
    """``steps`` training steps of a plain torch loop over the batches (packed when they have lengths)."""
    for k in range(steps):
        x, labels, lengths = batches[k % len(batches)]
        if lengths is not None:
            x = pack_padded_sequence(x, lengths, enforce_sorted=False, batch_first=True)
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x), labels)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
    return loss.item()


def check_training(theirs, ours, batches):
    """One step's loss and gradients, rnnkit's against torch's (float32: within 1e-4 relative)."""
    worst = 0.0
    for model in (theirs, ours):
        model.zero_grad()
        x, labels, lengths = batches[0]
        if lengths is not None:
            x = pack_padded_sequence(x, lengths, enforce_sorted=False, batch_first=True)
        nn.functional.cross_entropy(model(x), labels).backward()
    for (name, p), q in zip(ours.named_parameters(), theirs.parameters()):
        error = ((p.grad - q.grad).abs().max() / q.grad.abs().max().clamp_min(1e-30)).item()
        worst = max(worst, error)
        if not error <= 1e-4:
            raise SystemExit(f"rnnkit's gradient of {name} differs from torch's by {error:.2e} (relative): stopping")
    return worst


def interleaved(sides: dict, repeats: int) -> dict:
    """{side: [seconds per round]}: each side's callable, warmed up, then run once per round in a
    rotated order."""
    for run in sides.values():
        run()
    times = {name: [] for name in sides}
    names = list(sides)
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            start = time.perf_counter()
            sides[name]()
            times[name].append(time.perf_counter() - start)
    return times


def bare_kernels(cell, steps, batch, inputs, hidden, training):
    """The bare kernels' one-layer pass on NumPy arrays (plans packed per call, as the bridge does):
    forward, and with ``training`` the backward of a loss on y."""
    rng = np.random.default_rng(0)
    gates = {"gru": 3, "lstm": 4, "tanh": 1}[cell]
    bound = 1 / np.sqrt(hidden)
    weights = [rng.uniform(-bound, bound, shape).astype(np.float32)
               for shape in ((gates * hidden, inputs), (gates * hidden, hidden), (gates * hidden,), (gates * hidden,))]
    x = rng.standard_normal((steps, batch, inputs), dtype=np.float32)
    dy = np.ones((steps, batch, hidden), np.float32)
    dx = np.empty_like(x)

    def run():
        plan = _core.Plan._borrowing(cell, *weights)
        _, _, saved = run_plans([plan], x, [None], None, training)
        if training:
            run_backward([SavedPass(saved[0], weights[:2])], [dy], [None], dx)
    return run


def bridge_pass(cell, steps, batch, inputs, hidden, training):
    """The bridge's one-layer pass on the same sizes: forward (no_grad unless training) and backward."""
    _, ours_cls, kwargs = CELLS[cell]
    module = ours_cls(inputs, hidden, **kwargs)
    x = torch.randn(steps, batch, inputs, requires_grad=training)
    dy = torch.ones(steps, batch, hidden)

    def run():
        if training:
            # (grads set to None, as zero_grad does: accumulating them would be torch's work, not the bridge's)
            module.zero_grad()
            x.grad = None
            y, _ = module(x)
            y.backward(dy)  # (dy of ones, as the bare side's; made once: no torch op runs in between)
        else:
            with torch.no_grad():
                module(x)
    return run


def with_torch_threads(threads, run):
    """run with torch.set_num_threads(threads), restored afterwards."""
    def wrapped():
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            run()
        finally:
            torch.set_num_threads(previous)
    return wrapped


def with_own_pool(run):
    """run with the kernels' helpers on rnnkit's own pool (as before rnnkit.torch shared torch's threads)."""
    def wrapped():
        rt.use_torch_threads(False)
        try:
            run()
        finally:
            rt.use_torch_threads(True)
    return wrapped


def blocks(run, calls):
    def block():
        for _ in range(calls):
            run()
    return block


def machine():
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{model}, {os.cpu_count()} cores, SIMD {rnnkit.simd_isa()}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--inputs", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--train-steps", type=int, default=8, help="training steps per timed block")
    parser.add_argument("--infer-calls", type=int, default=200, help="inference calls per timed block")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None, help="for both sides (default: rnnkit's)")
    parser.add_argument("--cells", default="gru,tanh,lstm")
    parser.add_argument("--rnnkit-torch-threads", type=int, default=1,
                        help="also time the training loops with torch.set_num_threads(N) on the rnnkit side only "
                             "(0: not)")
    parser.add_argument("--own-pool", action=argparse.BooleanOptionalAction, default=True,
                        help="also time the training loops with the kernels' helpers on rnnkit's own pool")
    parser.add_argument("--quick", action="store_true", help="small sizes and few repeats: a smoke test")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.batch, args.hidden, args.repeats = 10, 8, 16, 2
        args.train_steps, args.infer_calls = 2, 10
    if args.threads:
        rnnkit.set_num_threads(args.threads)
    threads = rnnkit.get_num_threads()
    torch.set_num_threads(threads)
    cells = args.cells.split(",")
    print(f"{machine()}; torch {torch.__version__}, rnnkit {rnnkit.__version__}, {threads} threads each, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}")
    print(f"T={args.steps} B={args.batch} I={args.inputs} H={args.hidden}, float32, {args.repeats} interleaved "
          "rounds, medians\n")
    busy0 = bench_timing.busy_seconds()
    wall0 = time.perf_counter()
    rows, results, extra_rows = [], {}, []

    for case in ("train", "train packed"):
        batches = make_batches(args, packed=case == "train packed")
        for cell in cells:
            theirs, ours = make_models(cell, args)
            error = check_training(theirs, ours, batches)
            optimizers = {"torch": torch.optim.Adam(theirs.parameters(), lr=1e-3),
                          "rnnkit": torch.optim.Adam(ours.parameters(), lr=1e-3)}
            models = {"torch": theirs, "rnnkit": ours}
            extra_sides = ([ALSO] if args.rnnkit_torch_threads else []) + ([POOL] if args.own_pool else [])
            for name in extra_sides:
                # (its own copy and optimizer: the same work, not the same model's next steps)
                models[name] = copy.deepcopy(ours)
                optimizers[name] = torch.optim.Adam(models[name].parameters(), lr=1e-3)
            sides = {name: (lambda model=models[name], optimizer=optimizers[name], batches=batches:
                            train_steps(model, optimizer, batches, args.train_steps))
                     for name in models}
            if args.rnnkit_torch_threads:
                sides[ALSO] = with_torch_threads(args.rnnkit_torch_threads, sides[ALSO])
            if args.own_pool:
                sides[POOL] = with_own_pool(sides[POOL])
            times = interleaved(sides, args.repeats)
            rate = {name: args.train_steps * args.batch / statistics.median(t) for name, t in times.items()}
            ratios = [a / b for a, b in zip(times["torch"], times["rnnkit"])]
            rows.append((case, cell, f"{rate['torch']:,.0f} samples/s", f"{rate['rnnkit']:,.0f} samples/s",
                         ratios, GOALS[(case, cell)]))
            results[f"{case} {cell}"] = {"samples_per_s": rate, "ratios": ratios, "check_error": error}
            if extra_sides:
                also = {name: [a / b for a, b in zip(times["torch"], times[name])] for name in extra_sides}
                extra_rows.append((case, cell, rate, also))
                for name in extra_sides:
                    results[f"{case} {cell}"]["ratios_" + name] = also[name]
            print(f"  {case:13s} {cell:5s} torch {rate['torch']:8,.0f}  rnnkit {rate['rnnkit']:8,.0f} samples/s  "
                  f"x{statistics.median(ratios):.2f}  (check {error:.1e})", flush=True)

    x1 = torch.randn(1, args.steps, args.inputs)
    for cell in cells:
        theirs, ours = make_models(cell, args)
        modules = {"torch": theirs.rnn, "rnnkit": ours.rnn}
        with torch.no_grad():
            torch.testing.assert_close(modules["rnnkit"](x1)[0], modules["torch"](x1)[0], rtol=1e-4, atol=1e-5)

        def infer(module):
            with torch.no_grad():
                for _ in range(args.infer_calls):
                    module(x1)
        times = interleaved({name: (lambda module=module: infer(module)) for name, module in modules.items()},
                            args.repeats)
        per_call = {name: statistics.median(t) / args.infer_calls for name, t in times.items()}
        ratios = [a / b for a, b in zip(times["torch"], times["rnnkit"])]
        rows.append(("infer", cell, f"{per_call['torch'] * 1e6:,.0f} us", f"{per_call['rnnkit'] * 1e6:,.0f} us",
                     ratios, GOALS[("infer", cell)]))
        results[f"infer {cell}"] = {"seconds_per_call": per_call, "ratios": ratios}
        print(f"  infer B=1     {cell:5s} torch {per_call['torch'] * 1e6:8,.0f}  rnnkit "
              f"{per_call['rnnkit'] * 1e6:8,.0f} us  x{statistics.median(ratios):.2f}", flush=True)

    overheads = []
    sizes = {"training size": (args.steps, args.batch, args.inputs, args.hidden, True),
             "tiny (T=5 B=2 I=H=8)": (5, 2, 8, 8, True),
             "batch 1, no_grad": (args.steps, 1, args.inputs, args.hidden, False)}
    for label, (steps, batch, inputs, hidden, training) in sizes.items():
        calls = max(2, int(args.infer_calls * (0.1 if label == "training size" else 1)))
        for cell in cells:
            sides = {"bare": blocks(bare_kernels(cell, steps, batch, inputs, hidden, training), calls),
                     "bridge": blocks(bridge_pass(cell, steps, batch, inputs, hidden, training), calls)}
            times = interleaved(sides, args.repeats)
            per_call = {name: statistics.median(t) / calls for name, t in times.items()}
            extra = [(b - a) / calls for a, b in zip(times["bare"], times["bridge"])]
            overheads.append((label, cell, per_call["bare"], per_call["bridge"], statistics.median(extra)))
            results[f"overhead {label} {cell}"] = {"bare_s": per_call["bare"], "bridge_s": per_call["bridge"],
                                                   "extra_s": extra}
            print(f"  overhead {label:22s} {cell:5s} bare {per_call['bare'] * 1e6:8,.0f}  bridge "
                  f"{per_call['bridge'] * 1e6:8,.0f} us  (+{statistics.median(extra) * 1e6:,.0f} us)", flush=True)

    other_load = bench_timing.other_load(busy0, bench_timing.busy_seconds(), time.perf_counter() - wall0)

    print("\n| case | cell | torch.nn | rnnkit.torch | ratio: median (min-max) | goal | |")
    print("|---|---|---|---|---|---|---|")
    for case, cell, theirs_text, ours_text, ratios, goal in rows:
        ratio = statistics.median(ratios)
        print(f"| {case} | {cell} | {theirs_text} | {ours_text} | {ratio:.2f}x ({min(ratios):.2f}-{max(ratios):.2f}) "
              f"| >= {goal:g}x | {'MET' if ratio >= goal else 'MISS'} |")
    titles = {ALSO: f"rnnkit.torch, torch.set_num_threads({args.rnnkit_torch_threads}) on its side",
              POOL: "rnnkit.torch, helpers on rnnkit's own pool (use_torch_threads(False))"}
    for name in titles:
        lines = [(case, cell, rate, also[name]) for case, cell, rate, also in extra_rows if name in also]
        if not lines:
            continue
        print(f"\n| case | cell | torch.nn | {titles[name]} | ratio: median (min-max) | the default's |")
        print("|---|---|---|---|---|---|")
        for case, cell, rate, ratios in lines:
            default = statistics.median(results[f"{case} {cell}"]["ratios"])
            print(f"| {case} | {cell} | {rate['torch']:,.0f} samples/s | {rate[name]:,.0f} samples/s | "
                  f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f}) | {default:.2f}x |")
    print("\n| bridge overhead per call | cell | bare kernels | bridge | difference |")
    print("|---|---|---|---|---|")
    for label, cell, bare, bridge, extra in overheads:
        print(f"| {label} | {cell} | {bare * 1e6:,.0f} us | {bridge * 1e6:,.0f} us | {extra * 1e6:+,.0f} us |")
    if other_load is not None:
        print(f"\nother load: {other_load:.2f} cores busy with other processes on average during the run")
        if other_load > 0.1:
            print("WARNING: other processes were busy during the run: torch's threads suffer more than rnnkit's; "
                  "rerun on a quiet machine to confirm", file=sys.stderr)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine(), "torch": torch.__version__, "threads": threads, "args": vars(args),
                       "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
                       "other_load": other_load, "results": results,
                       "goals": [{"case": c, "cell": k, "ratio": statistics.median(r), "goal": g,
                                  "met": statistics.median(r) >= g} for c, k, _, _, r, g in rows]}, f, indent=1)


if __name__ == "__main__":
    main()
