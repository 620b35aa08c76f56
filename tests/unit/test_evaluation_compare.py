"""Change thresholds with MLflow's semantics; the multinomial paired bootstrap."""

from __future__ import annotations

import time

import numpy as np
import pytest

from mlcicd.evaluation.compare import (
    bootstrap_differences,
    change_check,
    mcnemar_exact_p,
    non_inferiority,
    paired_counts,
)

# candidate, baseline, min_absolute_change, min_relative_change, greater_is_better, passes
CHANGE_TABLE = [
    # greater is better: candidate >= baseline + abs, (c - b)/|b| >= rel
    (0.875, 0.75, 0.125, None, True, True),  # exactly on the line passes (>=)
    (0.87, 0.75, 0.125, None, True, False),
    (0.80, 0.75, None, 0.05, True, True),  # +6.7% >= 5%
    (0.78, 0.75, None, 0.05, True, False),  # +4%
    (0.90, 0.75, 0.125, 0.5, True, False),  # both rules apply; relative fails
    (-0.44, -0.5, None, 0.1, True, True),  # negative baseline: |b| keeps the direction
    (-0.55, -0.5, None, 0.1, True, False),
    (0.0, 0.0, None, 0.1, True, False),  # zero baseline: strictly better required
    (1e-9, 0.0, None, 0.1, True, True),
    (0.75, 0.75, None, None, True, True),  # no change configured: no regression
    (0.74, 0.75, None, None, True, False),
    # lower is better (error_rate, fpr, latency): candidate <= baseline - abs, (b - c)/|b| >= rel
    (0.125, 0.25, 0.125, None, False, True),
    (0.13, 0.25, 0.125, None, False, False),
    (0.20, 0.25, None, 0.1, False, True),  # -20%
    (0.24, 0.25, None, 0.1, False, False),  # -4%
    (0.30, 0.25, None, None, False, False),
    (0.25, 0.25, None, None, False, True),
    (0.0, 0.0, None, 0.1, False, False),
    (-1e-9, 0.0, None, 0.1, False, True),
]


@pytest.mark.parametrize(("cand", "base", "absolute", "relative", "gib", "passes"), CHANGE_TABLE)
def test_change_threshold_table(cand, base, absolute, relative, gib, passes):
    outcome = change_check(cand, base, greater_is_better=gib, min_absolute_change=absolute,
                           min_relative_change=relative)
    assert outcome.passed is passes
    assert bool(outcome.reasons) is not passes


def test_change_threshold_agrees_with_mlflow():
    """MLflow's own validator is the oracle (a private function: skip if it moves)."""
    validation = pytest.importorskip("mlflow.models.evaluation.validation")
    validate = getattr(validation, "_validate", None)
    if validate is None:
        pytest.skip("mlflow.models.evaluation.validation._validate is gone")
    rng = np.random.default_rng(3)
    for _ in range(300):
        cand, base = (float(v) for v in np.round(rng.uniform(-1, 1, 2), 2))
        absolute = float(np.round(rng.uniform(0.01, 0.3), 2)) if rng.random() < 0.6 else None
        relative = float(np.round(rng.uniform(0.01, 0.9), 2)) if rng.random() < 0.6 or absolute is None else None
        gib = bool(rng.random() < 0.5)
        threshold = validation.MetricThreshold(min_absolute_change=absolute, min_relative_change=relative,
                                               greater_is_better=gib)
        try:
            validate({"m": threshold}, {"m": cand}, {"m": base})
            theirs = True
        except validation.ModelValidationFailedException:
            theirs = False
        ours = change_check(cand, base, greater_is_better=gib, min_absolute_change=absolute,
                            min_relative_change=relative).passed
        assert ours is theirs, (cand, base, absolute, relative, gib)


