"""From a stage's JSON to the data of its plots: plain Python, so it is tested without drawing anything.

Each function takes the stage's ``figures`` / ``evidence`` and returns what one plot needs,
or an empty list / None when the stage recorded nothing to plot (an older report, a
first release, a model without scores): the report then shows the tables alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Per-group metrics worth a bar chart, by task: the selection rate is demographic parity;
# recall and fpr are the two halves of equalized odds.
FAIRNESS_METRICS = {
    "binary": ("selection_rate", "recall", "fpr"),
    "multiclass": ("accuracy", "recall", "f1"),
    "regression": ("rmse", "mae"),
}


@dataclass
class Histogram:
    dataset: str  # train or eval: the data compared with the reference
    feature: str
    kind: str  # numeric or categorical
    edges: list[float]  # numeric: the shared bin edges
    categories: list[str]  # categorical: the bars' labels
    reference: list[float]  # shares of the rows (counts normalised: the samples differ in size)
    current: list[float]
    caption: str  # the test that flagged it
    effect: float  # the test's effect size (KS statistic, Cramér's V): how far the distribution moved


@dataclass
class Curves:
    kind: str  # roc_pr or residuals
    models: dict[str, dict[str, Any]]  # candidate / champion -> the curve points
    average: str = ""  # binary or micro (one-vs-rest, every (row, class) pair)
    note: str = ""


@dataclass
class FairnessBars:
    column: str
    metrics: list[str]
    groups: list[str]
    values: dict[str, list[float | None]]  # metric -> per group
    lower: dict[str, list[float | None]]
    upper: dict[str, list[float | None]]
    rows: list[int]
    confidence: float | None


@dataclass
class Timeline:
    t: list[float]
    weight: list[float]
    canary_error_rate: list[float | None]  # cumulative since the analysis began, as the judge sees it
    stable_error_rate: list[float | None]
    latency: dict[str, dict[str, list[float | None]]]  # canary / stable -> p50 -> per look (per interval)
    decisions: list[str]
    decision: str  # the final one (the stage's output)
    versions: dict[str, str] = field(default_factory=dict)  # canary / stable -> model version


def histograms(figures: dict[str, Any]) -> list[Histogram]:
    out = []
    tests = figures.get("drift") or {}
    for dataset, features in (figures.get("drift_histograms") or {}).items():
        for feature, h in features.items():
            ref, cur = _shares(h.get("reference") or []), _shares(h.get("current") or [])
            if not ref or not cur:
                continue
            test = (tests.get(dataset) or {}).get(feature) or {}
            effect = test.get("effect_size")
            out.append(Histogram(dataset, feature, str(h.get("kind")), list(h.get("edges") or []),
                                 [str(c) for c in h.get("categories") or []], ref, cur, _caption(test),
                                 float(effect) if isinstance(effect, int | float) else 0.0))
    # The largest moves first, across the datasets: the report may show only the first few.
    return sorted(out, key=lambda h: -h.effect)


def _shares(counts: list[float]) -> list[float]:
    total = float(sum(counts))
    return [c / total for c in counts] if total > 0 else []


def _caption(test: dict[str, Any]) -> str:
    name = {"ks": "KS", "chi2": "χ²"}.get(str(test.get("test")), "")
    if not name:
        return ""
    p, effect = test.get("p_value"), test.get("effect_size")
    parts = [name, f"p = {p:.2g}" if isinstance(p, int | float) else "",
             f"effect {effect:.2f}" if isinstance(effect, int | float) else ""]
    return ", ".join(s for s in parts if s)


def curves(figures: dict[str, Any]) -> Curves | None:
    c = figures.get("curves")
    if not isinstance(c, dict) or "candidate" not in c:
        return None
    models = {name: c[name] for name in ("candidate", "champion") if isinstance(c.get(name), dict)}
    if c.get("kind") == "residuals":
        note = f"{c.get('rows')} of {c.get('of')} rows, sampled" if c.get("rows") != c.get("of") else ""
        return Curves("residuals", models, note=note)
    models = {k: v for k, v in models.items() if v.get("roc") and v.get("pr")}
    if not models:
        return None
    average = str(c.get("average", "binary"))
    note = (f"positive class {c.get('positive_label')!s}" if average == "binary"
            else "micro-average over the classes (one-vs-rest)")
    return Curves("roc_pr", models, average=average, note=note)


def fairness(figures: dict[str, Any]) -> list[FairnessBars]:
    f = figures.get("fairness")
    if not isinstance(f, dict):
        return []
    task = str(f.get("task") or figures.get("task") or "binary")
    out = []
    for column, data in (f.get("columns") or {}).items():
        by_group: dict[str, dict[str, Any]] = data.get("by_group") or {}
        bounds: dict[str, dict[str, Any]] = data.get("by_group_bounds") or {}
        metrics = [m for m in FAIRNESS_METRICS.get(task, ()) if by_group.get(m)]
        if not metrics:
            continue
        groups = list(by_group[metrics[0]])
        bars = FairnessBars(column, metrics, groups, {}, {}, {},
                            [int((data.get("rows") or {}).get(g, 0)) for g in groups], f.get("confidence"))
        for m in metrics:
            bars.values[m] = [by_group[m].get(g) for g in groups]
            pairs = [(bounds.get(m) or {}).get(g) or [None, None] for g in groups]
            bars.lower[m] = [p[0] for p in pairs]
            bars.upper[m] = [p[1] for p in pairs]
        out.append(bars)
    return out


def timeline(doc: dict[str, Any]) -> Timeline | None:
    entries = [e for e in (doc.get("evidence") or {}).get("timeline") or [] if isinstance(e, dict)]
    if not entries:
        return None
    latency: dict[str, dict[str, list[float | None]]] = {}
    for side in ("canary", "stable"):
        labels = sorted({q for e in entries for q in (e.get(f"{side}_latency_ms") or {})}, key=_quantile_order)
        if labels:
            latency[side] = {q: [(e.get(f"{side}_latency_ms") or {}).get(q) for e in entries] for q in labels}
    figures = doc.get("figures") or {}
    versions = {side: str(figures[f"{side}_version"]) for side in ("canary", "stable")
                if figures.get(f"{side}_version") is not None}
    decisions = [str(e.get("decision", "")) for e in entries]
    return Timeline(
        t=[float(e.get("t") or 0.0) for e in entries],
        weight=[float(e.get("weight") or 0.0) for e in entries],
        canary_error_rate=[_rate(e.get("canary_errors"), e.get("canary_requests")) for e in entries],
        stable_error_rate=[_rate(e.get("stable_errors"), e.get("stable_requests")) for e in entries],
        latency=latency, decisions=decisions,
        decision=str((doc.get("outputs") or {}).get("decision") or decisions[-1]), versions=versions)


def _rate(errors: Any, requests: Any) -> float | None:
    if not isinstance(errors, int | float) or not isinstance(requests, int | float) or requests <= 0:
        return None
    return float(errors) / float(requests)


def _quantile_order(label: str) -> float:
    try:
        return float(label.lstrip("p"))
    except ValueError:
        return float("inf")
