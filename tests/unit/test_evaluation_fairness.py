"""Fairness figures and the gate's fairness check: groups, limits and bootstrap bounds."""

from __future__ import annotations

import numpy as np
import pytest

from mlcicd.config import parse_config
from mlcicd.evaluation import fairness
from mlcicd.evaluation.fairness_checks import fairness_check
from mlcicd.report import Status


def _fairness(**kw):
    return parse_config({"data": {"label": "y"}, "mlflow": {"model_name": "m"}, "gate": {"fairness": kw}}).gate.fairness


def test_missing_values_form_their_own_group_and_groups_are_named():
    groups = np.array(["a", None, "a", np.nan, "b"], dtype=object)
    result = fairness.assess("binary", np.array([1, 0, 1, 1, 0]), np.array([1, 1, 0, 1, 0]), {"g": groups})
    column = result.columns[0]
    assert column.rows == {"a": 2, "b": 1, fairness.MISSING_GROUP: 2}
    assert column.by_group["selection_rate"] == {"a": 0.5, "b": 0.0, fairness.MISSING_GROUP: 1.0}
    numeric = fairness.assess("binary", np.array([1, 0, 1, 1]), np.array([1, 0, 1, 1]), {"band": [1, 1, 2, 2]})
    assert set(numeric.columns[0].rows) == {"1", "2"}


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError):
        fairness.assess("binary", np.array([1, 0]), np.array([1, 0]), {"g": ["a"]})


def _biased(n: int, gap: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    group = rng.choice(["a", "b"], n)
    pred = (rng.random(n) < np.where(group == "a", 0.3 + gap, 0.3)).astype(int)
    return rng.integers(0, 2, n), pred, {"group": group}


def test_limit_fails_only_when_the_bound_exceeds_it():
    cfg = _fairness(max_demographic_parity_difference=0.1)
    clear = fairness.assess("binary", *_biased(20_000, 0.3))
    check = fairness_check(clear, cfg, "binary", True)
    assert check.status is Status.FAIL and check.message.startswith("demographic parity difference 0.29")
    assert "exceeds the limit 0.1" in check.message and "95% lower bound" in check.message
    # A small, noisy set whose estimate is above the limit but whose bound is not: a warning, not a failure.
    group = np.repeat(["a", "b"], 60)
    pred = np.concatenate([np.arange(60) < 24, np.arange(60) < 17]).astype(int)  # 0.40 vs 0.28
    noisy = fairness.assess("binary", np.zeros(120, dtype=int), pred, {"group": group})
    dp = noisy.columns[0].disparities["demographic_parity_difference"]
    assert dp.value > 0.1 > dp.lower
    assert fairness_check(noisy, cfg, "binary", True).status is Status.WARN
    fair = fairness.assess("binary", *_biased(20_000, 0.0))
    assert fairness_check(fair, cfg, "binary", True).status is Status.PASS


def test_ratio_and_equalized_odds_and_group_gap_limits():
    y, pred, sensitive = _biased(20_000, 0.3)
    result = fairness.assess("binary", y, pred, sensitive)
    cfg = _fairness(max_demographic_parity_difference=None, min_demographic_parity_ratio=0.8,
                    max_equalized_odds_difference=0.5, max_group_difference={"accuracy": 0.5})
    check = fairness_check(result, cfg, "binary", True)
    assert check.status is Status.FAIL and check.message.startswith("demographic parity ratio 0.")
    assert "is below the minimum 0.8" in check.message
    assert "equalized odds difference" in check.message and "accuracy gap between groups" in check.message


def test_regression_skips_classifier_limits_and_checks_group_error():
    rng = np.random.default_rng(1)
    n = 4000
    group = rng.choice(["a", "b"], n)
    y = rng.normal(100, 30, n)
    pred = y + rng.normal(0, 1, n) * np.where(group == "a", 30, 10)
    result = fairness.assess("regression", y, pred, {"group": group})
    assert fairness_check(result, _fairness(), "regression", True).status is Status.SKIP
    check = fairness_check(result, _fairness(max_group_difference={"mae": 5}), "regression", True)
    assert check.status is Status.FAIL and check.message.startswith("mae gap between groups")
    assert "(b 8" in check.message and "a 2" in check.message


def test_no_sensitive_columns_says_how_to_enable():
    check = fairness_check(None, _fairness(), "binary", False)
    assert check.status is Status.SKIP and "data: {sensitive: [gender]}" in check.message
