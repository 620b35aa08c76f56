"""Evaluation metrics of every task, from scikit-learn.

Binary problems get every metric for the positive class. Multiclass precision, recall,
f1 and fpr are macro averages over the labels present (scikit-learn's ``average="macro"``)
and roc_auc is one-vs-rest, macro-averaged, from ``predict_proba``. Regression gets rmse,
mae, r2 and mape. A metric that is undefined on the data is None, with a reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mlcicd.evaluation.tasks import GREATER_IS_BETTER, Task, prediction_metrics

__all__ = ["GREATER_IS_BETTER", "detect_task", "metrics", "per_row_loss", "plain", "positive_label"]

# A label with more distinct values than this is a regression target, not a class.
MAX_CLASSES = 50


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


def detect_task(y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[Any] | None) -> Task:
    """binary, multiclass or regression, from the labels, the predictions and the model's ``classes_``.

    A model with ``classes_`` is a classifier. Otherwise text or boolean labels are classes;
    numbers are classes when both labels and predictions are whole numbers with few
    distinct values, and a regression target as soon as a prediction has a fraction.
    """
    values = np.concatenate([np.asarray(y_true), np.asarray(y_pred)])
    if classes is None and values.dtype.kind in "iuf":
        floats = values.astype(np.float64)
        whole = bool(np.all(np.isfinite(floats) & (floats == np.floor(floats))))
        if not whole or len(np.unique(floats)) > MAX_CLASSES:
            return "regression"
    n_classes = len(classes) if classes is not None else len(np.unique(values))
    return "binary" if n_classes <= 2 else "multiclass"


def metrics(task: Task, y_true: np.ndarray, y_pred: np.ndarray, *, positive: Any = None,
            y_proba: np.ndarray | None = None, classes: Sequence[Any] | None = None) -> dict[str, float | None]:
    """Every prediction metric of ``task``; None where a metric is undefined on these rows.

    ``y_proba`` is ``predict_proba`` with columns in ``classes`` order (classifiers only).
    """
    t, p = np.asarray(y_true), np.asarray(y_pred)
    if t.shape != p.shape or t.ndim != 1:
        raise ValueError(f"y_true and y_pred must be 1-d of equal length, got {t.shape} and {p.shape}")
    if len(t) == 0:
        raise ValueError("no rows to evaluate")
    out: dict[str, float | None] = dict.fromkeys(prediction_metrics(task))
    if task == "regression":
        out.update(_regression(t.astype(np.float64), p.astype(np.float64)))
    elif task == "binary":
        out.update(_binary(t, p, positive_label(t) if positive is None else positive, y_proba, classes))
    else:
        out.update(_multiclass(t, p, y_proba, classes))
    return out


def _regression(t: np.ndarray, p: np.ndarray) -> dict[str, float | None]:
    from sklearn import metrics as skm

    r2 = float(skm.r2_score(t, p)) if len(t) > 1 else None  # undefined for a single row
    return {"rmse": float(skm.root_mean_squared_error(t, p)), "mae": float(skm.mean_absolute_error(t, p)),
            "r2": r2, "mape": float(skm.mean_absolute_percentage_error(t, p))}


def _binary(t: np.ndarray, p: np.ndarray, positive: Any, y_proba: np.ndarray | None,
            classes: Sequence[Any] | None) -> dict[str, float | None]:
    from sklearn import metrics as skm

    truth, predicted = t == positive, p == positive
    accuracy = float(skm.accuracy_score(t, p))
    tn, fp, _, _ = skm.confusion_matrix(truth, predicted, labels=[False, True]).ravel()
    out: dict[str, float | None] = {
        "accuracy": accuracy,
        "error_rate": 1.0 - accuracy,
        "precision": float(skm.precision_score(truth, predicted, zero_division=0)),
        "recall": float(skm.recall_score(truth, predicted, zero_division=0)),
        "f1": float(skm.f1_score(truth, predicted, zero_division=0)),
        # No negatives in the data: a false-positive rate is undefined, not 0.
        "fpr": float(fp / (fp + tn)) if fp + tn else None,
    }
    if y_proba is not None and classes is not None and positive in classes and truth.any() and not truth.all():
        score = y_proba[:, list(classes).index(positive)]
        if np.all(np.isfinite(score)):
            out["roc_auc"] = float(skm.roc_auc_score(truth, score))
    return out


def _multiclass(t: np.ndarray, p: np.ndarray, y_proba: np.ndarray | None,
                classes: Sequence[Any] | None) -> dict[str, float | None]:
    from sklearn import metrics as skm

    accuracy = float(skm.accuracy_score(t, p))
    matrices = skm.multilabel_confusion_matrix(t, p)  # one 2x2 per label present: [[tn, fp], [fn, tp]]
    negatives = matrices[:, 0, 0] + matrices[:, 0, 1]
    fpr = np.divide(matrices[:, 0, 1], negatives, out=np.zeros(len(matrices)), where=negatives > 0)
    out: dict[str, float | None] = {
        "accuracy": accuracy,
        "error_rate": 1.0 - accuracy,
        "precision": float(skm.precision_score(t, p, average="macro", zero_division=0)),
        "recall": float(skm.recall_score(t, p, average="macro", zero_division=0)),
        "f1": float(skm.f1_score(t, p, average="macro", zero_division=0)),
        "fpr": float(fpr.mean()),
    }
    if y_proba is not None and classes is not None and set(np.unique(t).tolist()) == set(classes) and \
            np.all(np.isfinite(y_proba)):
        out["roc_auc"] = float(skm.roc_auc_score(t, y_proba, multi_class="ovr", labels=list(classes)))
    return out


def per_row_loss(metric: str, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """What the paired comparison resamples: 1 - correct for classifiers, the error term for regression."""
    if metric in ("accuracy", "error_rate"):
        return (np.asarray(y_true) != np.asarray(y_pred)).astype(np.float64)
    error = np.asarray(y_true, dtype=np.float64) - np.asarray(y_pred, dtype=np.float64)
    return error**2 if metric == "rmse" else np.abs(error)
