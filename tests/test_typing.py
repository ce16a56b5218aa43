"""rnnkit's type stubs: mypy --strict accepts a user's script and refuses a wrong call, and the stubs say
what the modules have — the same public names, and every function's parameters by name, kind and default —
so that a signature changed in a .py file fails here instead of lying to type checkers.

The stubs (python/rnnkit/*.pyi) stand beside the modules they describe: mypy reads a .pyi in place of the
.py of the same name, so every public name of such a module must be in its stub.
"""

import ast
import importlib
import inspect
import os
import pathlib
import re
import shutil
import site
import subprocess
import sys
import textwrap

import pytest
import rnnkit

PACKAGE = pathlib.Path(rnnkit.__file__).resolve().parent
STUB_ONLY = {"_typing"}  # type aliases for the stubs, no module at run time
STUBS = sorted(path for path in PACKAGE.glob("*.pyi"))

USER_SCRIPT = '''
from pathlib import Path

import numpy as np
import numpy.typing as npt

import rnnkit
from rnnkit import ManyToOne, Model, optim
from rnnkit.callbacks import EarlyStopping
from rnnkit.datasets import CharVocab


def train(path: Path) -> float:
    rng = np.random.default_rng(0)
    X: npt.NDArray[np.float32] = rng.standard_normal((64, 12, 4)).astype(np.float32)
    y = (X[:, :, 0].sum(axis=1) > 0).astype(np.int64)
    model = ManyToOne(4, 16, 2, cell="gru", seed=0)
    model.fit(X, y, epochs=2, batch_size=16, optimizer=optim.Adam(lr=1e-2), schedule=optim.CosineLR(2),
              callbacks=[EarlyStopping(monitor="loss", patience=1)], verbose=0)
    losses: list[float] = model.history_["loss"]
    labels = model.predict(X)
    model.save(path)
    same = Model.load(path)
    assert np.array_equal(same.predict(X), labels)
    layer = rnnkit.RNN(4, 8, cell="lstm", batch_first=True, seed=0)
    out, (h_n, c_n) = layer(X)
    dx, _ = layer.backward(np.ones_like(out))
    x = np.ascontiguousarray(X.transpose(1, 0, 2))
    w_ih = rng.standard_normal((8, 4)).astype(np.float32)
    w_hh = rng.standard_normal((8, 8)).astype(np.float32)
    ys, h_last, cache = rnnkit.rnn_forward(x, None, w_ih, w_hh, None, None, nonlinearity="tanh")
    dx_f, dh0, dw_ih, dw_hh, db_ih, db_hh = rnnkit.rnn_backward(cache, np.ones_like(ys), None)
    y_plan, h_plan = rnnkit.Plan("tanh", w_ih, w_hh).forward(x)
    padded, lengths = rnnkit.pad_sequences([X[0], X[1, :5]])
    rnnkit.set_num_threads(1)
    isa: str = rnnkit.simd_isa()
    ids = CharVocab("abc").encode(["abc", "cab"])
    print(isa, losses, dx.shape, h_n.shape, c_n.shape, dx_f.shape, h_last.shape, y_plan.shape, lengths,
          db_ih is None, ids.shape)
    return model.score(X, y) + float(padded.sum())
'''

# Each line is a mistake the stubs must catch (and, at run time, rnnkit too).
WRONG_CALLS = '''
import numpy as np
import rnnkit

model = rnnkit.ManyToOne(4, 16, 2)
model.fit(np.zeros((2, 3, 4)), np.zeros(2), epochs="2")
rnnkit.set_num_threads("2")
rnnkit.RNN(4, 8, cel="lstm")
'''


def mypy_environment():
    """The environment mypy needs to find this rnnkit: an editable install (an import hook mypy cannot follow)
    needs the package's parent folder on MYPYPATH; an installed one is found beside mypy, in site-packages
    (where MYPYPATH must not point)."""
    parent = str(PACKAGE.parent)
    installed = {os.path.realpath(p) for p in [*site.getsitepackages(), site.getusersitepackages()]}
    if os.path.realpath(parent) in installed:
        return dict(os.environ)
    return {**os.environ, "MYPYPATH": parent}


