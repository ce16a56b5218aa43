"""Live progress of a long fit, as a ``fit(callbacks=[...])`` callback: what ``python -m rnnkit demo`` shows.

Four ways to show it (``style``):

- ``"bar"``: a tqdm bar over every batch of every epoch (its rate and time left are tqdm's), removed
  when the model is done, so that the table row that follows takes its place;
- ``"line"``: the same on one line rewritten with a carriage return (a terminal without tqdm);
- ``"epochs"``: whole lines, for output that is not a terminal (a log file, CI): one per epoch, but at
  most one every ``LINE_SECONDS`` unless an epoch is the last, and one every ``LINE_SECONDS`` inside an
  epoch that takes longer than that — so a log always says what is happening without filling up;
- ``"none"``: nothing.

``choose_style("auto", stream)`` picks "bar" on a terminal with tqdm, "line" on one without, "epochs"
otherwise.  The time left is the time per batch so far times the batches still to come.
"""

from __future__ import annotations

import math
import sys
import time

__all__ = ["STYLES", "FitProgress", "choose_style"]

STYLES = ("auto", "bar", "line", "epochs", "none")
LINE_SECONDS = 2.0      # "epochs": the least time between two lines
REDRAW_SECONDS = 0.1    # "line": the least time between two redraws


def _has_tqdm() -> bool:
    try:
        import tqdm  # noqa: F401
    except ImportError:
        return False
    return True


def choose_style(style: str, stream=None) -> str:
    """The style ``"auto"`` stands for on ``stream`` (default stdout); any other is checked and kept
    ("bar" without tqdm falls back to "line")."""
    if style not in STYLES:
        raise ValueError(f"style must be one of {', '.join(STYLES)}, got {style!r}")
    stream = sys.stdout if stream is None else stream
    if style == "auto":
        terminal = bool(getattr(stream, "isatty", lambda: False)())
        style = ("bar" if _has_tqdm() else "line") if terminal else "epochs"
    if style == "bar" and not _has_tqdm():
        style = "line"
    return style


def _seconds(value: float) -> str:
    return f"{value:.0f} s" if value >= 9.5 else f"{value:.1f} s"


class FitProgress:
    """A callback that shows one model's training: ``label`` names it, ``epochs`` and
    ``batches_per_epoch`` (ceil(samples / batch_size), which is what fit runs, buckets or not) size it.

    ``note(text)`` says what follows the training (scoring, timing) until ``close()``.  ``close()``
    removes the bar or the line; it is safe to call twice.
    """

    def __init__(self, label: str, epochs: int, batches_per_epoch: int, style: str = "auto", stream=None):
        self.stream = sys.stdout if stream is None else stream
        self.style = choose_style(style, self.stream)
        self.label, self.epochs = label, int(epochs)
        self.batches_per_epoch = max(1, int(batches_per_epoch))
        self.total = self.epochs * self.batches_per_epoch
        self.done, self.epoch, self.loss = 0, 1, math.nan  # epoch: 1-based, the one running or just done
        self.started = self.last_line = self.last_draw = time.perf_counter()
        self._width = 0
        self._bar = None
        if self.style == "bar":
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, desc=label, unit="batch", leave=False, file=self.stream,
                             dynamic_ncols=True, mininterval=REDRAW_SECONDS)

    # -- fit's hooks -------------------------------------------------------------------------------

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch + 1

    def on_batch_end(self, batch, logs=None):
        self.done += 1
        if logs and "loss" in logs:
            # a running mean would lag: a batch's loss, smoothed a little, follows the curve
            loss = float(logs["loss"])
            self.loss = loss if math.isnan(self.loss) else 0.8 * self.loss + 0.2 * loss
        if self.done > self.total:  # more batches than expected: grow the total rather than pass 100%
            self.total = self.done
            if self._bar is not None:
                self._bar.total = self.total
        now = time.perf_counter()
        if self._bar is not None:
            self._bar.update(1)
            if batch % 8 == 0:
                self._bar.set_postfix_str(self._status(), refresh=False)
        elif self.style == "line" and now - self.last_draw >= REDRAW_SECONDS:
            self._draw(self._text())
        elif self.style == "epochs" and now - self.last_line >= LINE_SECONDS and batch + 1 < self.batches_per_epoch:
            self._line(self._text())

    def on_epoch_end(self, epoch, logs=None):
        self.epoch = epoch + 1
        if logs and "loss" in logs:
            self.loss = float(logs["loss"])  # the epoch's mean
        self.done = max(self.done, min(self.epoch * self.batches_per_epoch, self.total))
        last = self.epoch >= self.epochs
        if self._bar is not None:
            self._bar.n = min(self.done, self.total)
            self._bar.set_postfix_str(self._status())
        elif self.style == "line":
            self._draw(self._text())
        elif self.style == "epochs" and (last or self.epoch == 1
                                          or time.perf_counter() - self.last_line >= LINE_SECONDS):
            self._line(self._text())

    # -- after training ----------------------------------------------------------------------------

    def note(self, text: str) -> None:
        """What happens now that training is over (e.g. "scoring")."""
        if self._bar is not None:
            self._bar.set_postfix_str(f"{self._status()}; {text}")
        elif self.style == "line":
            self._draw(f"{self.label}: trained in {_seconds(self.elapsed)}; {text}")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.style == "line" and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0

    # -- text ----------------------------------------------------------------------------------------

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def left(self) -> float | None:
        """Seconds still to go at the rate so far (None before the first batch)."""
        if not self.done:
            return None
        return self.elapsed / self.done * max(self.total - self.done, 0)

    def _status(self) -> str:
        loss = "" if math.isnan(self.loss) else f" loss {self.loss:.4f}"
        return f"epoch {self.epoch}/{self.epochs}{loss}"

    def _text(self) -> str:
        left = self.left()
        eta = "" if left is None else ", done" if self.done >= self.total else f", ~{_seconds(left)} left"
        percent = 100 * min(self.done, self.total) / self.total
        return f"{self.label}: {self._status()} ({percent:3.0f}%), {_seconds(self.elapsed)}{eta}"

    def _draw(self, text: str) -> None:
        self.last_draw = time.perf_counter()
        self.stream.write("\r" + text.ljust(self._width))
        self.stream.flush()
        self._width = max(self._width, len(text))

    def _line(self, text: str) -> None:
        self.last_line = time.perf_counter()
        self.stream.write(f"  {text}\n")
        self.stream.flush()
