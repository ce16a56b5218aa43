"""Shared fixtures: every test that runs a kernel can be parametrized over SIMD paths and threads."""

import pytest
import rnnkit
from rnnkit import _core

ISAS = ("avx512", "avx2", "scalar")

# Collecting the torch bridge's tests imports rnnkit.torch, which registers torch's OpenMP runtime for
# the bridge's training calls, for the whole process.  Every other test runs with none registered, as a
# program without rnnkit.torch does; the bridge's tests (and test_torch_threads) with torch's.
_BRIDGE_TESTS = ("test_torch_bridge.py", "test_torch_threads.py")


@pytest.fixture(autouse=True)
def helpers_where_a_user_has_them(request):
    bridge = request.node.path.name in _BRIDGE_TESTS
    if bridge:
        import rnnkit.torch as rt
        rt.use_torch_threads(True)
    else:
        _core._use_openmp_threads("")
    yield
    if bridge:
        _core._use_openmp_threads("")


@pytest.fixture(params=ISAS)
def isa(request):
    """Run the test on one SIMD path, restoring the previous one afterwards; a path this build or CPU
    cannot run is skipped, and the skip says so."""
    if request.param not in rnnkit.supported_isas():
        where = "this build" if request.param not in rnnkit.info()["compiled_isas"] else "this CPU"
        pytest.skip(f"SIMD path {request.param} is not supported by {where}")
    previous = rnnkit.simd_isa()
    rnnkit.set_simd_isa(request.param)
    yield request.param
    rnnkit.set_simd_isa(previous)


@pytest.fixture
def threads():
    """Call threads(n) to make the kernels use n threads for this test — even on problems too small
    to be worth splitting, which the kernels would otherwise run on fewer; restored afterwards."""
    previous = rnnkit.get_num_threads(), _core._min_work_per_thread()
    _core._set_min_work_per_thread(1)
    yield rnnkit.set_num_threads
    rnnkit.set_num_threads(previous[0])
    _core._set_min_work_per_thread(previous[1])
