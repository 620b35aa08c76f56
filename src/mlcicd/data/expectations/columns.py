"""An Arrow column seen the way Great Expectations' pandas engine sees it.

GE validates a pandas DataFrame; the fast evaluator reads the Arrow table that frame is
made from (``Table.to_pandas``). This module holds the facts that make the two views
agree: which pandas dtype each Arrow type becomes (integers with gaps become float64,
booleans with gaps become object, text becomes pandas' ``str`` dtype from pandas 3 on),
which cells pandas counts as missing (Arrow nulls and, in float columns, NaN), and the
non-missing values in row order. Anything outside these facts raises
:class:`Unsupported`, and the expectation runs through GE itself.
"""

from __future__ import annotations

from functools import cached_property
from importlib import metadata
from typing import TYPE_CHECKING, Any

import numpy as np

from mlcicd.data.arrow import flags, numpy_dtype, to_numpy

if TYPE_CHECKING:
    import pyarrow as pa


class Unsupported(Exception):
    """The fast evaluator cannot promise GE's answer here: GE runs this expectation."""


class MissingColumn(Exception):
    pass


# Stands for pandas' ``CategoricalDtypeType``: equal to no numpy or Python type.
CategoryType = type("CategoricalDtypeType", (), {})


def _pandas_major() -> int:
    try:
        return int(metadata.version("pandas").split(".")[0])
    except (metadata.PackageNotFoundError, ValueError):
        return 0


class Column:
    def __init__(self, name: str, data: pa.ChunkedArray) -> None:
        import pyarrow as pa

        self.name = name
        self.data = data
        self.n = len(data)
        t = data.type
        if pa.types.is_integer(t):
            self.kind = "int"
        elif pa.types.is_floating(t) and not pa.types.is_float16(t):
            self.kind = "float"
        elif pa.types.is_boolean(t):
            self.kind = "bool"
        elif pa.types.is_string(t) or pa.types.is_large_string(t):
            self.kind = "str"
        elif pa.types.is_dictionary(t) and (pa.types.is_string(t.value_type) or pa.types.is_large_string(t.value_type)):
            self.kind = "category"
        elif pa.types.is_timestamp(t) and t.tz is None:
            self.kind = "datetime"
        else:
            self.kind = "other"

    @property
    def numeric(self) -> bool:
        return self.kind in ("int", "float")

    @cached_property
    def missing(self) -> np.ndarray:
        """Per row: does pandas count this cell as missing?"""
        import pyarrow.compute as pc

        return flags(pc.is_null(self.data, nan_is_null=self.kind == "float"))

    @cached_property
    def missing_count(self) -> int:
        if self.kind != "float":
            return int(self.data.null_count)
        return int(np.count_nonzero(self.missing))

    @cached_property
    def values(self) -> np.ndarray:
        """The non-missing values in row order, in the numpy type pandas holds them in."""
        if self.kind not in ("int", "float", "bool", "datetime"):
            raise Unsupported(f"{self.data.type} values")
        present = self.data.drop_null() if self.data.null_count else self.data
        values = to_numpy(present)[0]
        if self.kind == "float":
            values = values[~np.isnan(values)]
        elif self.kind == "int" and self.data.null_count:
            values = values.astype(np.float64)  # pandas holds integers with gaps as float64
        return values

    @cached_property
    def texts(self) -> pa.Array:
        """The non-missing values of a text or category column, as one Arrow string array."""
        if self.kind not in ("str", "category"):
            raise Unsupported(f"{self.data.type} values")
        present = self.data.drop_null() if self.data.null_count else self.data
        if self.kind == "category":
            present = present.cast(self.data.type.value_type)
        return present.combine_chunks()

    def present(self) -> np.ndarray | pa.Array:
        return self.values if self.numeric or self.kind in ("bool", "datetime") else self.texts

    def with_gaps(self) -> np.ndarray:
        """Every row's value, NaN where missing, in the numpy type pandas holds the column in."""
        values, valid = to_numpy(self.data)
        if valid is None:
            return values
        values = values.astype(np.float64)  # a float column, or integers with gaps (float64 in pandas)
        values[~valid] = np.nan
        return values

    @cached_property
    def pandas_dtype(self) -> Any:
        """The dtype ``Table.to_pandas`` gives this column (numpy dtype, or a stand-in for pandas' own)."""
        t = self.data.type
        if self.kind == "int":
            return np.dtype(np.float64) if self.data.null_count else numpy_dtype(t)
        if self.kind == "float":
            return numpy_dtype(t)
        if self.kind == "bool" and not self.data.null_count:
            return np.dtype(bool)
        if self.kind == "datetime":
            return np.dtype(f"datetime64[{t.unit}]")
        if self.kind == "str" and _pandas_major() >= 3:
            return StrDtype
        if self.kind == "category":
            return CatDtype
        raise Unsupported(f"pandas reads {t} as object dtype; GE checks its values one by one")

    @property
    def pandas_type(self) -> Any:
        """``dtype.type``: what GE compares ``type_`` against and reports as the observed value."""
        dtype = self.pandas_dtype
        return dtype.type


class _PandasDtype:
    """pandas' ``str`` and ``category`` dtypes: never equal to a numpy dtype or a Python type."""

    def __init__(self, type_: Any) -> None:
        self.type = type_

    def __eq__(self, other: object) -> bool:
        return other is self

    __hash__ = object.__hash__


StrDtype = _PandasDtype(str)
CatDtype = _PandasDtype(CategoryType)


def native_types(name: str) -> tuple[type, ...]:
    """GE's ``native_type_type_map``: Python types a type name also stands for."""
    lowered = name.lower()
    table: dict[str, tuple[type, ...]] = {
        "none": (type(None),), "bool": (bool,), "int": (int,), "long": (int,), "float": (float,),
        "bytes": (bytes,), "complex": (complex,), "str": (str,), "string_types": (str,), "list": (list,),
        "dict": (dict,),
    }
    return table.get(lowered, ())


def numpy_type(name: Any) -> np.dtype:
    """``np.dtype(name)``; names numpy does not know are looked up in pandas by GE: not here."""
    if not isinstance(name, str):
        raise Unsupported(f"type name {name!r}")
    try:
        return np.dtype(name)
    except Exception as exc:  # TypeError: GE then tries pandas names; anything else: GE's own error
        raise Unsupported(f"type name {name!r}") from exc


class View:
    """The table's columns, each built once however many expectations read it."""

    def __init__(self, table: pa.Table) -> None:
        self.table = table
        self.rows = table.num_rows
        self._columns: dict[str, Column] = {}

    def column(self, name: Any) -> Column:
        if not isinstance(name, str):
            raise Unsupported(f"column {name!r}")
        if name not in self._columns:
            if name not in self.table.column_names:
                raise MissingColumn(f'The column "{name}" in BatchData does not exist.')
            self._columns[name] = Column(name, self.table.column(name))
        return self._columns[name]
