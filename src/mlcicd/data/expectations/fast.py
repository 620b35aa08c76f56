"""A vectorised evaluator for the common Great Expectations types, on Arrow tables.

Each handler reproduces what GE 1.x's pandas engine answers for the same data (success
and the ``result`` fields: ``observed_value``, or ``element_count``, ``unexpected_count``,
``unexpected_percent``, ``partial_unexpected_list`` and the missing-value figures), in
whole-column numpy or Arrow operations: no pandas, no row loops, no GE import. The
parity tests in ``tests/unit/test_expectations_parity.py`` hold every handler to GE's
answer on edge cases (NaN, nulls, empty columns, text, categories, mixed kwargs).

Whatever a handler cannot promise GE's answer for (a row_condition, a suite parameter,
a column pandas would hold as ``object``, an unknown kwarg...) raises ``Unsupported``
and the expectation runs through GE itself, so a suite always runs whole.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from mlcicd.data.arrow import flags, from_numpy, strings, to_numpy
from mlcicd.data.expectations.columns import (
    Column,
    MissingColumn,
    Unsupported,
    View,
    native_types,
    numpy_type,
)
from mlcicd.data.expectations.outcome import PARTIAL_UNEXPECTED, Outcome

if TYPE_CHECKING:
    import pyarrow as pa

    from mlcicd.data.expectations.suite import Expectation

Result = tuple[bool, dict[str, Any]]
Handler = Callable[[View, dict[str, Any]], Result]
# Arguments about reporting, not about the data.
_IGNORED = {"result_format", "catch_exceptions", "include_config", "batch_id", "meta"}
_BETWEEN = {"column", "min_value", "max_value", "strict_min", "strict_max"}
_INTERPOLATIONS = ("linear", "lower", "higher", "midpoint", "nearest")


def evaluate(table: pa.Table, expectations: list[Expectation]) -> list[Outcome | None]:
    """Outcomes in suite order; None where GE has to answer."""
    view = View(table)
    outcomes: list[Outcome | None] = []
    for expectation in expectations:
        spec = HANDLERS.get(expectation.type)
        if spec is None:
            outcomes.append(None)
            continue
        handler, allowed = spec
        try:
            success, result = handler(view, _kwargs(expectation, allowed))
        except Unsupported:
            outcomes.append(None)
        except MissingColumn as exc:
            outcomes.append(Outcome(expectation, False, {}, "mlci", str(exc)))
        else:
            outcomes.append(Outcome(expectation, success, result, "mlci"))
    return outcomes


def _kwargs(expectation: Expectation, allowed: set[str]) -> dict[str, Any]:
    kwargs = {k: v for k, v in expectation.kwargs.items() if k not in _IGNORED}
    if kwargs.pop("row_condition", None) is not None or kwargs.pop("condition_parser", None) is not None:
        raise Unsupported("row_condition")
    if any(isinstance(v, dict) and "$PARAMETER" in v for v in kwargs.values()):
        raise Unsupported("suite parameter")
    if set(kwargs) - allowed:
        raise Unsupported(f"kwargs {sorted(set(kwargs) - allowed)}")
    mostly = kwargs.get("mostly", 1.0)
    if not _is_number(mostly) or not 0 <= mostly <= 1:
        raise Unsupported("mostly")
    return kwargs


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _bound(value: Any) -> float | None:
    if value is None:
        return None
    if not _is_number(value) or (isinstance(value, float) and math.isnan(value)):
        raise Unsupported(f"bound {value!r}")
    return value


# -- row checks: GE's ColumnMapExpectation result ---------------------------------------------------------------


def _map_result(element_count: int, nonnull: int | None, unexpected: int, values: Any, mostly: float) -> Result:
    """GE's ``_format_map_output`` (SUMMARY) and its ``mostly`` rule, for counts already made.

    ``nonnull`` None is the not-null expectation, whose rows are all considered.
    """
    considered = element_count if nonnull is None else nonnull
    if element_count == 0 or considered == 0:
        success = True  # vacuously
    else:
        success = (float(considered) - float(unexpected)) / float(considered) >= mostly
    percent_total = unexpected / element_count * 100 if element_count else None
    result: dict[str, Any] = {"element_count": element_count, "unexpected_count": unexpected}
    if nonnull is None:
        result["unexpected_percent"] = percent_total
        result["partial_unexpected_list"] = values
        return success, result
    percent_nonmissing = unexpected / nonnull * 100 if element_count and nonnull else None
    result.update({
        "unexpected_percent": percent_nonmissing,
        "partial_unexpected_list": values,
        "missing_count": element_count - nonnull,
        "missing_percent": (element_count - nonnull) / element_count * 100 if element_count else None,
        "unexpected_percent_total": percent_total,
        "unexpected_percent_nonmissing": percent_nonmissing,
    })
    return success, result


def _first(values: Any, unexpected: np.ndarray) -> list[Any]:
    """The first unexpected values in row order, as Python values."""
    rows = np.flatnonzero(unexpected)[:PARTIAL_UNEXPECTED]
    if isinstance(values, np.ndarray):
        return values[rows].tolist()
    return values.take(from_numpy(rows.astype(np.int64))).to_pylist()


def _column_map(view: View, kw: dict[str, Any], flag: Callable[[Column], np.ndarray]) -> Result:
    """A row check on the non-missing values: ``flag`` marks the unexpected ones."""
    col = view.column(kw["column"])
    unexpected = flag(col)
    count = int(np.count_nonzero(unexpected))
    return _map_result(col.n, col.n - col.missing_count, count, _first(col.present(), unexpected),
                       kw.get("mostly", 1.0))


def not_null(view: View, kw: dict[str, Any]) -> Result:
    col = view.column(kw["column"])
    missing = col.missing_count
    return _map_result(col.n, None, missing, [None] * min(missing, PARTIAL_UNEXPECTED), kw.get("mostly", 1.0))


def values_between(view: View, kw: dict[str, Any]) -> Result:
    low, high = _bound(kw.get("min_value")), _bound(kw.get("max_value"))
    if (low is None and high is None) or (low is not None and high is not None and low > high):
        raise Unsupported("GE raises for these bounds")

    def flag(col: Column) -> np.ndarray:
        if not col.numeric:
            raise Unsupported(f"{col.kind} column")
        v = col.values
        inside = np.ones(len(v), dtype=bool)
        if low is not None:
            inside &= (v > low) if kw.get("strict_min") else (v >= low)
        if high is not None:
            inside &= (v < high) if kw.get("strict_max") else (v <= high)
        return ~inside

    return _column_map(view, kw, flag)


def in_set(view: View, kw: dict[str, Any]) -> Result:
    value_set = kw.get("value_set")

    if not isinstance(value_set, list):
        raise Unsupported("value_set")  # GE's own validation rejects None

    def flag(col: Column) -> np.ndarray:
        if col.numeric and all(_is_number(v) for v in value_set):
            allowed = np.asarray([v for v in value_set if not (isinstance(v, float) and math.isnan(v))],
                                 dtype=np.float64)
            return ~np.isin(col.values, allowed)
        if col.kind in ("str", "category") and all(isinstance(v, str) for v in value_set):
            import pyarrow.compute as pc

            return ~flags(pc.is_in(col.texts, value_set=strings(value_set).cast(col.texts.type)))
        raise Unsupported(f"value_set of these types on a {col.kind} column")

    return _column_map(view, kw, flag)


def unique(view: View, kw: dict[str, Any]) -> Result:
    def flag(col: Column) -> np.ndarray:
        if col.numeric or col.kind == "datetime":
            v = col.values
            if len(v) < 2 or bool(np.all(v[1:] > v[:-1])):  # strictly increasing (ids, times): none repeats
                return np.zeros(len(v), dtype=bool)
        return _repeated(_codes(col, with_missing=False))

    return _column_map(view, kw, flag)


def _codes(col: Column, *, with_missing: bool) -> np.ndarray:
    """Dense codes, equal for the cells pandas' ``duplicated`` calls equal (NaN = NaN, -0.0 = 0.0).

    Without ``with_missing`` only the non-missing values are coded; with it every row is,
    and all missing cells share one code. Arrow's hash encoding does the work (no sort).
    """
    if col.numeric or col.kind in ("bool", "datetime"):
        if with_missing and col.kind in ("bool", "datetime") and col.data.null_count:
            data = col.data.combine_chunks()
        else:
            values = col.with_gaps() if with_missing and col.numeric else col.values
            if values.dtype.kind == "f":
                values = values + 0.0  # -0.0 + 0.0 is 0.0
                values[np.isnan(values)] = np.nan  # one NaN bit pattern
            elif values.dtype.kind == "M":
                values = values.view(np.int64)
            data = from_numpy(values.view(np.uint8) if values.dtype == bool else values)
    elif col.kind in ("str", "category"):
        data = col.texts if not with_missing else (
            col.data.cast(col.data.type.value_type) if col.kind == "category" else col.data).combine_chunks()
    else:
        raise Unsupported(f"{col.data.type} column")
    encoded = data.dictionary_encode(null_encoding="encode")
    return to_numpy(encoded.indices)[0].astype(np.int64)


def _dense(key: np.ndarray) -> tuple[np.ndarray, int]:
    encoded = from_numpy(key).dictionary_encode()
    return to_numpy(encoded.indices)[0].astype(np.int64), len(encoded.dictionary)


def _repeated(codes: np.ndarray) -> np.ndarray:
    """Per row: does its code occur more than once? (``duplicated(keep=False)``)"""
    if len(codes) == 0:
        return np.zeros(0, dtype=bool)
    return np.bincount(codes)[codes] > 1


def compound_unique(view: View, kw: dict[str, Any]) -> Result:
    names = kw.get("column_list")
    ignore = kw.get("ignore_row_if", "all_values_are_missing")
    if not isinstance(names, list) or len(names) < 2 or ignore not in (
            "all_values_are_missing", "any_value_is_missing", "never"):
        raise Unsupported("column_list / ignore_row_if")
    cols = [view.column(n) for n in names]
    missing = np.vstack([c.missing for c in cols])
    keep = ~missing.all(axis=0) if ignore == "all_values_are_missing" else (
        ~missing.any(axis=0) if ignore == "any_value_is_missing" else np.ones(view.rows, dtype=bool))
    key, size = np.zeros(view.rows, dtype=np.int64), 1
    for col in cols:
        codes = _codes(col, with_missing=True)
        levels = int(codes.max(initial=0)) + 1
        if size * levels >= 2**62:  # make the key dense again before it could overflow
            key, size = _dense(key)
        key, size = key * levels + codes, size * levels
    key = _dense(key)[0]
    rows = np.flatnonzero(keep)
    unexpected = _repeated(key[rows])
    shown = rows[unexpected][:PARTIAL_UNEXPECTED]
    taken = from_numpy(shown.astype(np.int64))
    values = [dict(zip(names, row, strict=True)) for row in zip(
        *(c.data.take(taken).to_pylist() for c in cols), strict=True)] if len(shown) else []
    return _map_result(view.rows, len(rows), int(np.count_nonzero(unexpected)), values, kw.get("mostly", 1.0))


def _types(view: View, kw: dict[str, Any], names: list[Any] | None, key: str) -> Result:
    col = view.column(kw["column"])
    actual = col.pandas_dtype
    if names is None:
        return True, {"observed_value": actual.type.__name__}
    candidates: list[Any] = []
    for name in names:
        dtype = numpy_type(name)
        candidates += [dtype.type] if key == "type_" else [dtype.type, dtype]
        candidates += native_types(name)
    try:
        # of_type compares dtype.type; in_type_list compares the dtype itself (numpy's ==).
        success = (actual.type if key == "type_" else actual) in candidates
    except TypeError as exc:
        raise Unsupported("type comparison") from exc
    return bool(success), {"observed_value": actual.type.__name__}


def of_type(view: View, kw: dict[str, Any]) -> Result:
    return _types(view, kw, None if kw.get("type_") is None else [kw["type_"]], "type_")


def in_type_list(view: View, kw: dict[str, Any]) -> Result:
    names = kw.get("type_list")
    if names is not None and not isinstance(names, list):
        raise Unsupported("type_list")
    return _types(view, kw, names, "type_list")


def column_exists(view: View, kw: dict[str, Any]) -> Result:
    name, index = kw.get("column"), kw.get("column_index")
    if not isinstance(name, str) or (index is not None and (not isinstance(index, int) or isinstance(index, bool))):
        raise Unsupported("column / column_index")
    columns = view.table.column_names
    if index:  # GE skips the position check for index 0 too
        return (index < len(columns) and columns[index] == name), {}
    return name in columns, {}


# -- aggregates: GE's _validate_metric_value_between --------------------------------------------------------------


def _between(value: Any, kw: dict[str, Any]) -> Result:
    low, high = _bound(kw.get("min_value")), _bound(kw.get("max_value"))
    if low is None and high is None:
        raise Unsupported("no bounds")
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False, {"observed_value": None}
    above = low is None or (value > low if kw.get("strict_min") else value >= low)
    below = high is None or (value < high if kw.get("strict_max") else value <= high)
    return bool(above and below), {"observed_value": value}


def _numbers(view: View, kw: dict[str, Any]) -> np.ndarray:
    col = view.column(kw["column"])
    if not col.numeric or col.values.dtype == np.float32:  # pandas aggregates float32 in float32
        raise Unsupported(f"{col.data.type} column")
    return col.values


def mean_between(view: View, kw: dict[str, Any]) -> Result:
    v = _numbers(view, kw)
    # pandas' nanmean: the float64 sum over the count.
    return _between(float(v.sum(dtype=np.float64) / len(v)) if len(v) else math.nan, kw)


def stdev_between(view: View, kw: dict[str, Any]) -> Result:
    v = _numbers(view, kw).astype(np.float64, copy=False)
    if len(v) < 2:
        return _between(math.nan, kw)
    # pandas' nanvar (two-pass, ddof=1), then the square root.
    avg = v.sum(dtype=np.float64) / len(v)
    return _between(float(np.sqrt(((avg - v) ** 2).sum(dtype=np.float64) / (len(v) - 1))), kw)


def quantiles_between(view: View, kw: dict[str, Any]) -> Result:
    ranges = kw.get("quantile_ranges")
    method = kw.get("allow_relative_error") or "nearest"
    if not isinstance(ranges, dict) or set(ranges) != {"quantiles", "value_ranges"} or method not in _INTERPOLATIONS:
        raise Unsupported("quantile_ranges / allow_relative_error")
    qs, bounds = ranges["quantiles"], ranges["value_ranges"]
    if not isinstance(qs, list) or not isinstance(bounds, list) or len(qs) != len(bounds) or not all(
            _is_number(q) and 0 <= q <= 1 for q in qs) or not all(
            isinstance(b, list) and len(b) == 2 and all(x is None or _is_number(x) for x in b) for b in bounds):
        raise Unsupported("quantile_ranges")
    v = _numbers(view, kw)
    values = np.quantile(v, qs, method=str(method)).tolist() if len(v) else [math.nan] * len(qs)  # type: ignore[call-overload]
    details = [_quantile_in_range(x, b) for x, b in zip(values, bounds, strict=True)]
    return bool(all(details)), {"observed_value": {"quantiles": qs, "values": values},
                                "details": {"success_details": details}}


def _quantile_in_range(value: float, bounds: list[float | None]) -> bool:
    """GE's ``_quantile_is_in_range``: inside the range, or within a relative 1e-4 of a bound."""
    low = -np.inf if bounds[0] is None else bounds[0]
    high = np.inf if bounds[1] is None else bounds[1]
    return bool(math.isclose(value, low, rel_tol=1e-4) or math.isclose(value, high, rel_tol=1e-4)
                or low <= value <= high)


