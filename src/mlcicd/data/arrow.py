"""Arrow <-> numpy for fixed-width columns, through the buffers themselves.

pyarrow's own converters (``to_numpy``, ``pa.array``, ``to_pylist`` on a new array...)
import pandas on first use to check whether they were handed a pandas object: about a
second that a check which never touches pandas should not pay. Numbers, timestamps and
booleans are plain buffers, so numpy can view them directly (zero-copy for numbers).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pyarrow as pa

_NUMPY = {"int8": "i1", "int16": "i2", "int32": "i4", "int64": "i8", "uint8": "u1", "uint16": "u2",
          "uint32": "u4", "uint64": "u8", "halffloat": "f2", "float": "f4", "double": "f8"}


def numpy_dtype(arrow_type: pa.DataType) -> np.dtype:
    import pyarrow as pa

    if pa.types.is_timestamp(arrow_type):
        return np.dtype(f"datetime64[{arrow_type.unit}]")
    if pa.types.is_boolean(arrow_type):
        return np.dtype(bool)
    return np.dtype(_NUMPY[str(arrow_type)])


def _bits(buffer: pa.Buffer | None, offset: int, length: int) -> np.ndarray | None:
    if buffer is None:
        return None
    bits = np.unpackbits(np.frombuffer(buffer, dtype=np.uint8), bitorder="little")
    return bits[offset:offset + length].astype(bool)


def _chunks(data: pa.ChunkedArray | pa.Array) -> list[pa.Array]:
    return list(data.chunks) if hasattr(data, "chunks") else [data]


def to_numpy(data: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray | None]:
    """(values, valid): the values (undefined where null) and the validity mask, None without nulls."""
    dtype = numpy_dtype(data.type)
    values, valid = [], []
    for chunk in _chunks(data):
        n, offset = len(chunk), chunk.offset
        buffers = chunk.buffers()
        if dtype.kind == "b":
            part = _bits(buffers[1], offset, n)
            values.append(part if part is not None else np.zeros(n, dtype=bool))
        else:
            values.append(np.frombuffer(buffers[1], dtype=dtype, count=n, offset=offset * dtype.itemsize)
                          if n else np.empty(0, dtype=dtype))
        mask = _bits(buffers[0], offset, n) if chunk.null_count else None
        valid.append(mask if mask is not None else np.ones(n, dtype=bool))
    joined = values[0] if len(values) == 1 else np.concatenate(values) if values else np.empty(0, dtype=dtype)
    if not data.null_count:
        return joined, None
    return joined, np.concatenate(valid) if len(valid) > 1 else valid[0]


def flags(data: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A boolean column as numpy; null counts as False."""
    values, valid = to_numpy(data)
    return values & valid if valid is not None else values


def from_numpy(values: np.ndarray) -> pa.Array:
    """A fixed-width numpy array as an Arrow array without nulls (zero-copy)."""
    import pyarrow as pa

    values = np.ascontiguousarray(values)
    kinds = {v: k for k, v in _NUMPY.items()}
    arrow_type = getattr(pa, {"halffloat": "float16", "float": "float32", "double": "float64"}.get(
        kinds[values.dtype.str[1:]], kinds[values.dtype.str[1:]]))()
    return pa.Array.from_buffers(arrow_type, len(values), [None, pa.py_buffer(values)])


def strings(texts: list[str]) -> pa.Array:
    import pyarrow as pa

    encoded = [t.encode("utf-8") for t in texts]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int32)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    return pa.Array.from_buffers(pa.string(), len(encoded),
                                 [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))])
