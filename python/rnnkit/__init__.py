"""rnnkit: recurrent neural networks for NumPy, with SIMD + multithreaded C++ kernels.

The kernels (``rnn_forward`` / ``rnn_backward``) are time-major: x (T, B, I), y (T, B, H).
They take ``lengths=``, ``reverse=`` and ``training=``; ``rnnkit.Plan`` keeps one cell's weights packed
for many calls.  ``rnnkit.reference`` holds the NumPy oracle with the same API.

On top of them: ``RNN`` (a torch.nn.RNN-compatible layer, with ``lengths=``), ``Embedding`` and
``Dense``; ``pad_sequences`` (a list of sequences to a padded array and its lengths); the topology models
``OneToOne``, ``OneToMany``, ``ManyToOne``, ``ManyToMany`` and ``Seq2Seq`` (batch-first, with
``fit``/``predict``/``score``/``save``/``load``); ``rnnkit.losses``, ``rnnkit.optim`` (optimizers and
learning-rate schedules), ``rnnkit.callbacks`` (EarlyStopping, ModelCheckpoint) and ``rnnkit.datasets``
(the demo's tasks).

``rnnkit.torch`` (import it yourself; it needs PyTorch, which ``import rnnkit`` never imports): drop-in
``torch.nn.RNN`` / ``LSTM`` / ``GRU`` modules on these kernels, with autograd, and ``replace_rnns(model)``.
"""

from . import callbacks, losses, optim, reference
from ._core import __version__
from .embedding import Embedding
from .functional import gru_backward, gru_forward, lstm_backward, lstm_forward, rnn_backward, rnn_forward
from .layers import RNN, Dense
from .models import ManyToMany, ManyToOne, Model, NotFittedError, OneToMany, OneToOne, Seq2Seq
from .plan import Plan
from .runtime import check_isa_environment as _check_isa_environment
from .runtime import check_threads_environment as _check_threads_environment
from .runtime import get_num_threads, info, set_num_threads, set_simd_isa, simd_isa, supported_isas
from .sequences import pad_sequences

__all__ = [
    "RNN",
    "Dense",
    "Embedding",
    "ManyToMany",
    "ManyToOne",
    "Model",
    "NotFittedError",
    "OneToMany",
    "OneToOne",
    "Plan",
    "Seq2Seq",
    "__version__",
    "callbacks",
    "get_num_threads",
    "gru_backward",
    "gru_forward",
    "info",
    "losses",
    "lstm_backward",
    "lstm_forward",
    "optim",
    "pad_sequences",
    "reference",
    "rnn_backward",
    "rnn_forward",
    "set_num_threads",
    "set_simd_isa",
    "simd_isa",
    "supported_isas",
]

# A bad RNNKIT_ISA is refused here, in one line naming it, rather than at the first kernel call.
_check_isa_environment()
_check_threads_environment()
