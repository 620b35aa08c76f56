"""Schema: inferred and declared expectations catch type changes and rule violations."""

import numpy as np
import pandas as pd
import pytest

from mlcicd.config import ColumnSpec, DataConfig
from mlcicd.data.schema import build_schema, check_columns, check_values, infer_type
from mlcicd.report import Status


def clean_frame(n: int = 500, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "id": np.arange(n),
        "age": rng.integers(18, 90, n),
        "income": rng.lognormal(10, 0.4, n).round(2),
        "member": rng.random(n) < 0.3,
        "region": rng.choice(["north", "south", "east"], n),
        "y": rng.integers(0, 2, n),
    })


def roundtrip(frame: pd.DataFrame, tmp_path, name: str = "d.csv") -> pd.DataFrame:
    """Through a real CSV file, so dtypes are what pandas infers from text, as in the stage."""
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return pd.read_csv(path, low_memory=False)


def failures(checks):
    return {c.name: c for c in checks if c.status is Status.FAIL}


def run(frame, reference, data=None):
    data = data or DataConfig(label="y", id_columns=["id"])
    schema = build_schema({"reference": reference, "train": frame}, data, "mlci.yaml")
    checks, clean = check_values(frame, schema)
    return check_columns(frame, schema, "train") + checks, clean


@pytest.mark.parametrize(("values", "expected"), [
    ([1, 2, 3], "integer"),
    ([1.5, 2.0, None], "number"),
    ([1.0, None, 3.0], "number"),  # an integer column with gaps: never a false type alarm
    ([True, False, True], "boolean"),
    ([True, None, False], "boolean"),
    (["a", "b", "a", "b", "a"], "category"),
    ([f"free text {i}" for i in range(10)], "string"),
    ([None, None], None),
])
def test_infer_type(values, expected):
    assert infer_type(pd.Series(values)) == expected


def test_clean_data_passes(tmp_path):
    reference = roundtrip(clean_frame(seed=1), tmp_path, "ref.csv")
    checks, _ = run(roundtrip(clean_frame(seed=2), tmp_path), reference)
    assert not failures(checks)
    assert {c.status for c in checks} == {Status.PASS}
    assert "schema:age:type" in {c.name for c in checks}


def test_strings_in_a_numeric_column(tmp_path):
    reference = roundtrip(clean_frame(seed=1), tmp_path, "ref.csv")
    train = clean_frame(seed=2).astype({"age": object})
    train.loc[[3, 7, 9], "age"] = ["unknown", "?", "unknown"]
    checks, clean = run(roundtrip(train, tmp_path), reference)
    bad = failures(checks)
    assert list(bad) == ["schema:age:type"]
    message = bad["schema:age:type"].message
    assert "should hold integer values (inferred from the reference data)" in message
    assert "3 of 500 values" in message and "'unknown', '?'" in message
    assert "Fix: clean or drop those rows" in message and "data.columns.age.type: string" in message
    # The parsable part stays numeric for the quality and drift checks that follow.
    assert clean["age"].dtype.kind == "f" and int(clean["age"].isna().sum()) == 3


def test_fractional_values_in_an_integer_column(tmp_path):
    reference = roundtrip(clean_frame(seed=1), tmp_path, "ref.csv")
    train = clean_frame(seed=2).astype({"age": float})
    train.loc[0, "age"] = 33.5
    bad = failures(run(roundtrip(train, tmp_path), reference)[0])
    assert "fractional part" in bad["schema:age:type"].message and "33.5" in bad["schema:age:type"].message


def test_integer_column_with_gaps_is_still_integer(tmp_path):
    reference = roundtrip(clean_frame(seed=1), tmp_path, "ref.csv")
    train = clean_frame(seed=2).astype({"age": float})
    train.loc[[1, 2], "age"] = np.nan
    assert not failures(run(roundtrip(train, tmp_path), reference)[0])


def test_text_in_a_boolean_column(tmp_path):
    reference = roundtrip(clean_frame(seed=1), tmp_path, "ref.csv")
    train = clean_frame(seed=2).astype({"member": object})
    train.loc[4, "member"] = "maybe"
    bad = failures(run(roundtrip(train, tmp_path), reference)[0])
    assert "should hold true/false" in bad["schema:member:type"].message
    assert "'maybe'" in bad["schema:member:type"].message


def test_missing_and_unexpected_columns(tmp_path):
    reference = clean_frame(seed=1)
    train = clean_frame(seed=2).drop(columns=["income"]).assign(extra=1)
    checks, _ = run(train, reference)
    bad = failures(checks)
    assert bad["schema:columns:missing"].details["missing"] == ["income"]
    assert "'income': it is in the reference data" in bad["schema:columns:missing"].message
    warn = next(c for c in checks if c.name == "schema:columns:unexpected")
    assert warn.status is Status.WARN and warn.details["unexpected"] == ["extra"]


def test_declared_sensitive_column_must_exist():
    data = DataConfig(label="y", sensitive=["gender"])
    schema = build_schema({"train": clean_frame()}, data, "mlci.yaml")
    bad = failures(check_columns(clean_frame(), schema, "train"))
    assert "'gender': it is listed in data.sensitive of mlci.yaml" in bad["schema:columns:missing"].message


def test_declared_rules(tmp_path):
    data = DataConfig(label="y", id_columns=["id"], columns={
        "age": ColumnSpec(type="integer", nullable=False, min=18, max=80),
        "region": ColumnSpec(allowed=["north", "south"]),
        "y": ColumnSpec(allowed=["0", "1"]),
    })
    train = clean_frame().astype({"age": float})
    train.loc[0, "age"] = np.nan
    train.loc[1, "id"] = train.loc[2, "id"]
    train = roundtrip(train, tmp_path)
    checks, _ = run(train, train, data)
    bad = failures(checks)
    assert set(bad) == {"schema:age:nulls", "schema:age:range", "schema:region:allowed", "schema:id:unique"}
    assert "nullable is false" in bad["schema:age:nulls"].message
    assert "outside [18, 80]" in bad["schema:age:range"].message
    assert "(data.columns.age.min/max)" in bad["schema:age:range"].message
    assert "'east'" in bad["schema:region:allowed"].message
    assert bad["schema:id:unique"].observed == 1 and "data.id_columns" in bad["schema:id:unique"].message
    # y holds 0/1 as numbers; allowed: ["0", "1"] from YAML must still match them.
    assert "schema:y:allowed" not in bad


def test_explicit_only_checks_declared_columns(tmp_path):
    data = DataConfig(label="y", columns={"age": ColumnSpec(type="integer", max=50)})
    frame = clean_frame()
    schema = build_schema({"reference": frame}, data, "mlci.yaml")
    checks, _ = check_values(frame, schema, explicit_only=True)
    assert {c.name for c in checks} == {"schema:age:type", "schema:age:range"}
    assert failures(checks).keys() == {"schema:age:range"}
