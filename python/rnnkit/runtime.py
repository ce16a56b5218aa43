"""Threads and SIMD paths of the compiled kernels."""

from __future__ import annotations

from . import _core
from ._validation import check_num_threads

__all__ = ["get_num_threads", "info", "set_num_threads", "set_simd_isa", "simd_isa", "supported_isas"]

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

    Chosen on first use: the RNNKIT_ISA environment variable if set (an unknown or unsupported value
    raises ValueError naming it), else the best path this CPU supports.
    """
    return _core.simd_isa()


def set_simd_isa(name: str) -> None:
    """Force a SIMD path ("avx512", "avx2" or "scalar") for this process, as RNNKIT_ISA does."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    if name not in ("avx512", "avx2", "scalar"):
        raise ValueError(f"unknown SIMD path {name!r}: expected one of avx512, avx2, scalar")
    _core.set_simd_isa(name)


def supported_isas() -> list:
    """The SIMD paths this build and this CPU can run, best first."""
    return list(_core.supported_isas())


def info() -> dict:
    """Version, SIMD paths, and threads of this installation ("threads": False in a build without them)."""
    from . import __version__

    return {
        "version": __version__,
        "simd_isa": simd_isa(),
        "supported_isas": supported_isas(),
        "compiled_isas": list(_core.compiled_isas()),
        "num_threads": get_num_threads(),
        "threads": _core.threads_enabled(),
    }
