"""The demo's tasks: real data where an installed package ships it, generated or embedded otherwise.

- ``load_digits``: scikit-learn's bundled 8x8 handwritten digits (1797 images, no download).
- ``caption_digits``: each digit's English name, spelled character by character ("seven.").
- ``make_dates``: the same date written several ways ("27 nov 2026", "november 27, 2026", ...) and
  in ISO form ("2026-11-27").
- ``load_japanese_vowels``: the UCI/UEA JapaneseVowels speakers (utterances of 7-29 frames of 12 LPC
  cepstrum coefficients), read from the copy the ``aeon`` package ships (no download); ``read_ts``
  parses the .ts files it comes in.
- ``ALICE``: the opening of Lewis Carroll's *Alice's Adventures in Wonderland* (1865, public domain)
  for a character language model; ``char_windows`` cuts a text into (input, next character) windows,
  ``alice_sentences`` / ``split_sentences`` into sentences of their own lengths and ``char_sequences``
  those into (input, next character) sequences.
- ``encode_dates``: ``make_dates``'s pairs as unpadded id sequences, the targets optionally ended by
  ``DATE_END``.

``CharVocab`` turns strings into integer labels or one-hot arrays and back.
"""

from __future__ import annotations

import datetime
import importlib.util
import math
from pathlib import Path
from typing import NamedTuple

import numpy as np

