"""Drift: does each feature of a dataset follow the reference distribution?

Numeric features get the two-sample Kolmogorov-Smirnov test, categorical ones a
chi-square test of homogeneity on their category counts. A feature drifted when
the test's p-value is below ``data.drift.p_value``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from mlcicd.data.text import count, examples, finite_or_none, names, pct
from mlcicd.report import Check, Status

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

Kind = Literal["numeric", "categorical", "text"]
# Fixed, so the same data gets the same verdict on every re-run of the pipeline.
SEED = 20240607
# KS assumes a continuous distribution; with a handful of distinct values (flags,
# small counts) its p-values are very conservative, so those are compared as categories.
MAX_DISCRETE_LEVELS = 10
# Cells expected to hold fewer counts than this make the chi-square approximation
# unreliable (Cochran's rule); such categories are pooled into one.
MIN_EXPECTED = 5.0


@dataclass
class FeatureDrift:
    feature: str
    test: str  # "ks", "chi2" or "none" when the feature could not be tested
    statistic: float | None
    p_value: float | None
    # KS: the statistic D itself (largest CDF gap); chi-square: Cramér's V. Both lie in
    # [0, 1], so a reader can tell a large shift from a merely significant one.
    effect_size: float | None
    drifted: bool
    n_reference: int
    n_current: int
    note: str = ""
    # Categories absent from the reference -> their share of the current sample.
    unseen: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        del data["feature"]
        return data


def sample(frame: pd.DataFrame, max_rows: int) -> pd.DataFrame:
    """At most ``max_rows`` rows, drawn without replacement with a fixed seed.

    The p-value of a test shrinks with sample size for the same shift: on a
    million rows a 0.5% move in a mean is "significant" yet harmless. Capping the
    rows keeps the test sensitive to shifts that matter for a model (and bounds
    its run time); the fixed seed keeps the verdict reproducible.
    """
    import numpy as np

    if len(frame) <= max_rows:
        return frame
    rows = np.sort(np.random.default_rng(SEED).choice(len(frame), size=max_rows, replace=False))
    return frame.iloc[rows]


def compare(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    kinds: dict[str, Kind | None],
    *,
    p_value: float,
    max_rows: int,
) -> list[FeatureDrift]:
    """Test every feature in ``kinds`` present in both frames."""
    ref = sample(reference, max_rows)
    cur = sample(current, max_rows)
    results = []
    for feature, kind in kinds.items():
        if feature not in ref.columns or feature not in cur.columns:
            continue
        results.append(_feature(feature, kind, ref[feature], cur[feature], p_value))
    return results


def _feature(feature: str, kind: Kind | None, ref: pd.Series, cur: pd.Series, alpha: float) -> FeatureDrift:
    import numpy as np

    if kind == "numeric":
        a = ref.to_numpy(dtype="float64", na_value=np.nan)
        b = cur.to_numpy(dtype="float64", na_value=np.nan)
        a, b = a[np.isfinite(a)], b[np.isfinite(b)]
        if a.size and b.size:
            if np.unique(np.concatenate([a, b])).size > MAX_DISCRETE_LEVELS:
                return _ks(feature, a, b, alpha)
            return _chi2(feature, a, b, alpha)
        return _untested(feature, a.size, b.size, "no values on one side")
    if kind == "categorical":
        ref, cur = ref.dropna(), cur.dropna()
        if len(ref) and len(cur):
            return _chi2(feature, ref.to_numpy(), cur.to_numpy(), alpha)
        return _untested(feature, len(ref), len(cur), "no values on one side")
    if kind == "text":
        return _untested(feature, int(ref.notna().sum()), int(cur.notna().sum()),
                         "free text (many distinct values): no distribution test applies")
    return _untested(feature, int(ref.notna().sum()), int(cur.notna().sum()), "type unknown (no values)")


def _untested(feature: str, n_ref: int, n_cur: int, note: str) -> FeatureDrift:
    return FeatureDrift(feature, "none", None, None, None, False, int(n_ref), int(n_cur), note=note)


def _ks(feature: str, a: np.ndarray, b: np.ndarray, alpha: float) -> FeatureDrift:
    from scipy.stats import ks_2samp

    res = ks_2samp(a, b)
    stat, p = float(res.statistic), float(res.pvalue)
    return FeatureDrift(feature, "ks", stat, p, stat, p < alpha, int(a.size), int(b.size))


def _chi2(feature: str, a: np.ndarray, b: np.ndarray, alpha: float) -> FeatureDrift:
    import numpy as np
    import pandas as pd
    from scipy.stats import chi2_contingency

    values = _common_values(a, b)
    codes, levels = pd.factorize(values)
    k = len(levels)
    table = np.vstack([np.bincount(codes[: a.size], minlength=k), np.bincount(codes[a.size:], minlength=k)])
    unseen_mask = (table[0] == 0) & (table[1] > 0)
    unseen = {_label(levels[i]): round(float(table[1, i]) / b.size, 6) for i in np.flatnonzero(unseen_mask)[:20]}
    totals = table.sum(axis=0)
    smallest_expected = totals * min(a.size, b.size) / totals.sum()
    rare = smallest_expected < MIN_EXPECTED
    if rare.any():
        table = np.column_stack([table[:, ~rare], table[:, rare].sum(axis=1)])
    if table.shape[1] < 2:
        if rare.any():
            return _untested(feature, a.size, b.size, "too few rows per category for a chi-square test")
        # One category on both sides: the distributions are identical.
        return FeatureDrift(feature, "chi2", 0.0, 1.0, 0.0, False, int(a.size), int(b.size), unseen=unseen)
    res = chi2_contingency(table)
    stat, p = float(res.statistic), float(res.pvalue)
    cramers_v = math.sqrt(stat / table.sum()) if table.sum() else 0.0
    note = f"{int(rare.sum())} rare categories pooled" if rare.sum() > 1 else ""
    return FeatureDrift(feature, "chi2", stat, p, min(cramers_v, 1.0), p < alpha, int(a.size), int(b.size),
                        note=note, unseen=unseen)


def _common_values(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Both samples in one array whose equal categories compare equal.

    When one file was read as numbers and the other as text (a stray "n/a" turns a
    column into text), 1 and "1" must still be one category, so both become text.
    """
    import numpy as np

    if a.dtype == b.dtype or (a.dtype.kind in "biuf" and b.dtype.kind in "biuf"):
        return np.concatenate([a, b])
    return np.concatenate([_as_text(a), _as_text(b)])


