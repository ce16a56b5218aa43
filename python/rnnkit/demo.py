"""python -m rnnkit demo: train every topology on a task that ships with the installation, print a table.

No download: the digits are scikit-learn's bundled copy, the JapaneseVowels utterances the copy of the
UEA archive's files that aeon ships, the dates are generated, and the text of the character language
model (the whole of *Alice's Adventures in Wonderland*) ships in rnnkit.  The sequence tasks run on
sequences of their own lengths: the speakers' utterances, the book's sentences and the written dates
as token ids, the generated names and dates stopped by an end token.  Each row says what the model
reached on held-out data against a stated target and a published figure where one exists, how long
training took, and how much longer one epoch of the same model takes on the NumPy reference backend
(``backend="numpy"``) than on the C++ kernels.
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
    data: tuple                   # X_train, Y_train, X_test, Y_test (arrays, or lists of sequences)
    hidden_size: int
    input_size: int
    output_size: int
    fit: dict = field(default_factory=dict)
    exact: bool = False           # the metric counts a sample right only if every step is
    options: dict = field(default_factory=dict)  # more constructor arguments (vocab_size, end_token, ...)
    published: str = "-"          # a published figure for the same data, where one exists

    def model(self, backend: str, seed: int):
        return self.topology(self.input_size, self.hidden_size, self.output_size, cell=self.cell,
                             backend=backend, seed=seed, **self.options)

    def evaluate(self, model, X, Y) -> float:
        if not self.exact:
            return model.score(X, Y)
        predictions = model.predict(X)
        return float(np.mean([np.array_equal(p, y) for p, y in zip(predictions, Y)]))


def _digits_tasks(seed):
    X_train, X_test, y_train, y_test = ds.load_digits(seed=seed)
    flat_train, flat_test = X_train.reshape(len(X_train), -1), X_test.reshape(len(X_test), -1)
    # each digit's English name, letter by letter, then an end token: targets of 3-5 letters
    vocab = ds.CharVocab("".join(ds.DIGIT_NAMES))
    names_train = vocab.encode_list(ds.DIGIT_NAMES[d] for d in y_train)
    names_test = vocab.encode_list(ds.DIGIT_NAMES[d] for d in y_test)
    svc = "SVC 97%, sklearn example"
    return [
        Task(OneToOne, "tanh", "digits: 64 pixels -> digit", "accuracy", 0.90,
             (flat_train, y_train, flat_test, y_test), 64, 64, 10, {"epochs": 10, "lr": 1e-2}, published=svc),
        Task(ManyToOne, "tanh", "digits: 8 rows of 8 -> digit", "accuracy", 0.90,
             (X_train, y_train, X_test, y_test), 64, 8, 10, {"epochs": 15, "lr": 3e-3}, published=svc),
        Task(OneToMany, "tanh", "digits: pixels -> 'seven'", "word accuracy", 0.90,
             (flat_train, names_train, flat_test, names_test), 64, 64, len(vocab) + 1,
             {"epochs": 15, "lr": 3e-3}, exact=True, options={"end_token": len(vocab)}),
    ]


def _vowels_task():
    """Speakers from their utterances of the vowels /ae/: 7-29 frames each (a real, ragged set)."""
    X_train, y_train, X_test, y_test = ds.load_japanese_vowels()
    return Task(ManyToOne, "gru", "speaker from 7-29 frames", "accuracy", 0.93,
                (X_train, y_train, X_test, y_test), 64, 12, 9, {"epochs": 30, "lr": 5e-3, "batch_size": 16},
                options={"bidirectional": True}, published="1-NN DTW 94.9%")


CHAR_TRAIN_CHAPTERS = range(1, 9)    # Alice, chapters I-VIII to learn from ...
CHAR_TEST_CHAPTERS = range(11, 13)   # ... and chapters XI-XII, never seen, to test on


def _char_lm_task():
    """A character language model on whole sentences (each of its own length) as token ids."""
    train_text, test_text = ds.alice_book(CHAR_TRAIN_CHAPTERS), ds.alice_book(CHAR_TEST_CHAPTERS)
    vocab = ds.CharVocab(ds.alice_book() + ds.SENTENCE_END)
    x_train, y_train = ds.char_sequences(ds.split_sentences(train_text, 10, 120), vocab)
    x_test, y_test = ds.char_sequences(ds.split_sentences(test_text, 10, 120), vocab)
    return Task(ManyToMany, "gru", "Alice: next char, ch. XI-XII", "next-char acc", 0.50,
                (x_train, y_train, x_test, y_test), 192, 32, len(vocab), {"epochs": 6, "lr": 5e-3},
                options={"vocab_size": len(vocab)})


def _dates_task(seed):
    sources, targets = ds.make_dates(5000, seed=seed)
    X, Y = ds.encode_dates(sources, targets)  # ids of 10-18 characters -> 10 characters, then the end
    n_train = 4000
    return Task(Seq2Seq, "lstm", "dates: '27 nov 2026' -> ISO", "exact dates", 0.90,
                (X[:n_train], Y[:n_train], X[n_train:], Y[n_train:]), 128, 16, ds.DATE_OUTPUT_SIZE,
                {"epochs": 10, "lr": 5e-3}, exact=True,
                options={"vocab_size": len(ds.DATE_SOURCE_VOCAB), "end_token": ds.DATE_END})


def tasks(seed=0, notes=None) -> list:
    """The demo's tasks; the JapaneseVowels one only where aeon (which ships the data) is installed
    (otherwise a line saying so goes to ``notes``)."""
    found = [*_digits_tasks(seed)]
    try:
        found.append(_vowels_task())
    except ImportError as exc:
        if notes is not None:
            notes.append(f"(skipping the JapaneseVowels task: {exc})")
    return [*found, _char_lm_task(), _dates_task(seed)]


def _shrink(task: Task) -> Task:
    """--quick: 200 training and 100 test samples, one epoch."""
    X_train, Y_train, X_test, Y_test = task.data
    task.data = (X_train[:200], Y_train[:200], X_test[:100], Y_test[:100])
    task.fit = {**task.fit, "epochs": 1}
    return task


COLUMNS = [("topology", 10), ("cell", 4), ("task", 29), ("train/test", 10), ("metric", 13), ("train", 6),
           ("test", 6), ("target", 9), ("published", 24), ("fit", 7), ("NumPy epoch", 11)]


def _row(values) -> str:
    return "  ".join(f"{v:<{w}}" if i < 5 or i == 8 else f"{v:>{w}}"
                     for i, (v, (_, w)) in enumerate(zip(values, COLUMNS)))


NUMPY_SAMPLES = 128  # the NumPy-backend epoch is timed on this many training samples (it is slow)


def run_task(task: Task, seed: int, verbose: int) -> dict:
    """Train the task's model on the kernels, evaluate it, and time one epoch of the same model on
    the NumPy backend against one on the kernels, both on the first NUMPY_SAMPLES samples."""
    X_train, Y_train, X_test, Y_test = task.data
    model = task.model("cpp", seed)
    started = time.perf_counter()
    model.fit(X_train, Y_train, verbose=verbose, **task.fit)
    fit_time = time.perf_counter() - started
    few = {**task.fit, "epochs": 1}
    epoch = {}
    for backend in ("cpp", "numpy"):
        epoch[backend] = task.model(backend, seed).fit(X_train[:NUMPY_SAMPLES], Y_train[:NUMPY_SAMPLES],
                                                       verbose=0, **few).history_["time"][0]
    return {"fit_time": fit_time, "numpy_ratio": epoch["numpy"] / epoch["cpp"],
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
    missed, notes = [], []
    every = tasks(args.seed, notes)
    for note in notes:
        print(note)
    for task in every:
        if args.quick:
            task = _shrink(task)
        result = run_task(task, args.seed, int(args.verbose))
        reached = result["test"] >= task.target
        if not reached:
            missed.append(task.topology.__name__)
        sizes = f"{len(task.data[0])}/{len(task.data[2])}"
        print(_row([task.topology.__name__, task.cell, task.title, sizes, task.metric, f"{result['train']:.1%}",
                    f"{result['test']:.1%}", (">=" if reached else "MISS>=") + f"{task.target:.0%}",
                    task.published, f"{result['fit_time']:.1f} s", f"{result['numpy_ratio']:.1f}x"]), flush=True)
    print(f"total {time.perf_counter() - started:.1f} s.  NumPy epoch: the time of one epoch on backend='numpy' "
          f"over one on 'cpp' ({NUMPY_SAMPLES} samples).  Published: SVC on the same digits in scikit-learn's "
          f"'Recognizing hand-written digits' example; 1-NN DTW (dependent) on JapaneseVowels in Bagnall et al. "
          f"2018, the UEA multivariate archive (94.9%, reproduced with aeon).")
    if missed and not args.quick:
        print(f"missed the target: {', '.join(missed)}")
        return 1
    return 0
