import datetime
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from ._typing import Array, ArrayLike, DType, Path

__all__ = [
    "ALICE",
    "DATE_END",
    "DATE_OUTPUT_SIZE",
    "DIGIT_NAMES",
    "SENTENCE_END",
    "CharVocab",
    "TsData",
    "alice_sentences",
    "alice_text",
    "alice_vocab",
    "caption_digits",
    "char_sequences",
    "char_windows",
    "encode_dates",
    "load_digits",
    "load_japanese_vowels",
    "make_dates",
    "read_ts",
    "split_sentences",
]

ALICE: str
DATE_END: int
DATE_OUTPUT_SIZE: int
DIGIT_NAMES: tuple[str, ...]
SENTENCE_END: str

class CharVocab:
    chars: str
    index: dict[str, int]
    def __init__(self, chars: Iterable[str]) -> None: ...
    def __len__(self) -> int: ...
    def encode(self, texts: Sequence[str], length: int | None = None, *, pad: str | None = None,
               pad_left: bool = False) -> Array: ...
    def encode_list(self, texts: Iterable[str]) -> list[Array]: ...
    def decode(self, ids: ArrayLike) -> list[str]: ...
    def decode_list(self, sequences: Iterable[ArrayLike], end: int | None = None) -> list[str]: ...
    def one_hot(self, ids: ArrayLike, dtype: DType = ...) -> Array: ...

# (X_train, X_test, y_train, y_test): images (N, 8, 8) float32 in [0, 1], labels int64
def load_digits(test_size: float = 0.25, seed: int = 0) -> tuple[Array, Array, Array, Array]: ...

class TsData(NamedTuple):
    X: list[Array]
    y: Array
    classes: tuple[str, ...]
    name: str

def read_ts(path: Path) -> TsData: ...
def load_japanese_vowels() -> tuple[list[Array], Array, list[Array], Array]: ...
def caption_digits(labels: ArrayLike) -> Array: ...
def make_dates(n: int, seed: int = 0, first: datetime.date = ...,
               last: datetime.date = ...) -> tuple[list[str], list[str]]: ...
def encode_dates(sources: Sequence[str], targets: Sequence[str],
                 end: bool = False) -> tuple[list[Array], list[Array]]: ...
def alice_text() -> str: ...
def char_windows(text: str, vocab: CharVocab, length: int, stride: int) -> tuple[Array, Array]: ...
def split_sentences(text: str, min_length: int = 1, max_length: int | None = None) -> list[str]: ...
def alice_sentences(min_length: int = 10, max_length: int = 120) -> list[str]: ...
def alice_vocab() -> CharVocab: ...
def char_sequences(sentences: Iterable[str], vocab: CharVocab, end: str = ...) -> tuple[list[Array], list[Array]]: ...
