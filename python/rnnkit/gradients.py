"""python -m rnnkit gradients: vanishing and exploding gradients, measured and then felt in training.

The task, generated on the fly: a sequence of k tokens whose first token is the class label (one of
CLASSES) and whose other k-1 tokens are noise (drawn from NOISE other tokens); a ManyToOne model reads
the whole sequence and must name the label at the end, k-1 steps after it saw it.  Chance is
1/CLASSES; a model "learns" the task at length k when its accuracy on fresh test sequences reaches
THRESHOLD.

For each variant of VARIANTS (tanh, relu, lstm, gru, relu with recurrent weights scaled up — the
exploding case — and the remedies: tanh with init="orthogonal", relu with init="identity" (IRNN), the
LSTM with unit_forget_bias=True), the command

1. measures, at initialisation, ||dL/dh_t|| against the distance k-1-t from the last step
   (rnnkit.diagnostics.gradient_flow, exact, in float64) on sequences of one length;
2. trains on each length k, with gradient clipping (clip=1) and without, stopping early once a
   validation set reaches THRESHOLD; a fit that diverges (a loss or gradient that is not finite) counts
   as not learned;
3. measures the gradient flow again after training, at the same length as in 1;

then draws the three as one PNG (matplotlib, Agg) and prints the table of test accuracies: which cell
learns at which k.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np

CLASSES = 4        # labels 0 .. CLASSES-1, the first token of every sequence
NOISE = 4          # noise tokens CLASSES .. CLASSES+NOISE-1 fill the other k-1 steps
THRESHOLD = 0.9    # test accuracy at which a model counts as having learned the task (chance: 1/CLASSES)
CLIPS = (1.0, None)  # fit's clip= of the two trainings of every variant and length
LEARNING_RATE = 1e-2


@dataclass(frozen=True)
class Variant:
    """One model to train: a cell, more ManyToOne arguments, and a factor applied to every weight_hh
    after the model's own initialisation (> 1: large recurrent weights, the exploding case)."""

    cell: str
    options: dict = field(default_factory=dict)
    recurrent_scale: float = 1.0

    @property
    def label(self) -> str:
        parts = [self.cell, *(f"{key}={value}" for key, value in self.options.items())]
        if self.recurrent_scale != 1.0:
            parts.append(f"W_hh x{self.recurrent_scale:g}")
        return " ".join(parts)

    def model(self, settings: Settings, seed: int):
        from .models import ManyToOne

        model = ManyToOne(settings.embedding, settings.hidden, CLASSES, cell=self.cell,
                          vocab_size=CLASSES + NOISE, seed=seed, **self.options)
        if self.recurrent_scale != 1.0:
            rnn = model.layers["rnn"]
            weights = rnn.state_dict()
            for name in weights:
                if name.startswith("weight_hh"):
                    weights[name] *= self.recurrent_scale
            rnn.load_state_dict(weights)
        return model


# One line per variant; options go to ManyToOne, e.g. Variant("relu", {"init": "identity"}) or
# Variant("lstm", {"unit_forget_bias": True}) (the models' start options).
VARIANTS = [
    Variant("tanh"),
    Variant("relu"),
    Variant("lstm"),
    Variant("gru"),
    Variant("relu", recurrent_scale=4.0),  # the exploding case: a spectral radius of about 2.3 (1/sqrt(3) x 4)
    # the remedies, as the layers' start options
    Variant("tanh", {"init": "orthogonal"}),
    Variant("relu", {"init": "identity"}),
    Variant("lstm", {"unit_forget_bias": True}),
]


@dataclass(frozen=True)
class Settings:
    lengths: tuple          # the sequence lengths k trained on
    flow_length: int        # the length the gradient flow is measured at (one of lengths)
    train: int              # training sequences per length (and as many for validation, test)
    epochs: int             # at most this many epochs per training ...
    epochs_per_check: int   # ... checking the validation accuracy after every this many
    hidden: int = 32
    embedding: int = 16
    flow_samples: int = 128


FULL = Settings(lengths=(10, 20, 50, 100, 200), flow_length=100, train=2000, epochs=30, epochs_per_check=5)
QUICK = Settings(lengths=(5, 10, 20), flow_length=20, train=200, epochs=6, epochs_per_check=3)


