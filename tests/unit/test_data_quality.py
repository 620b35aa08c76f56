"""Quality: each check catches what it should and passes clean data."""

import numpy as np
import pandas as pd

from mlcicd.config import QualityConfig
from mlcicd.data import quality
from mlcicd.report import Status

CFG = QualityConfig()  # 5% missing, 1% duplicates, 5% rarest class, 5% outliers, k = 3


def frame(n: int = 1000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "id": np.arange(n),
        "income": rng.normal(50_000, 8_000, n),
        "age": rng.integers(18, 90, n),
        "region": rng.choice(["north", "south"], n),
        "y": rng.integers(0, 2, n),
    })


def by_name(checks):
    return {c.name: c for c in checks}


def test_missing_values_over_the_limit():
    df = frame()
    df.loc[:99, "income"] = np.nan  # 10%
    df.loc[:9, "age"] = np.nan  # 1%: within the limit
    checks = by_name(quality.missing(df, CFG))
    assert checks["quality:missing:income"].status is Status.FAIL
    assert checks["quality:missing:income"].observed == 10.0
    assert "max_missing_pct = 5" in checks["quality:missing:income"].message
    assert checks["quality:missing:age"].status is Status.PASS


def test_duplicate_rows_ignore_id_columns():
    df = frame()
    copies = df.iloc[:30].assign(id=np.arange(1000, 1030))  # same records exported again under new ids
    df = pd.concat([df, copies], ignore_index=True)
    check = quality.duplicate_rows(df, ["id"], CFG)
    assert check.status is Status.FAIL and check.details["duplicate_rows"] == 30
    assert "drop_duplicates" in check.message
    # Counting the ids would hide every one of them.
    assert quality.duplicate_rows(df, [], CFG).status is Status.PASS


def test_duplicate_count_is_exact():
    df = frame(200)
    df = pd.concat([df, df.iloc[:5], df.iloc[:5]], ignore_index=True)
    assert quality._count_duplicates(df) == 10
    assert quality._count_duplicates(df.drop_duplicates()) == 0


def test_clean_frame_has_no_duplicates():
    assert quality.duplicate_rows(frame(), ["id"], CFG).status is Status.PASS


def test_imbalanced_label():
    df = frame()
    df["y"] = 0
    df.loc[:19, "y"] = 1  # 2% positives
    check = quality.label_balance(df, "y", CFG)
    assert check.status is Status.FAIL and check.observed == 2.0
    assert "rarest class of 'y', 1, is only 2% of rows" in check.message
    assert check.details["distribution_pct"] == {"0": 98.0, "1": 2.0}


def test_balanced_label_passes():
    assert quality.label_balance(frame(), "y", CFG).status is Status.PASS


def test_single_class_label_fails():
    df = frame().assign(y="no")
    check = quality.label_balance(df, "y", CFG)
    assert check.status is Status.FAIL and "single class" in check.message


def test_continuous_label_skips_balance():
    df = frame().assign(y=lambda d: d["income"] / 1000)
    check = quality.label_balance(df, "y", CFG)
    assert check.status is Status.SKIP and "continuous" in check.message


def test_outliers_beyond_tukey_fences():
    df = frame()
    df.loc[:79, "income"] = -999  # 8% sentinel values
    checks = by_name(quality.outliers(df, ["income", "age"], CFG))
    assert checks["quality:outliers:income"].status is Status.FAIL
    assert checks["quality:outliers:income"].details["outliers"] == 80
    assert "-999" in checks["quality:outliers:income"].message
    assert checks["quality:outliers:age"].status is Status.PASS


def test_zero_width_fences_are_not_outliers():
    df = frame().assign(flag=0)
    df.loc[:99, "flag"] = 1  # 10% ones: Q1 = Q3 = 0
    check = quality.outliers(df, ["flag"], CFG)[0]
    assert check.status is Status.PASS and "interquartile range is 0" in check.message


def test_limits_come_from_config():
    df = frame()
    df.loc[:29, "income"] = np.nan  # 3%
    strict = QualityConfig(max_missing_pct=1)
    assert by_name(quality.missing(df, strict))["quality:missing:income"].status is Status.FAIL
    assert by_name(quality.missing(df, CFG))["quality:missing:income"].status is Status.PASS


def test_duplicate_count_equals_pandas_on_awkward_values():
    """NaN equals NaN, -0.0 equals 0.0, text and categories: the narrowing count is pandas' exact count."""
    rng = np.random.default_rng(3)
    for seed in range(20):
        rng = np.random.default_rng(seed)
        n = int(rng.integers(1, 12_000))
        df = pd.DataFrame({
            "f": rng.choice([0.0, -0.0, np.nan, 1.5, 2.5], n),
            "g": rng.normal(size=n).round(int(rng.integers(0, 3))),
            "i": rng.integers(0, 3, n),
            "s": pd.Series(rng.choice(["a", "b", None], n), dtype="str"),
            "c": pd.Categorical(rng.choice(["x", "y"], n)),
            "b": rng.integers(0, 2, n).astype(bool),
        })
        assert quality._count_duplicates(df) == int(df.duplicated().sum()), seed
