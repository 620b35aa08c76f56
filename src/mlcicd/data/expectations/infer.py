"""Infer a starting Expectation Suite from the reference data, for a user to edit and commit.

Rules declared in ``data.columns`` are written as they are (strict); everything else is
read off the data with some slack, because the suite will judge other samples of the same
population (a training set, next month's evaluation set), not the reference itself:

* every column exists; numeric ones are int64 or float64 (a gap turns integers into floats);
* missing values: none for ``nullable: false``, else at most twice the share seen (at least 1%);
* numbers: within the seen range widened by a quarter of it on each side (99% of rows); the mean
  within half a standard deviation; the standard deviation within x0.5..x2; the 5/25/50/75/95th
  percentiles each within half a standard deviation;
* categories (up to 100 levels): the values seen (99% of rows), or ``allowed`` exactly;
* ``data.id_columns`` (and ``unique: true``) unique, several id columns unique together; ids get
  no range or distribution expectations.
"""

from __future__ import annotations

import math
from importlib import metadata
from typing import TYPE_CHECKING, Any

import numpy as np

from mlcicd.data.expectations.columns import Column, Unsupported
from mlcicd.data.expectations.suite import Expectation, Suite
from mlcicd.data.schema import MAX_CATEGORY_LEVELS, NUMERIC

if TYPE_CHECKING:
    import pyarrow as pa

    from mlcicd.config import DataConfig
    from mlcicd.data.schema import Schema

QUANTILES = [0.05, 0.25, 0.5, 0.75, 0.95]


def infer_suite(table: pa.Table, schema: Schema, data: DataConfig, *, name: str, source: str) -> Suite:
    items: list[tuple[str, dict[str, Any]]] = [("expect_table_row_count_to_be_between",
                                                {"min_value": 1, "max_value": None})]
    for col_name, rule in schema.rules.items():
        if col_name not in table.column_names:
            continue
        items.append(("expect_column_to_exist", {"column": col_name}))
        col = Column(col_name, table.column(col_name))
        items += _type(col)
        items += _missing(col, declared=rule.explicit and not rule.nullable)
        if col_name in data.id_columns:
            pass  # an id has no distribution: it is unique, and that is all
        elif rule.allowed is not None:
            items.append(("expect_column_values_to_be_in_set",
                          {"column": col_name, "value_set": _allowed(rule.allowed, numeric=col.numeric)}))
        elif rule.type in NUMERIC and col.numeric and col.n > col.missing_count:
            items += _numeric(col, rule.min, rule.max)
        elif rule.type in ("category", "boolean") and col.kind in ("str", "category"):
            seen = sorted(set(col.texts.unique().to_pylist()))
            if 0 < len(seen) <= MAX_CATEGORY_LEVELS:
                items.append(("expect_column_values_to_be_in_set",
                              {"column": col_name, "value_set": seen, "mostly": 0.99}))
        if rule.unique:
            items.append(("expect_column_values_to_be_unique", {"column": col_name}))
    ids = [c for c in data.id_columns if c in table.column_names]
    if len(ids) > 1:
        items.append(("expect_compound_columns_to_be_unique", {"column_list": ids}))
    try:
        version = metadata.version("great_expectations")
    except metadata.PackageNotFoundError:
        version = "1.x"
    return Suite(name, tuple(Expectation(t, kw, i) for i, (t, kw) in enumerate(items)),
                 {"great_expectations_version": version, "mlci": {
                     "inferred_from": source, "rows": table.num_rows,
                     "note": "a starting point: edit the bounds to what the data must satisfy, then commit"}})


def _allowed(values: tuple[str, ...], *, numeric: bool) -> list[Any]:
    """``allowed`` from mlci.yaml is text; a numeric column's set holds numbers (GE compares types)."""
    if not numeric:
        return list(values)
    numbers = []
    for value in values:
        try:
            number = float(value)
        except ValueError:
            continue
        numbers.append(int(number) if number.is_integer() else number)
    return numbers


def _type(col: Column) -> list[tuple[str, dict[str, Any]]]:
    if col.numeric:
        return [("expect_column_values_to_be_in_type_list", {"column": col.name, "type_list": ["int64", "float64"]})]
    try:
        observed = col.pandas_type.__name__
    except Unsupported:
        return []  # pandas would hold it as object: no type GE could check cheaply
    if col.kind in ("str", "bool", "datetime"):
        return [("expect_column_values_to_be_of_type", {"column": col.name, "type_": observed})]
    return []


def _missing(col: Column, *, declared: bool) -> list[tuple[str, dict[str, Any]]]:
    if declared:
        return [("expect_column_values_to_not_be_null", {"column": col.name})]
    share = col.missing_count / col.n if col.n else 0.0
    if share >= 0.5:
        return []
    mostly = math.floor((1 - max(2 * share, 0.01)) * 1000) / 1000
    return [("expect_column_values_to_not_be_null", {"column": col.name, "mostly": mostly})]


def _numeric(col: Column, low: float | None, high: float | None) -> list[tuple[str, dict[str, Any]]]:
    v = col.values.astype(np.float64, copy=False)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return []
    lo, hi = float(v.min()), float(v.max())
    if low is None and high is None:
        slack = 0.25 * (hi - lo)
        between: dict[str, float | None] = {"min_value": _round(lo - slack), "max_value": _round(hi + slack),
                                            "mostly": 0.99}
    else:
        between = {"min_value": low, "max_value": high}
    items: list[tuple[str, dict[str, Any]]] = [("expect_column_values_to_be_between", {"column": col.name, **between})]
    if v.size < 2:
        return items
    mean, sd = float(v.mean()), float(v.std(ddof=1))
    if sd == 0:
        return items
    half = 0.5 * sd
    items.append(("expect_column_mean_to_be_between",
                  {"column": col.name, "min_value": _round(mean - half), "max_value": _round(mean + half)}))
    items.append(("expect_column_stdev_to_be_between",
                  {"column": col.name, "min_value": _round(0.5 * sd), "max_value": _round(2 * sd)}))
    values = np.quantile(v, QUANTILES)
    items.append(("expect_column_quantile_values_to_be_between", {"column": col.name, "quantile_ranges": {
        "quantiles": QUANTILES, "value_ranges": [[_round(q - half), _round(q + half)] for q in values]}}))
    return items


def _round(value: float) -> float:
    """Six significant digits: readable in a reviewed file, and far finer than the slack."""
    return float(f"{value:.6g}")