def memory_task(n: int, length: int, rng: np.random.Generator):
    """n sequences of ``length`` token ids (N, length) int64 and their labels (N,): the first token is the
    label, the others noise."""
    labels = rng.integers(0, CLASSES, n)
    tokens = rng.integers(CLASSES, CLASSES + NOISE, (n, length))
    tokens[:, 0] = labels
    return tokens, labels


def _data(settings: Settings, length: int, seed: int) -> dict:
    rng = np.random.default_rng([seed, length])
    return {part: memory_task(settings.train if part != "flow" else settings.flow_samples, length, rng)
            for part in ("train", "validation", "test", "flow")}


def train(variant: Variant, settings: Settings, data: dict, clip, seed: int) -> dict:
    """Fit a fresh model on data["train"] until the validation accuracy reaches THRESHOLD or the epochs
    run out; returns the model, its test accuracy (None when training diverged) and the epochs run."""
    model = variant.model(settings, seed)
    epochs, diverged = 0, False
    while epochs < settings.epochs:
        try:
            # (without clipping, the exploding case's gradients overflow Adam's float32 second moments:
            # NumPy's warning would only interrupt the table; a loss or norm that is not finite ends fit)
            with np.errstate(over="ignore"):
                model.fit(*data["train"], epochs=settings.epochs_per_check, lr=LEARNING_RATE, clip=clip, verbose=0)
        except FloatingPointError:
            diverged = True
            break
        epochs += settings.epochs_per_check
        if model.score(*data["validation"]) >= THRESHOLD:
            break
    accuracy = None if diverged else model.score(*data["test"])
    return {"model": None if diverged else model, "accuracy": accuracy, "epochs": epochs}


def _flow(model, data: dict) -> np.ndarray:
    """The mean ||dL/dh_t|| of the (one) layer, ordered by distance from the last step: index d is d steps back."""
    from .diagnostics import gradient_flow

    with np.errstate(over="ignore", invalid="ignore"):  # (the exploding case may overflow after training)
        flow = gradient_flow(model, *data["flow"])
    return flow.norms[0][flow.distance.argsort()]


def run(settings: Settings, seed: int, log) -> dict:
    """Every variant at initialisation and trained at every length, both clip settings."""
    results = {"init": {}, "trained": {}, "accuracy": {}, "time": {}}
    datasets = {k: _data(settings, k, seed) for k in settings.lengths}
    for variant in VARIANTS:
        results["init"][variant.label] = _flow(variant.model(settings, seed), datasets[settings.flow_length])
        for clip in CLIPS:
            started = time.perf_counter()
            row = {}
            for k in settings.lengths:
                outcome = train(variant, settings, datasets[k], clip, seed)
                row[k] = outcome["accuracy"]
                if k == settings.flow_length and outcome["model"] is not None:
                    results["trained"][variant.label, clip] = _flow(outcome["model"], datasets[k])
            results["accuracy"][variant.label, clip] = row
            results["time"][variant.label, clip] = time.perf_counter() - started
            log(_table_row(variant.label, clip, row, settings, results["time"][variant.label, clip]))
    return results


# ---- the table --------------------------------------------------------------------------------------

def _label_width() -> int:
    return max(16, 2 + max(len(variant.label) for variant in VARIANTS))


def _clip_name(clip) -> str:
    return "none" if clip is None else f"{clip:g}"


def _table_header(settings: Settings) -> str:
    lengths = "".join(f"{f'k={k}':>9}" for k in settings.lengths)
    return f"{'cell':<{_label_width()}}{'clip':>5}{lengths}  {'learned at':<27}{'fit':>7}"


def _table_row(label, clip, row: dict, settings: Settings, seconds: float) -> str:
    cells = "".join(f"{'diverged' if acc is None else f'{acc:.2f}':>9}" for acc in row.values())
    learned = [str(k) for k, acc in row.items() if acc is not None and acc >= THRESHOLD]
    where = ("k = " + ", ".join(learned)) if learned else "none"
    return f"{label:<{_label_width()}}{_clip_name(clip):>5}{cells}  {where:<27}{seconds:>6.1f}s"


