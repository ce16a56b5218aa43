"""The demo's tasks (rnnkit.datasets) and `python -m rnnkit demo` itself, in its --quick form."""

import datetime
import importlib.util

import numpy as np
import pytest
from rnnkit import datasets as ds
from rnnkit import demo
from rnnkit.__main__ import main as rnnkit_main


def test_digits_are_split_stratified_and_scaled():
    pytest.importorskip("sklearn")
    X_train, X_test, y_train, y_test = ds.load_digits()
    assert X_train.shape == (1347, 8, 8)
    assert X_test.shape == (450, 8, 8)
    assert X_train.dtype == np.float32
    assert 0 <= X_train.min()
    assert X_train.max() == 1
    counts = np.bincount(y_test, minlength=10) / (np.bincount(y_test, minlength=10) + np.bincount(y_train, minlength=10))
    np.testing.assert_allclose(counts, 0.25, atol=0.01)
    again = ds.load_digits()
    np.testing.assert_array_equal(again[3], y_test)
    other = ds.load_digits(seed=1)
    assert not np.array_equal(other[3], y_test) or not np.array_equal(other[1], X_test)


def test_captions_spell_the_digit_names():
    captions = ds.caption_digits([0, 7, 1])
    assert captions.shape == (3, ds.CAPTION_LENGTH)
    assert ds.CAPTION_VOCAB.decode(captions) == ["zero..", "seven.", "one..."]


def test_dates_translate_to_their_iso_form():
    sources, targets = ds.make_dates(300, seed=0)
    parsers = ["%d %b %Y", "%d %B %Y", "%b %d, %Y", "%B %d, %Y", "%d.%m.%Y"]
    used = set()
    for source, target in zip(sources, targets):
        for i, fmt in enumerate(parsers):
            try:
                parsed = datetime.datetime.strptime(source, fmt).date()
            except ValueError:
                continue
            used.add(i)
            assert parsed.isoformat() == target, source
            assert 1950 <= parsed.year <= 2049
            break
        else:
            pytest.fail(f"{source!r} is in no known format")
        assert len(source) <= ds.DATE_SOURCE_LENGTH
    assert used == set(range(len(parsers)))
    ds.DATE_SOURCE_VOCAB.encode(sources, ds.DATE_SOURCE_LENGTH, pad=" ")  # every character is in the vocabulary
    ds.DATE_TARGET_VOCAB.encode(targets)


def test_char_vocab_round_trips_and_refuses_unknown_characters():
    vocab = ds.CharVocab("abc ")
    ids = vocab.encode(["ab", "c"], 3, pad=" ", pad_left=True)
    assert vocab.decode(ids) == [" ab", "  c"]
    assert vocab.one_hot(ids).shape == (2, 3, 4)
    with pytest.raises(ValueError, match="outside the vocabulary: 'z'"):
        vocab.encode(["az"])
    with pytest.raises(ValueError, match="longer than length=1"):
        vocab.encode(["ab"], 1)
    with pytest.raises(ValueError, match="no pad character"):
        vocab.encode(["a", "ab"])


def test_char_windows_predict_the_next_character():
    text = ds.alice_text()
    assert len(text) > 4000
    assert text == text.lower()
    vocab = ds.CharVocab(text)
    inputs, targets = ds.char_windows(text, vocab, 20, 7)
    assert inputs.shape == targets.shape
    assert inputs.shape[1] == 20
    np.testing.assert_array_equal(inputs[:, 1:], targets[:, :-1])
    assert vocab.decode(inputs[:1])[0] == text[:20]
    assert vocab.decode(targets[1:2])[0] == text[8:28]


def test_quick_demo_prints_the_table(capsys, threads):
    pytest.importorskip("sklearn")
    # (the threads fixture restores the thread count the demo's --threads changes)
    assert demo.main(["--quick", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    vowels = importlib.util.find_spec("aeon") is not None  # the JapaneseVowels task reads aeon's copy
    for name in ("OneToOne", "OneToMany", "ManyToOne", "ManyToMany", "Seq2Seq"):
        rows = [line for line in out.splitlines() if line.startswith(name + " ")]
        assert len(rows) == (2 if name == "ManyToOne" and vowels else 1), name
        assert rows[0].count("%") >= 3
        assert rows[0].rstrip().endswith("x")
    assert "200/100" in out
    assert "total" in out
    assert out.startswith("rnnkit demo: SIMD path")
    assert ", 1 thread " in out.splitlines()[0]
    if vowels:
        assert "1-NN DTW 94.9%" in out  # the published figure beside the held-out metric
    else:
        assert "skipping the JapaneseVowels task" in out


def test_demo_is_reached_through_python_m_rnnkit(capsys):
    with pytest.raises(SystemExit) as exit_info:
        rnnkit_main(["demo", "--help"])
    assert exit_info.value.code == 0
    assert "--quick" in capsys.readouterr().out


def test_demo_refuses_a_bad_thread_count(capsys):
    with pytest.raises(SystemExit) as exit_info:
        demo.main(["--threads", "0"])
    assert exit_info.value.code == 2
    assert "--threads: num_threads must be between 1 and" in capsys.readouterr().err
