"""Binned counts of drifted features, reference vs current, for the HTML report's histograms.

The report is rendered later, maybe on another machine, from ``validate-data.json``
alone, so the stage stores what a histogram needs and nothing more: per drifted column,
counts in shared bins (numeric) or of the most frequent categories (categorical). A few
hundred numbers per dataset, however large the data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlcicd.data.drift import FeatureDrift

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

MAX_FEATURES = 12  # the most drifted columns get a plot; a report with 200 histograms is read by nobody
BINS = 20
TOP_CATEGORIES = 10
OTHER = "(other)"
# Shared edges span these quantiles of both samples together: one extreme value would otherwise
# squeeze every other row into one bin. Values beyond them are counted in the end bins.
SPAN = (0.005, 0.995)


def histograms(reference: pd.DataFrame, current: pd.DataFrame, results: list[FeatureDrift], *,
               max_features: int = MAX_FEATURES) -> dict[str, dict[str, Any]]:
    """``{feature: {kind, edges | categories, reference, current}}`` for the most drifted features.

    Features are ranked by effect size (the KS statistic or Cramér's V), which says how far a
    distribution moved; the p-value only says how sure the test is that it moved at all.
    """
    moved = sorted((r for r in results if r.drifted and r.feature in reference.columns
                    and r.feature in current.columns), key=lambda r: -(r.effect_size or 0.0))
    out: dict[str, dict[str, Any]] = {}
    for r in moved[:max_features]:
        ref, cur = reference[r.feature], current[r.feature]
        # The tests treat a numeric column with few distinct values as categories (drift.MAX_DISCRETE_LEVELS);
        # the plot follows the test, so a 0/1 flag gets two bars, not twenty bins.
        out[r.feature] = numeric(ref, cur) if r.test == "ks" else categorical(ref, cur)
    return out


def numeric(ref: pd.Series, cur: pd.Series, bins: int = BINS) -> dict[str, Any]:
    import numpy as np

    a = _finite(ref)
    b = _finite(cur)
    both = np.concatenate([a, b])
    if not both.size:
        return {"kind": "numeric", "edges": [], "reference": [], "current": []}
    low, high = np.quantile(both, SPAN)
    if not high > low:  # (almost) constant: the full range, or one unit around the value
        low, high = float(both.min()), float(both.max())
        if not high > low:
            low, high = low - 0.5, high + 0.5
    edges = np.linspace(low, high, bins + 1)
    return {"kind": "numeric", "edges": _round(edges),
            "reference": _counts(np.clip(a, low, high), edges), "current": _counts(np.clip(b, low, high), edges)}


def categorical(ref: pd.Series, cur: pd.Series, top: int = TOP_CATEGORIES) -> dict[str, Any]:
    import numpy as np
    import pandas as pd

    a, b = ref.dropna().astype(str).to_numpy(), cur.dropna().astype(str).to_numpy()
    codes, levels = pd.factorize(np.concatenate([a, b]))
    k = len(levels)
    table = np.vstack([np.bincount(codes[: a.size], minlength=k), np.bincount(codes[a.size:], minlength=k)])
    # The most frequent categories of both samples together, so a category new in the current data shows.
    order = np.argsort(-table.sum(axis=0), kind="stable")
    keep, rest = order[:top], order[top:]
    categories = [str(levels[i]) for i in keep]
    ref_counts, cur_counts = table[0, keep].tolist(), table[1, keep].tolist()
    if rest.size:
        categories.append(OTHER)
        ref_counts.append(int(table[0, rest].sum()))
        cur_counts.append(int(table[1, rest].sum()))
    return {"kind": "categorical", "categories": categories, "reference": ref_counts, "current": cur_counts}


def _finite(values: pd.Series) -> np.ndarray:
    import numpy as np
    import pandas as pd

    # A stray text value turns a numeric column into text: count the numbers, not the text.
    arr = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    return arr[np.isfinite(arr)]


def _counts(values: np.ndarray, edges: np.ndarray) -> list[int]:
    import numpy as np

    return [int(c) for c in np.histogram(values, bins=edges)[0]]


def _round(edges: np.ndarray) -> list[float]:
    """Six significant digits: enough to place a bar, and the JSON stays short."""
    return [float(f"{e:.6g}") for e in edges]
