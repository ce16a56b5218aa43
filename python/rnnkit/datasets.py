"""The demo's tasks: real data where an installed package ships it, generated or embedded otherwise.

- ``load_digits``: scikit-learn's bundled 8x8 handwritten digits (1797 images, no download).
- ``caption_digits``: each digit's English name, spelled character by character ("seven.").
- ``make_dates``: the same date written several ways ("27 nov 2026", "november 27, 2026", ...) and
  in ISO form ("2026-11-27").
- ``ALICE``: the opening of Lewis Carroll's *Alice's Adventures in Wonderland* (1865, public domain)
  for a character language model; ``char_windows`` cuts a text into (input, next character) windows.

``CharVocab`` turns strings into integer labels or one-hot arrays and back.
"""

from __future__ import annotations

import datetime

import numpy as np

__all__ = [
    "ALICE",
    "DIGIT_NAMES",
    "CharVocab",
    "alice_text",
    "caption_digits",
    "char_windows",
    "load_digits",
    "make_dates",
]


class CharVocab:
    """A character vocabulary: ``encode`` strings to integer ids, ``decode`` ids back to strings."""

    def __init__(self, chars):
        self.chars = "".join(sorted(set(chars)))
        self.index = {c: i for i, c in enumerate(self.chars)}

    def __len__(self):
        return len(self.chars)

    def __repr__(self):
        return f"CharVocab({self.chars!r})"

    def encode(self, texts, length=None, *, pad=None, pad_left=False) -> np.ndarray:
        """(N, length) int64 ids of N strings, padded with ``pad`` to ``length`` (default: the longest)."""
        texts = list(texts)
        length = max((len(t) for t in texts), default=0) if length is None else length
        out = np.empty((len(texts), length), np.int64)
        for row, text in enumerate(texts):
            if len(text) > length:
                raise ValueError(f"{text!r} is longer than length={length}")
            if len(text) < length:
                if pad is None:
                    raise ValueError(f"{text!r} is shorter than length={length} and no pad character was given")
                text = text.rjust(length, pad) if pad_left else text.ljust(length, pad)
            try:
                out[row] = [self.index[c] for c in text]
            except KeyError as exc:
                raise ValueError(f"{text!r} has a character outside the vocabulary: {exc.args[0]!r}") from None
        return out

    def decode(self, ids) -> list:
        """Strings from an (N, T) array of ids."""
        return ["".join(self.chars[i] for i in row) for row in np.asarray(ids)]

    def one_hot(self, ids, dtype=np.float32) -> np.ndarray:
        """(..., len(self)) one-hot vectors of an array of ids."""
        return np.eye(len(self), dtype=dtype)[np.asarray(ids)]


def load_digits(test_size=0.25, seed=0):
    """scikit-learn's handwritten digits: images (N, 8, 8) scaled to [0, 1] and labels 0-9, split
    into (X_train, X_test, y_train, y_test) by a seeded shuffle, stratified by digit."""
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError:
        raise ImportError("the digits tasks need scikit-learn: pip install 'rnnkit[demo]'") from None
    digits = sklearn_digits()
    images = (digits.images / 16.0).astype(np.float32)
    labels = digits.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    test = np.zeros(len(labels), bool)
    for digit in range(10):
        members = rng.permutation(np.flatnonzero(labels == digit))
        test[members[:round(test_size * len(members))]] = True
    return images[~test], images[test], labels[~test], labels[test]


DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
CAPTION_VOCAB = CharVocab("".join(DIGIT_NAMES) + ".")
CAPTION_LENGTH = max(map(len, DIGIT_NAMES)) + 1  # the longest name and its full stop


def caption_digits(labels):
    """Each label's name, ended and padded by full stops ("one..."): (N, 6) ids in CAPTION_VOCAB."""
    names = [DIGIT_NAMES[label] + "." for label in np.asarray(labels)]
    return CAPTION_VOCAB.encode(names, CAPTION_LENGTH, pad=".")


MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
          "november", "december")
DATE_FORMATS = (
    lambda d: f"{d.day} {MONTHS[d.month - 1][:3]} {d.year}",      # 27 nov 2026
    lambda d: f"{d.day} {MONTHS[d.month - 1]} {d.year}",          # 27 november 2026
    lambda d: f"{MONTHS[d.month - 1][:3]} {d.day}, {d.year}",     # nov 27, 2026
    lambda d: f"{MONTHS[d.month - 1]} {d.day}, {d.year}",         # november 27, 2026
    lambda d: f"{d.day:02d}.{d.month:02d}.{d.year}",              # 27.11.2026
)
DATE_SOURCE_LENGTH = max(len(f(datetime.date(2000, 9, 30))) for f in DATE_FORMATS)
DATE_SOURCE_VOCAB = CharVocab("0123456789 ,." + "".join(MONTHS))
DATE_TARGET_VOCAB = CharVocab("0123456789-")