def _slow_bootstrap_bounds(cand_ok, champ_ok, confidence, resamples, seed=0):
    """The textbook paired bootstrap: resample row indices, recompute the difference."""
    rng = np.random.default_rng(seed)
    n = len(cand_ok)
    d = cand_ok.astype(int) - champ_ok.astype(int)
    means = np.array([d[rng.integers(0, n, n)].mean() for _ in range(resamples)])
    return np.quantile(means, [1 - confidence, confidence])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_multinomial_bootstrap_matches_index_resampling(seed):
    rng = np.random.default_rng(seed)
    n = 300
    champ_ok = rng.random(n) < 0.85
    cand_ok = np.where(rng.random(n) < 0.9, champ_ok, ~champ_ok)  # disagree on ~10% of rows
    fast = non_inferiority(cand_ok, champ_ok, margin=0.01, confidence=0.95, resamples=4000)
    slow_lower, slow_upper = _slow_bootstrap_bounds(cand_ok, champ_ok, 0.95, 4000, seed=seed + 100)
    assert fast.lower == pytest.approx(slow_lower, abs=0.01)
    assert fast.upper == pytest.approx(slow_upper, abs=0.01)
    # The normal approximation agrees at this size too.
    assert fast.normal_lower == pytest.approx(fast.lower, abs=0.01)
    assert fast.difference == pytest.approx(cand_ok.mean() - champ_ok.mean())


def test_identical_models_pass_with_zero_difference():
    correct = np.random.default_rng(0).random(1000) < 0.8
    result = non_inferiority(correct, correct.copy(), margin=0.01)
    assert result.difference == 0 and result.lower == 0 and result.upper == 0
    assert result.passed and result.mcnemar_p == 1.0


def test_clearly_worse_model_fails():
    rng = np.random.default_rng(1)
    champ_ok = rng.random(2000) < 0.9
    cand_ok = rng.random(2000) < 0.5  # a model guessing
    result = non_inferiority(cand_ok, champ_ok, margin=0.01)
    assert not result.passed
    assert result.lower < -0.3 and result.mcnemar_p < 1e-10


def test_slightly_worse_within_margin_passes_and_beyond_fails():
    # 10,000 rows, candidate loses 30 more rows than it wins: -0.3 points.
    champ = np.ones(10_000, dtype=bool)
    cand = champ.copy()
    cand[:130] = False
    champ[200:300] = False  # candidate wins 100 rows, loses 130
    assert non_inferiority(cand, champ, margin=0.01).passed
    assert not non_inferiority(cand, champ, margin=0.001).passed


def test_result_is_deterministic():
    rng = np.random.default_rng(5)
    a, b = rng.random(500) < 0.8, rng.random(500) < 0.8
    assert non_inferiority(a, b, margin=0.01) == non_inferiority(a, b, margin=0.01)


def test_bootstrap_is_fast_on_100k_rows():
    rng = np.random.default_rng(0)
    a, b = rng.random(100_000) < 0.85, rng.random(100_000) < 0.85
    start = time.perf_counter()
    non_inferiority(a, b, margin=0.01, resamples=10_000)
    assert time.perf_counter() - start < 0.5  # measured ~5 ms; index resampling takes ~12 s


def test_counts_and_bootstrap_shape():
    cand = np.array([True, True, False, False, True])
    champ = np.array([True, False, True, False, False])
    assert paired_counts(cand, champ) == (1, 2, 2)
    diffs = bootstrap_differences(1, 2, 2, resamples=50)
    assert diffs.shape == (50,) and np.all(np.abs(diffs) <= 1)
    with pytest.raises(ValueError):
        paired_counts(cand, champ[:3])


@pytest.mark.parametrize(("wins", "losses"), [(0, 0), (3, 0), (10, 12), (40, 70), (500, 560), (3000, 2900)])
def test_mcnemar_exact_matches_scipy_binomtest(wins, losses):
    stats = pytest.importorskip("scipy.stats")
    expected = 1.0 if wins + losses == 0 else stats.binomtest(min(wins, losses), wins + losses, 0.5).pvalue
    assert mcnemar_exact_p(wins, losses) == pytest.approx(expected, rel=1e-9, abs=1e-300)
