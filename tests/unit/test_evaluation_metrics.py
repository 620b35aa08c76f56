"""Our numpy metrics agree with scikit-learn's on random data."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from mlcicd.evaluation.metrics import (
    GREATER_IS_BETTER,
    PREDICTION_METRICS,
    classification_metrics,
    positive_label,
    roc_auc,
)


@pytest.mark.parametrize("seed", range(5))
def test_binary_metrics_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    n = 500
    y = rng.integers(0, 2, n)
    pred = np.where(rng.random(n) < 0.8, y, 1 - y)
    score = np.round(rng.random(n) * 0.5 + 0.5 * y, 1)  # rounded: many ties, as real probabilities have
    ours = classification_metrics(y, pred, score)
    tn, fp, _, _ = skm.confusion_matrix(y, pred).ravel()
    assert ours["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert ours["error_rate"] == pytest.approx(1 - skm.accuracy_score(y, pred))
    assert ours["precision"] == pytest.approx(skm.precision_score(y, pred))
    assert ours["recall"] == pytest.approx(skm.recall_score(y, pred))
    assert ours["f1"] == pytest.approx(skm.f1_score(y, pred))
    assert ours["fpr"] == pytest.approx(fp / (fp + tn))
    assert ours["roc_auc"] == pytest.approx(skm.roc_auc_score(y, score))


def test_string_labels_use_the_given_positive_class():
    rng = np.random.default_rng(1)
    y = rng.choice(["bad", "good"], 300)
    pred = np.where(rng.random(300) < 0.7, y, rng.choice(["bad", "good"], 300))
    ours = classification_metrics(y, pred, positive="bad")
    assert ours["precision"] == pytest.approx(skm.precision_score(y, pred, pos_label="bad"))
    assert ours["recall"] == pytest.approx(skm.recall_score(y, pred, pos_label="bad"))
    assert ours["f1"] == pytest.approx(skm.f1_score(y, pred, pos_label="bad"))
    assert ours["roc_auc"] is None  # no scores given


def test_multiclass_is_macro_averaged_and_leaves_out_fpr_and_auc():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 4, 400)
    pred = np.where(rng.random(400) < 0.6, y, rng.integers(0, 4, 400))
    ours = classification_metrics(y, pred)
    for name, fn in (("precision", skm.precision_score), ("recall", skm.recall_score), ("f1", skm.f1_score)):
        assert ours[name] == pytest.approx(fn(y, pred, average="macro", zero_division=0)), name
    assert ours["fpr"] is None and ours["roc_auc"] is None
    assert ours["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))


def test_degenerate_cases_follow_sklearn_zero_division():
    y = np.array([0, 0, 1, 1])
    never = np.zeros(4, dtype=int)
    ours = classification_metrics(y, never)
    assert ours["precision"] == 0.0 == skm.precision_score(y, never, zero_division=0)
    assert ours["recall"] == 0.0 and ours["f1"] == 0.0 and ours["fpr"] == 0.0
    only_positives = classification_metrics(np.ones(3, dtype=int), np.ones(3, dtype=int), np.array([0.1, 0.2, 0.3]))
    assert only_positives["fpr"] is None  # no negatives: undefined, not 0
    assert only_positives["roc_auc"] is None


def test_roc_auc_all_tied_is_one_half():
    assert roc_auc(np.array([True, False, True, False]), np.full(4, 0.3)) == 0.5


def test_positive_label_conventions():
    assert positive_label([0, 1, 1]) == 1
    assert positive_label(np.array([True, False])) is True
    assert positive_label(["no", "yes"]) == "yes"
    assert positive_label([0, 1], classes=["b", "a"]) == "a"  # the model's classes_[1] wins
    assert isinstance(positive_label(np.array([0, 1], dtype=np.int64)), int)


def test_every_prediction_metric_has_a_direction():
    assert set(PREDICTION_METRICS) <= set(GREATER_IS_BETTER)
    assert not GREATER_IS_BETTER["fpr"] and not GREATER_IS_BETTER["error_rate"] and GREATER_IS_BETTER["roc_auc"]


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError):
        classification_metrics([0, 1], [0])