def make_dates(n, seed=0, first=datetime.date(1950, 1, 1), last=datetime.date(2049, 12, 31)):
    """n random dates between ``first`` and ``last``, each written in a random one of DATE_FORMATS,
    with its ISO form: (sources, targets), two lists of strings."""
    rng = np.random.default_rng(seed)
    days = rng.integers(first.toordinal(), last.toordinal() + 1, n)
    styles = rng.integers(0, len(DATE_FORMATS), n)
    dates = [datetime.date.fromordinal(int(day)) for day in days]
    return [DATE_FORMATS[s](d) for s, d in zip(styles, dates)], [d.isoformat() for d in dates]


def alice_text() -> str:
    """ALICE in lower case, on one line: the text the character language model learns."""
    return " ".join(ALICE.lower().split())


def char_windows(text, vocab, length, stride):
    """Windows of ``length`` characters every ``stride``: ids (N, length) of the inputs and of the
    characters that follow each one (the targets of a character language model)."""
    ids = vocab.encode([text])[0]
    starts = np.arange(0, len(ids) - length, stride)
    inputs = np.stack([ids[s:s + length] for s in starts])
    return inputs, np.stack([ids[s + 1:s + length + 1] for s in starts])


ALICE = """\
Alice was beginning to get very tired of sitting by her sister on the bank, and of having nothing to
do: once or twice she had peeped into the book her sister was reading, but it had no pictures or
conversations in it, "and what is the use of a book," thought Alice "without pictures or
conversations?"

So she was considering in her own mind (as well as she could, for the hot day made her feel very
sleepy and stupid), whether the pleasure of making a daisy-chain would be worth the trouble of
getting up and picking the daisies, when suddenly a White Rabbit with pink eyes ran close by her.

There was nothing so very remarkable in that; nor did Alice think it so very much out of the way to
hear the Rabbit say to itself, "Oh dear! Oh dear! I shall be late!" (when she thought it over
afterwards, it occurred to her that she ought to have wondered at this, but at the time it all
seemed quite natural); but when the Rabbit actually took a watch out of its waistcoat-pocket, and
looked at it, and then hurried on, Alice started to her feet, for it flashed across her mind that
she had never before seen a rabbit with either a waistcoat-pocket, or a watch to take out of it, and
burning with curiosity, she ran across the field after it, and fortunately was just in time to see
it pop down a large rabbit-hole under the hedge.

In another moment down went Alice after it, never once considering how in the world she was to get
out again.

The rabbit-hole went straight on like a tunnel for some way, and then dipped suddenly down, so
suddenly that Alice had not a moment to think about stopping herself before she found herself
falling down a very deep well.

Either the well was very deep, or she fell very slowly, for she had plenty of time as she went down
to look about her and to wonder what was going to happen next. First, she tried to look down and
make out what she was coming to, but it was too dark to see anything; then she looked at the sides
of the well, and noticed that they were filled with cupboards and book-shelves; here and there she
saw maps and pictures hung upon pegs. She took down a jar from one of the shelves as she passed; it
was labelled "ORANGE MARMALADE", but to her great disappointment it was empty: she did not like to
drop the jar for fear of killing somebody underneath, so managed to put it into one of the cupboards
as she fell past it.

"Well!" thought Alice to herself, "after such a fall as this, I shall think nothing of tumbling down
stairs! How brave they'll all think me at home! Why, I wouldn't say anything about it, even if I
fell off the top of the house!" (Which was very likely true.)

Down, down, down. Would the fall never come to an end? "I wonder how many miles I've fallen by this
time?" she said aloud. "I must be getting somewhere near the centre of the earth. Let me see: that
would be four thousand miles down, I think--" (for, you see, Alice had learnt several things of this
sort in her lessons in the schoolroom, and though this was not a very good opportunity for showing
off her knowledge, as there was no one to listen to her, still it was good practice to say it over)
"--yes, that's about the right distance--but then I wonder what Latitude or Longitude I've got to?"
(Alice had no idea what Latitude was, or Longitude either, but thought they were nice grand words to
say.)

Presently she began again. "I wonder if I shall fall right through the earth! How funny it'll seem
to come out among the people that walk with their heads downward! The Antipathies, I think--" (she
was rather glad there was no one listening, this time, as it didn't sound at all the right word)
"--but I shall have to ask them what the name of the country is, you know. Please, Ma'am, is this
New Zealand or Australia?" (and she tried to curtsey as she spoke--fancy curtseying as you're
falling through the air! Do you think you could manage it?) "And what an ignorant little girl she'll
think me for asking! No, it'll never do to ask: perhaps I shall see it written up somewhere."

Down, down, down. There was nothing else to do, so Alice soon began talking again. "Dinah'll miss me
very much to-night, I should think!" (Dinah was the cat.) "I hope they'll remember her saucer of
milk at tea-time. Dinah my dear! I wish you were down here with me! There are no mice in the air,
I'm afraid, but you might catch a bat, and that's very like a mouse, you know. But do cats eat bats,
I wonder?" And here Alice began to get rather sleepy, and went on saying to herself, in a dreamy
sort of way, "Do cats eat bats? Do cats eat bats?" and sometimes, "Do bats eat cats?" for, you see,
as she couldn't answer either question, it didn't much matter which way she put it.
"""
