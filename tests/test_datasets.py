"""rnnkit.datasets' variable-length tasks: the JapaneseVowels loader and its .ts parser, Alice's
sentences as character sequences, and the dates as unpadded id sequences."""

import importlib.util
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from rnnkit import datasets as ds

# aeon is found, never imported here: importing it pulls in numba (seconds), and the loader avoids that too.
needs_aeon = pytest.mark.skipif(importlib.util.find_spec("aeon") is None,
                                reason="aeon is not installed (pip install 'rnnkit[demo]'): it ships JapaneseVowels")


@needs_aeon
def test_japanese_vowels_has_the_archive_split():
    X_train, y_train, X_test, y_test = ds.load_japanese_vowels()
    assert (len(X_train), len(y_train), len(X_test), len(y_test)) == (270, 270, 370, 370)
    for X in (X_train, X_test):
        assert all(x.dtype == np.float32 and x.ndim == 2 and x.shape[1] == 12 and x.flags.c_contiguous for x in X)
    train_lengths, test_lengths = [len(x) for x in X_train], [len(x) for x in X_test]
    assert (min(train_lengths), max(train_lengths), sum(train_lengths)) == (7, 26, 4274)
    assert (min(test_lengths), max(test_lengths), sum(test_lengths)) == (7, 29, 5687)
    assert y_train.dtype == y_test.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(y_train), [30] * 9)
    np.testing.assert_array_equal(np.bincount(y_test), [31, 35, 88, 44, 29, 24, 40, 50, 29])
    # Time first: the file's first case starts "1.860936,1.891651,...:-0.207383,...:0.261557,..."
    np.testing.assert_allclose(X_train[0][0, :3], [1.860936, -0.207383, 0.261557], rtol=1e-6)
    np.testing.assert_allclose(X_train[0][1, 0], 1.891651, rtol=1e-6)
    assert len(X_train[0]) == 20
    assert y_train[0] == 0
    assert y_train[-1] == y_test[-1] == 8


