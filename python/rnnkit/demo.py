"""python -m rnnkit demo: train every topology on a task that ships with the installation; a table, a report.

No download: the digits are scikit-learn's bundled copy, the JapaneseVowels utterances the copy of the
UEA archive's files that aeon ships, the dates are generated, and the text of the character language
model (the whole of *Alice's Adventures in Wonderland*) ships in rnnkit.  The sequence tasks run on
sequences of their own lengths: the speakers' utterances, the book's sentences and the written dates
as token ids, the generated names and dates stopped by an end token.  Each row says what the model
reached on held-out data against a stated target and a published figure where one exists, how long
training took, and how much longer one epoch of the same model takes on the NumPy reference backend
(``backend="numpy"``) than on the C++ kernels.

While a model trains, a bar (tqdm) or a line shows its epoch, loss and time left (``rnnkit._progress``);
at the end a report — each model's learning curve and a few of its predictions — is written as a PNG
(with matplotlib) and as Markdown (``rnnkit._demo_report``).
"""

from __future__ import annotations

import argparse
import math
import os
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from . import _demo_report as report
from . import datasets as ds
from ._progress import STYLES, FitProgress, choose_style
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
    examples: Callable | None = None  # (model, task) -> a few predictions for the report (_demo_report)

    def model(self, backend: str, seed: int):
        return self.topology(self.input_size, self.hidden_size, self.output_size, cell=self.cell,
                             backend=backend, seed=seed, **self.options)

    @property
    def name(self) -> str:
        return f"{self.topology.__name__} {self.cell}"

    def batches_per_epoch(self) -> int:
        """What fit runs per epoch: ceil(samples / batch_size), with or without buckets."""
        return math.ceil(len(self.data[0]) / self.fit.get("batch_size", 32))

    def evaluate(self, model, X, Y) -> float:
        if not self.exact:
            return model.score(X, Y)
        predictions = model.predict(X)
        return float(np.mean([np.array_equal(p, y) for p, y in zip(predictions, Y)]))


EXAMPLES = 8  # test samples shown in the report


def _shown(task: Task) -> np.ndarray:
    """Which test samples the report shows: EXAMPLES spread over the test set (the vowels' test set is
    ordered by speaker, so the first few would all be speaker 1)."""
    n = len(task.data[2])
    return np.unique(np.linspace(0, n - 1, min(EXAMPLES, n)).round().astype(int))


def _pick(items, index):
    return items[index] if isinstance(items, np.ndarray) else [items[i] for i in index]


def _digit_examples(words=None):
    """A few test digits (``_shown``) and what the model says they are: a label, or a generated word."""
    def show(model, task):
        index = _shown(task)
        X_test, Y_test = _pick(task.data[2], index), _pick(task.data[3], index)
        predicted = model.predict(X_test)
        if words is not None:
            predicted, truth = words.decode_list(predicted), words.decode_list(Y_test)
        else:
            predicted, truth = [str(int(p)) for p in predicted], [str(int(y)) for y in Y_test]
        return {"kind": "digits", "images": np.asarray(X_test).reshape(len(X_test), 8, 8),
                "predicted": predicted, "true": truth}
    return show


def _speaker_examples(model, task):
    index = _shown(task)
    X_test, Y_test = _pick(task.data[2], index), _pick(task.data[3], index)
    predicted = model.predict(X_test)
    rows = [(f"test utterance {i + 1} ({len(x)} frames)", f"speaker {int(p) + 1}", f"speaker {int(y) + 1}")
            for i, x, p, y in zip(index, X_test, predicted, Y_test)]
    return {"kind": "pairs", "rows": rows}


ALICE_PROMPTS = ("the queen said", "alice was")


def _alice_examples(vocab):
    """Text the model writes after a prompt (its most likely next character, fed back, until the end of
    the sentence), and a held-out sentence with the model's guess of each next character beneath it."""
    def show(model, task):
        end = vocab.index[ds.SENTENCE_END]
        lines = []
        for prompt in ALICE_PROMPTS:
            stream = model.stream()
            guess = int(stream.feed(vocab.encode_list([prompt])[0][:, None])[-1, 0])
            written = []
            while guess != end and len(written) < 80:
                written.append(vocab.chars[guess])
                guess = int(stream.step(np.array([guess]))[0])
            lines.append(("writes", prompt, "".join(written)))
        sentence = task.data[2][0]
        guesses = model.predict([sentence])[0]
        text = vocab.decode_list([sentence])[0]
        guessed = "".join(vocab.chars[g] if vocab.chars[g] != ds.SENTENCE_END else "|" for g in guesses[:-1])
        lines.append(("reads", text, " " + guessed))
        return {"kind": "alice", "lines": lines}
    return show


