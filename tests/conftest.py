"""Shared fixtures: every test that runs a kernel can be parametrized over SIMD paths and threads."""

import pytest

import rnnkit

ISAS = rnnkit.supported_isas()


@pytest.fixture(params=ISAS)
def isa(request):
    """Run the test on one SIMD path, restoring the previous one afterwards."""
    previous = rnnkit.simd_isa()
    rnnkit.set_simd_isa(request.param)
    yield request.param
    rnnkit.set_simd_isa(previous)


@pytest.fixture
def threads():
    """Call threads(n) to set the kernels' thread count for this test; restored afterwards."""
    previous = rnnkit.get_num_threads()
    yield rnnkit.set_num_threads
    rnnkit.set_num_threads(previous)
