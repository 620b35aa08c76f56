"""Demographic parity in numpy agrees with fairlearn (used here only, never in the stage)."""

from __future__ import annotations

import numpy as np
import pytest

from mlcicd.evaluation.fairness import MISSING_GROUP, demographic_parity, selection_rates


@pytest.mark.parametrize("seed", range(4))
def test_matches_fairlearn_demographic_parity_difference(seed):
    fairlearn_metrics = pytest.importorskip("fairlearn.metrics")
    rng = np.random.default_rng(seed)
    n = 2000
    group = rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2])
    # Group-dependent positive rates, so the difference is far from 0.
    pred = (rng.random(n) < np.select([group == "a", group == "b"], [0.3, 0.5], 0.45)).astype(int)
    y = rng.integers(0, 2, n)
    ours = demographic_parity(pred, {"group": group}, positive=1)
    theirs = fairlearn_metrics.demographic_parity_difference(y, pred, sensitive_features=group)
    assert ours.difference == pytest.approx(theirs)
    rates = ours.by_column[0].rates
    for g in ("a", "b", "c"):
        assert rates[g] == pytest.approx(pred[group == g].mean())


def test_worst_column_decides_and_every_column_is_reported():
    pred = np.array([1, 1, 0, 0, 1, 0])
    result = demographic_parity(pred, {"gender": ["f", "f", "m", "m", "f", "m"], "region": list("nsnsns")})
    assert result.worst.column == "gender"
    assert result.difference == pytest.approx(1.0)
    assert [g.column for g in result.by_column] == ["gender", "region"]
    region = result.by_column[1]
    assert region.rates == {"n": pytest.approx(2 / 3), "s": pytest.approx(1 / 3)}
    assert region.counts == {"n": 3, "s": 3}
    assert result.worst.extremes == ("m", "f")


def test_missing_values_form_their_own_group():
    groups = np.array(["a", None, "a", np.nan, "b"], dtype=object)
    rates = selection_rates(np.array([1, 1, 0, 1, 0], dtype=bool), groups)
    assert rates.rates == {"a": 0.5, "b": 0.0, MISSING_GROUP: 1.0}
    assert rates.counts[MISSING_GROUP] == 2


def test_string_labels_and_numeric_groups():
    result = demographic_parity(np.array(["yes", "no", "yes", "yes"]), {"age_band": [1, 1, 2, 2]}, positive="yes")
    assert result.by_column[0].rates == {"1": 0.5, "2": 1.0}


def test_single_group_has_no_difference():
    assert demographic_parity(np.array([1, 0, 1]), {"g": ["x", "x", "x"]}).difference == 0.0


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError):
        selection_rates(np.array([True, False]), ["a"])
