from ._typing import Array, ArrayLike, DType

__all__ = ["pad_sequences"]

def pad_sequences(seqs: ArrayLike, *, batch_first: bool = True, padding_value: float = 0.0,
                  dtype: DType | None = None) -> tuple[Array, Array]: ...
