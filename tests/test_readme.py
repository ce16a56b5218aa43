"""Every Python code block of the README runs as it is written.

The conventions, for whoever edits README.md:

- A ```python block is code a reader can paste. The blocks run in order, in one namespace — as a reader
  pastes them into one session, so a later block may use the names an earlier one made (``np``,
  ``rnnkit``, a fitted model) — in ONE subprocess, so that a crash in the kernels fails these tests
  instead of taking pytest down with it. Each block is its own test (``test_block[line37]``: the line
  of its opening fence).
- A block that imports a package that is not installed (keras, onnx, sklearn, ...), or calls rnnkit code
  that needs one (``rnnkit.datasets.load_digits`` needs scikit-learn), is skipped, and the skip names the
  package; the blocks after it still run, and one that needs a name the skipped block would have made is
  skipped too, saying so.
- A block that imports ``mpi4py`` is a script for ``mpiexec``: it runs alone, as ``train.py`` under
  ``mpiexec -n 2``, where mpi4py and an mpiexec are installed (the ``mpi`` extra).
- A block whose first line is ``# fragment`` (followed by why) is not run, only compiled: use it for
  code that cannot run as it stands. Output, shell sessions and pseudo-code go in ```text or ```bash
  blocks, which are not Python and are not read here.
"""

import ast
import importlib.util
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import textwrap

import pytest

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
FENCE = re.compile(r"^```python\n(.*?)^```", flags=re.DOTALL | re.MULTILINE)
TIMEOUT = 600  # seconds for all the blocks together (they train small models: ~15 s on 2 cores)


def python_blocks():
    """[(line of the opening fence, code)] for every ```python block of the README."""
    text = README.read_text(encoding="utf-8")
    return [(text.count("\n", 0, match.start()) + 1, match.group(1)) for match in FENCE.finditer(text)]


BLOCKS = python_blocks()


def kind(code):
    first = code.lstrip().splitlines()[0] if code.strip() else ""
    if first.startswith("# fragment"):
        return "fragment"
    if re.search(r"^\s*(import|from) mpi4py\b", code, re.MULTILINE):
        return "mpi"
    return "session"


def imported_packages(code):
    """The top-level packages a block imports (``import a.b`` and ``from a.b import c`` give ``a``)."""
    names = []
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            names += [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module.split(".")[0])
    return list(dict.fromkeys(names))


# The subprocess: it runs the session blocks in order and writes one JSON line per block as it finishes
# it, so that a crash is pinned on the block that was running.
RUNNER = textwrap.dedent('''
    import ast, importlib.util, json, re, sys, traceback, warnings

    def missing_module(exc):
        # The package a failed import lacked, also behind rnnkit's own "pip install ..." ImportError (whose
        # context is the ModuleNotFoundError): None for any other error, which fails the block.
        while exc is not None:
            top = (getattr(exc, "name", None) or "").split(".")[0]
            if isinstance(exc, ModuleNotFoundError) and top and importlib.util.find_spec(top) is None:
                return top
            exc = exc.__cause__ or exc.__context__
        return None

    def assigned_names(code):
        names = set()
        for node in ast.walk(ast.parse(code)):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        return names

    blocks, results_path = json.load(open(sys.argv[1])), sys.argv[2]
    namespace = {"__name__": "__main__"}
    owed = {}  # a name a skipped block would have made -> why that block was skipped
    with open(results_path, "w") as results:
        for line, code, packages in blocks:
            missing = [name for name in packages if importlib.util.find_spec(name) is None]
            result = {"status": "ok"}
            if missing:
                result = {"status": "skip", "detail": "needs " + " and ".join(missing) + ", which is not installed"}
            else:
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("error")  # (as pytest.ini's filterwarnings)
                        # Keras' own NumPy 2 deprecation warnings, which tests/test_keras.py also ignores
                        warnings.filterwarnings("ignore", category=DeprecationWarning, module="keras")
                        warnings.filterwarnings("ignore", message=".*__array__ implementation.*",
                                                category=DeprecationWarning)
                        exec(compile(code, f"README.md, the block at line {line}", "exec"), namespace)
                except BaseException as exc:
                    name = re.search(r"name '(\\w+)' is not defined", str(exc)) if isinstance(exc, NameError) else None
                    if missing_module(exc):
                        result = {"status": "skip", "detail": f"needs {missing_module(exc)}, which is not installed"}
                    elif name and name[1] in owed:
                        result = {"status": "skip", "detail": f"uses {name[1]} from {owed[name[1]]}"}
                    else:
                        result = {"status": "fail", "detail": traceback.format_exc()}
            if result["status"] == "skip":
                owed.update(dict.fromkeys(assigned_names(code) - set(namespace),
                                          f"the block at line {line}, which {result['detail']}"))
            results.write(json.dumps({"line": line, **result}) + "\\n")
            results.flush()
''')