@pytest.fixture(scope="module")
def mypy_output(tmp_path_factory):
    """mypy --strict on the user's script, the wrong calls and the stubs themselves, in one run (~10 s):
    ({file: [(line, message)]}, the output); "other" holds errors elsewhere (in a stub)."""
    if importlib.util.find_spec("mypy") is None:  # (run as sys.executable -m mypy: another venv's mypy on PATH would not do)
        pytest.skip("mypy is not installed (pip install mypy, or the test-all extra)")
    work = tmp_path_factory.mktemp("typing")
    (work / "user_script.py").write_text(USER_SCRIPT)
    (work / "wrong_calls.py").write_text(WRONG_CALLS)
    # rnnkit's own modules are not the user's code: silent, as mypy treats any installed package
    (work / "mypy.ini").write_text("[mypy]\nstrict = True\n\n[mypy-rnnkit.*]\nfollow_imports = silent\n")
    result = subprocess.run([sys.executable, "-m", "mypy", "--config-file", "mypy.ini", "--no-incremental",
                             "--python-version", f"{sys.version_info.major}.{sys.version_info.minor}",
                             # (all by module name, as mypy takes files or modules, not both: the stubs are
                             # then found as the imports find them)
                             "-m", "user_script", "-m", "wrong_calls",
                             *(arg for stub in STUBS for arg in ("-m", module_of(stub)))],
                            cwd=work, env=mypy_environment(), capture_output=True, text=True, timeout=300, check=False)
    errors = {}
    for line in result.stdout.splitlines():
        match = re.match(r"(\w+\.py):(\d+): error: (.*)", line)
        if match:
            errors.setdefault(match[1], []).append((int(match[2]), match[3]))
        elif ": error:" in line:
            errors.setdefault("other", []).append((0, line))
    return errors, result.stdout + result.stderr


def test_mypy_strict_accepts_a_users_script_and_the_stubs(mypy_output):
    errors, output = mypy_output
    assert re.search(r"^Found 3 errors in 1 file \(checked \d+ source files\)$", output, re.MULTILINE), output
    assert "user_script.py" not in errors, output
    assert "other" not in errors, output


def test_mypy_strict_refuses_wrong_calls(mypy_output):
    """A check that cannot fail is worse than none: these three lines must be errors, so the stubs are read."""
    errors, output = mypy_output
    lines = {line for line, _ in errors.get("wrong_calls.py", [])}
    assert lines == {6, 7, 8}, output


def test_the_user_script_runs(tmp_path):
    """The script mypy checks is a real one."""
    namespace = {}
    exec(compile(USER_SCRIPT, "user_script.py", "exec"), namespace)  # noqa: S102 (the script itself, run)
    assert isinstance(namespace["train"](tmp_path / "model.npz"), float)


# ---- the stubs against the modules --------------------------------------------------------------------

def stub_id(path):
    return path.stem


def module_of(stub):
    return "rnnkit" if stub.stem == "__init__" else f"rnnkit.{stub.stem}"


def stub_all(tree):
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            return ast.literal_eval(node.value)
    return None


def stub_names(tree):
    """Every name a stub defines at module level (functions, classes, annotated or assigned names, imports)."""
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign):
            names.add(node.target.id)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return names


def test_every_public_module_with_a_stub_is_checked():
    assert {stub.stem for stub in STUBS} >= {"__init__", "models", "layers", "functional", "optim", "callbacks",
                                             "runtime", "sequences", "embedding", "plan", "_core"}


@pytest.mark.parametrize("stub", [s for s in STUBS if s.stem not in STUB_ONLY], ids=stub_id)
def test_a_stub_names_what_its_module_exports(stub):
    tree = ast.parse(stub.read_text())
    module = importlib.import_module(module_of(stub))
    if stub.stem == "_core":  # (private and compiled: the stub names a subset, each as the bindings do)
        missing = stub_names(tree) - set(dir(module)) - {"Any", "np", "npt", "__getattr__"}
        assert not missing, f"_core.pyi names what rnnkit._core lacks: {sorted(missing)}"
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name != "__getattr__":
                # pybind11 writes each function's signature as the first line of its __doc__
                bound = re.match(rf"{node.name}\((.*)\) ->", getattr(module, node.name).__doc__ or "")
                assert bound, f"rnnkit._core.{node.name} has no pybind11 signature line"
                names = [part.split(":")[0].strip() for part in bound[1].split(", ") if part]
                assert [arg.arg for arg in node.args.args] == names, f"_core.pyi: {node.name}'s parameters differ"
        return
    runtime_all = getattr(module, "__all__", None)
    assert runtime_all is not None, f"{module.__name__} has a stub but no __all__"
    assert sorted(stub_all(tree) or []) == sorted(runtime_all), f"{stub.name}'s __all__ differs from the module's"
    missing = set(runtime_all) - stub_names(tree)
    assert not missing, f"{stub.name} lacks {sorted(missing)}, which {module.__name__}.__all__ names"


