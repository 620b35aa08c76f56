"""The ``model`` and ``gate`` sections of ``mlci.yaml``: their settings and the checks on them.

:mod:`mlcicd.config` parses the file and calls :func:`check_gate` with its ``fail``
helper, so a wrong metric name, a tolerance of the wrong sign or direction, or a limit
out of range is a ConfigError naming the key, before any stage does heavy work.
Metric names come from :mod:`mlcicd.evaluation.tasks` (standard library only).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from mlcicd.evaluation.tasks import GREATER_IS_BETTER, GROUP_GAP_METRICS, NON_INFERIORITY_METRICS, metrics_for

# fail(key, what, fix) raises the ConfigError.
Fail = Callable[[str, str, str], None]


@dataclass
class Bound:
    min: float | None = None
    max: float | None = None


@dataclass
class ChangeThreshold:
    """A rule against the champion's value: an improvement required (MLflow's semantics), or a
    bounded regression allowed (a tolerance). None set: the candidate may not be worse."""

    min_absolute_change: float | None = None
    min_relative_change: float | None = None
    # Tolerances: greater-is-better metrics may drop by max_drop or to min_ratio x the champion's;
    # lower-is-better ones may rise by max_increase or to max_ratio x the champion's.
    max_drop: float | None = None
    max_increase: float | None = None
    max_ratio: float | None = None
    min_ratio: float | None = None


@dataclass
class NonInferiority:
    # accuracy or error_rate (classifiers), rmse or mae (regression); None: accuracy, or rmse for regression.
    metric: Literal["accuracy", "error_rate", "rmse", "mae"] | None = None
    # How much worse the candidate may be, in the metric's units (0.01 = one point of accuracy).
    margin: float = 0.01
    confidence: float = 0.95
    resamples: int = 10_000


@dataclass
class FairnessConfig:
    # Each limit fails the gate only when the bootstrap bound at `confidence` is beyond it
    # (the disparity is shown to exceed the limit, not merely estimated above it). None: not checked.
    max_demographic_parity_difference: float | None = 0.1
    min_demographic_parity_ratio: float | None = None
    max_equalized_odds_difference: float | None = None
    # Largest gap between groups per metric, e.g. {accuracy: 0.05} or {mae: 10} for regression.
    max_group_difference: dict[str, float] = field(default_factory=dict)
    confidence: float = 0.95
    resamples: int = 1000
    # fast: numpy on cell counts, equal to fairlearn's numbers (tested); fairlearn: MetricFrame itself.
    engine: Literal["fast", "fairlearn"] = "fast"


@dataclass
class ModelConfig:
    # binary, multiclass or regression; detected from the labels and predictions when not given.
    task: Literal["binary", "multiclass", "regression"] | None = None


@dataclass
class GateConfig:
    thresholds: dict[str, Bound] = field(default_factory=dict)
    champion: dict[str, ChangeThreshold] = field(default_factory=dict)
    non_inferiority: NonInferiority | None = field(default_factory=NonInferiority)
    fairness: FairnessConfig = field(default_factory=FairnessConfig)
    latency_rows: int = 200


def check_gate(gate: GateConfig, model: ModelConfig, fail: Fail) -> None:
    """Metric names, bounds, change rules and tolerances, non-inferiority and fairness limits."""
    task = model.task
    valid = metrics_for(task)

    def check_metric(section: str, name: str) -> None:
        if name in valid:
            return
        close = difflib.get_close_matches(name, valid, n=1)
        hint = f"did you mean `{close[0]}`? " if close else ""
        what = f"unknown metric {name!r}" if name not in GREATER_IS_BETTER else \
            f"{name!r} is not a metric of a {task} model (model.task: {task})"
        fail(f"gate.{section}.{name}", what, f"{hint}valid metrics: {', '.join(valid)}")

    for name, bound in gate.thresholds.items():
        check_metric("thresholds", name)
        if bound.min is None and bound.max is None:
            fail(f"gate.thresholds.{name}", "a threshold needs `min`, `max` or both",
                 f"e.g. `{name}: {{{'min: 0.8' if GREATER_IS_BETTER[name] else 'max: 0.1'}}}`")
        if bound.min is not None and bound.max is not None and bound.min > bound.max:
            fail(f"gate.thresholds.{name}", f"min {bound.min} is greater than max {bound.max}", "swap the two values")
    for name, rule in gate.champion.items():
        check_metric("champion", name)
        _check_change_rule(f"gate.champion.{name}", name, rule, GREATER_IS_BETTER[name], fail)
    ni = gate.non_inferiority
    if ni is not None:
        if not 0.5 <= ni.confidence < 1:
            fail("gate.non_inferiority.confidence", f"must be in [0.5, 1), got {ni.confidence}",
                 "e.g. `confidence: 0.95`")
        if ni.margin < 0:
            fail("gate.non_inferiority.margin", f"must be ≥ 0 (how much worse the candidate may be), got {ni.margin}",
                 "e.g. `margin: 0.01`; a negative margin would demand an improvement: use gate.champion for that")
        if ni.resamples < 100:
            fail("gate.non_inferiority.resamples", f"must be ≥ 100, got {ni.resamples}", "e.g. `resamples: 10000`")
        if task is not None and ni.metric is not None and ni.metric not in NON_INFERIORITY_METRICS[task]:
            fail("gate.non_inferiority.metric", f"{ni.metric!r} does not fit a {task} model (model.task: {task})",
                 f"use one of: {', '.join(NON_INFERIORITY_METRICS[task])}")
    fair = gate.fairness
    for key, low, high in (("max_demographic_parity_difference", 0, 1), ("min_demographic_parity_ratio", 0, 1),
                           ("max_equalized_odds_difference", 0, 1)):
        value = getattr(fair, key)
        if value is not None and not low <= value <= high:
            fail(f"gate.fairness.{key}", f"must be in [{low}, {high}], got {value}", f"e.g. `{key}: 0.1`")
    gap_metrics = list(dict.fromkeys(m for t in ((task,) if task else GROUP_GAP_METRICS) for m in GROUP_GAP_METRICS[t]))
    for name, limit in fair.max_group_difference.items():
        if name not in gap_metrics:
            kind = f" of a {task} model" if task else ""
            fail(f"gate.fairness.max_group_difference.{name}", f"no per-group gap{kind} is measured for {name!r}",
                 f"use one of: {', '.join(gap_metrics)}")
        if limit < 0:
            fail(f"gate.fairness.max_group_difference.{name}", f"must be ≥ 0 (the largest gap allowed), got {limit}",
                 f"e.g. `{name}: 0.05`")
    if not 0.5 <= fair.confidence < 1 or fair.resamples < 100:
        fail("gate.fairness", f"confidence must be in [0.5, 1) and resamples ≥ 100, got {fair.confidence} and "
             f"{fair.resamples}", "e.g. `confidence: 0.95`, `resamples: 1000`")
    if gate.latency_rows < 0:
        fail("gate.latency_rows", f"must be ≥ 0, got {gate.latency_rows}",
             "e.g. `latency_rows: 200`, or 0 to skip the latency benchmark")


def _check_change_rule(key: str, name: str, rule: ChangeThreshold, greater_is_better: bool,
                       fail: Fail) -> None:
    """Signs and directions: a tolerance of the wrong sign or for the wrong direction names the key."""
    direction = "greater is better" if greater_is_better else "lower is better"
    for attr in ("min_absolute_change", "min_relative_change"):
        value = getattr(rule, attr)
        if value is not None and value <= 0:
            fail(f"{key}.{attr}", f"must be a positive number (MLflow's semantics), got {value}",
                 "to allow a small regression use a tolerance instead, e.g. "
                 + ("`max_drop: 0.01`" if greater_is_better else "`max_increase: 0.01` or `max_ratio: 1.1`"))
    wrong = ("max_increase", "max_ratio") if greater_is_better else ("max_drop", "min_ratio")
    right = ("max_drop", "min_ratio") if greater_is_better else ("max_increase", "max_ratio")
    for attr in wrong:
        if getattr(rule, attr) is not None:
            fail(f"{key}.{attr}", f"{name} is a metric where {direction}, so `{attr}` does not apply",
                 f"use `{right[wrong.index(attr)]}` to allow {name} to get worse by a bounded amount")
    for attr in ("max_drop", "max_increase"):
        value = getattr(rule, attr)
        if value is not None and value < 0:
            fail(f"{key}.{attr}", f"must be ≥ 0 (how much worse {name} may get), got {value}",
                 f"e.g. `{attr}: 0.01`; to demand an improvement use `min_absolute_change`")
    if rule.max_ratio is not None and rule.max_ratio < 1:
        fail(f"{key}.max_ratio", f"must be ≥ 1 (candidate / champion at most), got {rule.max_ratio}",
             "e.g. `max_ratio: 1.1` (10% worse allowed); to demand an improvement use `min_relative_change`")
    if rule.min_ratio is not None and not 0 < rule.min_ratio <= 1:
        fail(f"{key}.min_ratio", f"must be in (0, 1] (candidate / champion at least), got {rule.min_ratio}",
             "e.g. `min_ratio: 0.98` (2% worse allowed); to demand an improvement use `min_relative_change`")
    demands = rule.min_absolute_change is not None or rule.min_relative_change is not None
    allows = any(getattr(rule, a) is not None for a in right)
    if demands and allows:
        fail(key, "demands an improvement and allows a regression at once",
             "keep either min_absolute_change/min_relative_change or a tolerance")
