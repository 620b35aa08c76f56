"""Drift: shifted features are detected, same-distribution samples are not (fixed seeds)."""

import numpy as np
import pandas as pd

from mlcicd.data import drift
from mlcicd.report import Status

KINDS: dict[str, drift.Kind | None] = {"x": "numeric", "c": "categorical", "flag": "numeric", "note": "text"}


def frame(n: int, seed: int, shift: float = 0.0, probs=(0.5, 0.3, 0.2)) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "x": rng.normal(shift, 1.0, n),
        "c": rng.choice(["a", "b", "c"], n, p=list(probs)),
        "flag": rng.integers(0, 2, n),
        "note": [f"free text {i}" for i in rng.integers(0, 10**9, n)],
    })


def compare(ref, cur, kinds=None, max_rows=20_000):
    results = drift.compare(ref, cur, kinds or KINDS, p_value=0.01, max_rows=max_rows)
    return {r.feature: r for r in results}


def test_same_distribution_does_not_drift():
    results = compare(frame(5000, 1), frame(5000, 2))
    assert not drift.drifted(list(results.values()))
    assert results["x"].test == "ks" and results["x"].p_value > 0.01
    assert results["c"].test == "chi2" and results["c"].p_value > 0.01


def test_shifted_numeric_feature_drifts():
    results = compare(frame(5000, 1), frame(5000, 2, shift=0.2))
    assert drift.drifted(list(results.values())) == ["x"]
    assert results["x"].effect_size > 0.05 and results["x"].p_value < 1e-6


def test_shifted_category_shares_drift():
    results = compare(frame(5000, 1), frame(5000, 2, probs=(0.4, 0.3, 0.3)))
    assert results["c"].drifted and results["c"].test == "chi2"
    assert not results["x"].drifted


def test_unseen_category_is_reported():
    cur = frame(5000, 2)
    cur.loc[:499, "c"] = "new"  # 10% of rows in a category the reference never had
    result = compare(frame(5000, 1), cur)["c"]
    assert result.drifted and result.unseen == {"new": 0.1}
    check = drift.to_checks([result], role="train", alpha=0.01, fail=True, label=None)[0]
    assert "never seen in the reference (10.0% of rows): 'new'" in check.message


def test_rare_categories_are_pooled():
    ref, cur = frame(3000, 1), frame(3000, 2)
    ref.loc[:2, "c"] = ["r1", "r2", "r3"]
    cur.loc[:1, "c"] = ["r4", "r5"]
    result = compare(ref, cur)["c"]
    assert not result.drifted and "rare categories pooled" in result.note


def test_numbers_and_text_are_one_category():
    ref = pd.DataFrame({"c": np.tile([1, 2, 3], 500)})
    cur = pd.DataFrame({"c": np.tile(["1", "2", "3"], 500).astype(object)})
    result = compare(ref, cur, {"c": "categorical"})["c"]
    assert result.statistic == 0 and not result.drifted and result.unseen == {}


def test_binary_numeric_feature_uses_chi_square():
    assert compare(frame(2000, 1), frame(2000, 2))["flag"].test == "chi2"


def test_free_text_is_not_tested():
    result = compare(frame(500, 1), frame(500, 2))["note"]
    assert result.test == "none" and "free text" in result.note
    check = drift.to_checks([result], role="train", alpha=0.01, fail=True, label=None)[0]
    assert check.status is Status.SKIP


def test_feature_with_no_values_is_not_a_pass():
    cur = frame(500, 2).assign(x=np.nan)
    result = compare(frame(500, 1), cur)["x"]
    assert result.test == "none" and not result.drifted
    assert drift.to_checks([result], role="train", alpha=0.01, fail=True, label=None)[0].status is Status.SKIP


def test_sample_is_capped_and_reproducible():
    big = frame(50_000, 3)
    first, second = drift.sample(big, 1000), drift.sample(big, 1000)
    assert len(first) == 1000 and first.index.equals(second.index)
    assert drift.sample(big.iloc[:10], 1000) is not None and len(drift.sample(big.iloc[:10], 1000)) == 10
    results = compare(frame(50_000, 1), frame(50_000, 2), max_rows=2000)
    assert results["x"].n_reference == results["x"].n_current == 2000


def test_drift_warns_instead_of_failing_when_asked():
    results = list(compare(frame(3000, 1), frame(3000, 2, shift=0.5)).values())
    failing = {c.name: c for c in drift.to_checks(results, role="train", alpha=0.01, fail=True, label="c")}
    warning = {c.name: c for c in drift.to_checks(results, role="train", alpha=0.01, fail=False, label="c")}
    assert failing["drift:x"].status is Status.FAIL and warning["drift:x"].status is Status.WARN
    message = failing["drift:x"].message
    assert "Kolmogorov-Smirnov" in message and "< 0.01" in message and "fail-on-drift: false" in message
    assert failing["drift:c"].message.startswith("label shift: ")
    assert drift.describe(results) == "1 of 3 features drifted (x)"
