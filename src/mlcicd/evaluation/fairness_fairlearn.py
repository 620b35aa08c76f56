"""The fairness figures from fairlearn itself (``gate.fairness.engine: fairlearn``).

``MetricFrame`` gives the per-group value of every gate metric (the scikit-learn metric
functions the gate uses, group by group) and its ``difference()``;
``demographic_parity_difference``, ``demographic_parity_ratio`` and
``equalized_odds_difference`` give the disparities (multiclass: one-vs-rest per class,
the worst class). The bootstrap bounds are the fast engine's: fairlearn's own
``n_boot`` would resample a million rows a thousand times. fairlearn costs ~2.5 s to
import and seconds per MetricFrame on large data, which is why the fast engine (equal
to these numbers to 1e-9, see the parity tests) is the default.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import numpy as np

from mlcicd.evaluation import fairness
from mlcicd.evaluation.tasks import Task


def assess(task: Task, y_true: np.ndarray, y_pred: np.ndarray, sensitive: Mapping[str, Any], *, positive: Any = 1,
           score: np.ndarray | None = None, confidence: float = 0.95, resamples: int = 1000,
           seed: int = fairness.SEED) -> fairness.FairnessResult:
    result = fairness.assess(task, y_true, y_pred, sensitive, positive=positive, score=score, confidence=confidence,
                             resamples=resamples, seed=seed)
    result.engine = "fairlearn"
    for column in result.columns:
        codes, names = fairness.group_codes(sensitive[column.column])
        groups = np.asarray(names, dtype=object)[codes]
        if task == "regression":
            by_group, disparities = _regression(np.asarray(y_true, float), np.asarray(y_pred, float), groups)
        else:
            by_group, disparities = _classification(task, np.asarray(y_true), np.asarray(y_pred), groups, positive,
                                                    score)
        column.by_group = by_group
        for key, value in disparities.items():
            column.disparities[key].value = value
    return result


def _frame(metrics: dict[str, Callable[..., Any]], y_true: Any, y_pred: Any, groups: np.ndarray) -> Any:
    from fairlearn.metrics import MetricFrame

    return MetricFrame(metrics=metrics, y_true=y_true, y_pred=y_pred, sensitive_features=groups)


def _table(frame: Any) -> dict[str, dict[str, float | None]]:
    return {str(metric): {str(g): fairness._optional(v) for g, v in values.items()}
            for metric, values in frame.by_group.to_dict().items()}


def _classification(task: Task, y_true: np.ndarray, y_pred: np.ndarray, groups: np.ndarray, positive: Any,
                    score: np.ndarray | None) -> tuple[dict[str, dict[str, float | None]], dict[str, float | None]]:
    from fairlearn import metrics as flm
    from sklearn import metrics as skm

    if task == "binary":
        t, p = (y_true == positive).astype(int), (y_pred == positive).astype(int)
        functions: dict[str, Callable[..., Any]] = {
            "accuracy": skm.accuracy_score, "precision": partial(skm.precision_score, zero_division=0),
            "recall": partial(skm.recall_score, zero_division=0), "f1": partial(skm.f1_score, zero_division=0),
            "fpr": _binary_fpr, "error_rate": _error_rate, "selection_rate": flm.selection_rate}
        frame = _frame(functions, t, p, groups)
        by_group = _table(frame)
        if score is not None:
            by_group["roc_auc"] = _table(_frame({"roc_auc": _roc_auc}, t, score, groups))["roc_auc"]
        ovr = [(t, p)]
    else:
        functions = {"accuracy": skm.accuracy_score,
                     "precision": partial(skm.precision_score, average="macro", zero_division=0),
                     "recall": partial(skm.recall_score, average="macro", zero_division=0),
                     "f1": partial(skm.f1_score, average="macro", zero_division=0),
                     "fpr": _macro_fpr, "error_rate": _error_rate}
        frame = _frame(functions, y_true, y_pred, groups)
        by_group = _table(frame)
        ovr = [((y_true == c).astype(int), (y_pred == c).astype(int)) for c in np.unique(np.concatenate([y_true,
                                                                                                        y_pred]))]
    disparities = {f"{m}_difference": fairness._optional(v) for m, v in frame.difference().to_dict().items()}
    dp = [flm.demographic_parity_difference(a, b, sensitive_features=groups) for a, b in ovr]
    ratio = [flm.demographic_parity_ratio(a, b, sensitive_features=groups) for a, b in ovr]
    eo = [flm.equalized_odds_difference(a, b, sensitive_features=groups) for a, b in ovr]
    disparities.update({"demographic_parity_difference": fairness._optional(np.nanmax(dp)),
                        "demographic_parity_ratio": fairness._optional(np.nanmin(ratio)),
                        "equalized_odds_difference": fairness._optional(np.nanmax(eo))})
    return by_group, disparities


def _regression(y: np.ndarray, p: np.ndarray,
                groups: np.ndarray) -> tuple[dict[str, dict[str, float | None]], dict[str, float | None]]:
    from sklearn import metrics as skm

    functions = {"rmse": skm.root_mean_squared_error, "mae": skm.mean_absolute_error, "r2": _r2,
                 "mape": skm.mean_absolute_percentage_error}
    frame = _frame(functions, y, p, groups)
    return _table(frame), {f"{m}_difference": fairness._optional(v) for m, v in frame.difference().to_dict().items()}


def _error_rate(y_true: Any, y_pred: Any) -> float:
    from sklearn.metrics import accuracy_score

    return 1.0 - float(accuracy_score(y_true, y_pred))


def _binary_fpr(y_true: Any, y_pred: Any) -> float:
    """False-positive rate; undefined (NaN) for a group without negatives."""
    from sklearn.metrics import confusion_matrix

    tn, fp, _, _ = confusion_matrix(y_true, y_pred, labels=[0, 1]).ravel()
    return fp / (fp + tn) if fp + tn else float("nan")


def _macro_fpr(y_true: Any, y_pred: Any) -> float:
    from sklearn.metrics import multilabel_confusion_matrix

    m = multilabel_confusion_matrix(y_true, y_pred)
    negatives = m[:, 0, 0] + m[:, 0, 1]
    return float(np.divide(m[:, 0, 1], negatives, out=np.zeros(len(m)), where=negatives > 0).mean())


def _roc_auc(y_true: Any, y_score: Any) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y_true, y_score)) if 0 < np.sum(y_true) < len(y_true) else float("nan")


def _r2(y_true: Any, y_pred: Any) -> float:
    from sklearn.metrics import r2_score

    return float(r2_score(y_true, y_pred)) if len(y_true) >= 2 else float("nan")