def _as_text(values: np.ndarray) -> np.ndarray:
    import numpy as np

    if values.dtype.kind == "f" and np.all(values == np.floor(values)):
        values = values.astype(np.int64)
    return values.astype(str).astype(object)


def _label(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


_TEST_NAMES = {"ks": "Kolmogorov-Smirnov", "chi2": "chi-square"}


def to_checks(
    results: list[FeatureDrift], *, role: str, alpha: float, fail: bool, label: str | None
) -> list[Check]:
    """One check per feature: drifted ones FAIL (or WARN), untestable ones SKIP."""
    checks = []
    for r in results:
        name = f"drift:{r.feature}"
        what = "label shift: " if r.feature == label else ""
        details = r.to_dict()
        if r.test == "none":
            checks.append(Check(name, Status.SKIP, f"{what}not tested: {r.note}", details=details))
            continue
        p_text = f"{r.p_value:.2g}" if r.p_value is not None else "?"
        if not r.drifted:
            checks.append(Check(name, Status.PASS, f"{what}p = {p_text} ({_TEST_NAMES[r.test]})",
                                observed=finite_or_none(r.p_value), expected=f">= {alpha}", details=details))
            continue
        new = ""
        if r.unseen:
            share = sum(r.unseen.values())
            new = f" Categories never seen in the reference ({pct(share)} of rows): {examples(list(r.unseen))}."
        fix = ("check the upstream pipeline for this column; if the shift is real, retrain on recent data and "
               "update data.reference; set fail-on-drift: false (data.drift.fail) to only warn")
        checks.append(Check(
            name, Status.FAIL if fail else Status.WARN,
            f"{what}{r.feature!r} in the {role} data drifted from the reference ({_TEST_NAMES[r.test]} "
            f"statistic {r.statistic:.4g}, effect size {r.effect_size:.3f}, p = {p_text} < {alpha}; "
            f"{count(r.n_current)} vs {count(r.n_reference)} rows).{new} Fix: {fix}.",
            observed=finite_or_none(r.p_value), expected=f">= {alpha}", details=details,
        ))
    return checks


def drifted(results: list[FeatureDrift]) -> list[str]:
    return [r.feature for r in results if r.drifted]


def describe(results: list[FeatureDrift]) -> str:
    tested = [r for r in results if r.test != "none"]
    moved = drifted(results)
    if moved:
        return f"{len(moved)} of {len(tested)} features drifted ({names(moved, 8)})"
    return f"none of {len(tested)} features drifted"
