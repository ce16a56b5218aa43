"""Training throughput of one process with N threads against N MPI ranks of one thread each.

    python benchmarks/distributed_throughput.py              # the example's model, 5 rounds
    python benchmarks/distributed_throughput.py --cell lstm --hidden 256 --samples 4000

Trains examples/distributed_train.py's model (a ManyToOne, GRU, 64 hidden units, 40 steps, batch 64,
float32) on random data in three configurations, alternating them over --rounds rounds:

- 1 rank x N threads: plain ``fit`` (no MPI), the kernels on N threads;
- 1 rank x 1 thread: the same on one thread (what each rank of the next row gets);
- N ranks x 1 thread: ``mpiexec -n N``, ``fit(..., comm=MPI.COMM_WORLD)``.

It reports samples per second (each run: the median of its epochs after the first; then the median
and the best over rounds — on a shared machine the best is the closest to a quiet one), the time per
step in the gradient all-reduce as fit measures it (which includes waiting for the slower rank), the
same all-reduce timed alone (the ranks first meet at a barrier: the pure cost of moving the bytes),
and the all-reduce's share of a step.  Then a paper estimate for 64 ranks on a 10 Gbit/s network.
``--json PATH`` keeps every number.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import rnnkit

HERE = Path(__file__).resolve()


def workload(args):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.samples, args.steps, 1)).astype(np.float32)
    y = rng.integers(0, 8, args.samples)
    model = rnnkit.ManyToOne(1, args.hidden, 8, cell=args.cell, seed=0)
    return model, x, y


def run(args, comm):
    """One training run: per-epoch times (and all-reduce times under MPI), gradient bytes, step count."""
    model, x, y = workload(args)
    history = model.fit(x, y, epochs=args.epochs, batch_size=args.batch_size, verbose=0, comm=comm).history_
    steps = -(-args.samples // args.batch_size)
    gradient_bytes = sum(p.nbytes for p in model.params.values())
    result = {"epoch_seconds": history["time"], "steps_per_epoch": steps, "gradient_bytes": gradient_bytes,
              "threads": rnnkit.get_num_threads()}
    if comm is not None:
        from mpi4py import MPI

        result["comm_seconds"] = history["comm_time"]
        buffer = np.zeros(gradient_bytes // 4 + 1, np.float32)  # fit's buffer: the gradients and the loss
        repeats = 300
        comm.Barrier()
        started = time.perf_counter()
        for _ in range(repeats):
            comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)
        result["allreduce_alone_seconds"] = (time.perf_counter() - started) / repeats
        del result["threads"]  # fit has restored the count it set: threads_per_rank is what it used
    return result


def worker(args):
    """Under mpiexec: train with comm=COMM_WORLD; rank 0 prints the result as JSON."""
    import rnnkit.distributed
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    owned = rnnkit.distributed.threads_per_rank(comm)
    result = run(args, comm)
    if comm.rank == 0:
        result["threads_per_rank"] = owned
        result["ranks"] = comm.size
        print("RESULT " + json.dumps(result))


def launch(args, command):
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def options(args):
    return ["--samples", str(args.samples), "--epochs", str(args.epochs), "--hidden", str(args.hidden),
            "--cell", args.cell, "--steps", str(args.steps), "--batch-size", str(args.batch_size)]


def single(args, threads):
    """A plain process (no MPI) on `threads` kernel threads."""
    env_command = [sys.executable, str(HERE), "--single", str(threads), *options(args)]
    return launch(args, env_command)


def measured_step(args, batch_size):
    """Seconds per training step on one thread at this batch size (fit's loop, optimizer included)."""
    previous = rnnkit.get_num_threads()
    rnnkit.set_num_threads(1)
    try:
        model, x, y = workload(argparse.Namespace(**{**vars(args), "samples": batch_size * 40}))
        history = model.fit(x, y, epochs=3, batch_size=batch_size, verbose=0).history_
    finally:
        rnnkit.set_num_threads(previous)
    return statistics.median(history["time"][1:]) / 40


def samples_per_second(args, result):
    later = result["epoch_seconds"][1:] or result["epoch_seconds"]
    return args.samples / statistics.median(later)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ranks", type=int, default=2, help="N: ranks of one thread vs one rank of N threads")
    parser.add_argument("--samples", type=int, default=20000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--cell", default="gru")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--json", default=None)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--single", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        return worker(args)
    if args.single is not None:
        rnnkit.set_num_threads(args.single)
        print("RESULT " + json.dumps(run(args, None)))
        return None

    mpiexec = Path(sys.executable).parent / "mpiexec"
    mpiexec = str(mpiexec) if mpiexec.exists() else "mpiexec"
    n = args.ranks
    configs = {f"1 rank x {n} threads": lambda: single(args, n),
               "1 rank x 1 thread": lambda: single(args, 1),
               f"{n} ranks x 1 thread": lambda: launch(args, [mpiexec, "-n", str(n), sys.executable, str(HERE),
                                                               "--worker", *options(args)])}
    runs = {name: [] for name in configs}
    load = [os.getloadavg()[0]]
    for _ in range(args.rounds):
        for name, call in configs.items():
            runs[name].append(call())
            load.append(os.getloadavg()[0])

    print(f"ManyToOne {args.cell} H={args.hidden}, T={args.steps}, batch {args.batch_size}, float32, "
          f"{args.samples} samples x {args.epochs} epochs, {args.rounds} rounds; rnnkit {rnnkit.__version__}, "
          f"{rnnkit.simd_isa()}; {os.cpu_count()} CPUs; load average {min(load):.2f}-{max(load):.2f} during the runs")
    print()
    print("| configuration | samples/s (median) | best round | every round | step ms (median) | "
          "all-reduce ms/step (in fit) | all-reduce alone ms | all-reduce share of a step |")
    print("|---|---|---|---|---|---|---|---|")
    summary = {}
    for name, results in runs.items():
        rates = [samples_per_second(args, r) for r in results]
        rate = statistics.median(rates)
        step_ms = 1e3 * args.batch_size / rate
        row = f"| {name} | {rate:,.0f} | {max(rates):,.0f} | {', '.join(f'{r:,.0f}' for r in rates)} | {step_ms:.2f} |"
        entry = {"samples_per_second": rates, "step_ms": step_ms}
        if "comm_seconds" in results[0]:
            in_fit = [1e3 * statistics.median(r["comm_seconds"][1:] or r["comm_seconds"]) / r["steps_per_epoch"]
                      for r in results]
            per_step = statistics.median(in_fit)
            best = in_fit[rates.index(max(rates))]
            best_step_ms = 1e3 * args.batch_size / max(rates)
            alone = statistics.median(1e3 * r["allreduce_alone_seconds"] for r in results)
            row += (f" {per_step:.3f} (best round: {best:.3f}) | {alone:.3f} | {100 * per_step / step_ms:.1f}% "
                    f"(best round: {100 * best / best_step_ms:.1f}%; alone: {100 * alone / step_ms:.2f}%) |")
            entry.update(allreduce_ms_per_step=in_fit, allreduce_alone_ms=alone)
        else:
            row += " — | — | — |"
        print(row)
        summary[name] = entry

    # Paper estimate: 64 ranks, 10 Gbit/s.  MPICH all-reduces a message this small by recursive
    # doubling (log2 p exchanges of the whole buffer); a large one by reduce-scatter + all-gather
    # (2 (p-1)/p of the buffer through each link).  Latency: ~20 us per exchange over TCP.  Compute:
    # one rank's measured step (one thread, fit's loop, optimizer included) at its share of the batch.
    gradient_bytes = runs[f"{n} ranks x 1 thread"][0]["gradient_bytes"] + 4
    link, latency, p = 10e9 / 8, 20e-6, 64
    doubling = np.log2(p) * (latency + gradient_bytes / link)
    ring = 2 * (p - 1) / p * gradient_bytes / link + 2 * np.log2(p) * latency
    allreduce = min(doubling, ring)
    print()
    print(f"64 ranks on 10 Gbit/s: {gradient_bytes:,} gradient bytes per step; all-reduce ~{1e3 * allreduce:.2f} ms "
          f"(recursive doubling {1e3 * doubling:.2f} ms, reduce-scatter + all-gather {1e3 * ring:.2f} ms, "
          f"{1e6 * latency:.0f} us latency per exchange)")
    print()
    print("| samples per rank | global batch | one rank's step (measured) | step with all-reduce | all-reduce share "
          "| samples/s, 64 ranks | vs one rank at batch 64 |")
    print("|---|---|---|---|---|---|---|")
    estimate = []
    one_rank = statistics.median(samples_per_second(args, r) for r in runs["1 rank x 1 thread"])
    for per_rank in (8, 64, 256):
        compute = measured_step(args, per_rank)
        step = compute + allreduce
        rate = p * per_rank / step
        estimate.append({"per_rank": per_rank, "compute_s": compute, "allreduce_s": allreduce, "samples_per_s": rate})
        print(f"| {per_rank} | {p * per_rank} | {1e3 * compute:.2f} ms | {1e3 * step:.2f} ms | "
              f"{100 * allreduce / step:.0f}% | {rate:,.0f} | {rate / one_rank:.1f}x |")
    summary["estimate_64_ranks"] = estimate
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "runs": runs, "summary": summary, "load": load},
                                              indent=1))
    return None


if __name__ == "__main__":
    main()
