"""The SIMD dispatch: RNNKIT_ISA forces a path; unknown or unsupported values are refused by name."""

import os
import subprocess
import sys

import pytest
import rnnkit
from rnnkit import _core

ALL = ["avx512", "avx2", "scalar"]


def run_python(code, **env):
    environment = {**os.environ, **env}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment, timeout=120)


@pytest.mark.parametrize("name", rnnkit.supported_isas())
def test_environment_variable_forces_the_path(name):
    result = run_python("import rnnkit; print(rnnkit.simd_isa())", RNNKIT_ISA=name)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == name


def test_default_is_the_best_supported_path():
    env = {k: v for k, v in os.environ.items() if k != "RNNKIT_ISA"}
    result = subprocess.run([sys.executable, "-c", "import rnnkit; print(rnnkit.simd_isa())"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.stdout.strip() == rnnkit.supported_isas()[0]


def test_unknown_environment_value_is_refused_by_name():
    result = run_python("import rnnkit; rnnkit.simd_isa()", RNNKIT_ISA="sse9")
    assert result.returncode != 0
    assert "RNNKIT_ISA" in result.stderr and "'sse9'" in result.stderr and "ValueError" in result.stderr


def test_kernels_refuse_to_run_with_a_bad_environment_value():
    code = "import numpy as np, rnnkit; rnnkit.rnn_forward(np.zeros((1,1,1)), None, np.zeros((1,1)), np.zeros((1,1)), None, None)"
    result = run_python(code, RNNKIT_ISA="avx1024")
    assert result.returncode != 0 and "'avx1024'" in result.stderr


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
