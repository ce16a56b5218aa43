"""Every Python code block of the README runs, in order, in one namespace (as a reader would paste
them into one session)."""

import importlib.util
import pathlib
import os
import re
import warnings

import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")  # (as tests/test_keras.py: no TensorFlow needed)
README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_the_readme_has_python_blocks():
    assert len(BLOCKS) >= 5


@pytest.fixture
def restore_settings():
    """The blocks change the process's SIMD path and thread count, as a reader's session would."""
    import rnnkit

    isa, threads = rnnkit.simd_isa(), rnnkit.get_num_threads()
    yield
    rnnkit.set_simd_isa(isa)
    rnnkit.set_num_threads(threads)


def test_every_python_block_runs(tmp_path, monkeypatch, restore_settings):
    monkeypatch.chdir(tmp_path)  # (blocks that save files write here)
    namespace: dict = {}
    skipped = []
    for number, block in enumerate(BLOCKS, 1):
        if "from mpi4py" in block:
            continue  # a script for mpiexec: tests/test_distributed.py runs the distributed example
        needs = [m for m in ("torch", "keras", "onnx") if re.search(rf"^\s*(import|from) {m}\b", block, re.M)]
        missing = [m for m in needs if importlib.util.find_spec(m) is None]
        if missing:
            skipped.append(f"block {number} needs {', '.join(missing)}")
            continue
        try:
            with warnings.catch_warnings():
                # (Keras' own NumPy 2 deprecation warnings, which tests/test_keras.py also ignores)
                warnings.filterwarnings("ignore", category=DeprecationWarning, module="keras")
                warnings.filterwarnings("ignore", message=".*__array__ implementation.*", category=DeprecationWarning)
                exec(compile(block, f"README.md block {number}", "exec"), namespace)
        except Exception as exc:
            pytest.fail(f"README python block {number} raised {type(exc).__name__}: {exc}\n{block}")
    if skipped:  # (every other block ran)
        pytest.skip("; ".join(skipped) + " (not installed)")
