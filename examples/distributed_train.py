"""Data-parallel training over MPI: a ManyToOne GRU tells 8 kinds of noisy waveform apart.

    python examples/distributed_train.py                  # one process (no MPI needed)
    mpiexec -n 2 python examples/distributed_train.py     # two ranks, each on its share of the cores
    srun python examples/distributed_train.py             # under Slurm: as many ranks as tasks

Every rank generates the same data set from the same seed (a real job would have every rank read
the same file); ``fit(..., comm=...)`` gives each rank its share of every batch and all-reduces the
gradients, so the model trains to the single-process losses — to rounding: the shares' gradients are
summed in another order than one process sums the batch.  Only rank 0 prints and saves.
Options: --samples (default 100000), --epochs (4), --dtype (float32), --seed (0), --save PATH.

Training makes rounding differences grow: at --samples 20000 --dtype float64 the per-epoch losses of
one process and of ``mpiexec -n 2`` agree to 3e-10 after the first epoch, 5e-4 after the second and 2%
after the fourth; a long run is then another training of the same model from the same start.  Measured
on a 2-core machine (AVX2) with the defaults: test accuracy 0.9368 on one process and 0.9414 on two
ranks (float32), 0.9336 and 0.9320 in float64; another machine rounds otherwise and gives other numbers
(throughput: BENCHMARKS.md, "Distributed training").  The last line printed, the training loss of every
epoch to 12 digits, is there to compare runs.
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
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                        help="the model's dtype (default float32)")
    parser.add_argument("--seed", type=int, default=0, help="the model's seed (default 0)")
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
    model = ManyToOne(1, 64, CLASSES, cell="gru", dtype=args.dtype, seed=args.seed)
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
        # every digit, to compare runs: equal to rounding at first, then drifting apart (see the docstring)
        print("training loss per epoch: " + " ".join(f"{loss:.12g}" for loss in history["loss"]))
        if "comm_time" in history:
            print(f"gradient all-reduce: {sum(history['comm_time']):.2f}s of {train_time:.1f}s "
                  f"({100 * sum(history['comm_time']) / train_time:.1f}%)")
        if args.save:
            model.save(args.save)
            print(f"saved {args.save}")


if __name__ == "__main__":
    main()
