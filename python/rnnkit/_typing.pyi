"""Type aliases for rnnkit's stubs (stub-only: there is no _typing.py, and nothing imports it at run time)."""

from os import PathLike
from typing import Any

import numpy as np
import numpy.typing as npt
from typing_extensions import TypeAlias

# Arrays come back float32 or float64 (the inputs' or the model's dtype), labels int64: one alias for all.
Array: TypeAlias = npt.NDArray[Any]
ArrayLike = npt.ArrayLike
# An LSTM's state is the pair (h, c), the other cells' h alone: Any, so that neither form needs a cast.
State: TypeAlias = Any
Path: TypeAlias = str | PathLike[str]
Seed: TypeAlias = int | np.random.Generator | None
DType: TypeAlias = str | type[np.floating[Any]] | np.dtype[Any]
