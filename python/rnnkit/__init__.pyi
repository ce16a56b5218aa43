# The public API as type checkers see it (mypy reads this in place of __init__.py); tests/test_typing.py
# checks that it names what rnnkit.__all__ names.
from . import callbacks as callbacks
from . import losses as losses
from . import optim as optim
from . import reference as reference
from .embedding import Embedding as Embedding
from .functional import gru_backward as gru_backward
from .functional import gru_forward as gru_forward
from .functional import lstm_backward as lstm_backward
from .functional import lstm_forward as lstm_forward
from .functional import rnn_backward as rnn_backward
from .functional import rnn_forward as rnn_forward
from .layers import RNN as RNN
from .layers import Dense as Dense
from .models import ManyToMany as ManyToMany
from .models import ManyToOne as ManyToOne
from .models import Model as Model
from .models import NotFittedError as NotFittedError
from .models import OneToMany as OneToMany
from .models import OneToOne as OneToOne
from .models import Seq2Seq as Seq2Seq
from .plan import Plan as Plan
from .runtime import get_num_threads as get_num_threads
from .runtime import info as info
from .runtime import set_num_threads as set_num_threads
from .runtime import set_simd_isa as set_simd_isa
from .runtime import simd_isa as simd_isa
from .runtime import supported_isas as supported_isas
from .sequences import pad_sequences as pad_sequences

__version__: str

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
