"""The demo's tasks (rnnkit.datasets) and `python -m rnnkit demo` itself, in its --quick form: its table,
its live progress (rnnkit._progress), its report and its exit status."""

import datetime
import importlib.util
import io
import subprocess
import sys

import numpy as np
import pytest
from rnnkit import _progress, demo
from rnnkit import datasets as ds
from rnnkit.__main__ import main as rnnkit_main
from rnnkit._progress import FitProgress, choose_style
from rnnkit.models import OneToOne


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


def test_digits_are_scikit_learns_without_importing_it():
    """load_digits reads scikit-learn's data file itself (importing scikit-learn takes seconds at a cold
    start): the same pixels and labels as scikit-learn's load_digits, and sklearn is never imported."""
    pytest.importorskip("sklearn")
    code = ("import sys; from rnnkit import datasets as ds; import numpy as np; pixels, labels = ds._sklearn_digits(); "
            "print('sklearn' in sys.modules, pixels.shape, labels.shape)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0] == "False"
    from sklearn.datasets import load_digits as sklearn_digits
    digits = sklearn_digits()
    pixels, labels = ds._sklearn_digits()
    np.testing.assert_array_equal(pixels, digits.data)
    np.testing.assert_array_equal(labels, digits.target)


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


def test_quick_demo_prints_the_table_says_it_has_no_targets_and_writes_the_report(capsys, threads, tmp_path):
    pytest.importorskip("sklearn")
    # (the threads fixture restores the thread count the demo's --threads changes)
    report = tmp_path / "report.png"
    assert demo.main(["--quick", "--threads", "1", "--report", str(report), "--progress", "epochs"]) == 0
    out = capsys.readouterr().out
    vowels = importlib.util.find_spec("aeon") is not None  # the JapaneseVowels task reads aeon's copy
    for name in ("OneToOne", "OneToMany", "ManyToOne", "ManyToMany", "Seq2Seq"):
        rows = [line for line in out.splitlines() if line.startswith(name + " ")]
        assert len(rows) == (2 if name == "ManyToOne" and vowels else 1), name
        assert rows[0].count("%") >= 2
        assert rows[0].rstrip().endswith("x")
        # a smoke run has no targets, and its table says so instead of marking every row MISS
        assert f" {demo.QUICK_TARGET} " in rows[0]
        assert "MISS" not in rows[0]
    # the progress: a line per model at least (its last epoch, where nothing is left to do; a slow
    # build also prints lines every 2 s inside an epoch), each model's ending "done"
    progress = [line for line in out.splitlines() if line.startswith("  [") and "epoch 1/1" in line]
    done = [line for line in progress if line.endswith(", done")]
    models = 6 if vowels else 5
    assert len(done) == models, progress
    assert [line.split("]")[0] for line in done] == [f"  [{i}/{models}" for i in range(1, models + 1)]
    assert all("(100%)" in line for line in done)
    assert "200/100" in out
    assert "total" in out
    assert "--quick has no targets" in out
    assert out.startswith("rnnkit demo: SIMD path")
    assert ", 1 thread " in out.splitlines()[0]
    if vowels:
        assert "1-NN DTW 94.9%" in out  # the published figure beside the held-out metric
    else:
        assert "skipping the JapaneseVowels task" in out
    notes = tmp_path / "report.md"
    text = notes.read_text(encoding="utf-8")
    assert f"report: {report}" in out if importlib.util.find_spec("matplotlib") else f"report: {notes}" in out
    assert "| topology | cell | task |" in text
    assert "## Learning curves" in text
    assert "dates:" in text  # the translated dates are among the examples
    assert "'the queen said' -> ..." in text  # and text the language model writes
    if importlib.util.find_spec("matplotlib"):
        assert report.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert "![learning curves and predictions](report.png)" in text


def _impossible_task():
    """One tiny task whose target cannot be reached (an accuracy above 100%)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 3)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    return demo.Task(demo.OneToOne, "tanh", "tiny", "accuracy", 1.01, (X, y, X, y), 4, 3, 2, {"epochs": 2})


def test_a_missed_target_fails_the_full_run_and_not_the_quick_one(capsys, monkeypatch):
    monkeypatch.setattr(demo, "tasks", lambda seed=0, notes=None: [_impossible_task()])
    assert demo.main(["--no-report", "--progress", "none"]) == 1
    out = capsys.readouterr().out
    assert "MISS>=101%" in out
    assert "missed the target: OneToOne tanh" in out
    monkeypatch.setattr(demo, "tasks", lambda seed=0, notes=None: [_impossible_task()])
    assert demo.main(["--quick", "--no-report", "--progress", "none"]) == 0
    out = capsys.readouterr().out
    assert "MISS" not in out
    assert "--quick has no targets" in out


def test_the_report_without_matplotlib_is_markdown_and_says_so(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(demo, "tasks", lambda seed=0, notes=None: [_impossible_task()])
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    demo.main(["--quick", "--progress", "none", "--report", str(tmp_path / "r.png")])
    out = capsys.readouterr().out
    assert f"report: {tmp_path / 'r.md'} (no PNG: matplotlib is not installed" in out
    assert not (tmp_path / "r.png").exists()
    assert "OneToOne tanh, tiny: " in (tmp_path / "r.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(("path", "message"), [("report.txt", "expected a path ending in .png"),
                                               ("no/such/folder/r.png", "does not exist")])
def test_a_bad_report_path_is_refused_before_training(path, message, capsys, monkeypatch):
    monkeypatch.setattr(demo, "tasks", lambda *a, **k: pytest.fail("trained before checking --report"))
    with pytest.raises(SystemExit) as exit_info:
        demo.main(["--report", path])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def _fit_with_progress(style, stream, epochs=3, samples=50, batch_size=8):
    model = OneToOne(3, 4, 2, seed=0)
    X = np.random.default_rng(0).standard_normal((samples, 3)).astype(np.float32)
    progress = FitProgress("[1/1] tiny", epochs, -(-samples // batch_size), style, stream)
    model.fit(X, (X[:, 0] > 0).astype(int), epochs=epochs, batch_size=batch_size, verbose=0, callbacks=[progress])
    progress.note("scoring")
    progress.close()
    return progress


def test_progress_styles(monkeypatch):
    assert choose_style("auto", io.StringIO()) == "epochs"  # a log file, a pipe: whole lines
    assert choose_style("auto", _Terminal()) == ("bar" if importlib.util.find_spec("tqdm") else "line")
    with pytest.raises(ValueError, match="style must be one of"):
        choose_style("fancy")

    lines = io.StringIO()
    progress = _fit_with_progress("epochs", lines)
    assert progress.done == progress.total == 3 * 7  # every batch of every epoch was seen
    text = lines.getvalue()
    assert "\r" not in text
    assert "[1/1] tiny: epoch 1/3 loss " in text  # the first epoch, and ...
    assert "[1/1] tiny: epoch 3/3 loss " in text  # ... the last, whatever the time between them
    assert "(100%)" in text
    assert text.rstrip().endswith("done")
    assert "left" in text  # the lines before the last say how long is left

    line = _Terminal()
    _fit_with_progress("line", line)
    text = line.getvalue()
    assert "\r[1/1] tiny: epoch 3/3" in text
    assert "scoring" in text
    assert text.endswith("\r")  # close() cleared the line for the table row that follows
    assert "\n" not in text

    if importlib.util.find_spec("tqdm"):
        bar = _Terminal()
        _fit_with_progress("bar", bar)
        assert "[1/1] tiny" in bar.getvalue()
    monkeypatch.setitem(sys.modules, "tqdm", None)  # without tqdm a terminal gets the line
    assert choose_style("auto", _Terminal()) == "line"
    assert choose_style("bar", _Terminal()) == "line"


def test_epoch_lines_come_at_most_every_few_seconds_but_always_for_the_last(monkeypatch):
    monkeypatch.setattr(_progress, "LINE_SECONDS", 3600.0)
    lines = io.StringIO()
    _fit_with_progress("epochs", lines, epochs=5)
    epochs = [line for line in lines.getvalue().splitlines() if "epoch" in line]
    assert [line.split("epoch ")[1][:3] for line in epochs] == ["1/5", "5/5"]


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
