"""Data-parallel training over MPI: a ManyToOne GRU tells 8 kinds of noisy waveform apart.

    python examples/distributed_train.py                  # one process (no MPI needed)
    mpiexec -n 2 python examples/distributed_train.py     # two ranks, each on its share of the cores
    srun python examples/distributed_train.py             # under Slurm: as many ranks as tasks

Every rank generates the same data set from the same seed (a real job would have every rank read
the same file); ``fit(..., comm=...)`` gives each rank its share of every batch and all-reduces the
gradients, so the model trains to the single-process losses.  Only rank 0 prints and saves.
Options: --samples (default 100000), --epochs (4), --save PATH.

Measured on a 2-core machine (float32, so the two runs differ by rounding): one process, test
accuracy 0.9354; ``mpiexec -n 2``, 0.9352 (throughput: BENCHMARKS.md, "Distributed training").
"""

import argparse
import time

import numpy as np
import rnnkit
import rnnkit.distributed  # imports no MPI by itself
from rnnkit import ManyToOne

CLASSES, STEPS = 8, 40


def make_waves(n, seed):
    """(X (n, STEPS, 1) float32, labels (n,)): 2, 2.5, 3 or 3.5 periods per sequence of a sine (even
    labels) or a square wave (odd labels), with a random phase, a random amplitude and Gaussian noise
    of 0.6 times the amplitude."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, CLASSES, n)
    periods = 2 + 0.5 * (labels // 2)
    t = np.arange(STEPS) / STEPS
    phase = rng.uniform(0, 2 * np.pi, (n, 1))
    wave = np.sin(2 * np.pi * periods[:, None] * t + phase)
    wave = np.where(labels[:, None] % 2 == 1, np.sign(wave), wave)
    amplitude = rng.uniform(0.5, 2.0, (n, 1))
    x = amplitude * wave + 0.6 * amplitude * rng.standard_normal((n, STEPS))
    return x[..., None].astype(np.float32), labels


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=100000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--save", default=None, help="write the trained model here (rank 0)")
    args = parser.parse_args()

    try:
        from mpi4py import MPI
    except ImportError:
        comm, rank, size = None, 0, 1
    else:
        comm, rank, size = MPI.COMM_WORLD, MPI.COMM_WORLD.rank, MPI.COMM_WORLD.size
        if size == 1:
            comm = None  # plain single-process training: the baseline

    x_train, y_train = make_waves(args.samples, seed=1)
    x_test, y_test = make_waves(5000, seed=2)
    model = ManyToOne(1, 64, CLASSES, cell="gru", seed=0)
    # (collective: every rank calls it)
    threads = rnnkit.distributed.threads_per_rank(comm) if comm is not None else rnnkit.get_num_threads()
    if rank == 0:
        print(f"{size} rank(s) x {threads} thread(s); {args.samples} training sequences of {STEPS} steps")
    started = time.perf_counter()
    history = model.fit(x_train, y_train, epochs=args.epochs, batch_size=64, lr=3e-3,
                        validation_data=(x_test, y_test), verbose=2 if rank == 0 else 0, comm=comm).history_
    elapsed = time.perf_counter() - started
    if rank == 0:
        train_time = sum(history["time"])
        print(f"test accuracy {history['val_score'][-1]:.4f} after {args.epochs} epochs; "
              f"{args.epochs * args.samples / train_time:.0f} samples/s in training ({elapsed:.1f}s with validation)")
        if "comm_time" in history:
            print(f"gradient all-reduce: {sum(history['comm_time']):.2f}s of {train_time:.1f}s "
                  f"({100 * sum(history['comm_time']) / train_time:.1f}%)")
        if args.save:
            model.save(args.save)
            print(f"saved {args.save}")


if __name__ == "__main__":
    main()