def row_count_between(view: View, kw: dict[str, Any]) -> Result:
    return _between(view.rows, kw)


HANDLERS: dict[str, tuple[Handler, set[str]]] = {
    "expect_column_to_exist": (column_exists, {"column", "column_index"}),
    "expect_column_values_to_be_of_type": (of_type, {"column", "type_", "mostly"}),
    "expect_column_values_to_be_in_type_list": (in_type_list, {"column", "type_list", "mostly"}),
    "expect_column_values_to_not_be_null": (not_null, {"column", "mostly"}),
    "expect_column_values_to_be_between": (values_between, _BETWEEN | {"mostly"}),
    "expect_column_values_to_be_in_set": (in_set, {"column", "value_set", "mostly"}),
    "expect_column_values_to_be_unique": (unique, {"column", "mostly"}),
    "expect_column_mean_to_be_between": (mean_between, _BETWEEN),
    "expect_column_stdev_to_be_between": (stdev_between, _BETWEEN),
    "expect_column_quantile_values_to_be_between": (quantiles_between,
                                                    {"column", "quantile_ranges", "allow_relative_error"}),
    "expect_table_row_count_to_be_between": (row_count_between, {"min_value", "max_value", "strict_min",
                                                                 "strict_max"}),
    "expect_compound_columns_to_be_unique": (compound_unique, {"column_list", "ignore_row_if", "mostly"}),
}
