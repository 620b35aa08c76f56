"""The figures stages add for the HTML report: drift histograms, curves, per-group bounds, the canary timeline."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from mlcicd.data import drift, drift_plots
from mlcicd.delivery.analysis import Judgement, Look
from mlcicd.delivery.metrics.base import Snapshot
from mlcicd.delivery.timeline import entry, interval_quantiles
from mlcicd.evaluation import curves, fairness
from mlcicd.evaluation.scoring import Scored

# -- drift histograms ------------------------------------------------------------------------------------------------


def test_numeric_histogram_shares_edges_and_counts_the_tails():
    rng = np.random.default_rng(1)
    ref = pd.Series(np.r_[rng.normal(0, 1, 999), 1e6])  # one extreme value must not squeeze the rest into a bin
    cur = pd.Series(rng.normal(1, 1, 500))
    h = drift_plots.numeric(ref, cur)
    assert h["kind"] == "numeric" and len(h["edges"]) == drift_plots.BINS + 1
    assert sum(h["reference"]) == 1000 and sum(h["current"]) == 500
    assert h["edges"][-1] < 10  # the span is set by quantiles, not by the outlier
    assert np.all(np.diff(h["edges"]) > 0)


def test_constant_column_gets_one_unit_around_its_value():
    h = drift_plots.numeric(pd.Series([3.0] * 10), pd.Series([3.0] * 5))
    assert h["edges"][0] == 2.5 and h["edges"][-1] == 3.5 and sum(h["current"]) == 5


def test_categorical_histogram_keeps_the_top_categories_and_pools_the_rest():
    ref = pd.Series(["a"] * 50 + ["b"] * 30 + [f"r{i}" for i in range(20)])
    cur = pd.Series(["a"] * 10 + ["new"] * 40)
    h = drift_plots.categorical(ref, cur, top=3)
    assert h["categories"] == ["a", "new", "b", drift_plots.OTHER]
    assert h["reference"] == [50, 0, 30, 20] and h["current"] == [10, 40, 0, 0]


def test_histograms_only_of_drifted_features_most_moved_first_and_capped():
    rng = np.random.default_rng(2)
    n = 2000
    ref = pd.DataFrame({f"x{i}": rng.normal(0, 1, n) for i in range(5)} | {"flag": rng.integers(0, 2, n)})
    cur = pd.DataFrame({f"x{i}": rng.normal(0.1 * i, 1, n) for i in range(5)} | {"flag": rng.integers(0, 2, n)})
    kinds: dict[str, drift.Kind | None] = {c: "numeric" for c in ref.columns}
    results = drift.compare(ref, cur, kinds, p_value=0.01, max_rows=20_000)
    out = drift_plots.histograms(ref, cur, results, max_features=3)
    assert list(out) == ["x4", "x3", "x2"]  # the largest shifts, in order; undrifted x0 and flag are left out
    small = drift_plots.histograms(ref, cur, results)
    assert len(json.dumps(small)) < 3000  # a few hundred numbers, whatever the row count


def test_few_level_numeric_column_is_drawn_as_categories_like_its_test():
    ref = pd.DataFrame({"late": np.repeat([0, 1, 2], [800, 150, 50])})
    cur = pd.DataFrame({"late": np.repeat([0, 1, 2], [500, 300, 200])})
    results = drift.compare(ref, cur, {"late": "numeric"}, p_value=0.01, max_rows=20_000)
    assert results[0].test == "chi2" and results[0].drifted
    h = drift_plots.histograms(ref, cur, results)["late"]
    assert h["kind"] == "categorical" and sorted(h["categories"]) == ["0", "1", "2"]


# -- curves ----------------------------------------------------------------------------------------------------------


def _scored(y, proba, classes):
    return Scored("runs:/x/model", None, pd.DataFrame(), np.asarray(classes)[proba.argmax(axis=1)], classes, proba)


def test_binary_curves_match_scikit_learn_and_are_downsampled():
    rng = np.random.default_rng(3)
    y = (rng.random(5000) < 0.3).astype(int)
    score = 1 / (1 + np.exp(-(1.5 * (2 * y - 1) + rng.normal(0, 1, y.size))))
    proba = np.column_stack([1 - score, score])
    out = curves.figures("binary", y, _scored(y, proba, [0, 1]), None, 1)
    assert out is not None and out["kind"] == "roc_pr" and out["average"] == "binary" and "champion" not in out
    roc, pr = out["candidate"]["roc"], out["candidate"]["pr"]
    assert len(roc["fpr"]) <= curves.MAX_POINTS and len(pr["recall"]) <= curves.MAX_POINTS
    assert (roc["fpr"][0], roc["tpr"][0]) == (0.0, 0.0) and (roc["fpr"][-1], roc["tpr"][-1]) == (1.0, 1.0)
    assert np.all(np.diff(roc["fpr"]) >= 0) and np.all(np.diff(pr["recall"]) >= 0)
    assert roc["auc"] == pytest.approx(roc_auc_score(y, score), abs=1e-9)
    assert pr["average_precision"] == pytest.approx(average_precision_score(y, score), abs=1e-9)
    assert pr["base_rate"] == pytest.approx(y.mean())


def test_ties_are_one_threshold_as_in_scikit_learn():
    y = np.array([0, 1, 0, 1, 1, 0])
    score = np.array([0.5, 0.5, 0.2, 0.9, 0.5, 0.1])
    out = curves.roc_pr(y == 1, score)
    assert out is not None
    assert out["roc"]["auc"] == pytest.approx(roc_auc_score(y, score))
    assert len(out["roc"]["fpr"]) == 1 + len(np.unique(score))


def test_multiclass_curves_are_micro_averaged_for_both_models():
    rng = np.random.default_rng(4)
    y = rng.choice(["a", "b", "c"], 900)
    logits = rng.normal(0, 1, (900, 3)) + 2 * (y[:, None] == np.array(["a", "b", "c"]))
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    candidate, champion = _scored(y, proba, ["a", "b", "c"]), _scored(y, proba[:, ::-1], ["c", "b", "a"])
    out = curves.figures("multiclass", y, candidate, champion)
    assert out is not None and out["average"] == "micro"
    onehot = (y[:, None] == np.array(["a", "b", "c"])).ravel()
    assert out["candidate"]["roc"]["auc"] == pytest.approx(roc_auc_score(onehot, proba.ravel()), abs=1e-9)
    # The champion lists its classes in another order: its curve is the same model's, so the same.
    assert out["champion"]["roc"]["auc"] == pytest.approx(out["candidate"]["roc"]["auc"], abs=1e-9)


def test_a_model_without_scores_has_no_curves():
    y = np.array([0, 1, 1, 0])
    plain = Scored("runs:/x/model", None, pd.DataFrame(), y, None)
    assert curves.figures("binary", y, plain, None, 1) is None


def test_regression_residuals_sample_the_same_rows_for_both_models():
    rng = np.random.default_rng(5)
    y = rng.normal(10, 2, 3000)
    a, b = y + rng.normal(0, 1, y.size), y + 0.5
    out = curves.residuals(y, {"candidate": a, "champion": b})
    assert out["rows"] == curves.MAX_RESIDUALS and out["of"] == 3000
    assert len(out["candidate"]["predicted"]) == curves.MAX_RESIDUALS
    assert np.allclose(out["champion"]["residual"], -0.5, atol=1e-3)
    # The same rows: the champion's prediction is the truth + 0.5 on the rows the candidate's points show.
    truth = np.asarray(out["champion"]["predicted"]) - 0.5
    assert np.allclose(np.asarray(out["candidate"]["predicted"]) + out["candidate"]["residual"], truth, atol=0.05)


# -- fairness bounds per group ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("task", ["binary", "regression"])
def test_per_group_values_get_bootstrap_bounds_around_them(task):
    rng = np.random.default_rng(6)
    n = 4000
    groups = {"g": rng.choice(["a", "b"], n, p=[0.8, 0.2])}
    if task == "binary":
        y, pred = rng.integers(0, 2, n), rng.integers(0, 2, n)
    else:
        y = rng.normal(0, 1, n)
        pred = y + rng.normal(0, 1, n)
    column = fairness.assess(task, y, pred, groups, positive=1, confidence=0.95, resamples=400).columns[0]
    metric = "selection_rate" if task == "binary" else "rmse"
    for g in ("a", "b"):
        low, high = column.by_group_bounds[metric][g]
        assert low is not None and high is not None
        assert low < column.by_group[metric][g] < high
    # The smaller group is measured less precisely: its interval is wider.
    width = {g: column.by_group_bounds[metric][g][1] - column.by_group_bounds[metric][g][0] for g in ("a", "b")}
    assert width["b"] > 1.5 * width["a"]


# -- the canary timeline ---------------------------------------------------------------------------------------------

BOUNDS = (0.01, 0.02, 0.05, 0.1, 0.2, math.inf)


def _snap(requests, under):
    """Cumulative counts: ``under`` maps a bucket bound to the requests at or below it."""
    return Snapshot({"200": requests}, {b: float(under.get(b, requests)) for b in BOUNDS})


def test_latency_quantiles_are_per_interval_so_a_late_slowdown_shows():
    fast = {0.01: 0, 0.02: 100}  # 100 requests between 10 and 20 ms
    looks = [Look(2.0, _snap(100, fast), _snap(100, fast), 10),
             # then 100 more, all between 100 and 200 ms: the cumulative median would still say ~20 ms
             Look(4.0, _snap(200, {0.01: 0, 0.02: 100, 0.05: 100, 0.1: 100}), None, 10)]
    first = interval_quantiles(looks[:1], "canary", [0.5])
    later = interval_quantiles(looks, "canary", [0.5, 0.9])
    assert first == {"p50": pytest.approx(15.0)}
    assert later is not None and later["p50"] == pytest.approx(150.0) and later["p90"] == pytest.approx(190.0)
    assert interval_quantiles(looks, "stable", [0.5]) is None  # the stable's read failed


def test_timeline_entry_keeps_counts_cumulative_and_adds_latency():
    looks = [Look(2.0, _snap(50, {0.01: 25}), _snap(150, {0.01: 75}), 25)]
    e = entry(looks, Judgement("continue", "", ()), 0, [0.5])
    assert e["t"] == 2.0 and e["step"] == 1 and e["weight"] == 25 and e["decision"] == "continue"
    assert e["canary_requests"] == 50 and e["stable_requests"] == 150
    assert e["canary_latency_ms"] == {"p50": pytest.approx(10.0)}
    assert e["stable_latency_ms"] == {"p50": pytest.approx(10.0)}
