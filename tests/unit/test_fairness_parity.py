"""The fast fairness engine gives fairlearn's numbers (to 1e-9): per-group metrics and every disparity.

fairlearn runs through ``gate.fairness.engine: fairlearn`` (MetricFrame, demographic_parity_difference
/ _ratio, equalized_odds_difference); the fast engine computes the same from cell counts. The data
hold the edge cases: a group without positives, one without negatives, a one-row group, missing
sensitive values, a class absent from a group, a constant target within a group.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlcicd.evaluation import fairness

fairness_fairlearn = pytest.importorskip("mlcicd.evaluation.fairness_fairlearn")
pytest.importorskip("fairlearn")


def _groups(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    gender = rng.choice(["f", "m", "x"], n, p=[0.5, 0.45, 0.05]).astype(object)
    gender[rng.random(n) < 0.03] = None  # unrecorded: its own group
    region = rng.choice(["north", "south", "east", "west"], n).astype(object)
    region[0] = "island"  # a one-row group
    return {"gender": gender, "region": region}


def _close(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def _assert_same(fast: fairness.FairnessResult, slow: fairness.FairnessResult) -> None:
    for mine, theirs in zip(fast.columns, slow.columns, strict=True):
        assert mine.by_group.keys() == theirs.by_group.keys(), mine.column
        for metric, groups in mine.by_group.items():
            for group, value in groups.items():
                assert _close(value, theirs.by_group[metric][group]), (mine.column, metric, group, value,
                                                                        theirs.by_group[metric][group])
        for key, disparity in mine.disparities.items():
            assert _close(disparity.value, theirs.disparities[key].value), (mine.column, key, disparity.value,
                                                                            theirs.disparities[key].value)


@pytest.mark.parametrize("seed", range(3))
def test_binary_equals_fairlearn(seed):
    rng = np.random.default_rng(seed)
    n = 3000
    sensitive = _groups(rng, n)
    y = rng.choice(["good", "bad"], n)
    pred = np.where(rng.random(n) < 0.75, y, rng.choice(["good", "bad"], n))
    x_rows = sensitive["gender"] == "x"
    y[x_rows] = "good"  # group x: no positives ("bad" is the positive class)
    pred[sensitive["region"] == "island"] = "bad"
    score = np.clip(rng.random(n) * 0.6 + 0.4 * (pred == "bad"), 0, 1)
    kw = {"positive": "bad", "score": score, "resamples": 200}
    fast = fairness.assess("binary", y, pred, sensitive, **kw)
    _assert_same(fast, fairness_fairlearn.assess("binary", y, pred, sensitive, **kw))
    gender = fast.columns[0]
    assert gender.by_group["recall"]["x"] == 0.0 and gender.by_group["roc_auc"]["x"] is None
    assert set(gender.rows) == {"f", "m", "x", fairness.MISSING_GROUP}
    dp = gender.disparities["demographic_parity_difference"]
    assert dp.lower <= dp.value <= dp.upper


@pytest.mark.parametrize("seed", range(3))
def test_multiclass_one_vs_rest_equals_fairlearn(seed):
    rng = np.random.default_rng(seed)
    n = 3000
    sensitive = _groups(rng, n)
    y = rng.integers(0, 4, n)
    y[sensitive["gender"] == "x"] = rng.integers(0, 2, int((sensitive["gender"] == "x").sum()))  # classes 2, 3 absent
    pred = np.where(rng.random(n) < 0.6, y, rng.integers(0, 4, n))
    fast = fairness.assess("multiclass", y, pred, sensitive, resamples=200)
    _assert_same(fast, fairness_fairlearn.assess("multiclass", y, pred, sensitive, resamples=200))
    assert fast.columns[0].disparities["demographic_parity_difference"].detail.startswith("class ")


@pytest.mark.parametrize("seed", range(3))
def test_regression_per_group_error_equals_fairlearn(seed):
    rng = np.random.default_rng(seed)
    n = 2000
    sensitive = _groups(rng, n)
    y = rng.normal(150, 60, n)
    y[sensitive["gender"] == "x"] = 100.0  # a constant target: r2's edge case
    pred = y + rng.normal(0, 20, n) * np.where(sensitive["region"] == "north", 2.0, 1.0)
    fast = fairness.assess("regression", y, pred, sensitive, resamples=200)
    _assert_same(fast, fairness_fairlearn.assess("regression", y, pred, sensitive, resamples=200))
    region = fast.columns[1]
    assert region.by_group["r2"]["island"] is None  # one row: r2 undefined
    assert region.disparities["rmse_difference"].value > 15


def test_bootstrap_bounds_cover_the_estimate_and_shrink_with_data():
    rng = np.random.default_rng(5)
    widths = []
    for n in (500, 50_000):
        group = rng.choice(["a", "b"], n)
        pred = (rng.random(n) < np.where(group == "a", 0.3, 0.4)).astype(int)
        result = fairness.assess("binary", rng.integers(0, 2, n), pred, {"g": group}, resamples=2000)
        dp = result.columns[0].disparities["demographic_parity_difference"]
        assert dp.lower < dp.value < dp.upper
        widths.append(dp.upper - dp.lower)
    assert widths[1] < widths[0] / 5
