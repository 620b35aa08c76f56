"""Fairness across sensitive groups: per-group values of every gate metric and the disparities between groups.

What fairlearn computes, with its definitions: ``MetricFrame(...).by_group`` for each
gate metric, ``demographic_parity_difference`` / ``_ratio`` on the selection rate, and
``equalized_odds_difference`` (the larger of the true- and false-positive-rate gaps, a
rate of a group without such rows counting as 0, as fairlearn's confusion matrix does).
Binary classifiers are judged on the positive class; multiclass ones one-vs-rest, class by
class, reporting the worst class; regression models on per-group error (rmse, mae, r2,
mape). Missing values of a sensitive column form their own group.

The fast engine here gets every count-based figure from one ``bincount`` of the
(group, true class, predicted class) cells, and the regression figures from per-group
sums; ``tests/unit/test_fairness_parity.py`` holds it to fairlearn's numbers to 1e-9, and
``gate.fairness.engine: fairlearn`` runs fairlearn itself instead (``fairness_fairlearn``).
Because classifier figures depend only on the cell counts, resampling rows is a
multinomial draw over the cells: the bootstrap confidence intervals cost milliseconds on a
million rows. Regression resamples per-group sums (:mod:`mlcicd.evaluation.resample`).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlcicd.evaluation.tasks import Task

MISSING_GROUP = "(missing)"
SEED = 20_240_611
CLASS_METRICS = ("accuracy", "precision", "recall", "f1", "fpr", "error_rate")
REGRESSION_METRICS = ("rmse", "mae", "r2", "mape")


@dataclass
class Disparity:
    value: float | None
    lower: float | None = None  # one-sided bootstrap bounds at the configured confidence
    upper: float | None = None
    detail: str = ""  # the class it is worst for (multiclass), or the groups at the extremes


@dataclass
class ColumnFairness:
    column: str
    rows: dict[str, int]  # group -> rows
    by_group: dict[str, dict[str, float | None]]  # metric -> group -> value (fairlearn's by_group, transposed)
    disparities: dict[str, Disparity] = field(default_factory=dict)
    # metric -> group -> [lower, upper]: each a one-sided bootstrap bound at the configured confidence,
    # like the disparities' bounds (the report draws them as error bars on the per-group values).
    by_group_bounds: dict[str, dict[str, list[float | None]]] = field(default_factory=dict)


@dataclass
class FairnessResult:
    task: Task
    engine: str
    confidence: float
    resamples: int
    columns: list[ColumnFairness]


def group_codes(values: Any) -> tuple[np.ndarray, list[str]]:
    """Integer codes per row and the group names (sorted). Missing values form their own group:
    dropping them would hide exactly the rows whose attribute nobody recorded."""
    import pandas as pd

    codes, uniques = pd.factorize(np.asarray(values), use_na_sentinel=False, sort=True)
    return np.asarray(codes), [MISSING_GROUP if _is_missing(u) else str(u) for u in uniques]


def _is_missing(value: Any) -> bool:
    try:
        return bool(value != value) or value is None  # NaN is the only value unequal to itself
    except (TypeError, ValueError):
        return False


def label_codes(task: Task, y_true: np.ndarray, y_pred: np.ndarray, positive: Any) -> tuple[np.ndarray, np.ndarray,
                                                                                             list[Any]]:
    """Class codes of truth and prediction; binary: 1 is the positive class, 0 everything else."""
    if task == "binary":
        return (np.asarray(y_true) == positive).astype(np.int64), (np.asarray(y_pred) == positive).astype(np.int64), \
            ["other", positive]
    labels, codes = np.unique(np.concatenate([np.asarray(y_true), np.asarray(y_pred)]), return_inverse=True)
    n = len(y_true)
    return codes[:n].astype(np.int64), codes[n:].astype(np.int64), labels.tolist()


def cells(groups: np.ndarray, n_groups: int, truth: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    """Counts of every (group, true class, predicted class): shape (G, K, K)."""
    flat = (groups * k + truth) * k + pred
    return np.bincount(flat, minlength=n_groups * k * k).reshape(n_groups, k, k).astype(np.float64)


def _div(num: np.ndarray, den: np.ndarray, empty: float = 0.0) -> np.ndarray:
    return np.divide(num, den, out=np.full(np.broadcast(num, den).shape, empty), where=den > 0)


def class_metrics(c: np.ndarray, task: Task) -> dict[str, np.ndarray]:
    """Per-group metrics from cell counts of shape (..., G, K, K); NaN for a group without rows."""
    n = c.sum(axis=(-1, -2))
    actual, predicted = c.sum(axis=-1), c.sum(axis=-2)  # (..., G, K)
    tp = np.diagonal(c, axis1=-2, axis2=-1)
    out: dict[str, np.ndarray] = {"accuracy": _div(tp.sum(axis=-1), n, np.nan)}
    out["error_rate"] = 1.0 - out["accuracy"]
    if task == "binary":
        tn, fp, fn = c[..., 0, 0], c[..., 0, 1], c[..., 1, 0]
        out["precision"] = _div(tp[..., 1], tp[..., 1] + fp)
        out["recall"] = _div(tp[..., 1], tp[..., 1] + fn)
        out["f1"] = _div(2 * tp[..., 1], 2 * tp[..., 1] + fp + fn)
        out["fpr"] = _div(fp, fp + tn, np.nan)  # undefined without negatives
        out["selection_rate"] = _div(predicted[..., 1], n, np.nan)
    else:
        # scikit-learn's macro average runs over the labels present in the group's truth or predictions.
        present = (actual + predicted) > 0
        n_present = present.sum(axis=-1)
        per_label = {"precision": _div(tp, predicted), "recall": _div(tp, actual),
                     "f1": _div(2 * tp, actual + predicted), "fpr": _div(predicted - tp, n[..., None] - actual)}
        for name, values in per_label.items():
            out[name] = _div(np.where(present, values, 0.0).sum(axis=-1), n_present, np.nan)
    empty = n == 0
    for values in out.values():
        values[empty] = np.nan
    return out


def one_vs_rest(c: np.ndarray) -> dict[str, np.ndarray]:
    """Per class and group: selection rate, and fairlearn's TPR and FPR (0 when undefined); shape (..., G, K)."""
    n = c.sum(axis=(-1, -2))[..., None]
    actual, predicted = c.sum(axis=-1), c.sum(axis=-2)
    tp = np.diagonal(c, axis1=-2, axis2=-1)
    return {"selection_rate": _div(predicted, n, np.nan), "tpr": _div(tp, actual),
            "fpr": _div(predicted - tp, n - actual)}