__all__ = [
    "ALICE",
    "DATE_END",
    "DATE_OUTPUT_SIZE",
    "DIGIT_NAMES",
    "SENTENCE_END",
    "CharVocab",
    "TsData",
    "alice_sentences",
    "alice_text",
    "alice_vocab",
    "caption_digits",
    "char_sequences",
    "char_windows",
    "encode_dates",
    "load_digits",
    "load_japanese_vowels",
    "make_dates",
    "read_ts",
    "split_sentences",
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
            out[row] = self._ids(text)
        return out

    def encode_list(self, texts) -> list:
        """A (len(text),) int64 array of ids per string: variable-length sequences, no padding."""
        return [np.array(self._ids(text), np.int64) for text in texts]

    def _ids(self, text) -> list:
        try:
            return [self.index[c] for c in text]
        except KeyError as exc:
            raise ValueError(f"{text!r} has a character outside the vocabulary: {exc.args[0]!r}") from None

    def decode(self, ids) -> list:
        """Strings from an (N, T) array of ids."""
        return ["".join(self.chars[i] for i in row) for row in np.asarray(ids)]

    def decode_list(self, sequences, end=None) -> list:
        """Strings from a list of 1-D id arrays of any lengths.  With ``end`` (an id outside the
        vocabulary, such as DATE_END), each sequence stops before its first ``end``."""
        texts = []
        for ids in sequences:
            ids = np.asarray(ids)
            if ids.ndim != 1:
                raise ValueError(f"decode_list takes 1-D id sequences, not one of shape {ids.shape}")
            if end is not None:
                stops = np.flatnonzero(ids == end)
                ids = ids[:stops[0]] if len(stops) else ids
            bad = ids[(ids < 0) | (ids >= len(self))]
            if len(bad):
                raise ValueError(f"id {int(bad[0])} is outside the vocabulary of {len(self)} characters")
            texts.append("".join(self.chars[i] for i in ids))
        return texts

    def one_hot(self, ids, dtype=np.float32) -> np.ndarray:
        """(..., len(self)) one-hot vectors of an array of ids."""
        return np.eye(len(self), dtype=dtype)[np.asarray(ids)]


def _sklearn_digits():
    """scikit-learn's digits as (pixels (N, 64) float64, labels (N,)): read from the data file it ships,
    as its load_digits does, without importing scikit-learn (seconds at a cold start); through
    scikit-learn itself if that file is not where it was."""
    import importlib.util
    import os

    spec = importlib.util.find_spec("sklearn")
    if spec is None:
        raise ImportError("the digits tasks need scikit-learn: pip install 'rnnkit[demo]'")
    if spec.origin:
        path = os.path.join(os.path.dirname(spec.origin), "datasets", "data", "digits.csv.gz")
        if os.path.isfile(path):
            data = np.loadtxt(path, delimiter=",")
            return data[:, :-1], data[:, -1].astype(int)
    from sklearn.datasets import load_digits as sklearn_digits

    digits = sklearn_digits()
    return digits.data, digits.target


def load_digits(test_size=0.25, seed=0):
    """scikit-learn's handwritten digits: images (N, 8, 8) scaled to [0, 1] and labels 0-9, split
    into (X_train, X_test, y_train, y_test) by a seeded shuffle, stratified by digit."""
    pixels, labels = _sklearn_digits()
    images = (pixels.reshape(-1, 8, 8) / 16.0).astype(np.float32)
    labels = labels.astype(np.int64)
    rng = np.random.default_rng(seed)
    test = np.zeros(len(labels), bool)
    for digit in range(10):
        members = rng.permutation(np.flatnonzero(labels == digit))
        test[members[:round(test_size * len(members))]] = True
    return images[~test], images[test], labels[~test], labels[test]


class TsData(NamedTuple):
    """A .ts file's cases: ``X`` a list of (T_i, D) float32 arrays (time first), ``y`` int64 indices
    into ``classes`` (the labels in the order ``@classLabel`` lists them), and the problem's name."""

    X: list
    y: np.ndarray
    classes: tuple
    name: str


_TS_FLAGS = ("timestamps", "missing", "univariate", "equallength")
_TS_COUNTS = ("dimensions", "serieslength")


def read_ts(path) -> TsData:
    """Read a classification problem from a .ts file (the UEA/UCR archive's format, as aeon and
    sktime ship it), strictly: anything the format does not allow, or that contradicts the header,
    raises ValueError naming the file and line.

    The header comes first: ``#`` comment lines, then one ``@tag value`` line per tag (tags in any
    case, each at most once): ``@problemName``, ``@timeStamps`` (``false`` only: timestamped files are
    not supported), ``@missing`` (``true`` allows ``?`` for a missing value, read as NaN),
    ``@univariate``, ``@dimensions``, ``@equalLength``, ``@seriesLength`` (checked when
    ``@equalLength true``) and ``@classLabel true <labels...>`` (required: unlabelled files are not
    supported); ``@data`` ends it.  Then one line per case: its dimensions separated by ``:``, each a
    ``,``-separated series of values, all of the same length, and the class label last.
    """
    path = Path(path)
    header: dict = {}
    X, y = [], []
    with open(path, encoding="utf-8") as file:
        for number, raw in enumerate(file, 1):
            line = raw.strip()
            try:
                if "data" not in header:
                    if line and not line.startswith("#"):
                        _ts_header_line(line, header)
                elif line:
                    case, label = _ts_case(line, header, X[0] if X else None)
                    X.append(case)
                    y.append(label)
            except ValueError as exc:
                raise ValueError(f"{path}:{number}: {exc}") from None
    if "data" not in header:
        raise ValueError(f"{path}: no @data line")
    if not X:
        raise ValueError(f"{path}: no cases after @data")
    return TsData(X, np.array(y, np.int64), header["classlabel"], header.get("problemname", path.stem))


def _ts_header_line(line, header):
    """Check one header line of a .ts file and record it in ``header`` (keys: the tags in lower case)."""
    if not line.startswith("@"):
        raise ValueError("a case before the @data line")
    tag, *values = line.split()
    key = tag[1:].lower()
    if key in header:
        raise ValueError(f"{tag} given twice")
    if key == "data":
        if values:
            raise ValueError("@data takes no value")
        if "classlabel" not in header:
            raise ValueError("no @classLabel line before @data (unlabelled files are not supported)")
        if header.get("univariate") and header.get("dimensions", 1) != 1:
            raise ValueError(f"@univariate true but @dimensions {header['dimensions']}")
        header[key] = True
    elif key == "problemname":
        if len(values) != 1:
            raise ValueError(f"{tag} takes one name")
        header[key] = values[0]
    elif key in _TS_FLAGS:
        if len(values) != 1 or values[0].lower() not in ("true", "false"):
            raise ValueError(f"{tag} takes true or false, not {' '.join(values)!r}")
        header[key] = values[0].lower() == "true"
        if key == "timestamps" and header[key]:
            raise ValueError("timestamped .ts files are not supported")
    elif key in _TS_COUNTS:
        if len(values) != 1 or not (values[0].isascii() and values[0].isdigit()) or int(values[0]) < 1:
            raise ValueError(f"{tag} takes a positive integer, not {' '.join(values)!r}")
        header[key] = int(values[0])
    elif key == "classlabel":
        if not values or values[0].lower() not in ("true", "false"):
            raise ValueError(f"{tag} takes true or false, then the labels")
        if values[0].lower() == "false":
            raise ValueError("unlabelled .ts files (@classLabel false) are not supported")
        if len(values) < 2:
            raise ValueError(f"{tag} true lists no labels")
        if len(set(values[1:])) != len(values) - 1:
            raise ValueError(f"{tag} lists a label twice")
        header[key] = tuple(values[1:])
    elif key == "targetlabel":
        raise ValueError("regression .ts files (@targetLabel) are not supported")
    else:
        raise ValueError(f"unknown header tag {tag}")


def _ts_case(line, header, first):
    """One case line of a .ts file: its (T, D) float32 series (time first) and its label's index.
    ``first``, the file's first case or None, fixes D where @dimensions does not (and T where
    @equalLength true has no @seriesLength)."""
    if line.startswith("@"):
        raise ValueError("a header line after @data")
    *fields, label = line.split(":")
    classes = header["classlabel"]
    if label.strip() not in classes:
        raise ValueError(f"class label {label.strip()!r} is not one of @classLabel's {' '.join(classes)}")
    if not fields:
        raise ValueError("no series before the class label")
    dims = 1 if header.get("univariate") else header.get("dimensions", len(fields) if first is None else first.shape[1])
    if len(fields) != dims:
        raise ValueError(f"{len(fields)} dimensions, expected {dims}")
    series = []
    for dim, field in enumerate(fields):
        try:
            series.append([math.nan if v.strip() == "?" else float(v) for v in field.split(",")])
        except ValueError:
            raise ValueError(f"dimension {dim} has a value that is not a number: {field[:40]!r}") from None
        if len(series[dim]) != len(series[0]):
            raise ValueError(f"dimension {dim} has {len(series[dim])} values, dimension 0 has {len(series[0])}")
    case = np.ascontiguousarray(np.array(series, np.float64).T, np.float32)
    if np.isinf(case).any():
        raise ValueError("an infinite value")
    if np.isnan(case).any() and not header.get("missing"):
        raise ValueError("a missing value (? or nan), and the header does not say @missing true")
    if header.get("equallength"):
        length = header.get("serieslength", len(case) if first is None else len(first))
        if len(case) != length:
            raise ValueError(f"a series of length {len(case)}, but @equalLength true with length {length}")
    return case, classes.index(label.strip())


def load_japanese_vowels():
    """The JapaneseVowels speakers (UCI; Kudo, Toyama and Shimbo 1999, in the UEA multivariate archive):
    nine male speakers each uttered the Japanese vowels /ae/; every utterance is a series of 7-29
    frames of 12 LPC cepstrum coefficients, and the task is to tell the speaker.

    Returns (X_train, y_train, X_test, y_test): X_* lists of (T_i, 12) float32 arrays, time first;
    y_* int64 speakers 0-8 (the files' labels "1"-"9").  The archive's own split: 270 training
    utterances, 30 per speaker, recorded apart from the 370 test ones (per speaker 31, 35, 88, 44, 29,
    24, 40, 50, 29).  Lengths: 7-26 frames in training (4274 frames, mean 15.8), 7-29 in test (5687,
    mean 15.4).  The values lie within about [-1.9, 2.2], not normalised (per coefficient the means run
    from -0.55 to 0.87 and the standard deviations from 0.10 to 0.49).

    The data is the copy of the archive's JapaneseVowels_TRAIN/TEST.ts that the ``aeon`` package
    ships (aeon is not imported: only its files are read).
    """
    spec = importlib.util.find_spec("aeon")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the JapaneseVowels task reads the copy the aeon package ships: "
                          "pip install 'rnnkit[demo]'")
    folder = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "JapaneseVowels"
    files = [folder / f"JapaneseVowels_{split}.ts" for split in ("TRAIN", "TEST")]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"this aeon installation has no {' or '.join(missing)}")
    train, test = (read_ts(f) for f in files)
    if train.classes != test.classes:
        raise ValueError(f"the training and test files list different classes: {train.classes} and {test.classes}")
    return train.X, train.y, test.X, test.y


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


