"""Curve points for the HTML report: ROC and precision-recall curves, or residuals for regression.

The report is rendered from ``gate.json`` alone, so the gate stores the curves, downsampled:
at most :data:`MAX_POINTS` points per curve and :data:`MAX_RESIDUALS` residuals, for the
candidate and the champion. Multiclass models get the micro-averaged one-vs-rest curve (every
(row, class) pair is one binary decision): one curve per model that weighs classes by their
rows, where per-class curves would be K times the points and unreadable for many classes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from mlcicd.evaluation.scoring import Scored
    from mlcicd.evaluation.tasks import Task

MAX_POINTS = 100
MAX_RESIDUALS = 500
SEED = 20_240_612  # fixed: the same rows are plotted on every re-run


def figures(task: Task, y_true: np.ndarray, candidate: Scored, champion: Scored | None,
            positive: Any = None) -> dict[str, Any] | None:
    """``{"kind": "roc_pr" | "residuals", ..., "candidate": {...}, "champion": {...}}``; None without scores."""
    models = {"candidate": candidate, **({"champion": champion} if champion is not None else {})}
    if task == "regression":
        return residuals(y_true, {name: m.y_pred for name, m in models.items()})
    out: dict[str, Any] = {"kind": "roc_pr", "average": "binary" if task == "binary" else "micro"}
    if task == "binary":
        out["positive_label"] = positive
    for name, scored in models.items():
        pair = _binary_pair(task, y_true, scored, positive)
        if pair is not None:
            out[name] = roc_pr(*pair)
    return out if "candidate" in out else None


def _binary_pair(task: Task, y_true: np.ndarray, scored: Scored, positive: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """Truth and score of one binary problem: the positive class, or every (row, class) pair (micro)."""
    if task == "binary":
        score = scored.positive_score(positive)
        return None if score is None else (np.asarray(y_true) == positive, score)
    if scored.y_proba is None or scored.classes is None:
        return None
    onehot = np.asarray(y_true)[:, None] == np.asarray(scored.classes, dtype=object)[None, :]
    return onehot.ravel(), scored.y_proba.ravel()


def roc_pr(truth: np.ndarray, score: np.ndarray) -> dict[str, Any] | None:
    """ROC and PR curves at every distinct threshold (as scikit-learn draws them), then downsampled."""
    truth = np.asarray(truth, dtype=bool)
    score = np.asarray(score, dtype=np.float64)
    ok = np.isfinite(score)
    truth, score = truth[ok], score[ok]
    positives = int(truth.sum())
    negatives = truth.size - positives
    if positives == 0 or negatives == 0:
        return None  # one class only: neither curve is defined
    order = np.argsort(-score, kind="stable")
    s, t = score[order], truth[order]
    # The last row of every run of equal scores: a threshold between distinct scores.
    ends = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]
    tp = np.cumsum(t)[ends].astype(np.float64)
    fp = (ends + 1) - tp
    tpr, fpr = np.r_[0.0, tp / positives], np.r_[0.0, fp / negatives]
    precision, recall = np.r_[1.0, tp / (tp + fp)], np.r_[0.0, tp / positives]
    auc = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1])) / 2)  # trapezoids
    average_precision = float(np.sum(np.diff(recall) * precision[1:]))
    keep = downsample(tpr.size)
    return {"roc": {"fpr": _short(fpr[keep]), "tpr": _short(tpr[keep]), "auc": auc},
            "pr": {"recall": _short(recall[keep]), "precision": _short(precision[keep]),
                   "average_precision": average_precision, "base_rate": positives / truth.size}}


def residuals(y_true: np.ndarray, predictions: dict[str, np.ndarray]) -> dict[str, Any]:
    """Predicted vs residual (truth - prediction) on the same sampled rows for every model."""
    y = np.asarray(y_true, dtype=np.float64)
    rows = np.arange(y.size)
    if y.size > MAX_RESIDUALS:
        rows = np.sort(np.random.default_rng(SEED).choice(y.size, size=MAX_RESIDUALS, replace=False))
    out: dict[str, Any] = {"kind": "residuals", "rows": int(rows.size), "of": int(y.size)}
    for name, pred in predictions.items():
        p = np.asarray(pred, dtype=np.float64)[rows]
        out[name] = {"predicted": _short(p), "residual": _short(y[rows] - p)}
    return out


def downsample(n: int, limit: int = MAX_POINTS) -> np.ndarray:
    """Indices of at most ``limit`` points spread evenly, always keeping the first and the last."""
    if n <= limit:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, limit).round().astype(np.int64))


def _short(values: np.ndarray) -> list[float]:
    """Four significant digits: a curve point is drawn, not recomputed; the JSON stays small."""
    return [float(f"{v:.4g}") for v in values.tolist()]