def _date_examples(model, task):
    index = _shown(task)
    X_test, Y_test = _pick(task.data[2], index), _pick(task.data[3], index)
    sources = ds.DATE_SOURCE_VOCAB.decode_list(X_test)
    predicted = ds.DATE_TARGET_VOCAB.decode_list(model.predict(X_test))
    truth = ds.DATE_TARGET_VOCAB.decode_list(Y_test)
    return {"kind": "pairs", "rows": [(f"'{s}'", p, t) for s, p, t in zip(sources, predicted, truth)]}


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
             (flat_train, y_train, flat_test, y_test), 64, 64, 10, {"epochs": 10, "lr": 1e-2}, published=svc,
             examples=_digit_examples()),
        Task(ManyToOne, "tanh", "digits: 8 rows of 8 -> digit", "accuracy", 0.90,
             (X_train, y_train, X_test, y_test), 64, 8, 10, {"epochs": 15, "lr": 3e-3}, published=svc,
             examples=_digit_examples()),
        Task(OneToMany, "tanh", "digits: pixels -> 'seven'", "word accuracy", 0.90,
             (flat_train, names_train, flat_test, names_test), 64, 64, len(vocab) + 1,
             {"epochs": 15, "lr": 3e-3}, exact=True, options={"end_token": len(vocab)},
             examples=_digit_examples(vocab)),
    ]


def _vowels_task():
    """Speakers from their utterances of the vowels /ae/: 7-29 frames each (a real, ragged set)."""
    X_train, y_train, X_test, y_test = ds.load_japanese_vowels()
    return Task(ManyToOne, "gru", "speaker from 7-29 frames", "accuracy", 0.93,
                (X_train, y_train, X_test, y_test), 64, 12, 9, {"epochs": 30, "lr": 5e-3, "batch_size": 16},
                options={"bidirectional": True}, published="1-NN DTW 94.9%", examples=_speaker_examples)


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
                options={"vocab_size": len(vocab)}, examples=_alice_examples(vocab))


def _dates_task(seed):
    sources, targets = ds.make_dates(5000, seed=seed)
    X, Y = ds.encode_dates(sources, targets)  # ids of 10-18 characters -> 10 characters, then the end
    n_train = 4000
    return Task(Seq2Seq, "lstm", "dates: '27 nov 2026' -> ISO", "exact dates", 0.90,
                (X[:n_train], Y[:n_train], X[n_train:], Y[n_train:]), 128, 16, ds.DATE_OUTPUT_SIZE,
                {"epochs": 10, "lr": 5e-3}, exact=True,
                options={"vocab_size": len(ds.DATE_SOURCE_VOCAB), "end_token": ds.DATE_END},
                examples=_date_examples)


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
QUICK_TARGET = "none"  # --quick's target column: a smoke run has no targets


def _row(values) -> str:
    return "  ".join(f"{v:<{w}}" if i < 5 or i == 8 else f"{v:>{w}}"
                     for i, (v, (_, w)) in enumerate(zip(values, COLUMNS)))


def table_row(task: Task, result: dict, quick: bool) -> list:
    """The printed row's values (also the report's table)."""
    target = QUICK_TARGET if quick else (">=" if result["reached"] else "MISS>=") + f"{task.target:.0%}"
    return [task.topology.__name__, task.cell, task.title, f"{len(task.data[0])}/{len(task.data[2])}", task.metric,
            f"{result['train']:.1%}", f"{result['test']:.1%}", target, task.published,
            f"{result['fit_time']:.1f} s", f"{result['numpy_ratio']:.1f}x"]


NUMPY_SAMPLES = 128  # the NumPy-backend epoch is timed on this many training samples (it is slow)


def run_task(task: Task, seed: int, progress: FitProgress | None = None) -> dict:
    """Train the task's model on the kernels (``progress``, a callback, shows it), evaluate it, and time
    one epoch of the same model on the NumPy backend against one on the kernels, both on the first
    NUMPY_SAMPLES samples; the numbers, the model's history and a few of its predictions."""
    X_train, Y_train, X_test, Y_test = task.data
    model = task.model("cpp", seed)
    started = time.perf_counter()
    model.fit(X_train, Y_train, verbose=0, callbacks=[progress] if progress is not None else None, **task.fit)
    fit_time = time.perf_counter() - started
    if progress is not None:
        progress.note("timing one epoch on backend='numpy'")
    few = {**task.fit, "epochs": 1}
    epoch = {}
    for backend in ("cpp", "numpy"):
        epoch[backend] = task.model(backend, seed).fit(X_train[:NUMPY_SAMPLES], Y_train[:NUMPY_SAMPLES],
                                                       verbose=0, **few).history_["time"][0]
    if progress is not None:
        progress.note("scoring")
    test = task.evaluate(model, X_test, Y_test)
    return {"fit_time": fit_time, "numpy_ratio": epoch["numpy"] / epoch["cpp"],
            "train": task.evaluate(model, X_train, Y_train), "test": test, "reached": test >= task.target,
            "history": {key: list(values) for key, values in model.history_.items()},
            "examples": task.examples(model, task) if task.examples is not None else None}