# The decoder's end-of-date symbol: an id just past DATE_TARGET_VOCAB (which stays as it was), so a model
# that writes the end has DATE_OUTPUT_SIZE outputs; CharVocab.decode_list(ids, end=DATE_END) stops there.
DATE_END = len(DATE_TARGET_VOCAB)
DATE_OUTPUT_SIZE = DATE_END + 1


def encode_dates(sources, targets, end=False):
    """make_dates' (sources, targets) as two lists of unpadded int64 id arrays: each source's
    characters in DATE_SOURCE_VOCAB ((10,) to (18,) ids) and each target's in DATE_TARGET_VOCAB ((10,)
    ids), followed by DATE_END when ``end`` is true."""
    sources, targets = list(sources), list(targets)
    if len(sources) != len(targets):
        raise ValueError(f"{len(sources)} sources but {len(targets)} targets")
    encoded = DATE_TARGET_VOCAB.encode_list(targets)
    if end:
        encoded = [np.append(ids, DATE_END) for ids in encoded]
    return DATE_SOURCE_VOCAB.encode_list(sources), encoded


def alice_text() -> str:
    """ALICE in lower case, on one line: the text the character language model learns."""
    return " ".join(ALICE.lower().split())


def alice_chapters() -> list:
    """The whole of *Alice's Adventures in Wonderland* — the twelve chapters of Project Gutenberg's
    plain-text edition (etext #11, the Millennium Fulcrum Edition 3.0; public domain), shipped
    gzipped in ``rnnkit/data/alice.txt.gz`` (147 kB of text) — as a list of (title, text) pairs, the
    text as printed (line breaks, the edition's `quotes').  Headings and the rows of asterisks
    between scenes are not part of a chapter's text."""
    import gzip
    from importlib import resources

    raw = gzip.decompress(resources.files("rnnkit").joinpath("data/alice.txt.gz").read_bytes()).decode("utf-8")
    chapters = []
    for block in raw.split("CHAPTER ")[1:]:
        number, title, body = block.split("\n", 1)[0], *block.split("\n", 1)[1].lstrip("\n").split("\n", 1)
        chapters.append((f"Chapter {number.strip()}: {title.strip()}", body.strip("\n")))
    return chapters


