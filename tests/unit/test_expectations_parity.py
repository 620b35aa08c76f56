"""The fast evaluator gives Great Expectations' own answer: success and every result figure it reports.

Each table of the corpus holds edge cases (NaN next to nulls, -0.0 next to 0.0, empty and
all-missing columns, integers with gaps, booleans with gaps, text, categories, timestamps);
each expectation of the corpus is validated by GE 1.x on the pandas view of the table and by
the fast evaluator on the Arrow table. Where the evaluator declines (Unsupported), GE runs it
in the stage too; the test also checks that every fast handler really answers most cases.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from mlcicd.data.expectations import fast, gx
from mlcicd.data.expectations.suite import Expectation
from mlcicd.data.load import to_frame

pytest.importorskip("great_expectations")


def _tables() -> dict[str, pa.Table]:
    rng = np.random.default_rng(11)
    n = 400
    ints = rng.integers(-5, 50, n)
    floats = rng.normal(10, 3, n).round(2)
    floats[rng.random(n) < 0.05] = np.nan
    float_nulls = pa.array(floats, mask=rng.random(n) < 0.05)  # NaN and nulls in one column
    texts = rng.choice(["north", "south", "east", "west"], n).astype(object)
    texts[rng.random(n) < 0.1] = None
    cats = pa.array(rng.choice(["a", "b", "c"], n)).dictionary_encode()
    with_gaps = pa.array(rng.integers(0, 4, n), mask=rng.random(n) < 0.2)
    bool_gaps = pa.array(rng.random(n) < 0.5, mask=rng.random(n) < 0.1)
    zeros = np.where(rng.random(n) < 0.5, 0.0, -0.0)
    zeros[:3] = [1.5, 2.5, 3.5]
    big = {
        "i": pa.array(ints), "f": float_nulls, "s": pa.array(texts, type=pa.string()), "c": cats,
        "g": with_gaps, "b": pa.array(rng.random(n) < 0.3), "bg": bool_gaps,
        "z": pa.array(zeros), "u": pa.array(np.arange(n)), "allnull": pa.array([None] * n, type=pa.float64()),
        "ts": pa.array(np.datetime64("2024-01-01") + rng.integers(0, 100, n).astype("timedelta64[D]"),
                       type=pa.timestamp("us")),
        "i32": pa.array(ints.astype(np.int32)), "f32": pa.array(floats.astype(np.float32)),
    }
    small = {
        "i": pa.array([7]), "f": pa.array([np.nan]), "s": pa.array(["x"]), "c": pa.array(["x"]).dictionary_encode(),
        "g": pa.array([None], type=pa.int64()), "b": pa.array([True]), "bg": pa.array([None], type=pa.bool_()),
        "z": pa.array([-0.0]), "u": pa.array([1]), "allnull": pa.array([None], type=pa.float64()),
        "ts": pa.array(np.array(["2024-01-01"], dtype="datetime64[us]")),
        "i32": pa.array([1], type=pa.int32()), "f32": pa.array([1.5], type=pa.float32()),
    }
    # The first 40 rows again at the end: repeated values and repeated rows, chunked like a CSV read.
    repeated = {k: pa.chunked_array([v, v.slice(0, 40)]) for k, v in big.items()}
    return {"random": pa.table(repeated), "one-row": pa.table(small)}


COLUMNS = ["i", "f", "s", "c", "g", "b", "bg", "z", "u", "allnull", "ts", "i32", "f32"]
TYPES = ["int64", "float", "str", "object", "datetime64", "category"]


def _corpus() -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = [
        ("expect_table_row_count_to_be_between", {"min_value": 0, "max_value": 10}),
        ("expect_table_row_count_to_be_between", {"min_value": 1, "max_value": None}),
        ("expect_table_row_count_to_be_between", {"min_value": 400, "max_value": 400, "strict_max": True}),
        ("expect_table_row_count_to_be_between", {"min_value": None, "max_value": 150}),
        ("expect_column_to_exist", {"column": "nope"}),
        ("expect_column_to_exist", {"column": "f", "column_index": 1}),
        ("expect_column_to_exist", {"column": "f", "column_index": 2}),
        ("expect_column_to_exist", {"column": "i", "column_index": 0}),
        ("expect_column_to_exist", {"column": "i", "column_index": 99}),
        ("expect_column_values_to_not_be_null", {"column": "nope"}),
        ("expect_compound_columns_to_be_unique", {"column_list": ["i", "s"]}),
        ("expect_compound_columns_to_be_unique", {"column_list": ["f", "g"], "ignore_row_if": "any_value_is_missing"}),
        ("expect_compound_columns_to_be_unique", {"column_list": ["f", "g", "s"], "ignore_row_if": "never"}),
        ("expect_compound_columns_to_be_unique", {"column_list": ["c", "b", "z"], "mostly": 0.2}),
        ("expect_compound_columns_to_be_unique", {"column_list": ["u", "i"]}),
        ("expect_compound_columns_to_be_unique", {"column_list": ["bg", "s"]}),
        ("expect_compound_columns_to_be_unique", {"column_list": ["allnull", "g"]}),
    ]
    for col in COLUMNS:
        out.append(("expect_column_to_exist", {"column": col}))
        out += [("expect_column_values_to_be_of_type", {"column": col, "type_": t}) for t in TYPES]
        out += [("expect_column_values_to_be_in_type_list", {"column": col, "type_list": tl})
                for tl in (["int64", "float64"], ["str"], ["bool", "int32"], None)]
        out += [("expect_column_values_to_not_be_null", {"column": col, "mostly": m}) for m in (1.0, 0.9, 0.5)]
        for kw in ({"min_value": 0, "max_value": 20}, {"min_value": None, "max_value": 0},
                   {"min_value": 0, "max_value": 10, "strict_min": True, "strict_max": True, "mostly": 0.6},
                   {"min_value": 5.5, "max_value": 5.5}):
            out.append(("expect_column_values_to_be_between", {"column": col, **kw}))
        for value_set in ([1, 2, 3, 1.5, 0.0], ["north", "a", "x"], [], [1, "a"]):
            out.append(("expect_column_values_to_be_in_set", {"column": col, "value_set": value_set}))
        out += [("expect_column_values_to_be_unique", {"column": col, "mostly": m}) for m in (1.0, 0.5)]
        for name in ("expect_column_mean_to_be_between", "expect_column_stdev_to_be_between"):
            out += [(name, {"column": col, **kw}) for kw in (
                {"min_value": 0, "max_value": 12}, {"min_value": 2.5, "max_value": None, "strict_min": True},
                {"min_value": None, "max_value": 1.0})]
        for method in (None, "linear"):
            kw: dict[str, Any] = {"column": col, "quantile_ranges": {
                "quantiles": [0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0],
                "value_ranges": [[None, 0], [0, 10], [5, None], [9, 11], [None, None], [10, 20], [0, 100]]}}
            if method:
                kw["allow_relative_error"] = method
            out.append(("expect_column_quantile_values_to_be_between", kw))
    return out


def _same(a: Any, b: Any) -> bool:
    """Equal as GE would report them: numbers to 1e-12, missing values (None, NaN, NaT) alike."""
    if _missing(a) and _missing(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, bool | np.bool_) or isinstance(b, bool | np.bool_):
        return bool(a) == bool(b) and type(bool(a)) is type(bool(b))
    if isinstance(a, int | float | np.number) and isinstance(b, int | float | np.number):
        return math.isclose(float(a), float(b), rel_tol=1e-12, abs_tol=1e-300)
    if hasattr(b, "isoformat") or hasattr(a, "isoformat"):
        return str(np.datetime64(a, "us")) == str(np.datetime64(b, "us"))
    return bool(a == b)


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value)
    except (TypeError, ValueError):
        return False


@pytest.mark.parametrize("table_name", ["random", "one-row"])
def test_fast_evaluator_equals_great_expectations(table_name: str):
    table = _tables()[table_name]
    expectations = [Expectation(t, kw, i) for i, (t, kw) in enumerate(_corpus())]
    fast_outcomes = fast.evaluate(table, expectations)
    answered = [(e, o) for e, o in zip(expectations, fast_outcomes, strict=True) if o is not None]
    ge = {o.expectation.index: o for o in gx.evaluate(to_frame(table), [e for e, _ in answered], where="test")}
    mismatches = []
    for expectation, mine in answered:
        theirs = ge[expectation.index]
        if mine.error:  # a missing column: GE raises, both fail
            ok = not theirs.success and theirs.error
        else:
            ok = mine.success == theirs.success and not theirs.error and all(
                _same(value, theirs.result.get(key)) for key, value in mine.result.items())
        if not ok:
            mismatches.append(f"{expectation.label} {expectation.kwargs}: fast {mine.success} {mine.result} "
                              f"{mine.error} | GE {theirs.success} {theirs.result} {theirs.error}")
    assert not mismatches, f"{len(mismatches)} mismatches:\n" + "\n".join(mismatches)
    if table_name == "random":
        covered = Counter(e.type for e, _ in answered)
        total = Counter(e.type for e in expectations)
        for kind in fast.HANDLERS:
            assert covered[kind] >= max(1, total[kind] // 3), (kind, covered[kind], total[kind])
