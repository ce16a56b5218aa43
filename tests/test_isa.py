"""The SIMD dispatch: RNNKIT_ISA forces a path; unknown or unsupported values are refused by name, at import."""

import os
import subprocess
import sys

import pytest
import rnnkit
from rnnkit import _core

ALL = ["avx512", "avx2", "scalar"]


def run_python(code, **env):
    environment = {**os.environ, **env}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment, timeout=120,
                          check=False)


@pytest.mark.parametrize("name", rnnkit.supported_isas())
def test_environment_variable_forces_the_path(name):
    result = run_python("import rnnkit; print(rnnkit.simd_isa())", RNNKIT_ISA=name)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == name


def test_default_is_the_best_supported_path():
    env = {k: v for k, v in os.environ.items() if k != "RNNKIT_ISA"}
    result = subprocess.run([sys.executable, "-c", "import rnnkit; print(rnnkit.simd_isa())"],
                            capture_output=True, text=True, env=env, timeout=120, check=False)
    assert result.stdout.strip() == rnnkit.supported_isas()[0]


def one_line_refusal(result, value):
    """The refusal's message: one line naming the value and the paths this machine runs."""
    assert result.returncode != 0
    message = result.stderr.strip().splitlines()[-1]
    assert f"RNNKIT_ISA='{value}'" in message, result.stderr
    assert all(name in message for name in rnnkit.supported_isas()), message
    return message


def test_unknown_environment_value_is_refused_at_import():
    result = run_python("import rnnkit", RNNKIT_ISA="sse9")
    message = one_line_refusal(result, "sse9")
    assert message.startswith("rnnkit.runtime.ISAEnvironmentError: ")
    assert "expected one of avx512, avx2, scalar" in message
    assert issubclass(rnnkit.runtime.ISAEnvironmentError, RuntimeError)


def test_a_path_this_cpu_lacks_is_refused_at_import():
    unsupported = [name for name in ALL if name not in rnnkit.supported_isas()]
    if not unsupported:
        pytest.skip(f"this CPU and build run every path ({', '.join(ALL)}): none to refuse")
    message = one_line_refusal(run_python("import rnnkit", RNNKIT_ISA=unsupported[0]), unsupported[0])
    reason = "not supported by this CPU" if unsupported[0] in _core.compiled_isas() else "not compiled into this build"
    assert reason in message


@pytest.mark.parametrize(("value", "command"), [("sse9", ["rnnkit", "info"]), ("AVX2", ["rnnkit", "info"]),
                                               ("avx1024", ["rnnkit.bench", "--help"])])
def test_the_command_line_refuses_a_bad_value_in_one_line(value, command):
    """`python -m rnnkit info` imports the package before its own code runs: still no traceback."""
    result = subprocess.run([sys.executable, "-m", *command], capture_output=True, text=True,
                            env={**os.environ, "RNNKIT_ISA": value}, timeout=120, check=False)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert f"RNNKIT_ISA='{value}'" in result.stderr


@pytest.mark.parametrize(("argv", "expected"), [(["info", "--threads", "2"], "info takes no arguments"),
                                                (["infos"], "unknown command 'infos'")])
def test_command_line_user_errors_are_one_line_and_status_2(argv, expected):
    result = subprocess.run([sys.executable, "-m", "rnnkit", *argv], capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_info_prints_the_installation():
    result = subprocess.run([sys.executable, "-m", "rnnkit", "info"], capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert f"version: {rnnkit.__version__}\nsimd_isa: " in result.stdout


@pytest.mark.parametrize(("requested", "avx2", "avx512", "expected"), [
    ("", True, True, "avx512"),
    ("", True, False, "avx2"),
    ("", False, False, "scalar"),
    ("scalar", True, True, "scalar"),
    ("avx2", True, True, "avx2"),
])
def test_selection_logic(requested, avx2, avx512, expected):
    compiled = _core.compiled_isas()
    if requested == "":  # the best compiled path the CPU runs
        expected = next(name for name in ALL[ALL.index(expected):] if name in compiled)
    elif expected not in compiled:
        with pytest.raises(ValueError, match="is not compiled into this build"):
            _core._select_isa(requested, avx2, avx512)
        return
    assert _core._select_isa(requested, avx2, avx512) == expected


@pytest.mark.parametrize(("requested", "avx2", "avx512"), [("avx512", True, False), ("avx2", False, False),
                                                           ("avx512", False, False)])
def test_paths_the_cpu_lacks_are_refused(requested, avx2, avx512):
    reason = "is not supported by this CPU" if requested in _core.compiled_isas() else "is not compiled into this build"
    with pytest.raises(ValueError, match=f"'{requested}' {reason}"):
        _core._select_isa(requested, avx2, avx512)


def test_set_simd_isa_refuses_unknown_names_and_keeps_the_current_path():
    before = rnnkit.simd_isa()
    with pytest.raises(ValueError, match="'neon'"):
        rnnkit.set_simd_isa("neon")
    with pytest.raises(TypeError):
        rnnkit.set_simd_isa(2)
    assert rnnkit.simd_isa() == before


def test_supported_paths_are_known_and_include_the_portable_one():
    assert set(rnnkit.supported_isas()) <= set(ALL)
    assert "scalar" in rnnkit.supported_isas()
    assert rnnkit.info()["simd_isa"] in rnnkit.supported_isas()
