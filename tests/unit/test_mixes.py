"""Prediction mixes: Jensen-Shannon divergence and its anytime-valid bounds."""

import math

import numpy as np
import pytest

from mlcicd.delivery import mixes

ALPHA = 0.05


def test_jensen_shannon_divergence_basics():
    assert mixes.js_divergence([70, 30], [7, 3]) == pytest.approx(0.0)
    assert mixes.js_divergence([1, 0], [0, 1]) == pytest.approx(1.0)
    assert mixes.js_divergence([0.7, 0.3], [0.5, 0.5]) == pytest.approx(0.0303, abs=1e-3)
    assert mixes.js_divergence([0.7, 0.3], [0.3, 0.7]) == pytest.approx(mixes.js_divergence([0.3, 0.7], [0.7, 0.3]))
    assert math.isnan(mixes.js_divergence([0, 0], [1, 1]))


@pytest.mark.parametrize("k", [2, 4])
def test_bounds_contain_the_truth_at_every_look(k):
    rng = np.random.default_rng(k)
    p = np.r_[[0.5, 0.5], np.zeros(k - 2)] + np.r_[[0.0, 0.0], np.full(k - 2, 0.1)]
    p, q = p / p.sum(), np.roll(p / p.sum(), 1)
    truth = mixes.js_divergence(p, q)
    missed = 0
    for _ in range(150):
        c = rng.multinomial(100, p, size=30).cumsum(axis=0)
        s = rng.multinomial(900, q, size=30).cumsum(axis=0)
        _, lo, up = mixes.js_bounds(c, s, ALPHA)
        missed += bool(((lo > truth) | (up < truth)).any())
    assert missed / 150 <= ALPHA + 0.03


def test_identical_mixes_are_bounded_and_clear_shifts_separated():
    est, lo, up = mixes.js_bounds([700, 300], [6300, 2700], ALPHA)
    assert est == pytest.approx(0.0) and lo == 0.0 and up < 0.01
    _, lo, _ = mixes.js_bounds([2000, 2000], [7000, 3000], ALPHA)
    assert lo > 0.01


def test_a_drift_at_80_percent_of_the_limit_is_shown_allowed_on_a_default_bakes_traffic():
    """70/30 against 55.6/44.4 is JSD 0.016, 80% of the 0.02 default: the joint bound shows it on the
    predictions a 100 req/s bake sees (~40,000 canary, ~60,000 stable), the old per-label one did not."""
    c, s = np.array([0.5564, 0.4436]) * 40000, np.array([0.7, 0.3]) * 60000
    assert mixes.js_divergence(c, s) == pytest.approx(0.016, abs=2e-4)
    assert mixes.js_bounds(c, s, ALPHA)[2] <= 0.02


def test_the_joint_region_is_one_interval_per_label_from_the_whole_budget():
    lo, up = mixes.multinomial_intervals(np.array([[300.0, 500.0, 200.0]]), ALPHA)
    assert (lo < [0.3, 0.5, 0.2]).all() and (up > [0.3, 0.5, 0.2]).all()
    assert (up - lo < 0.15).all()
    lo, up = mixes.multinomial_intervals(np.array([[0.0, 100.0, 0.0]]), ALPHA)
    assert lo[0, 0] == 0.0 and 0 < up[0, 0] < 0.1 and up[0, 1] == 1.0
    expected = [math.lgamma(0.5), 0.0, math.lgamma(10.0)]
    assert mixes.lgamma(np.array([0.5, 1.0, 10.0])) == pytest.approx(expected, abs=1e-10)