def _init_summary(results: dict, settings: Settings) -> list:
    back = settings.flow_length - 1
    title = (f"gradient at initialisation, k = {settings.flow_length}: mean ||dL/dh_t|| {back} steps back over "
             f"that at the last step")
    lines = [title]
    for label, norms in results["init"].items():
        lines.append(f"  {label:<{_label_width()}}{norms[back] / norms[0]:10.2e}")
    return lines


# ---- the figure -------------------------------------------------------------------------------------

def draw(results: dict, settings: Settings, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {variant.label: plt.get_cmap("tab10")(i) for i, variant in enumerate(VARIANTS)}
    styles = {clip: ("-" if clip is not None else "--") for clip in CLIPS}
    fig, (at_init, trained, accuracy) = plt.subplots(1, 3, figsize=(19, 5))
    for label, norms in results["init"].items():
        at_init.plot(np.arange(norms.size), norms, color=colours[label], label=label)
    for (label, clip), norms in results["trained"].items():
        trained.plot(np.arange(norms.size), norms, color=colours[label], linestyle=styles[clip],
                     label=f"{label}, clip={_clip_name(clip)}")
    for ax, when in ((at_init, "at initialisation"), (trained, "after training")):
        ax.set_yscale("log")
        ax.set_xlabel("distance from the last step (steps back in time)")
        ax.set_ylabel("mean ||dL/dh_t||")
        ax.set_title(f"gradient flow {when}, k = {settings.flow_length}")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize="small")
    for (label, clip), row in results["accuracy"].items():
        ks = list(row)
        accuracy.plot(ks, [np.nan if acc is None else acc for acc in row.values()], marker="o", color=colours[label],
                      linestyle=styles[clip], label=f"{label}, clip={_clip_name(clip)}")
    accuracy.axhline(THRESHOLD, color="black", linewidth=1, label=f"threshold {THRESHOLD:g}")
    accuracy.axhline(1 / CLASSES, color="grey", linewidth=1, linestyle=":", label="chance")
    accuracy.set_xscale("log")
    accuracy.minorticks_off()  # (the lengths themselves are the ticks)
    accuracy.set_xticks(list(settings.lengths), [str(k) for k in settings.lengths])
    accuracy.set_ylim(0, 1.05)
    accuracy.set_xlabel("sequence length k (the label is k-1 steps back)")
    accuracy.set_ylabel("test accuracy")
    accuracy.set_title("recall the first token (missing point: diverged)")
    accuracy.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.0, 1.0))  # (outside: lines fill the panel)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---- the command ------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rnnkit gradients", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=".", help="the folder to write gradients.png to (default: the current one)")
    parser.add_argument("--quick", action="store_true",
                        help=f"a smoke run: lengths {', '.join(map(str, QUICK.lengths))}, {QUICK.train} sequences, "
                             f"at most {QUICK.epochs} epochs")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data and the models (default 0)")
    args = parser.parse_args(argv)
    try:
        import matplotlib  # noqa: F401  (checked before any training: the figure is the point)
    except ImportError as exc:
        print(f"error: python -m rnnkit gradients draws its figure with matplotlib, which cannot be imported ({exc}); "
              f"install it: pip install matplotlib (or rnnkit[bench])", file=sys.stderr)
        return 1
    settings = QUICK if args.quick else FULL
    os.makedirs(args.out, exist_ok=True)
    path = os.path.abspath(os.path.join(args.out, "gradients.png"))

    started = time.perf_counter()
    print(f"rnnkit gradients: recall the first of k tokens ({CLASSES} labels, {NOISE} noise tokens), ManyToOne with "
          f"hidden_size={settings.hidden}, {settings.train} training sequences, Adam lr={LEARNING_RATE:g}, at most "
          f"{settings.epochs} epochs (stopping once validation reaches {THRESHOLD:g}); cells: test accuracy, "
          f"learned where >= {THRESHOLD:g} (chance {1 / CLASSES:.2f}); one seed (--seed): the borderline cases move with it",
          flush=True)
    print(_table_header(settings), flush=True)
    results = run(settings, args.seed, lambda line: print(line, flush=True))
    for line in _init_summary(results, settings):
        print(line)
    draw(results, settings, path)
    print(f"wrote {path}")
    print(f"total {time.perf_counter() - started:.1f} s")
    return 0
