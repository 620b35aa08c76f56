"""A whole pipeline's verdict files for the HTML report's tests, made by the stages' own code.

The figures come from the functions the stages call (drift tests and histograms, curves,
fairness with bootstrap bounds, the canary timeline from looks at servers' histograms) on
synthetic data, and are written with :func:`mlcicd.report.write_report`, so a change in a
stage's figures shows up here rather than in a hand-written JSON that no longer matches.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from mlcicd.data import drift, drift_plots
from mlcicd.delivery.analysis import Judgement, Look
from mlcicd.delivery.metrics.base import Snapshot
from mlcicd.delivery.timeline import entry
from mlcicd.evaluation import curves, fairness, fairness_checks
from mlcicd.evaluation.scoring import Scored
from mlcicd.report import Check, StageResult, Status, Verdict, write_report

LATENCY_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, math.inf)


def frames(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "age": rng.integers(21, 75, n),
        "income": rng.lognormal(np.log(40_000) + shift, 0.35, n).round(2),
        "debt_ratio": rng.beta(2, 5 - 2 * shift, n).round(4),
        "employment": rng.choice(["salaried", "self-employed", "unemployed"], n,
                                 p=[0.7 - 0.3 * shift, 0.2 + 0.2 * shift, 0.1 + 0.1 * shift]),
    })


def validate_data(shift: float = 0.5) -> StageResult:
    kinds: dict[str, drift.Kind | None] = {"age": "numeric", "income": "numeric", "debt_ratio": "numeric",
                                            "employment": "categorical"}
    reference, current = frames(3000, 1), frames(2000, 2, shift)
    results = drift.compare(reference, current, kinds, p_value=0.01, max_rows=100_000)
    checks = drift.to_checks(results, role="train", alpha=0.01, fail=False, label=None)
    return StageResult(
        "validate-data", Verdict.PASS, f"drift vs reference: train: {drift.describe(results)}", checks=checks,
        outputs={"drifted-features": ",".join(drift.drifted(results)), "rows": "2000"},
        figures={"drift": {"train": {r.feature: r.to_dict() for r in results}},
                 "drift_histograms": {"train": drift_plots.histograms(reference, current, results)}})


def _scored(uri: str, y: np.ndarray, quality: float, seed: int) -> Scored:
    rng = np.random.default_rng(seed)
    score = 1 / (1 + np.exp(-(quality * (2 * y - 1) + rng.normal(0, 1, y.size))))
    return Scored(uri, None, pd.DataFrame(), (score > 0.5).astype(int), [0, 1],
                  np.column_stack([1 - score, score]))


def gate(n: int = 2000) -> StageResult:
    rng = np.random.default_rng(3)
    y = (rng.random(n) < 0.3).astype(int)
    candidate, champion = _scored("runs:/c/model", y, 1.6, 4), _scored("models:/m/1", y, 1.2, 5)
    groups = {"gender": rng.choice(["female", "male", "nonbinary"], n, p=[0.48, 0.48, 0.04])}
    fair = fairness.assess("binary", y, candidate.y_pred, groups, positive=1, confidence=0.95, resamples=300)
    figures = {"rows": n, "task": "binary", "positive_label": 1,
               "candidate": {"accuracy": float(np.mean(candidate.y_pred == y))},
               "champion": {"version": "1", "accuracy": float(np.mean(champion.y_pred == y))},
               "fairness": fairness_checks.figures(fair),
               "curves": curves.figures("binary", y, candidate, champion, 1)}
    checks = [Check("thresholds.accuracy", Status.PASS, "accuracy meets ≥ 0.7", observed=0.8, expected="≥ 0.7"),
              Check("fairness", Status.WARN, "demographic parity difference <b>estimated</b> above the limit")]
    return StageResult("gate", Verdict.PASS, "gate passed", checks=checks,
                       outputs={"model-version": "2", "model-uri": "models:/m/2"}, figures=figures)


def _snapshot(requests: float, errors: float, median_s: float, rng: np.random.Generator) -> Snapshot:
    latencies = rng.lognormal(np.log(median_s), 0.5, int(requests))
    buckets = {b: float(np.count_nonzero(latencies <= b)) for b in LATENCY_BOUNDS}
    return Snapshot({"200": requests - errors, "500": errors}, buckets)


def monitor_canary(looks: int = 6, decision: str = "rollback") -> StageResult:
    """Cumulative snapshots of both servers, the canary slower and failing more from the fourth look on."""
    rng = np.random.default_rng(6)
    seen: list[Look] = []
    timeline = []
    canary = stable = Snapshot()
    for i in range(looks):
        bad = i >= 3
        c = _snapshot(40, 3 if bad else 0, 0.06 if bad else 0.02, rng)
        s = _snapshot(120, 0, 0.02, rng)
        canary = Snapshot({k: canary.requests.get(k, 0) + v for k, v in c.requests.items()},
                          {b: canary.latency_buckets.get(b, 0) + v for b, v in c.latency_buckets.items()})
        stable = Snapshot({k: stable.requests.get(k, 0) + v for k, v in s.requests.items()},
                          {b: stable.latency_buckets.get(b, 0) + v for b, v in s.latency_buckets.items()})
        seen.append(Look(elapsed=2.0 * (i + 1), canary=canary, stable=stable, canary_weight=10 if i < 3 else 25,
                         step=0 if i < 3 else 1))
        last = i == looks - 1
        timeline.append(entry(seen, Judgement(decision if last else "continue", "", ()), 0 if i < 3 else 1,
                              [0.5, 0.9]))
    verdict = Verdict.FAIL if decision == "rollback" else Verdict.PASS
    return StageResult("monitor-canary", verdict, f"{decision} after {looks} looks", outputs={"decision": decision},
                       figures={"canary_version": "2", "stable_version": "1"}, evidence={"timeline": timeline})


def write_pipeline(report_dir: Path) -> list[StageResult]:
    """Every stage the report plots, plus one without plots, written as the CLI writes them."""
    results = [validate_data(), StageResult("train", Verdict.PASS, "trained", outputs={"run-id": "abc"}),
               gate(), monitor_canary()]
    for result in results:
        write_report(result, report_dir)
    return results
