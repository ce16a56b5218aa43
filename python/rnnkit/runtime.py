"""Threads and SIMD paths of the compiled kernels."""

from __future__ import annotations

import os
import sys
import warnings

from . import _core
from ._validation import check_num_threads

__all__ = ["get_num_threads", "info", "set_num_threads", "set_simd_isa", "simd_isa", "supported_isas"]

KNOWN_ISAS = ("avx512", "avx2", "scalar")

# Whether this process chose its thread count with set_num_threads (rnnkit.distributed then keeps it
# instead of giving each rank its share of the node's cores).
_num_threads_set = False


def set_num_threads(n: int) -> None:
    """Set the number of OpenMP threads rnnkit's kernels use (1 <= n <= 1024).

    It is rnnkit's own setting: NumPy's BLAS and other OpenMP users are not affected.  The default is
    OpenMP's (OMP_NUM_THREADS, else the CPUs this process may run on).  Results are bitwise identical
    for every thread count.
    """
    n = check_num_threads(n)
    if not 1 <= n <= _core.MAX_THREADS:
        raise ValueError(f"num_threads must be between 1 and {_core.MAX_THREADS}, got {n}")
    global _num_threads_set
    _core.set_num_threads(n)
    _num_threads_set = True


def get_num_threads() -> int:
    """The number of threads rnnkit's kernels use."""
    return _core.get_num_threads()


def simd_isa() -> str:
    """The SIMD path in use: "avx512", "avx2" or "scalar".

    Chosen when rnnkit is imported: the RNNKIT_ISA environment variable if set (``import rnnkit``
    refuses an unknown or unsupported value, naming it: see check_isa_environment), else the best path
    this CPU supports.
    """
    return _core.simd_isa()


def set_simd_isa(name: str) -> None:
    """Force a SIMD path ("avx512", "avx2" or "scalar") for this process, as RNNKIT_ISA does."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    if name not in KNOWN_ISAS:
        raise ValueError(f"unknown SIMD path {name!r}: expected one of avx512, avx2, scalar")
    _core.set_simd_isa(name)


def supported_isas() -> list:
    """The SIMD paths this build and this CPU can run, best first."""
    return list(_core.supported_isas())


def info() -> dict:
    """Version, SIMD paths, and threads of this installation ("threads": False in a build without them;
    "openmp_runtime": the OpenMP runtime whose threads rnnkit.torch's training calls take as helpers —
    torch's, once rnnkit.torch is imported —, None when every call runs on rnnkit's own pool)."""
    from . import __version__

    return {
        "version": __version__,
        "simd_isa": simd_isa(),
        "supported_isas": supported_isas(),
        "compiled_isas": list(_core.compiled_isas()),
        "num_threads": get_num_threads(),
        "threads": _core.threads_enabled(),
        "openmp_runtime": _core._openmp_threads() or None,
    }


class ISAEnvironmentError(RuntimeError):
    """RNNKIT_ISA names a SIMD path that this build on this CPU cannot run (raised by ``import rnnkit``)."""


def check_threads_environment() -> None:
    """Warn at ``import rnnkit`` when RNNKIT_NUM_THREADS is set but is not a positive integer (the kernels
    would otherwise ignore it without a word), naming the value and the thread count used instead."""
    value = os.environ.get("RNNKIT_NUM_THREADS", "")
    if not value.strip():
        return
    text = value.strip()
    if text.isdigit() and 1 <= int(text) <= _core.MAX_THREADS:
        return
    if text.isdigit() and int(text) > _core.MAX_THREADS:
        problem = f"is more than the {_core.MAX_THREADS} threads rnnkit can use"
    else:
        problem = "is not a positive integer"
    used = _core.get_num_threads()
    warnings.warn(f"RNNKIT_NUM_THREADS={value!r} {problem}; rnnkit uses {used} thread{'s' if used != 1 else ''} "
                  "(set a whole number of threads, or call rnnkit.set_num_threads)", RuntimeWarning, stacklevel=3)


def check_isa_environment() -> None:
    """Choose the SIMD path now, at ``import rnnkit``, so that a bad RNNKIT_ISA is refused at once.

    The C++ dispatcher reads RNNKIT_ISA on first use; left to itself, a typo would surface only at the first
    kernel call, deep inside someone's training loop, as a ValueError from the kernels.  Asking for the path
    here moves the failure to the import, and the message (one line, like NumPy's refusal of a CPU that lacks
    its baseline) names the value, why it cannot run, and what can.
    """
    try:
        _core.simd_isa()
    except ValueError:
        value = os.environ.get("RNNKIT_ISA", "")
        if value not in KNOWN_ISAS:
            reason = f"is not a SIMD path: expected one of {', '.join(KNOWN_ISAS)}"
        elif value not in _core.compiled_isas():
            reason = "is not compiled into this build of rnnkit"
        else:
            reason = "is not supported by this CPU"
        message = (f"RNNKIT_ISA={value!r} {reason}; this build on this CPU runs {', '.join(_core.supported_isas())} "
                   "(unset RNNKIT_ISA to use the best of them)")
        if _run_as_rnnkit_command():
            # `python -m rnnkit ...` imports the package before its __main__ can catch anything: a
            # traceback through runpy would bury the one line that matters.
            print(f"python -m rnnkit: error: {message}", file=sys.stderr)
            raise SystemExit(2) from None
        raise ISAEnvironmentError(message) from None


def _run_as_rnnkit_command() -> bool:
    """Whether this import is `python -m rnnkit` (or `-m rnnkit.<module>`) locating the module it runs
    (sys.argv[0] is "-m" only then)."""
    argv = getattr(sys, "argv", None)  # (absent in an embedded interpreter)
    if not argv or argv[0] != "-m":
        return False
    orig_argv = getattr(sys, "orig_argv", None)  # (Python >= 3.10; 3.9 has only the "-m" above)
    if orig_argv is None:
        return True
    modules = [following for arg, following in zip(orig_argv, orig_argv[1:]) if arg == "-m"]
    modules += [arg[2:] for arg in orig_argv if arg.startswith("-m") and len(arg) > 2]  # (-mrnnkit)
    return any(name == "rnnkit" or name.startswith("rnnkit.") for name in modules)