def _spread(values: np.ndarray) -> np.ndarray:
    """max - min over groups (the last axis), skipping NaN: fairlearn's difference(between_groups)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a resample may leave no group with a value
        return np.nanmax(values, axis=-1) - np.nanmin(values, axis=-1)


def _ratio(values: np.ndarray) -> np.ndarray:
    """min / max over groups: fairlearn's ratio(between_groups)."""
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmin(values, axis=-1) / np.nanmax(values, axis=-1)


def class_disparities(c: np.ndarray, task: Task) -> dict[str, np.ndarray]:
    """Every disparity of a classifier from cells (..., G, K, K); multiclass: the worst class."""
    per_group = class_metrics(c, task)
    out = {f"{m}_difference": _spread(per_group[m]) for m in CLASS_METRICS}
    ovr = one_vs_rest(c)
    columns = [1] if task == "binary" else list(range(c.shape[-1]))
    sel = np.moveaxis(ovr["selection_rate"][..., columns], -1, -2)  # (..., K', G)
    eo = np.maximum(_spread(np.moveaxis(ovr["tpr"][..., columns], -1, -2)),
                    _spread(np.moveaxis(ovr["fpr"][..., columns], -1, -2)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a class no group predicts has no ratio
        out["demographic_parity_difference"] = np.nanmax(_spread(sel), axis=-1)
        out["demographic_parity_ratio"] = np.nanmin(_ratio(sel), axis=-1)
        out["equalized_odds_difference"] = np.nanmax(eo, axis=-1)
    if task == "binary":
        out["selection_rate_difference"] = _spread(per_group["selection_rate"])
    return out


def regression_metrics(sums: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-group rmse, mae, r2 and mape from per-group sums (arrays (..., G)), as scikit-learn defines them."""
    n = sums["n"]
    out = {"rmse": np.sqrt(_div(sums["se"], n, np.nan)), "mae": _div(sums["ae"], n, np.nan),
           "mape": _div(sums["ape"], n, np.nan)}
    sst, sse = sums["sst"], sums["se"]
    r2 = np.where(sst > 0, 1.0 - _div(sse, sst), np.where(sse == 0, 1.0, 0.0))  # sklearn's force_finite
    out["r2"] = np.where(n >= 2, r2, np.nan)
    return out


def _regression_sums(groups: np.ndarray, n_groups: int, y: np.ndarray, p: np.ndarray) -> dict[str, np.ndarray]:
    error = y - p
    n = np.bincount(groups, minlength=n_groups).astype(np.float64)
    mean = _div(np.bincount(groups, weights=y, minlength=n_groups), n)
    return {"n": n, "se": np.bincount(groups, weights=error**2, minlength=n_groups),
            "ae": np.bincount(groups, weights=np.abs(error), minlength=n_groups),
            "ape": np.bincount(groups, weights=np.abs(error) / np.maximum(np.abs(y), np.finfo(np.float64).eps),
                               minlength=n_groups),
            "sst": np.bincount(groups, weights=(y - mean[groups]) ** 2, minlength=n_groups)}


def regression_disparities(metrics: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {f"{m}_difference": _spread(metrics[m]) for m in REGRESSION_METRICS}


def assess(task: Task, y_true: np.ndarray, y_pred: np.ndarray, sensitive: Mapping[str, Any], *, positive: Any = 1,
           score: np.ndarray | None = None, confidence: float = 0.95, resamples: int = 1000,
           seed: int = SEED) -> FairnessResult:
    """Per-group metrics and disparities of every sensitive column, with bootstrap bounds.

    ``score`` is the positive class's score (binary): per-group roc_auc, point values only.
    """
    columns, used = [], resamples
    by_score = None
    if score is not None and task == "binary" and np.all(np.isfinite(score)):
        by_score = np.argsort(score)  # one sort serves every sensitive column (ties are averaged anyway)
    for name, values in sensitive.items():
        groups, names = group_codes(values)
        if len(groups) != len(y_true):
            raise ValueError(f"{name}: {len(groups)} group values for {len(y_true)} predictions")
        if task == "regression":
            column, used = _regression_column(name, groups, names, np.asarray(y_true, np.float64),
                                              np.asarray(y_pred, np.float64), confidence, resamples, seed)
        else:
            column = _class_column(task, name, groups, names, y_true, y_pred, positive, confidence, resamples, seed)
            if score is not None and by_score is not None:
                auc = group_roc_auc(np.asarray(y_true) == positive, np.asarray(score, np.float64), groups, len(names),
                                    by_score)
                column.by_group["roc_auc"] = {g: _optional(auc[i]) for i, g in enumerate(names)}
        columns.append(column)
    return FairnessResult(task, "fast", confidence, used, columns)


def group_roc_auc(truth: np.ndarray, score: np.ndarray, groups: np.ndarray, n_groups: int,
                  by_score: np.ndarray | None = None) -> np.ndarray:
    """ROC AUC of every group from one sort: the rank-sum identity, ties sharing their mean rank.

    AUC = (R+ - n+(n+ + 1)/2) / (n+ n-), R+ the positives' rank sum within the group; NaN
    where a group lacks positives or negatives. Equal to scikit-learn's ``roc_auc_score``
    per group (the parity tests compare them through fairlearn's MetricFrame).
    """
    if by_score is None:
        by_score = np.argsort(score)
    # Stable by group over the score order: sorted by (group, score); integer keys sort in linear time.
    order = by_score[np.argsort(groups[by_score], kind="stable")]
    g, s, t = groups[order], score[order], truth[order].astype(np.float64)
    n = len(g)
    new_run = np.ones(n, dtype=bool)
    new_run[1:] = (g[1:] != g[:-1]) | (s[1:] != s[:-1])
    run_start = np.flatnonzero(new_run)
    run_len = np.diff(np.append(run_start, n))
    group_start = np.searchsorted(g, np.arange(n_groups))
    mean_rank = (run_start - group_start[g[run_start]]) + (run_len + 1) / 2.0
    ranks = mean_rank[np.cumsum(new_run) - 1]
    positives = np.bincount(g, weights=t, minlength=n_groups)
    negatives = np.bincount(g, minlength=n_groups) - positives
    rank_sum = np.bincount(g, weights=ranks * t, minlength=n_groups)
    return _div(rank_sum - positives * (positives + 1) / 2.0, positives * negatives, np.nan)


def _optional(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if np.isnan(value) else value


def _bounds(draws: np.ndarray, confidence: float) -> tuple[float | None, float | None]:
    finite = draws[np.isfinite(draws)]
    if finite.size == 0:
        return None, None
    low, high = np.quantile(finite, [1.0 - confidence, confidence])
    return float(low), float(high)


def _group_bounds(sampled: dict[str, np.ndarray], names: list[str],
                  confidence: float) -> dict[str, dict[str, list[float | None]]]:
    """Per metric and group, the bootstrap bounds from resampled per-group values (shape (R, G))."""
    out: dict[str, dict[str, list[float | None]]] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a group no resample gives a value has no bounds
        for metric, values in sampled.items():
            low, high = np.nanquantile(values, [1.0 - confidence, confidence], axis=0)
            out[metric] = {g: [_optional(low[i]), _optional(high[i])] for i, g in enumerate(names)}
    return out


def _class_column(task: Task, name: str, groups: np.ndarray, names: list[str], y_true: np.ndarray,
                  y_pred: np.ndarray, positive: Any, confidence: float, resamples: int, seed: int) -> ColumnFairness:
    truth, pred, labels = label_codes(task, y_true, y_pred, positive)
    counts = cells(groups, len(names), truth, pred, len(labels))
    per_group = class_metrics(counts, task)
    point = class_disparities(counts, task)
    rng = np.random.default_rng(seed)
    n = int(counts.sum())
    draws = rng.multinomial(n, counts.ravel() / n, size=resamples).reshape(resamples, *counts.shape)
    sampled = class_disparities(draws.astype(np.float64), task)
    column = ColumnFairness(name, {g: int(counts[i].sum()) for i, g in enumerate(names)},
                            {m: {g: _optional(v[i]) for i, g in enumerate(names)} for m, v in per_group.items()},
                            by_group_bounds=_group_bounds(class_metrics(draws.astype(np.float64), task), names,
                                                          confidence))
    for key, value in point.items():
        column.disparities[key] = Disparity(_optional(value), *_bounds(sampled[key], confidence))
    if task == "multiclass":  # which class the one-vs-rest figures are worst for
        ovr = one_vs_rest(counts)
        worst = int(np.nanargmax(_spread(ovr["selection_rate"].T)))
        column.disparities["demographic_parity_difference"].detail = f"class {labels[worst]!r}"
    return column


def _regression_column(name: str, groups: np.ndarray, names: list[str], y: np.ndarray, p: np.ndarray,
                       confidence: float, resamples: int, seed: int) -> tuple[ColumnFairness, int]:
    from mlcicd.evaluation.resample import group_sums

    g = len(names)
    per_group = regression_metrics(_regression_sums(groups, g, y, p))
    point = regression_disparities(per_group)
    error = np.abs(y - p)
    # Per row: error², |error|, |error| / |y|, y, y²; their resampled group sums give every metric.
    values = np.column_stack([error**2, error, error / np.maximum(np.abs(y), np.finfo(np.float64).eps), y, y * y])
    counts, sums = group_sums(values, groups, g, resamples, np.random.default_rng(seed))
    n = counts.astype(np.float64)
    sst = np.maximum(sums[..., 4] - _div(sums[..., 3] ** 2, n), 0.0)
    sampled_groups = regression_metrics({"n": n, "se": sums[..., 0], "ae": sums[..., 1], "ape": sums[..., 2],
                                         "sst": sst})
    sampled = regression_disparities(sampled_groups)
    column = ColumnFairness(name, {grp: int(np.count_nonzero(groups == i)) for i, grp in enumerate(names)},
                            {m: {grp: _optional(v[i]) for i, grp in enumerate(names)} for m, v in per_group.items()},
                            by_group_bounds=_group_bounds(sampled_groups, names, confidence))
    for key, value in point.items():
        column.disparities[key] = Disparity(_optional(value), *_bounds(sampled[key], confidence))
    return column, resamples
