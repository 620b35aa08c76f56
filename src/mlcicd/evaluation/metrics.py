"""Classification metrics from labels and scores, in numpy.

One confusion matrix (a single ``bincount``) gives every count-based metric; ROC AUC
comes from the rank-sum (Mann-Whitney U) identity, so neither needs scikit-learn.
Binary problems get all metrics for the positive class. With more than two classes,
precision, recall and f1 are macro averages (as scikit-learn's ``average="macro"``)
and fpr/roc_auc are left out (None): a single number would hide which class suffers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

# Metric name -> whether a greater value is better. Decides the direction of every
# threshold and champion comparison, so it is the single list of valid metric names.
GREATER_IS_BETTER: dict[str, bool] = {
    "accuracy": True,
    "precision": True,
    "recall": True,
    "f1": True,
    "fpr": False,
    "roc_auc": True,
    "error_rate": False,
    "latency_p50_ms": False,
    "latency_p99_ms": False,
}
PREDICTION_METRICS: tuple[str, ...] = ("accuracy", "precision", "recall", "f1", "fpr", "roc_auc", "error_rate")
LATENCY_METRICS: tuple[str, ...] = ("latency_p50_ms", "latency_p99_ms")


def positive_label(labels: Sequence[Any] | np.ndarray, classes: Sequence[Any] | None = None) -> Any:
    """The class counted as positive.

    The model's own ``classes_`` order wins (scikit-learn scores ``classes_[1]`` in
    ``predict_proba``); otherwise 1/True when the labels are 0/1, else the greatest
    label — scikit-learn's convention, so our numbers match its defaults.
    """
    if classes is not None and len(classes) == 2:
        return plain(classes[1])
    values = np.unique(np.asarray(labels))
    if len(values) == 0:
        return 1
    if set(values.tolist()) <= {0, 1}:
        return True if values.dtype == bool else 1
    return plain(values[-1])


def plain(value: Any) -> Any:
    """numpy scalars -> Python scalars, so reports and tags show ``1`` not ``np.int64(1)``."""
    return value.item() if isinstance(value, np.generic) else value


def correct(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Per-row correctness (bool), the input of the paired comparison."""
    return np.asarray(y_true) == np.asarray(y_pred)


def classification_metrics(
    y_true: Sequence[Any] | np.ndarray,
    y_pred: Sequence[Any] | np.ndarray,
    y_score: np.ndarray | None = None,
    *,
    positive: Any = None,
) -> dict[str, float | None]:
    """All metrics of :data:`PREDICTION_METRICS`; None where a metric is undefined here.

    ``y_score`` is the score of the positive class (e.g. ``predict_proba[:, 1]``);
    without it ``roc_auc`` is None.
    """
    t = np.asarray(y_true)
    p = np.asarray(y_pred)
    if t.shape != p.shape or t.ndim != 1:
        raise ValueError(f"y_true and y_pred must be 1-d of equal length, got {t.shape} and {p.shape}")
    n = len(t)
    if n == 0:
        raise ValueError("no rows to evaluate")
    accuracy = float(np.mean(t == p))
    out: dict[str, float | None] = dict.fromkeys(PREDICTION_METRICS)
    out["accuracy"] = accuracy
    out["error_rate"] = 1.0 - accuracy
    classes, codes = np.unique(np.concatenate([t, p]), return_inverse=True)
    if len(classes) > 2:
        out.update(_macro(codes[:n], codes[n:], len(classes)))
        return out
    pos = positive_label(t) if positive is None else positive
    is_pos_true = t == pos
    is_pos_pred = p == pos
    tp = int(np.count_nonzero(is_pos_true & is_pos_pred))
    fp = int(np.count_nonzero(~is_pos_true & is_pos_pred))
    fn = int(np.count_nonzero(is_pos_true & ~is_pos_pred))
    tn = n - tp - fp - fn
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    out["precision"] = precision
    out["recall"] = recall
    out["f1"] = _ratio(2 * tp, 2 * tp + fp + fn)
    # No negatives in the data: a false-positive rate is undefined, not 0.
    out["fpr"] = fp / (fp + tn) if fp + tn else None
    if y_score is not None:
        out["roc_auc"] = roc_auc(is_pos_true, np.asarray(y_score, dtype=float))
    return out


def _ratio(num: int, den: int) -> float:
    # scikit-learn's zero_division default reports 0.0 (with a warning) for an empty denominator.
    return num / den if den else 0.0


def _macro(t: np.ndarray, p: np.ndarray, k: int) -> dict[str, float | None]:
    cm = np.bincount(t * k + p, minlength=k * k).reshape(k, k)  # rows: truth, columns: prediction
    tp = np.diag(cm).astype(float)
    predicted = cm.sum(axis=0)
    actual = cm.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(actual > 0, tp / actual, 0.0)
        f1 = np.where(predicted + actual > 0, 2 * tp / (predicted + actual), 0.0)
    return {"precision": float(precision.mean()), "recall": float(recall.mean()), "f1": float(f1.mean())}


def roc_auc(is_positive: np.ndarray, score: np.ndarray) -> float | None:
    """Area under the ROC curve via ranks; ties share their average rank (as scikit-learn).

    AUC = P(score of a random positive > score of a random negative) + ½ P(tie)
        = (R₊ - n₊(n₊+1)/2) / (n₊ n₋), where R₊ is the rank sum of the positives.
    """
    is_positive = np.asarray(is_positive, dtype=bool)
    n_pos = int(np.count_nonzero(is_positive))
    n_neg = len(is_positive) - n_pos
    if n_pos == 0 or n_neg == 0 or not np.all(np.isfinite(score)):
        return None
    order = np.argsort(score, kind="mergesort")
    ordered = score[order]
    _, first, counts = np.unique(ordered, return_index=True, return_counts=True)
    average_rank = first + (counts + 1) / 2.0  # 1-based mean rank of each tie group
    ranks = np.empty(len(score), dtype=float)
    ranks[order] = np.repeat(average_rank, counts)
    rank_sum = float(ranks[is_positive].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)
