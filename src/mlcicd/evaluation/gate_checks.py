"""The gate's checks: evaluation figures of both models turned into checks, figures and tags.

:mod:`mlcicd.stages.gate` loads the models and the data and registers the result;
this module holds the rules in between (the canary's judge is :mod:`mlcicd.delivery.analysis`).
Every check is named after its key in ``mlci.yaml`` (``thresholds.accuracy``,
``champion.f1``, ``non_inferiority``, ``fairness``) so a failing check points straight
at the setting that decided it. The task (binary, multiclass, regression) comes from
``model.task`` or is detected from the labels and predictions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlcicd.evaluation import fairness_checks
from mlcicd.evaluation.compare import (
    LossComparison,
    PairedComparison,
    change_check,
    loss_non_inferiority,
    non_inferiority,
)
from mlcicd.evaluation.curves import figures as curve_figures
from mlcicd.evaluation.metrics import detect_task, metrics, per_row_loss
from mlcicd.evaluation.tasks import (
    GREATER_IS_BETTER,
    LATENCY_METRICS,
    Task,
    default_non_inferiority_metric,
    metrics_for,
)
from mlcicd.report import Check, Status, Verdict

if TYPE_CHECKING:
    from mlcicd.config import Bound, ChangeThreshold, GateConfig
    from mlcicd.evaluation.fairness import FairnessResult
    from mlcicd.evaluation.scoring import Scored
    from mlcicd.registry import ModelVersion

NO_CHAMPION = "first model: no champion to compare with"
TAG_PREFIX = "mlci.gate."
MAX_TAG_CHARS = 4000  # MLflow caps model-version tag values at 5000 characters


class TaskMismatch(ValueError):
    """model.task (or a metric named in gate.*) does not fit the labels and predictions."""

    def __init__(self, key: str, what: str, fix: str) -> None:
        super().__init__(what)
        self.key, self.what, self.fix = key, what, fix


class GateChecks:
    """Computes the figures once and turns them into checks, figures and tags."""

    def __init__(self, gate: GateConfig, y_true: np.ndarray, candidate: Scored, champion: Scored | None,
                 champion_mv: ModelVersion | None, sensitive: dict[str, np.ndarray], task: Task | None = None) -> None:
        self.gate = gate
        self.y_true = y_true
        self.candidate = candidate
        self.champion = champion
        self.champion_mv = champion_mv
        self.sensitive = sensitive
        self.task_origin = "model.task" if task else "detected"
        self.task: Task = task or detect_task(y_true, candidate.y_pred, candidate.classes)
        self._check_task()
        self.positive = candidate.positive(y_true) if self.task == "binary" else None
        self.metrics = self._metrics(candidate)
        self.champion_metrics = self._metrics(champion) if champion is not None else None
        self.latency: dict[str, Any] | None = None
        self.paired: PairedComparison | LossComparison | None = None
        self.fairness: FairnessResult | None = None

    def _metrics(self, scored: Scored) -> dict[str, float | None]:
        return metrics(self.task, self.y_true, scored.y_pred, positive=self.positive, y_proba=scored.y_proba,
                       classes=scored.classes)

    def _check_task(self) -> None:
        """A task that contradicts the data, or a metric of another task, is a usage error naming the key."""
        values = np.concatenate([np.asarray(self.y_true), np.asarray(self.candidate.y_pred)])
        if self.task == "regression" and values.dtype.kind not in "iuf":
            raise TaskMismatch("model.task", "model.task is regression but the labels or predictions are text",
                               "set model.task to binary or multiclass, or evaluate a regression model")
        if self.task != "regression":
            n_classes = len(np.unique(values))
            if self.task == "binary" and n_classes > 2:
                raise TaskMismatch("model.task", f"model.task is binary but labels and predictions hold {n_classes} "
                                   "classes", "set model.task: multiclass (or remove it to detect the task)")
            if values.dtype.kind == "f" and not np.all(values == np.floor(values)):
                raise TaskMismatch("model.task", f"model.task is {self.task} but the model predicts fractional "
                                   "numbers", "set model.task: regression (or remove it to detect the task)")
        valid = metrics_for(self.task)
        for section, names in (("thresholds", self.gate.thresholds), ("champion", self.gate.champion),
                               ("fairness.max_group_difference", self.gate.fairness.max_group_difference)):
            for name in names:
                if name not in valid and not (section.startswith("fairness") and name == "selection_rate"):
                    raise TaskMismatch(f"gate.{section}.{name}", f"{name!r} is not a metric of a {self.task} model "
                                       f"({self.task_origin})", f"use one of: {', '.join(valid)}; or set model.task")
        ni = self.gate.non_inferiority
        if ni is not None and ni.metric is not None and (ni.metric in ("rmse", "mae")) != (self.task == "regression"):
            raise TaskMismatch("gate.non_inferiority.metric", f"{ni.metric!r} does not fit a {self.task} model "
                               f"({self.task_origin})", f"use {default_non_inferiority_metric(self.task)}")

    @property
    def primary(self) -> str:
        return "rmse" if self.task == "regression" else "accuracy"

    def measure_latency(self) -> None:
        from mlcicd.evaluation.latency import benchmark

        rows = self.gate.latency_rows
        if rows <= 0:
            return
        result = benchmark(self.candidate.model.predict, self.candidate.inputs, rows)
        self.metrics.update(result.as_metrics())
        self.latency = {"rows": result.rows, "warmup": result.warmup, "p50_ms": result.p50_ms,
                        "p99_ms": result.p99_ms, "mean_ms": result.mean_ms, "max_ms": result.max_ms}
        # The champion is timed only when a rule compares latencies: it doubles the benchmark's cost.
        if self.champion is not None and self.champion_metrics is not None and \
                any(m in LATENCY_METRICS for m in self.gate.champion):
            theirs = benchmark(self.champion.model.predict, self.champion.inputs, rows)
            self.champion_metrics.update(theirs.as_metrics())

    def checks(self, champion_error: str) -> list[Check]:
        checks = [self._threshold(name, bound) for name, bound in self.gate.thresholds.items()]
        if champion_error:
            checks.append(Check("champion", Status.WARN, champion_error + ". Comparing is impossible, so the gate "
                                "is inconclusive; if the features changed on purpose, set gate.non_inferiority: "
                                "null and remove gate.champion for this release"))
        else:
            checks += [self._change(name, rule) for name, rule in self.gate.champion.items()]
            checks.append(self._non_inferiority())
        checks.append(self._fairness())
        return checks

    def _unavailable(self, name: str) -> str:
        if name == "roc_auc":
            return self.candidate.no_score_reason or "roc_auc needs scores for every class present in the labels"
        if name in LATENCY_METRICS:
            return "the latency benchmark is off (gate.latency_rows: 0)"
        return f"{name} is not defined for these rows (e.g. fpr without negative rows, r2 with one row)"

    def _threshold(self, name: str, bound: Bound) -> Check:
        value = self.metrics.get(name)
        expected = " and ".join(s for s in (f"≥ {bound.min:g}" if bound.min is not None else "",
                                            f"≤ {bound.max:g}" if bound.max is not None else "") if s)
        key = f"thresholds.{name}"
        if value is None:
            return Check(key, Status.SKIP, f"{name} not measured: {self._unavailable(name)}", expected=expected)
        ok = (bound.min is None or value >= bound.min) and (bound.max is None or value <= bound.max)
        verb = "meets" if ok else "violates"
        return Check(key, Status.PASS if ok else Status.FAIL, f"{name} {value:.4g} {verb} {expected}",
                     observed=value, expected=expected)

    def _change(self, name: str, rule: ChangeThreshold) -> Check:
        key = f"champion.{name}"
        if self.champion_metrics is None:
            return Check(key, Status.SKIP, NO_CHAMPION)
        mine, theirs = self.metrics.get(name), self.champion_metrics.get(name)
        if mine is None or theirs is None:
            return Check(key, Status.SKIP, f"{name} not measured: {self._unavailable(name)}")
        outcome = change_check(mine, theirs, greater_is_better=GREATER_IS_BETTER[name],
                               min_absolute_change=rule.min_absolute_change,
                               min_relative_change=rule.min_relative_change, max_drop=rule.max_drop,
                               max_increase=rule.max_increase, max_ratio=rule.max_ratio, min_ratio=rule.min_ratio)
        head = f"{name} {mine:.4g} vs champion {theirs:.4g}"
        message = f"{head}: " + "; ".join(outcome.notes)
        sign = "≥" if GREATER_IS_BETTER[name] else "≤"
        return Check(key, Status.PASS if outcome.passed else Status.FAIL, message, observed=mine,
                     expected=f"{sign} {outcome.required:.4g}", details={"champion": theirs, "delta": mine - theirs})

    def _non_inferiority(self) -> Check:
        ni = self.gate.non_inferiority
        if ni is None:
            return Check("non_inferiority", Status.SKIP, "disabled (gate.non_inferiority: null)")
        if self.champion is None:
            return Check("non_inferiority", Status.SKIP, NO_CHAMPION)
        metric = ni.metric or default_non_inferiority_metric(self.task)
        if self.task == "regression":
            return self._loss_non_inferiority(metric)
        self.paired = p = non_inferiority(self.y_true == self.candidate.y_pred, self.y_true == self.champion.y_pred,
                                          margin=ni.margin, confidence=ni.confidence, resamples=ni.resamples)
        mine, theirs = self.metrics[metric], (self.champion_metrics or {})[metric]
        # The test runs on accuracy; an error-rate difference is its mirror image.
        if metric == "error_rate":
            bound, word, limit, side = -p.lower, "upper", ni.margin, ("below" if p.passed else "above")
        else:
            bound, word, limit, side = p.lower, "lower", -ni.margin, ("above" if p.passed else "below")
        message = (f"{metric} {mine:.3f} vs champion {theirs:.3f}: {word} bound {bound:+.3f} {side} margin "
                   f"{limit:+.3g} at {ni.confidence:.0%} ({p.wins} rows won, {p.losses} lost of {p.n:,})")
        return Check("non_inferiority", Status.PASS if p.passed else Status.FAIL, message, observed=round(bound, 6),
                     expected=f"{'>' if word == 'lower' else '<'} {limit:+g}",
                     details={"difference": p.difference, "mcnemar_p": p.mcnemar_p})

    def _loss_non_inferiority(self, metric: str) -> Check:
        ni = self.gate.non_inferiority
        assert ni is not None and self.champion is not None
        self.paired = p = loss_non_inferiority(
            metric, per_row_loss(metric, self.y_true, self.candidate.y_pred),
            per_row_loss(metric, self.y_true, self.champion.y_pred), margin=ni.margin, confidence=ni.confidence,
            resamples=ni.resamples)
        side = "above" if p.passed else "below"
        errors = "squared" if metric == "rmse" else "absolute"
        message = (f"{metric} {p.candidate:.4g} vs champion {p.champion:.4g}: improvement lower bound "
                   f"{p.lower:+.4g} {side} margin {-ni.margin:+.4g} at {ni.confidence:.0%} (paired bootstrap of "
                   f"per-row {errors} errors, {p.resamples:,} resamples of {p.n:,} rows)")
        return Check("non_inferiority", Status.PASS if p.passed else Status.FAIL, message, observed=round(p.lower, 6),
                     expected=f"> {-ni.margin:+g}", details={"difference": p.difference})

    def _fairness(self) -> Check:
        cfg = self.gate.fairness
        if self.sensitive:
            if cfg.engine == "fairlearn":
                from mlcicd.evaluation.fairness_fairlearn import assess
            else:
                from mlcicd.evaluation.fairness import assess
            score = self.candidate.positive_score(self.positive) if self.task == "binary" else None
            self.fairness = assess(self.task, self.y_true, self.candidate.y_pred, self.sensitive,
                                   positive=self.positive, score=score, confidence=cfg.confidence,
                                   resamples=cfg.resamples)
        return fairness_checks.fairness_check(self.fairness, cfg, self.task, bool(self.sensitive))

    # -- figures and evidence ------------------------------------------------------------------------------------

    def figures(self) -> dict[str, Any]:
        figures: dict[str, Any] = {"rows": len(self.y_true), "task": self.task, "task_from": self.task_origin,
                                   "positive_label": self.positive, "candidate": dict(self.metrics),
                                   "latency": self.latency}
        if self.champion_metrics is not None and self.champion_mv is not None:
            figures["champion"] = {"version": self.champion_mv.version, **self.champion_metrics}
            figures["deltas"] = {k: v - theirs for k, v in self.metrics.items()
                                 if v is not None and (theirs := self.champion_metrics.get(k)) is not None}
        p = self.paired
        if isinstance(p, PairedComparison):
            figures["non_inferiority"] = {
                "metric": (self.gate.non_inferiority.metric if self.gate.non_inferiority else None) or "accuracy",
                "accuracy_difference": p.difference, "lower": p.lower, "upper": p.upper,
                "normal_lower": p.normal_lower, "normal_upper": p.normal_upper, "mcnemar_p": p.mcnemar_p,
                "wins": p.wins, "losses": p.losses, "n": p.n, "margin": p.margin, "confidence": p.confidence,
                "resamples": p.resamples, "bound": "one-sided bootstrap (multinomial on paired counts)",
            }
        elif isinstance(p, LossComparison):
            figures["non_inferiority"] = {
                "metric": p.metric, "candidate": p.candidate, "champion": p.champion, "improvement": p.difference,
                "lower": p.lower, "upper": p.upper, "n": p.n, "margin": p.margin, "confidence": p.confidence,
                "resamples": p.resamples, "bound": "one-sided paired bootstrap of per-row losses",
            }
        if self.fairness is not None:
            figures["fairness"] = fairness_checks.figures(self.fairness)
        curves = curve_figures(self.task, self.y_true, self.candidate, self.champion, self.positive)
        if curves is not None:
            figures["curves"] = curves
        return figures

    def tags(self, checks: list[Check], verdict: Verdict, eval_path: Path) -> dict[str, str]:
        from mlcicd.lineage import file_sha256

        tags = {f"{TAG_PREFIX}{k}": f"{v:.6g}" for k, v in self.metrics.items() if v is not None}
        tags[f"{TAG_PREFIX}task"] = self.task
        tags[f"{TAG_PREFIX}verdict"] = verdict.value
        tags[f"{TAG_PREFIX}champion_version"] = self.champion_mv.version if self.champion_mv else "none"
        tags[f"{TAG_PREFIX}model_uri"] = self.candidate.uri
        tags[f"{TAG_PREFIX}eval_rows"] = str(len(self.y_true))
        tags[f"{TAG_PREFIX}eval_data_sha256"] = file_sha256(eval_path)
        if self.paired is not None:
            tags[f"{TAG_PREFIX}non_inferiority_lower"] = f"{self.paired.lower:.6g}"
        if self.fairness is not None:
            worst = fairness_checks.figures(self.fairness)["demographic_parity_difference"]
            if worst is not None:
                tags[f"{TAG_PREFIX}demographic_parity_difference"] = f"{worst:.6g}"
        report = {"verdict": verdict.value, "checks": {c.name: c.status.value for c in checks}}
        text = json.dumps(report, separators=(",", ":"))
        if len(text) > MAX_TAG_CHARS:  # a very long threshold list: keep the verdict, name where the rest is
            text = json.dumps({"verdict": verdict.value, "checks": "see mlci-report/gate.json"})
        tags[f"{TAG_PREFIX}report"] = text
        return tags


_LEAD = {"non_inferiority": 0, "champion": 1, "thresholds": 2, "fairness": 3}


def summary(verdict: Verdict, checks: list[Check], gate: GateChecks, champion_error: str) -> str:
    """One sentence that says what decided the verdict.

    With several failures the paired comparison leads: it is the one that accounts for
    sampling noise, so it is the fairest single reason to give; the rest are listed.
    """
    failures = sorted((c for c in checks if c.failed), key=lambda c: _LEAD.get(c.name.split(".")[0], len(_LEAD)))
    if failures:
        more = f" (and {len(failures) - 1} more: {', '.join(c.name for c in failures[1:])})" if failures[1:] else ""
        return f"gate failed on {failures[0].name}: {failures[0].message}{more}."
    if verdict is Verdict.INCONCLUSIVE:
        return f"gate inconclusive: {champion_error}."
    decisive = next((c for c in checks if c.name == "non_inferiority" and c.status is Status.PASS), None)
    passed = sum(c.status is Status.PASS for c in checks)
    skipped = sum(c.status is Status.SKIP for c in checks)
    value = gate.metrics.get(gate.primary)
    figure = f"{gate.primary} {value:.3f}" if value is not None else gate.task
    head = decisive.message if decisive else (f"{NO_CHAMPION}; {figure}" if gate.champion_mv is None else figure)
    return f"gate passed: {head}; {passed} checks passed, {skipped} skipped ({gate.task} model)."