def alice_book(chapters=None) -> str:
    """The book's text in lower case on one line (whitespace collapsed), chapter after chapter;
    ``chapters`` picks some (1-based numbers, in the order given)."""
    every = alice_chapters()
    picked = every if chapters is None else [every[int(c) - 1] for c in chapters]
    return " ".join(" ".join(text.lower().split()) for _, text in picked)


def char_windows(text, vocab, length, stride):
    """Windows of ``length`` characters every ``stride``: ids (N, length) of the inputs and of the
    characters that follow each one (the targets of a character language model)."""
    ids = vocab.encode([text])[0]
    starts = np.arange(0, len(ids) - length, stride)
    inputs = np.stack([ids[s:s + length] for s in starts])
    return inputs, np.stack([ids[s + 1:s + length + 1] for s in starts])


SENTENCE_END = "\n"  # the target after a sentence's last character: alice_text has no newline
_CLOSERS = "\"')"
_BREAKS = (".!?", ";:", ",", "")  # where split_sentences cuts, coarsest first ("" = any space)


def split_sentences(text, min_length=1, max_length=None) -> list:
    """``text`` cut at spaces into sentences of at most ``max_length`` characters, dropping those
    shorter than ``min_length``.

    The rules: a sentence ends at a space that follows ``.``, ``!`` or ``?`` (closing quotes and
    brackets after the mark stay with it: ``late!"``).  A sentence longer than ``max_length`` is cut
    at its ``; `` and ``: `` breaks, a part still too long at its ``, `` breaks, and one still too long
    at its spaces; the parts are then joined back into as few pieces as fit within ``max_length``, as
    even in length as can be (the smallest longest piece).  Every piece keeps its
    punctuation and no space is lost: with ``min_length=1``, ``" ".join(pieces) == " ".join(text.split())``.
    """
    if not isinstance(min_length, int) or min_length < 1:
        raise ValueError(f"min_length must be a positive integer, not {min_length!r}")
    if max_length is not None and (not isinstance(max_length, int) or max_length < min_length):
        raise ValueError(f"max_length must be an integer >= min_length={min_length}, not {max_length!r}")
    words = text.split()
    limit = math.inf if max_length is None else max_length
    too_long = [w for w in words if len(w) > limit]
    if too_long:
        raise ValueError(f"max_length={max_length} is shorter than the word {too_long[0]!r}")
    pieces = []
    for sentence in _cut(words, _BREAKS[0]):
        pieces.extend(_fit(sentence, limit))
    return [" ".join(piece) for piece in pieces if len(" ".join(piece)) >= min_length]