@needs_aeon
def test_japanese_vowels_does_not_import_aeon():
    code = ("import sys; from rnnkit import datasets as ds; ds.load_japanese_vowels(); "
            "print(sorted(m for m in ('aeon', 'numba', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_japanese_vowels_without_aeon_says_what_to_install(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "aeon" else real_find_spec(name, *a))
    with pytest.raises(ImportError, match=r"aeon.*pip install 'rnnkit\[demo\]'"):
        ds.load_japanese_vowels()


def _ts(tmp_path, text, name="t.ts"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


GOOD = """
    # a comment, then the header (tags in any case)
    @problemName Tiny
    @timeStamps false
    @missing true
    @univariate false
    @dimensions 2
    @equalLength false
    @classLabel true b a
    @data
    1,2,3:4,5,6:a
    7,?:8,9:b
"""


def test_read_ts_reads_cases_time_first_with_labels_in_header_order(tmp_path):
    data = ds.read_ts(_ts(tmp_path, GOOD))
    assert data.name == "Tiny"
    assert data.classes == ("b", "a")
    np.testing.assert_array_equal(data.y, [1, 0])
    assert data.y.dtype == np.int64
    np.testing.assert_array_equal(data.X[0], [[1, 4], [2, 5], [3, 6]])
    assert data.X[0].dtype == np.float32
    np.testing.assert_array_equal(data.X[1], [[7, 8], [np.nan, 9]])
    X, y, classes, name = data  # a plain tuple too
    assert (len(X), len(y), classes, name) == (2, 2, ("b", "a"), "Tiny")


HEADER = "@problemName Bad\n@missing false\n@classLabel true x y\n"
MALFORMED = {
    # name: (file text, line of the error, what the error says)
    "dimensions of one case differ": (HEADER + "@data\n1,2:3,4:x\n1,2,3:4,5:y\n", 6,
                                      "dimension 1 has 2 values, dimension 0 has 3"),
    "dimension count changes": (HEADER + "@data\n1,2:3,4:x\n1,2:3,4:5,6:y\n", 6, "3 dimensions, expected 2"),
    "@dimensions contradicted": (HEADER + "@dimensions 3\n@data\n1,2:3,4:x\n", 6, "2 dimensions, expected 3"),
    "unlisted label": (HEADER + "@data\n1,2:z\n", 5, "class label 'z' is not one of @classLabel's x y"),
    "not a number": (HEADER + "@data\n1,2:x\n1,two:y\n", 6, "dimension 0 has a value that is not a number"),
    "empty value": (HEADER + "@data\n1,,2:x\n", 5, "not a number"),
    "missing value not allowed": (HEADER + "@data\n1,?:x\n", 5, "does not say @missing true"),
    "infinite value": (HEADER + "@data\n1,inf:x\n", 5, "an infinite value"),
    "no series": (HEADER + "@data\nx\n", 5, "no series before the class label"),
    "header after @data": (HEADER + "@data\n1:x\n@dimensions 1\n", 6, "a header line after @data"),
    "case before @data": (HEADER + "1:x\n@data\n", 4, "a case before the @data line"),
    "unknown tag": ("@problemName Bad\n@colour blue\n", 2, "unknown header tag @colour"),
    "tag twice": (HEADER + "@missing false\n", 4, "@missing given twice"),
    "bad flag": ("@equalLength maybe\n", 1, "takes true or false"),
    "bad count": ("@dimensions -2\n", 1, "takes a positive integer"),
    "timestamps": ("@timeStamps true\n", 1, "timestamped .ts files are not supported"),
    "unlabelled": ("@classLabel false\n", 1, "unlabelled"),
    "no labels": ("@classLabel true\n", 1, "lists no labels"),
    "label twice": ("@classLabel true x x\n", 1, "lists a label twice"),
    "regression": ("@targetLabel true\n", 1, "regression"),
    "no @classLabel": ("@problemName Bad\n@data\n", 2, "no @classLabel line"),
    "@data with a value": (HEADER + "@data now\n", 4, "@data takes no value"),
    "univariate with 2 dimensions": (HEADER + "@univariate true\n@dimensions 2\n@data\n", 6, "@univariate true but"),
    "univariate case with 2": (HEADER + "@univariate true\n@data\n1:2:x\n", 6, "2 dimensions, expected 1"),
    "length against @seriesLength": (HEADER + "@equalLength true\n@seriesLength 3\n@data\n1,2,3:x\n1,2:y\n", 8,
                                     "a series of length 2, but @equalLength true with length 3"),
    "unequal without @seriesLength": (HEADER + "@equalLength true\n@data\n1,2:x\n1:y\n", 7, "with length 2"),
}


@pytest.mark.parametrize("name", MALFORMED)
def test_read_ts_names_the_file_and_line_of_what_is_wrong(tmp_path, name):
    text, line, message = MALFORMED[name]
    path = _ts(tmp_path, text)
    with pytest.raises(ValueError, match=f"^{path}:{line}: .*{message}"):
        ds.read_ts(path)


def test_read_ts_refuses_a_file_without_data(tmp_path):
    with pytest.raises(ValueError, match=r"t\.ts: no @data line"):
        ds.read_ts(_ts(tmp_path, HEADER))
    with pytest.raises(ValueError, match=r"t\.ts: no cases after @data"):
        ds.read_ts(_ts(tmp_path, HEADER + "@data\n\n"))


def test_read_ts_accepts_unequal_lengths_when_the_header_allows_them(tmp_path):
    data = ds.read_ts(_ts(tmp_path, HEADER + "@equalLength false\n@data\n1,2,3:x\n4:y\n"))
    assert [len(x) for x in data.X] == [3, 1]
    assert data.name == "Bad"


def test_alice_sentences_cover_the_text_within_their_lengths():
    text = ds.alice_text()
    for max_length in (None, 200, 120, 60, 25):
        pieces = ds.split_sentences(text, 1, max_length)
        assert " ".join(pieces) == text, max_length
        assert max_length is None or max(map(len, pieces)) <= max_length
    whole = ds.split_sentences(text)
    assert len(whole) == 45
    assert all(s.rstrip("\"')")[-1] in ".!?" for s in whole[:-1])
    sentences = ds.alice_sentences()
    assert sentences == [s for s in ds.split_sentences(text, 1, 120) if len(s) >= 10]
    lengths = [len(s) for s in sentences]
    assert (len(sentences), min(lengths), max(lengths), sum(lengths)) == (65, 14, 117, 4617)  # as documented
    assert ds.alice_sentences(20, 150) == [s for s in ds.split_sentences(text, 1, 150) if len(s) >= 20]


def test_split_sentences_cuts_at_the_coarsest_breaks_that_fit():
    text = 'a bb, cc dd; ee ff. "gg hh!" ii'
    assert ds.split_sentences(text) == ["a bb, cc dd; ee ff.", '"gg hh!"', "ii"]
    assert ds.split_sentences(text, max_length=12) == ["a bb, cc dd;", "ee ff.", '"gg hh!"', "ii"]
    assert ds.split_sentences(text, max_length=8) == ["a bb,", "cc dd;", "ee ff.", '"gg hh!"', "ii"]
    assert ds.split_sentences(text, min_length=3, max_length=8) == ["a bb,", "cc dd;", "ee ff.", '"gg hh!"']
    # no break but spaces: as few pieces as fit, as even as can be (greedy would give "aaaa bb cc", "dddd")
    assert ds.split_sentences("aaaa bb cc dddd", max_length=10) == ["aaaa bb", "cc dddd"]
    with pytest.raises(ValueError, match="shorter than the word 'aaaa'"):
        ds.split_sentences("aaaa bb cc dddd", max_length=3)
    with pytest.raises(ValueError, match="min_length"):
        ds.split_sentences(text, min_length=0)
    with pytest.raises(ValueError, match="max_length"):
        ds.split_sentences(text, min_length=5, max_length=4)


def test_char_sequences_predict_the_next_character_then_the_end():
    vocab = ds.alice_vocab()
    assert ds.SENTENCE_END in vocab.index
    assert set(ds.alice_text() + ds.SENTENCE_END) == set(vocab.chars)
    sentences = ds.alice_sentences()
    inputs, targets = ds.char_sequences(sentences, vocab)
    assert len(inputs) == len(targets) == len(sentences)
    for sentence, x, y in zip(sentences, inputs, targets):
        assert x.dtype == y.dtype == np.int64
        assert x.shape == y.shape == (len(sentence),)
        assert vocab.decode_list([x]) == [sentence]
        assert vocab.decode_list([y]) == [sentence[1:] + ds.SENTENCE_END]
    x, y = ds.char_sequences(["ab."], ds.CharVocab("ab."), end=".")
    np.testing.assert_array_equal(x[0], [1, 2, 0])
    np.testing.assert_array_equal(y[0], [2, 0, 0])
    with pytest.raises(ValueError, match="not in the vocabulary"):
        ds.char_sequences(sentences, ds.CharVocab(ds.alice_text()))
    with pytest.raises(ValueError, match="sentence 1 is empty"):
        ds.char_sequences(["a", ""], ds.CharVocab("a\n"))


def test_dates_encode_without_padding_and_decode_back():
    sources, targets = ds.make_dates(500, seed=3)
    src, tgt = ds.encode_dates(sources, targets)
    assert {len(s) for s in src} == set(range(10, 19))  # every length from "1 may 2000" to "september 30, 2000"
    assert all(s.dtype == np.int64 and s.shape == (len(text),) for s, text in zip(src, sources))
    assert ds.DATE_SOURCE_VOCAB.decode_list(src) == sources
    assert ds.DATE_TARGET_VOCAB.decode_list(tgt) == targets
    _, ended = ds.encode_dates(sources, targets, end=True)
    assert ds.DATE_END == len(ds.DATE_TARGET_VOCAB) == 11
    assert ds.DATE_OUTPUT_SIZE == 12
    assert ds.DATE_TARGET_VOCAB.chars == "-0123456789"  # unchanged: the end is an id past it
    for plain, with_end in zip(tgt, ended):
        np.testing.assert_array_equal(with_end, np.append(plain, ds.DATE_END))
    assert ds.DATE_TARGET_VOCAB.decode_list(ended, end=ds.DATE_END) == targets
    with pytest.raises(ValueError, match="id 11 is outside the vocabulary of 11"):
        ds.DATE_TARGET_VOCAB.decode_list(ended)
    with pytest.raises(ValueError, match="2 sources but 1 targets"):
        ds.encode_dates(sources[:2], targets[:1])


def test_encode_list_matches_encode_and_refuses_unknown_characters():
    vocab = ds.CharVocab("abc")
    texts = ["abc", "cab", "bca"]
    np.testing.assert_array_equal(np.stack(vocab.encode_list(texts)), vocab.encode(texts))
    ragged = vocab.encode_list(["a", "", "cc"])
    assert [r.shape for r in ragged] == [(1,), (0,), (2,)]
    assert all(r.dtype == np.int64 for r in ragged)
    assert vocab.decode_list(ragged) == ["a", "", "cc"]
    with pytest.raises(ValueError, match="outside the vocabulary: 'z'"):
        vocab.encode_list(["ab", "az"])
    with pytest.raises(ValueError, match="1-D"):
        vocab.decode_list([np.zeros((2, 2), np.int64)])
    with pytest.raises(ValueError, match="id -1 is outside"):
        vocab.decode_list([[0, -1]])
