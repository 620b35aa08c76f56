"""The gate's fairness check: each limit of ``gate.fairness`` against the disparities of every sensitive column.

A limit fails the gate only when the bootstrap bound shows it exceeded (a maximum: the
lower bound is above it; a minimum: the upper bound is below it). An estimate beyond
the limit that the data cannot confirm is a warning: small evaluation sets are noisy,
and a gate that fails on noise gets switched off.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlcicd.report import Check, Status

if TYPE_CHECKING:
    from mlcicd.config import FairnessConfig
    from mlcicd.evaluation.fairness import ColumnFairness, Disparity, FairnessResult

_WORDS = {"demographic_parity_difference": "demographic parity difference",
          "demographic_parity_ratio": "demographic parity ratio",
          "equalized_odds_difference": "equalized odds difference"}


@dataclass(frozen=True)
class Limit:
    key: str  # the disparity's name, e.g. demographic_parity_difference or accuracy_difference
    setting: str  # the mlci.yaml key that sets it
    value: float
    maximum: bool  # True: the disparity must stay below; False: above (a ratio)

    @property
    def words(self) -> str:
        return _WORDS.get(self.key, self.key.replace("_difference", " gap between groups"))


def limits(cfg: FairnessConfig, task: str) -> tuple[list[Limit], list[str]]:
    """The limits that apply to this task, and notes on those that do not."""
    found: list[Limit] = []
    notes: list[str] = []
    for key, maximum in (("demographic_parity_difference", True), ("demographic_parity_ratio", False),
                         ("equalized_odds_difference", True)):
        setting = f"{'max' if maximum else 'min'}_{key}"
        value = getattr(cfg, setting)
        if value is None:
            continue
        if task == "regression":
            notes.append(f"{setting} applies to classifiers only (set max_group_difference for a regression model)")
            continue
        found.append(Limit(key, f"gate.fairness.{setting}", value, maximum))
    for metric, value in cfg.max_group_difference.items():
        found.append(Limit(f"{metric}_difference", f"gate.fairness.max_group_difference.{metric}", value, True))
    return found, notes


def _judge(limit: Limit, d: Disparity) -> Status:
    if d.value is None:
        return Status.SKIP
    bound = d.lower if limit.maximum else d.upper
    beyond = (lambda x: x > limit.value) if limit.maximum else (lambda x: x < limit.value)
    if bound is not None and beyond(bound):
        return Status.FAIL
    return Status.WARN if beyond(d.value) else Status.PASS


def _sentence(limit: Limit, column: ColumnFairness, d: Disparity, status: Status, confidence: float) -> str:
    metric = limit.key.removesuffix("_difference").removesuffix("_ratio")
    if limit.key.startswith("demographic_parity"):
        metric = "selection_rate"
    by_group = column.by_group.get(metric) or {}
    present = {g: v for g, v in by_group.items() if v is not None}
    extremes = ""
    if len(present) >= 2:
        low, high = min(present, key=present.__getitem__), max(present, key=present.__getitem__)
        extremes = f" ({low} {present[low]:.3g} vs {high} {present[high]:.3g})"
    detail = f", worst for {d.detail}" if d.detail else ""
    side = "lower" if limit.maximum else "upper"
    bound = d.lower if limit.maximum else d.upper
    shown = f"{confidence:.0%} {side} bound {bound:.3g}" if bound is not None else "no bootstrap bound"
    if limit.maximum:
        verdict = {Status.FAIL: "exceeds the limit", Status.WARN: "is estimated above, but not shown to exceed, "
                   "the limit", Status.PASS: "within the limit"}[status]
    else:
        verdict = {Status.FAIL: "is below the minimum", Status.WARN: "is estimated below, but not shown to be "
                   "below, the minimum", Status.PASS: "above the minimum"}[status]
    return (f"{limit.words} {d.value:.3g} across {column.column!r}{extremes}{detail}: {verdict} "
            f"{limit.value:g} ({shown}; {limit.setting})")


def fairness_check(result: FairnessResult | None, cfg: FairnessConfig, task: str, has_sensitive: bool) -> Check:
    if not has_sensitive:
        return Check("fairness", Status.SKIP, "no sensitive columns: list them in mlci.yaml as "
                     "`data: {sensitive: [gender]}` to check fairness across groups")
    found, notes = limits(cfg, task)
    if result is None or not found:
        hint = "; ".join(notes) or "no fairness limit is set (gate.fairness)"
        return Check("fairness", Status.SKIP, f"{hint}; per-group figures are in the report")
    judged: list[tuple[Status, str, float | None]] = []
    for limit in found:
        for column in result.columns:
            d = column.disparities.get(limit.key)
            if d is None:
                continue
            status = _judge(limit, d)
            if status is not Status.SKIP:
                judged.append((status, _sentence(limit, column, d, status, result.confidence), d.value))
    if not judged:
        return Check("fairness", Status.SKIP, "no disparity could be measured (every group lacks the rows it needs)")
    order = {Status.FAIL: 0, Status.WARN: 1, Status.PASS: 2}
    judged.sort(key=lambda item: order[item[0]])
    worst = judged[0][0]
    message = judged[0][1] + (f"; and {len(judged) - 1} more: " + "; ".join(j[1] for j in judged[1:4])
                              if len(judged) > 1 else "")
    return Check("fairness", worst, message, observed=judged[0][2],
                 expected=", ".join(f"{'≤' if lim.maximum else '≥'} {lim.value:g} ({lim.key})" for lim in found))


def figures(result: FairnessResult) -> dict[str, Any]:
    def disparity(d: Disparity) -> dict[str, Any]:
        return {"value": d.value, "lower": d.lower, "upper": d.upper, **({"detail": d.detail} if d.detail else {})}

    columns: dict[str, Any] = {}
    for c in result.columns:
        columns[c.column] = {"rows": c.rows, "by_group": c.by_group, "by_group_bounds": c.by_group_bounds,
                             "disparities": {k: disparity(d) for k, d in c.disparities.items()}}
        if "selection_rate" in c.by_group:
            columns[c.column]["selection_rates"] = c.by_group["selection_rate"]
    worst = max((d.value for c in result.columns for k, d in c.disparities.items()
                 if k == "demographic_parity_difference" and d.value is not None), default=None)
    return {"engine": result.engine, "task": result.task, "confidence": result.confidence,
            "resamples": result.resamples, "demographic_parity_difference": worst, "columns": columns}
