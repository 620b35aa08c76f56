"""Metrics of every task come from scikit-learn; the task is detected from labels and predictions."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from mlcicd.evaluation.metrics import detect_task, metrics, per_row_loss, positive_label
from mlcicd.evaluation.tasks import CLASSIFICATION_METRICS, GREATER_IS_BETTER, REGRESSION_METRICS, metrics_for


def test_binary_metrics_for_the_positive_class():
    rng = np.random.default_rng(0)
    y = rng.choice(["bad", "good"], 500)
    pred = np.where(rng.random(500) < 0.8, y, rng.choice(["bad", "good"], 500))
    proba = np.column_stack([rng.random(500), rng.random(500)])
    ours = metrics("binary", y, pred, positive="bad", y_proba=proba, classes=["bad", "good"])
    tn, fp, _, _ = skm.confusion_matrix(y == "bad", pred == "bad").ravel()
    assert ours["precision"] == pytest.approx(skm.precision_score(y, pred, pos_label="bad"))
    assert ours["recall"] == pytest.approx(skm.recall_score(y, pred, pos_label="bad"))
    assert ours["f1"] == pytest.approx(skm.f1_score(y, pred, pos_label="bad"))
    assert ours["fpr"] == pytest.approx(fp / (fp + tn))
    assert ours["roc_auc"] == pytest.approx(skm.roc_auc_score(y == "bad", proba[:, 0]))
    assert ours["error_rate"] == pytest.approx(1 - ours["accuracy"])


def test_multiclass_macro_averages_and_one_vs_rest_auc():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 4, 400)
    pred = np.where(rng.random(400) < 0.6, y, rng.integers(0, 4, 400))
    proba = rng.dirichlet(np.ones(4), 400)
    ours = metrics("multiclass", y, pred, y_proba=proba, classes=[0, 1, 2, 3])
    for name, fn in (("precision", skm.precision_score), ("recall", skm.recall_score), ("f1", skm.f1_score)):
        assert ours[name] == pytest.approx(fn(y, pred, average="macro", zero_division=0)), name
    cm = skm.confusion_matrix(y, pred)
    fpr = [(cm[:, k].sum() - cm[k, k]) / (cm.sum() - cm[k].sum()) for k in range(4)]
    assert ours["fpr"] == pytest.approx(np.mean(fpr))
    assert ours["roc_auc"] == pytest.approx(skm.roc_auc_score(y, proba, multi_class="ovr"))
    assert metrics("multiclass", y, pred)["roc_auc"] is None  # no scores given


def test_regression_metrics():
    rng = np.random.default_rng(3)
    y = rng.normal(150, 50, 300)
    pred = y + rng.normal(0, 20, 300)
    ours = metrics("regression", y, pred)
    assert ours["rmse"] == pytest.approx(np.sqrt(np.mean((y - pred) ** 2)))
    assert ours["mae"] == pytest.approx(np.mean(np.abs(y - pred)))
    assert ours["r2"] == pytest.approx(skm.r2_score(y, pred))
    assert ours["mape"] == pytest.approx(skm.mean_absolute_percentage_error(y, pred))
    assert set(ours) == set(REGRESSION_METRICS)
    assert metrics("regression", y[:1], pred[:1])["r2"] is None  # one row: undefined


def test_degenerate_cases():
    y = np.array([0, 0, 1, 1])
    never = metrics("binary", y, np.zeros(4, dtype=int))
    assert never["precision"] == 0.0 and never["recall"] == 0.0 and never["fpr"] == 0.0
    only_positives = metrics("binary", np.ones(3, dtype=int), np.ones(3, dtype=int), y_proba=np.full((3, 2), 0.5),
                             classes=[0, 1])
    assert only_positives["fpr"] is None and only_positives["roc_auc"] is None  # undefined, not 0


@pytest.mark.parametrize(("y", "pred", "classes", "task"), [
    ([0, 1, 1], [1, 1, 0], None, "binary"),
    (["a", "b", "c"], ["a", "a", "c"], None, "multiclass"),
    ([1.0, 2.0, 3.0], [1.2, 2.1, 2.9], None, "regression"),  # a fractional prediction: regression
    ([0, 1, 2], [0, 1, 1], [0, 1, 2, 3], "multiclass"),  # the model's classes_ decide
    (list(range(100)), list(range(100)), None, "regression"),  # too many distinct values for classes
    ([0, 1], [0, 1], [0, 1], "binary"),
])
def test_task_detection(y, pred, classes, task):
    assert detect_task(np.array(y), np.array(pred), classes) == task


def test_per_row_losses():
    y, pred = np.array([1.0, 2.0, 4.0]), np.array([1.5, 2.0, 1.0])
    assert per_row_loss("rmse", y, pred).tolist() == [0.25, 0.0, 9.0]
    assert per_row_loss("mae", y, pred).tolist() == [0.5, 0.0, 3.0]
    assert per_row_loss("accuracy", np.array(["a", "b"]), np.array(["a", "a"])).tolist() == [0.0, 1.0]


def test_positive_label_conventions():
    assert positive_label([0, 1, 1]) == 1
    assert positive_label(np.array([True, False])) is True
    assert positive_label(["no", "yes"]) == "yes"
    assert positive_label([0, 1], classes=["b", "a"]) == "a"  # the model's classes_[1] wins
    assert isinstance(positive_label(np.array([0, 1], dtype=np.int64)), int)


def test_every_metric_has_a_direction_and_a_task():
    assert set(CLASSIFICATION_METRICS) | set(REGRESSION_METRICS) <= set(GREATER_IS_BETTER)
    assert not GREATER_IS_BETTER["rmse"] and GREATER_IS_BETTER["r2"] and not GREATER_IS_BETTER["fpr"]
    assert "rmse" not in metrics_for("binary") and "accuracy" not in metrics_for("regression")
    assert "latency_p99_ms" in metrics_for("regression")


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError):
        metrics("binary", np.array([0, 1]), np.array([0]))
