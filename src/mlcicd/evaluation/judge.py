"""The gate's judgement: evaluation figures of both models turned into checks, figures and tags.

:mod:`mlcicd.stages.gate` loads the models and the data and registers the result;
this module holds the rules in between. Every check is named after its key in
``mlci.yaml`` (``thresholds.accuracy``, ``champion.f1``, ``non_inferiority``,
``fairness``) so a failing check points straight at the setting that decided it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlcicd.config import Bound, ChangeThreshold
from mlcicd.evaluation.compare import PairedComparison, change_check, non_inferiority
from mlcicd.evaluation.fairness import ParityResult, demographic_parity
from mlcicd.evaluation.latency import benchmark
from mlcicd.evaluation.metrics import GREATER_IS_BETTER, LATENCY_METRICS, classification_metrics, correct
from mlcicd.report import Check, Status, Verdict

if TYPE_CHECKING:
    from mlcicd.config import GateConfig
    from mlcicd.evaluation.scoring import Scored
    from mlcicd.registry import ModelVersion

NO_CHAMPION = "first model: no champion to compare with"
TAG_PREFIX = "mlci.gate."
MAX_TAG_CHARS = 4000  # MLflow caps model-version tag values at 5000 characters


class Judge:
    """Computes the figures once and turns them into checks, figures and tags."""

    def __init__(self, gate: GateConfig, y_true: np.ndarray, candidate: Scored, champion: Scored | None,
                 champion_mv: ModelVersion | None, sensitive: dict[str, np.ndarray]) -> None:
        self.gate = gate
        self.y_true = y_true
        self.candidate = candidate
        self.champion = champion
        self.champion_mv = champion_mv
        self.sensitive = sensitive
        self.positive = candidate.positive(y_true)
        self.binary = len(np.unique(np.concatenate([y_true, candidate.y_pred]))) <= 2
        self.metrics = classification_metrics(y_true, candidate.y_pred, candidate.positive_score(self.positive),
                                              positive=self.positive)
        self.champion_metrics: dict[str, float | None] | None = None
        if champion is not None:
            self.champion_metrics = classification_metrics(
                y_true, champion.y_pred, champion.positive_score(self.positive), positive=self.positive)
        self.latency: dict[str, Any] | None = None
        self.paired: PairedComparison | None = None
        self.parity: ParityResult | None = None

    def measure_latency(self) -> None:
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
            return self.candidate.no_score_reason or "roc_auc needs a binary label with both classes present"
        if name in LATENCY_METRICS:
            return "the latency benchmark is off (gate.latency_rows: 0)"
        return f"{name} is not defined for this data (multiclass labels, or no negative rows for fpr)"

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
                               min_relative_change=rule.min_relative_change)
        head = f"{name} {mine:.4g} vs champion {theirs:.4g}"
        message = f"{head}: " + ("; ".join(outcome.reasons) if outcome.reasons else "meets the change thresholds")
        sign = "≥" if GREATER_IS_BETTER[name] else "≤"
        return Check(key, Status.PASS if outcome.passed else Status.FAIL, message, observed=mine,
                     expected=f"{sign} {outcome.required:.4g}", details={"champion": theirs, "delta": mine - theirs})

    def _non_inferiority(self) -> Check:
        ni = self.gate.non_inferiority
        if ni is None:
            return Check("non_inferiority", Status.SKIP, "disabled (gate.non_inferiority: null)")
        if self.champion is None:
            return Check("non_inferiority", Status.SKIP, NO_CHAMPION)
        self.paired = p = non_inferiority(correct(self.y_true, self.candidate.y_pred),
                                          correct(self.y_true, self.champion.y_pred), margin=ni.margin,
                                          confidence=ni.confidence, resamples=ni.resamples)
        mine, theirs = self.metrics[ni.metric], (self.champion_metrics or {})[ni.metric]
        # The test runs on accuracy; an error-rate difference is its mirror image.
        if ni.metric == "error_rate":
            bound, word, limit, side = -p.lower, "upper", ni.margin, ("below" if p.passed else "above")
        else:
            bound, word, limit, side = p.lower, "lower", -ni.margin, ("above" if p.passed else "below")
        message = (f"{ni.metric} {mine:.3f} vs champion {theirs:.3f}: {word} bound {bound:+.3f} {side} margin "
                   f"{limit:+.3g} at {ni.confidence:.0%} ({p.wins} rows won, {p.losses} lost of {p.n:,})")
        return Check("non_inferiority", Status.PASS if p.passed else Status.FAIL, message, observed=round(bound, 6),
                     expected=f"{'>' if word == 'lower' else '<'} {limit:+g}",
                     details={"difference": p.difference, "mcnemar_p": p.mcnemar_p})

    def _fairness(self) -> Check:
        limit = self.gate.fairness.max_demographic_parity_difference
        if not self.sensitive:
            return Check("fairness", Status.SKIP, "no sensitive columns: list them in mlci.yaml as "
                         "`data: {sensitive: [gender]}` to check demographic parity")
        if not self.binary:
            return Check("fairness", Status.SKIP, "demographic parity is checked for binary classifiers only")
        self.parity = result = demographic_parity(self.candidate.y_pred, self.sensitive, positive=self.positive)
        worst = result.worst
        low, high = worst.extremes
        ok = result.difference <= limit
        message = (f"demographic parity difference {result.difference:.3f} across {worst.column!r} "
                   f"({low} {worst.rates[low]:.3f} vs {high} {worst.rates[high]:.3f}) "
                   f"{'within' if ok else 'exceeds'} the limit {limit:g}")
        return Check("fairness", Status.PASS if ok else Status.FAIL, message, observed=result.difference,
                     expected=f"≤ {limit:g}")

    # -- figures and evidence ------------------------------------------------------------------------------------

    def figures(self) -> dict[str, Any]:
        figures: dict[str, Any] = {"rows": len(self.y_true), "positive_label": self.positive,
                                   "candidate": dict(self.metrics), "latency": self.latency}
        if self.champion_metrics is not None and self.champion_mv is not None:
            figures["champion"] = {"version": self.champion_mv.version, **self.champion_metrics}
            figures["deltas"] = {k: v - theirs for k, v in self.metrics.items()
                                 if v is not None and (theirs := self.champion_metrics.get(k)) is not None}
        if self.paired is not None:
            p = self.paired
            figures["non_inferiority"] = {
                "metric": self.gate.non_inferiority.metric if self.gate.non_inferiority else "accuracy",
                "accuracy_difference": p.difference, "lower": p.lower, "upper": p.upper,
                "normal_lower": p.normal_lower, "normal_upper": p.normal_upper, "mcnemar_p": p.mcnemar_p,
                "wins": p.wins, "losses": p.losses, "n": p.n, "margin": p.margin, "confidence": p.confidence,
                "resamples": p.resamples, "bound": "one-sided bootstrap (multinomial on paired counts)",
            }
        if self.parity is not None:
            figures["fairness"] = {
                "demographic_parity_difference": self.parity.difference,
                "columns": {g.column: {"difference": g.difference, "selection_rates": g.rates, "rows": g.counts}
                            for g in self.parity.by_column},
            }
        return figures

    def tags(self, checks: list[Check], verdict: Verdict, eval_path: Path) -> dict[str, str]:
        from mlcicd.lineage import file_sha256

        tags = {f"{TAG_PREFIX}{k}": f"{v:.6g}" for k, v in self.metrics.items() if v is not None}
        tags[f"{TAG_PREFIX}verdict"] = verdict.value
        tags[f"{TAG_PREFIX}champion_version"] = self.champion_mv.version if self.champion_mv else "none"
        tags[f"{TAG_PREFIX}model_uri"] = self.candidate.uri
        tags[f"{TAG_PREFIX}eval_rows"] = str(len(self.y_true))
        tags[f"{TAG_PREFIX}eval_data_sha256"] = file_sha256(eval_path)
        if self.paired is not None:
            tags[f"{TAG_PREFIX}non_inferiority_lower"] = f"{self.paired.lower:.6g}"
        if self.parity is not None:
            tags[f"{TAG_PREFIX}demographic_parity_difference"] = f"{self.parity.difference:.6g}"
        report = {"verdict": verdict.value, "checks": {c.name: c.status.value for c in checks}}
        text = json.dumps(report, separators=(",", ":"))
        if len(text) > MAX_TAG_CHARS:  # a very long threshold list: keep the verdict, name where the rest is
            text = json.dumps({"verdict": verdict.value, "checks": "see mlci-report/gate.json"})
        tags[f"{TAG_PREFIX}report"] = text
        return tags


_LEAD = {"non_inferiority": 0, "champion": 1, "thresholds": 2, "fairness": 3}


def summary(verdict: Verdict, checks: list[Check], judge: Judge, champion_error: str) -> str:
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
    head = decisive.message if decisive else (
        f"{NO_CHAMPION}; accuracy {judge.metrics['accuracy']:.3f}" if judge.champion_mv is None
        else f"accuracy {judge.metrics['accuracy']:.3f}")
    return f"gate passed: {head}; {passed} checks passed, {skipped} skipped."


