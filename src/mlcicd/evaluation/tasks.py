"""Task types and the metric names each one has (standard library only: config.py checks keys with it).

``binary`` and ``multiclass`` classifiers predict labels; ``regression`` models predict
numbers. Every metric name used in ``gate.thresholds``, ``gate.champion``,
``gate.non_inferiority`` and ``gate.fairness.max_group_difference`` comes from here.
"""

from __future__ import annotations

from typing import Literal

Task = Literal["binary", "multiclass", "regression"]
TASKS: tuple[Task, ...] = ("binary", "multiclass", "regression")

# Metric name -> whether a greater value is better. Decides the direction of every
# threshold, change rule and tolerance.
GREATER_IS_BETTER: dict[str, bool] = {
    "accuracy": True,
    "precision": True,
    "recall": True,
    "f1": True,
    "fpr": False,
    "roc_auc": True,
    "error_rate": False,
    "rmse": False,
    "mae": False,
    "r2": True,
    "mape": False,
    "latency_p50_ms": False,
    "latency_p99_ms": False,
}
CLASSIFICATION_METRICS: tuple[str, ...] = ("accuracy", "precision", "recall", "f1", "fpr", "roc_auc", "error_rate")
REGRESSION_METRICS: tuple[str, ...] = ("rmse", "mae", "r2", "mape")
LATENCY_METRICS: tuple[str, ...] = ("latency_p50_ms", "latency_p99_ms")
# The paired non-inferiority test: per-row correctness for classifiers, per-row losses for regression.
NON_INFERIORITY_METRICS: dict[str, tuple[str, ...]] = {
    "binary": ("accuracy", "error_rate"), "multiclass": ("accuracy", "error_rate"), "regression": ("rmse", "mae"),
}
# Per-group metrics whose gap between groups can be limited (those with a bootstrap interval).
GROUP_GAP_METRICS: dict[str, tuple[str, ...]] = {
    "binary": ("accuracy", "precision", "recall", "f1", "fpr", "error_rate", "selection_rate"),
    "multiclass": ("accuracy", "precision", "recall", "f1", "fpr", "error_rate"),
    "regression": REGRESSION_METRICS,
}


def prediction_metrics(task: Task) -> tuple[str, ...]:
    return REGRESSION_METRICS if task == "regression" else CLASSIFICATION_METRICS


def metrics_for(task: Task | None) -> tuple[str, ...]:
    """Names valid for a task (every name when the task is detected at run time)."""
    if task is None:
        return tuple(GREATER_IS_BETTER)
    return (*prediction_metrics(task), *LATENCY_METRICS)


def default_non_inferiority_metric(task: Task) -> str:
    return "rmse" if task == "regression" else "accuracy"