DEFAULT_REPORT = "rnnkit-demo-report.png"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rnnkit demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 200 samples per task, one epoch; it has no targets (the full run checks them)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data splits and the models (default 0)")
    parser.add_argument("--progress", choices=STYLES, default="auto",
                        help="how training is shown: a tqdm bar, a line rewritten in place, a line per epoch (at "
                             "most one every few seconds), or nothing; auto (the default): a bar on a terminal "
                             "(a line without tqdm), lines per epoch otherwise")
    parser.add_argument("--verbose", action="store_true", help="the same as --progress epochs")
    parser.add_argument("--threads", type=int, help="threads of the C++ kernels (default: rnnkit's)")
    parser.add_argument("--report", metavar="PATH", default=DEFAULT_REPORT,
                        help=f"the report's PNG (learning curves, example predictions; needs matplotlib), and beside "
                             f"it the same as Markdown, PATH with .md (default ./{DEFAULT_REPORT})")
    parser.add_argument("--no-report", action="store_true", help="write no report")
    args = parser.parse_args(argv)
    if args.threads is not None:
        try:
            set_num_threads(args.threads)
        except ValueError as exc:
            parser.error(f"--threads: {exc}")
    if not args.no_report:  # said now, not after the training
        folder = os.path.dirname(os.path.abspath(args.report))
        if not args.report.lower().endswith(".png"):
            parser.error(f"--report: expected a path ending in .png, got {args.report!r}")
        if not os.path.isdir(folder):
            parser.error(f"--report: the folder {folder!r} does not exist")
    style = choose_style("epochs" if args.verbose else args.progress)

    started = time.perf_counter()
    threads = get_num_threads()
    print(f"rnnkit demo: SIMD path {simd_isa()}, {threads} thread{'s' if threads > 1 else ''}"
          + (" (--quick: a smoke run of 200 samples and one epoch per model, with no targets)" if args.quick else ""))
    print("loading the data ...", end=" ", flush=True)
    missed, notes = [], []
    every = tasks(args.seed, notes)
    print(f"{len(every)} tasks in {time.perf_counter() - started:.1f} s", flush=True)
    for note in notes:
        print(note)
    print(_row([name for name, _ in COLUMNS]))
    print(_row(["-" * w for _, w in COLUMNS]), flush=True)
    done = []
    for k, task in enumerate(every):
        if args.quick:
            task = _shrink(task)
        progress = FitProgress(f"[{k + 1}/{len(every)}] {task.name}", task.fit["epochs"], task.batches_per_epoch(),
                               style)
        try:
            result = run_task(task, args.seed, progress)
        finally:
            progress.close()
        if not result["reached"]:
            missed.append(task.name)
        row = table_row(task, result, args.quick)
        print(_row(row), flush=True)
        done.append((task, result, row))
    total = time.perf_counter() - started
    footnote = (f"NumPy epoch: the time of one epoch on backend='numpy' over one on 'cpp' ({NUMPY_SAMPLES} samples).  "
                f"Published: SVC on the same digits in scikit-learn's 'Recognizing hand-written digits' example; "
                f"1-NN DTW (dependent) on JapaneseVowels in Bagnall et al. 2018, the UEA multivariate archive "
                f"(94.9%, reproduced with aeon).")
    print(f"total {total:.1f} s.  {footnote}")
    if not args.no_report:
        header = [name for name, _ in COLUMNS]
        written, why = report.write(args.report, done, header, {
            "title": f"rnnkit demo{' --quick' if args.quick else ''}: SIMD path {simd_isa()}, {threads} "
                     f"thread{'s' if threads > 1 else ''}, {total:.0f} s", "footnote": footnote})
        print(f"report: {', '.join(os.fspath(p) for p in written)}" + (f" ({why})" if why else ""))
    if args.quick:
        print("--quick has no targets: one epoch on 200 samples shows that every model trains, not what it learns "
              "(run the demo without --quick for that)")
        return 0
    if missed:
        print(f"missed the target: {', '.join(missed)}")
        return 1
    return 0