def parameters_of_stub(function):
    """[(name, kind, default)] of a stub's def; default is the literal, ``...`` or None (no default)."""
    args = function.args
    positional = [*args.posonlyargs, *args.args]
    defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    params = []
    for index, (arg, default) in enumerate(zip(positional, defaults)):
        kind = "POSITIONAL_ONLY" if index < len(args.posonlyargs) else "POSITIONAL_OR_KEYWORD"
        params.append((arg.arg, kind, default))
    if args.vararg:
        params.append((args.vararg.arg, "VAR_POSITIONAL", None))
    params += [(arg.arg, "KEYWORD_ONLY", default) for arg, default in zip(args.kwonlyargs, args.kw_defaults)]
    if args.kwarg:
        params.append((args.kwarg.arg, "VAR_KEYWORD", None))
    return params


def compare(where, stub_function, runtime):
    """Parameters by name and kind, and defaults: present alike (except in an @overload, whose variants may
    require what the function defaults, as ``training: Literal[False]``), and equal where the stub gives one."""
    try:
        signature = inspect.signature(runtime)
    except (TypeError, ValueError):
        return  # (a builtin without a signature)
    got = parameters_of_stub(stub_function)
    overload = any(getattr(d, "id", None) == "overload" for d in stub_function.decorator_list)
    want = [(p.name, p.kind.name) for p in signature.parameters.values()]
    assert [(name, kind) for name, kind, _ in got] == want, f"{where}: the stub's parameters differ from {signature}"
    for (name, _, stub_default), parameter in zip(got, signature.parameters.values()):
        runtime_has = parameter.default is not inspect.Parameter.empty
        if stub_default is None and overload:
            continue
        assert (stub_default is not None) == runtime_has, f"{where}: {name}'s default differs (runtime {signature})"
        if stub_default is not None and not (isinstance(stub_default, ast.Constant) and stub_default.value is ...):
            try:
                value = ast.literal_eval(stub_default)
            except ValueError:
                continue
            assert value == parameter.default, \
                f"{where}: {name}={value!r} in the stub, {parameter.default!r} in the code"


def definitions(stub):
    """(qualified name, the stub's def, the function in the code) for every def of a stub (methods: as the class
    holds them, so self and cls are compared too)."""
    module = importlib.import_module(module_of(stub))
    for node in ast.parse(stub.read_text()).body:
        if isinstance(node, ast.FunctionDef) and hasattr(module, node.name):
            yield node.name, node, getattr(module, node.name)
        elif isinstance(node, ast.ClassDef) and hasattr(module, node.name):
            cls = getattr(module, node.name)
            for item in node.body:
                if not isinstance(item, ast.FunctionDef):
                    continue
                decorators = {getattr(d, "id", getattr(d, "attr", None)) for d in item.decorator_list}
                if decorators & {"property", "setter"} or (item.name.startswith("_") and item.name != "__init__"):
                    continue
                assert hasattr(cls, item.name), f"{stub.name}: {node.name}.{item.name} is not in the code"
                runtime = inspect.getattr_static(cls, item.name)
                if isinstance(runtime, (classmethod, staticmethod)):
                    runtime = runtime.__func__
                yield f"{node.name}.{item.name}", item, runtime
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
            pytest.fail(f"{stub.name} defines {node.name}, which {module.__name__} lacks")


@pytest.mark.parametrize("stub", [s for s in STUBS if s.stem not in STUB_ONLY | {"_core"}], ids=stub_id)
def test_every_stub_signature_matches_the_code(stub):
    for where, function, runtime in definitions(stub):
        compare(f"{stub.name}: {where}", function, runtime)


def test_the_comparison_sees_a_drift():
    """The checker itself: a stub whose parameter was renamed, or whose default changed, is refused."""
    def fit(self, X, Y, *, epochs=10):
        pass

    for stub in ("def fit(self, X, Y, *, epoch: int = 10) -> None: ...",
                 "def fit(self, X, Y, *, epochs: int = 5) -> None: ...",
                 "def fit(self, X, Y, epochs: int = 10) -> None: ..."):
        with pytest.raises(AssertionError):
            compare("fit", ast.parse(textwrap.dedent(stub)).body[0], fit)
    compare("fit", ast.parse("def fit(self, X, Y, *, epochs: int = 10) -> None: ...").body[0], fit)