def run_blocks(blocks, work):
    """Runs [(line, code, packages)] in order in one subprocess: {line: {"status", "detail"}}."""
    (work / "blocks.json").write_text(json.dumps(blocks))
    (work / "runner.py").write_text(RUNNER)
    env = {**os.environ, "KERAS_BACKEND": "torch", "PYTHONFAULTHANDLER": "1"}  # (Keras on torch: no TensorFlow)
    try:
        process = subprocess.run([sys.executable, "runner.py", "blocks.json", "results.jsonl"], cwd=work, env=env,
                                 capture_output=True, text=True, timeout=TIMEOUT, check=False)
        ended = f"exit status {process.returncode}" if process.returncode >= 0 else \
            f"signal {signal.Signals(-process.returncode).name}"
        output = process.stderr[-3000:]
    except subprocess.TimeoutExpired as exc:
        ended, output = f"still running after {TIMEOUT} s", (exc.stderr or b"")[-3000:]
    lines = (work / "results.jsonl").read_text().splitlines() if (work / "results.jsonl").exists() else []
    results = {entry["line"]: entry for entry in map(json.loads, lines)}
    for line, _, _ in blocks:  # the first block without a result is the one that was running
        if line not in results:
            results[line] = {"status": "fail", "detail": f"the subprocess ended ({ended}) in this block:\n{output}"}
            break
    return results


@pytest.fixture(scope="module")
def session_results(tmp_path_factory):
    blocks = [(line, code, imported_packages(code)) for line, code in BLOCKS if kind(code) == "session"]
    return run_blocks(blocks, tmp_path_factory.mktemp("readme"))


def test_the_readme_has_python_blocks():
    assert len(BLOCKS) >= 5
    assert any(kind(code) == "session" for _, code in BLOCKS)


@pytest.mark.parametrize(("line", "code"), BLOCKS, ids=[f"line{line}" for line, _ in BLOCKS])
def test_block(line, code, session_results, tmp_path):
    what = kind(code)
    compile(code, f"README.md, the block at line {line}", "exec")  # every block is valid Python
    if what == "fragment":
        return
    if what == "mpi":
        return run_under_mpiexec(code, tmp_path)
    result = session_results.get(line)
    if result is None:
        pytest.fail(f"README block at line {line} did not run: an earlier block ended the subprocess")
    if result["status"] == "skip":
        pytest.skip(f"README block at line {line} {result['detail']}")
    if result["status"] == "fail":
        pytest.fail(f"README block at line {line} failed:\n{code}\n{result['detail']}", pytrace=False)


def run_under_mpiexec(code, work):
    beside = pathlib.Path(sys.executable).parent / "mpiexec"
    mpiexec = str(beside) if beside.exists() else shutil.which("mpiexec")
    if importlib.util.find_spec("mpi4py") is None or mpiexec is None:
        pytest.skip("a script for mpiexec: needs mpi4py and an mpiexec, which are not installed (pip install '.[mpi]')")
    (work / "train.py").write_text(code)
    process = subprocess.Popen([mpiexec, "-n", "2", sys.executable, "train.py"], cwd=work, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        _, stderr = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # (every rank, not only mpiexec)
        process.communicate()
        pytest.fail("the README's mpiexec script still ran after 120 s")
    assert process.returncode == 0, f"mpiexec -n 2 python train.py:\n{stderr[-3000:]}"


def test_a_crash_is_pinned_on_its_block(tmp_path):
    """The harness itself: a block that kills its process fails that block (and not pytest); the next never ran."""
    crash = "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n"
    results = run_blocks([(1, "x = 1\n", []), (5, crash, []), (9, "y = x\n", [])], tmp_path)
    assert results[1]["status"] == "ok"
    assert results[5]["status"] == "fail"
    assert "signal SIGSEGV" in results[5]["detail"]
    assert 9 not in results


def test_a_missing_package_skips_its_block_and_those_that_need_its_names(tmp_path):
    guarded = ("try:\n    import not_a_package_here\n"
               "except ImportError:\n    raise ImportError('pip install it') from None\n")
    results = run_blocks([(1, "import not_a_package_here\nZ = 1\n", ["not_a_package_here"]), (2, "print(Z)\n", []),
                          (3, guarded, []), (4, "raise ImportError('a real error')\n", []), (5, "print(W)\n", [])],
                         tmp_path)
    assert results[1] == {"line": 1, "status": "skip", "detail": "needs not_a_package_here, which is not installed"}
    assert results[2]["status"] == "skip"
    assert "uses Z from the block at line 1" in results[2]["detail"]
    assert results[3]["status"] == "skip"
    assert "not_a_package_here" in results[3]["detail"]
    assert results[4]["status"] == "fail"
    assert "a real error" in results[4]["detail"]
    assert results[5]["status"] == "fail"
    assert "NameError" in results[5]["detail"]


def test_missing_packages_are_named():
    assert imported_packages("import numpy as np\nfrom sklearn.pipeline import make_pipeline\nimport os.path\n") == \
        ["numpy", "sklearn", "os"]
