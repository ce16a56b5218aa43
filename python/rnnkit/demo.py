"""python -m rnnkit demo: train every topology on a task that ships with the installation, print a table.

No download: the digits are scikit-learn's bundled copy, the dates are generated, and the text of the
character language model is embedded in rnnkit.datasets.  Each row says what the model reached on
held-out data against a stated target, how long training took, and how much longer one epoch of the
same model takes on the NumPy reference backend (``backend="numpy"``) than on the C++ kernels.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field

import numpy as np

from . import datasets as ds
from .models import ManyToMany, ManyToOne, OneToMany, OneToOne, Seq2Seq
from .runtime import get_num_threads, set_num_threads, simd_isa


@dataclass
class Task:
    topology: type
    cell: str
    title: str
    metric: str
    target: float                 # the held-out metric the demo promises
    data: tuple                   # X_train, Y_train, X_test, Y_test
    hidden_size: int
    input_size: int
    output_size: int
    fit: dict = field(default_factory=dict)
    exact: bool = False           # the metric counts a sample right only if every step is

    def model(self, backend: str, seed: int):
        return self.topology(self.input_size, self.hidden_size, self.output_size, cell=self.cell,
                             backend=backend, seed=seed)

    def evaluate(self, model, X, Y) -> float:
        if not self.exact:
            return model.score(X, Y)
        return float(np.mean((model.predict(X) == Y).all(axis=1)))


def _digits_tasks(seed):
    X_train, X_test, y_train, y_test = ds.load_digits(seed=seed)
    flat_train, flat_test = X_train.reshape(len(X_train), -1), X_test.reshape(len(X_test), -1)
    captions_train, captions_test = ds.caption_digits(y_train), ds.caption_digits(y_test)
    return [
        Task(OneToOne, "tanh", "digits: 64 pixels -> digit", "accuracy", 0.90,
             (flat_train, y_train, flat_test, y_test), 64, 64, 10, {"epochs": 10, "lr": 1e-2}),
        Task(ManyToOne, "tanh", "digits: 8 rows of 8 -> digit", "accuracy", 0.90,
             (X_train, y_train, X_test, y_test), 64, 8, 10, {"epochs": 15, "lr": 3e-3}),
        Task(OneToMany, "tanh", "digits: pixels -> 'seven.'", "word accuracy", 0.90,
             (flat_train, captions_train, flat_test, captions_test), 64, 64, len(ds.CAPTION_VOCAB),
             {"epochs": 15, "lr": 3e-3}, exact=True),
    ]


def _char_lm_task():
    text = ds.alice_text()
    vocab = ds.CharVocab(text)
    cut = int(len(text) * 0.85)
    x_train, y_train = ds.char_windows(text[:cut], vocab, 50, 5)
    x_test, y_test = ds.char_windows(text[cut:], vocab, 50, 25)
    return Task(ManyToMany, "gru", "next char of Alice, ch. 1", "next-char acc", 0.35,
                (vocab.one_hot(x_train), y_train, vocab.one_hot(x_test), y_test), 128, len(vocab), len(vocab),
                {"epochs": 6, "lr": 1e-2})


def _dates_task(seed):
    sources, targets = ds.make_dates(5000, seed=seed)
    src, tgt = ds.DATE_SOURCE_VOCAB, ds.DATE_TARGET_VOCAB
    # Left padding: every source ends at the encoder's last step, whatever its length.
    X = src.one_hot(src.encode(sources, ds.DATE_SOURCE_LENGTH, pad=" ", pad_left=True))
    Y = tgt.encode(targets)
    n_train = 4000
    return Task(Seq2Seq, "lstm", "dates: '27 nov 2026' -> ISO", "exact dates", 0.90,
                (X[:n_train], Y[:n_train], X[n_train:], Y[n_train:]), 128, len(src), len(tgt),
                {"epochs": 10, "lr": 5e-3}, exact=True)


def tasks(seed=0) -> list:
    return [*_digits_tasks(seed), _char_lm_task(), _dates_task(seed)]


def _shrink(task: Task) -> Task:
    """--quick: 200 training and 100 test samples, one epoch."""
    X_train, Y_train, X_test, Y_test = task.data
    task.data = (X_train[:200], Y_train[:200], X_test[:100], Y_test[:100])
    task.fit = {**task.fit, "epochs": 1}
    return task


COLUMNS = [("topology", 10), ("cell", 4), ("task", 29), ("train/test", 10), ("metric", 13), ("train", 6),
           ("test", 6), ("target", 9), ("fit", 7), ("NumPy epoch", 11)]


def _row(values) -> str:
    return "  ".join(f"{v:<{w}}" if i < 5 else f"{v:>{w}}" for i, (v, (_, w)) in enumerate(zip(values, COLUMNS)))


def run_task(task: Task, seed: int, verbose: int) -> dict:
    """Train the task's model on the kernels, evaluate it, and time one epoch on the NumPy backend."""
    X_train, Y_train, X_test, Y_test = task.data
    model = task.model("cpp", seed)
    started = time.perf_counter()
    history = model.fit(X_train, Y_train, verbose=verbose, **task.fit)
    fit_time = time.perf_counter() - started
    # The same model's first epoch on the reference, against the median epoch on the kernels.
    reference = task.model("numpy", seed)
    numpy_time = reference.fit(X_train, Y_train, verbose=0, **{**task.fit, "epochs": 1})["time"][0]
    return {"fit_time": fit_time, "numpy_ratio": numpy_time / float(np.median(history["time"])),
            "train": task.evaluate(model, X_train, Y_train), "test": task.evaluate(model, X_test, Y_test)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rnnkit demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 200 samples per task, one epoch, targets not checked")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data splits and the models (default 0)")
    parser.add_argument("--verbose", action="store_true", help="a progress bar per epoch")
    parser.add_argument("--threads", type=int, help="threads of the C++ kernels (default: rnnkit's)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        try:
            set_num_threads(args.threads)
        except ValueError as exc:
            parser.error(f"--threads: {exc}")

    started = time.perf_counter()
    threads = get_num_threads()
    print(f"rnnkit demo: SIMD path {simd_isa()}, {threads} thread{'s' if threads > 1 else ''}"
          + (" (--quick: targets not checked)" if args.quick else ""))
    print(_row([name for name, _ in COLUMNS]))
    print(_row(["-" * w for _, w in COLUMNS]))
    missed = []
    for task in tasks(args.seed):
        if args.quick:
            task = _shrink(task)
        result = run_task(task, args.seed, int(args.verbose))
        reached = result["test"] >= task.target
        if not reached:
            missed.append(task.topology.__name__)
        sizes = f"{len(task.data[0])}/{len(task.data[2])}"
        print(_row([task.topology.__name__, task.cell, task.title, sizes, task.metric, f"{result['train']:.1%}",
                    f"{result['test']:.1%}", (">=" if reached else "MISS>=") + f"{task.target:.0%}",
                    f"{result['fit_time']:.1f} s", f"{result['numpy_ratio']:.1f}x"]), flush=True)
    print(f"total {time.perf_counter() - started:.1f} s.  NumPy epoch: the time of one epoch on backend='numpy' "
          f"over one on 'cpp'.")
    if missed and not args.quick:
        print(f"missed the target: {', '.join(missed)}")
        return 1
    return 0