def _cut(words, marks) -> list:
    """Lists of words, cut after each word that ends in one of ``marks`` (before closing quotes)."""
    parts, part = [], []
    for word in words:
        part.append(word)
        if not marks or word.rstrip(_CLOSERS)[-1:] in marks:
            parts.append(part)
            part = []
    return parts + [part] if part else parts


def _fit(words, limit) -> list:
    """One sentence (its words) as pieces of at most ``limit`` characters: cut into its clauses at
    the coarsest breaks that make them fit, then those joined back into as few pieces as fit, with
    the smallest longest piece."""
    if len(" ".join(words)) <= limit:
        return [words]
    parts = _clauses(words, limit, 1)
    sizes = [len(" ".join(part)) for part in parts]
    fewest = len(_pack(sizes, limit))
    low, high = max(sizes), limit  # the smallest cap on a piece that still packs them that few
    while low < high:
        middle = (low + high) // 2
        if len(_pack(sizes, middle)) <= fewest:
            high = middle
        else:
            low = middle + 1
    return [[word for part in parts[i:j] for word in part] for i, j in _pack(sizes, low)]


def _clauses(words, limit, level) -> list:
    """``words`` cut at ``_BREAKS[level]``, a part still longer than ``limit`` cut at the next level."""
    if len(" ".join(words)) <= limit:
        return [words]
    return [clause for part in _cut(words, _BREAKS[level]) for clause in _clauses(part, limit, level + 1)]


def _pack(sizes, cap) -> list:
    """(start, stop) of the consecutive groups that items of these sizes, joined by one space each,
    make when each group takes items while it stays within ``cap`` (the fewest groups there can be)."""
    groups, start, length = [], 0, sizes[0]
    for i in range(1, len(sizes)):
        if length + 1 + sizes[i] <= cap:
            length += 1 + sizes[i]
        else:
            groups.append((start, i))
            start, length = i, sizes[i]
    return groups + [(start, len(sizes))]


def alice_sentences(min_length=10, max_length=120) -> list:
    """alice_text() as sentences of 10-120 characters (by default), cut by ``split_sentences``'s rules.

    The embedded text (4698 characters) makes 45 sentences of 7-565 characters.  With the defaults
    the 10 longer than 120 are cut, and the two shorter than 10 ('oh dear!' and '"well!"') dropped:
    65 pieces of 14-117 characters, 4617 in all.  The last 15% of them (10 pieces) hold 530
    characters: little for a test set (a binomial standard error of about 2 points on a next-character
    accuracy near 35%, and neighbouring characters are far from independent).
    """
    return split_sentences(alice_text(), min_length, max_length)


def alice_vocab() -> CharVocab:
    """The characters of alice_text() and SENTENCE_END: the vocabulary of ``char_sequences``."""
    return CharVocab(alice_text() + SENTENCE_END)


def char_sequences(sentences, vocab, end=SENTENCE_END):
    """(inputs, targets) of a character language model on whole sentences: for each sentence a
    (len(sentence),) int64 array of its ids, and the ids of the character that follows each one:
    the sentence shifted by one, ended by ``end`` (by default SENTENCE_END, a newline, which no
    sentence contains; the vocabulary must have it: ``alice_vocab()``, or ``CharVocab(text + end)``)."""
    if not isinstance(end, str) or len(end) != 1:
        raise ValueError(f"end must be one character, not {end!r}")
    if end not in vocab.index:
        raise ValueError(f"the end character {end!r} is not in the vocabulary: build it with CharVocab(text + end)")
    sentences = list(sentences)
    empty = [i for i, s in enumerate(sentences) if not s]
    if empty:
        raise ValueError(f"sentence {empty[0]} is empty")
    inputs = vocab.encode_list(sentences)
    return inputs, [np.append(ids[1:], vocab.index[end]) for ids in inputs]


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
