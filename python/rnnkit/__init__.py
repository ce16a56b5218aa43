"""rnnkit: recurrent neural networks for NumPy, with SIMD + OpenMP C++ kernels.

The kernels (``rnn_forward`` / ``rnn_backward``) are time-major: x (T, B, I), y (T, B, H).
``rnnkit.reference`` holds the NumPy oracle with the same API.
"""

from . import reference
from ._core import __version__
from .functional import gru_backward, gru_forward, lstm_backward, lstm_forward, rnn_backward, rnn_forward
from .runtime import get_num_threads, info, set_num_threads, set_simd_isa, simd_isa, supported_isas

__all__ = [
    "__version__",
    "rnn_forward",
    "rnn_backward",
    "lstm_forward",
    "lstm_backward",
    "gru_forward",
    "gru_backward",
    "reference",
    "set_num_threads",
    "get_num_threads",
    "simd_isa",
    "set_simd_isa",
    "supported_isas",
    "info",
]
