"""Anytime-valid statistics: error rates hold however often one looks, power where it matters."""

import math

import numpy as np
import pytest

from mlcicd.delivery import sequential as seq

ALPHA = 0.05
# Monte Carlo slack on a rate estimated from RUNS runs (~3 standard errors at 5%).
RUNS = 600
SLACK = 0.03


def _first_crossing(log_e: np.ndarray, alpha: float = ALPHA) -> bool:
    return bool((log_e >= seq.log_threshold(alpha)).any())


def test_one_rate_e_process_rarely_crosses_under_the_null_despite_peeking_every_look():
    rng = np.random.default_rng(1)
    looks = 300
    successes = rng.binomial(50, 0.01, (RUNS, looks)).cumsum(axis=1)
    trials = np.arange(1, looks + 1) * 50.0
    crossed = (seq.binomial_log_evalue(successes, trials, 0.01) >= seq.log_threshold(ALPHA)).any(axis=1)
    assert crossed.mean() <= ALPHA + SLACK


def test_naive_fixed_horizon_test_repeated_at_every_look_does_not_hold_its_level():
    # The problem the e-processes solve: a one-sided 95% z-test re-run at every look.
    rng = np.random.default_rng(2)
    looks = 300
    successes = rng.binomial(50, 0.01, (RUNS, looks)).cumsum(axis=1)
    trials = np.arange(1, looks + 1) * 50.0
    z = (successes - 0.01 * trials) / np.sqrt(0.01 * 0.99 * trials)
    assert (z > 1.645).any(axis=1).mean() > 3 * ALPHA


def test_confidence_sequence_covers_the_truth_at_all_times():
    rng = np.random.default_rng(3)
    looks = 150
    for p in (0.002, 0.01, 0.3):
        successes = rng.binomial(40, p, (RUNS, looks)).cumsum(axis=1)
        trials = np.broadcast_to(np.arange(1, looks + 1) * 40.0, successes.shape)
        lower, upper = seq.binomial_bounds(successes, trials, ALPHA / 2)
        missed = ((lower > p) | (upper < p)).any(axis=1)
        assert missed.mean() <= ALPHA + SLACK, p


def test_zero_errors_still_give_a_shrinking_upper_bound():
    lo, up = seq.binomial_bounds([0, 0, 0], [100, 1000, 10000], 0.025)
    assert (lo == 0).all()
    assert up[0] > up[1] > up[2]
    assert up[1] < 0.01 < up[0]  # 1,000 clean requests already bound the rate below 1%
    assert up[2] * 10000 < 15  # roughly (log(1/alpha) + c) / n
    assert seq.binomial_bounds(0, 0, 0.05) == (0.0, 1.0)
    assert seq.binomial_bounds(5, 5, 0.05)[1] == 1.0


def test_bounds_bracket_the_estimate_and_tighten_with_data():
    lo, up = seq.binomial_bounds([10, 100, 1000], [1000, 10000, 100000], 0.05)
    assert (lo < 0.01).all() and (up > 0.01).all()
    assert np.all(np.diff(up - lo) < 0)


def test_e_value_is_monotone_in_the_null_rate():
    # The confidence bounds are exact bisections because of this.
    p0 = np.linspace(0.001, 0.2, 200)
    up = seq.binomial_log_evalue(30, 1000, p0, upper=True)  # H0: p <= p0
    down = seq.binomial_log_evalue(30, 1000, p0, upper=False)  # H0: p >= p0
    assert np.all(np.diff(up) <= 1e-12) and np.all(np.diff(down) >= -1e-12)


def _traffic(rng, looks, weights, p_c, p_s, rate=1000):
    n = rng.poisson(rate, looks)
    n_c = rng.binomial(n, np.broadcast_to(weights, (looks,)))
    n_s = n - n_c
    return rng.binomial(n_c, p_c), rng.binomial(n_s, p_s), n_c, n_s


def test_rate_ratio_e_process_holds_its_level_when_the_traffic_split_changes():
    rng = np.random.default_rng(4)
    weights = np.repeat([0.05, 0.25, 0.5], 60)  # three canary steps
    crossed = [_first_crossing(seq.ratio_log_evalue(*_traffic(rng, 180, weights, 0.01, 0.01))) for _ in range(RUNS)]
    assert np.mean(crossed) <= ALPHA + SLACK


def test_rate_ratio_e_process_ignores_rates_that_move_for_both_servers():
    # Stable and canary both go from 0.5% to 5% errors while the canary's share grows:
    # pooled totals would make the canary look worse, the per-interval test does not.
    rng = np.random.default_rng(5)
    weights, rates = np.repeat([0.1, 0.5], 60), np.repeat([0.005, 0.05], 60)
    crossed = [_first_crossing(seq.ratio_log_evalue(*_traffic(rng, 120, weights, rates, rates))) for _ in range(200)]
    assert np.mean(crossed) <= ALPHA + SLACK


def test_rate_ratio_e_process_catches_a_doubled_error_rate_quickly():
    rng = np.random.default_rng(6)
    hits = []
    for _ in range(200):
        log_e = seq.ratio_log_evalue(*_traffic(rng, 60, 0.1, 0.02, 0.01))  # 10 minutes of 10 s intervals
        hits.append(int(np.argmax(log_e >= seq.log_threshold(ALPHA))) if _first_crossing(log_e) else None)
    found = [h for h in hits if h is not None]
    assert len(found) >= 0.95 * len(hits)
    assert np.median(found) < 20  # about three minutes at 100 req/s, 10% canary


def test_ratio_tail_matches_the_full_history():
    rng = np.random.default_rng(7)
    data = _traffic(rng, 50, 0.2, 0.02, 0.01)
    full = seq.ratio_log_evalue(*data)
    assert np.allclose(seq.ratio_log_evalue(*data, tail=3), full[-3:])
    assert len(seq.ratio_log_evalue([], [], [], [])) == 0


def test_ratio_lower_bound_is_below_the_truth_and_above_one_for_a_clear_regression():
    rng = np.random.default_rng(8)
    bounds = [seq.ratio_lower_bound(*_traffic(rng, 60, 0.1, 0.03, 0.01), ALPHA) for _ in range(100)]
    assert np.mean(np.array(bounds) > 3.0) <= ALPHA + SLACK
    assert np.median(bounds) > 1.5
    assert seq.ratio_lower_bound([0], [0], [100], [900], ALPHA) == 0.0


def test_difference_non_inferiority_is_shown_for_equal_rates_and_rarely_when_worse_than_the_margin():
    assert seq.difference_shown(30, 3000, 270, 27000, 0.01, ALPHA)
    assert seq.difference_shown(0, 1000, 0, 9000, 0.01, ALPHA)  # zero errors on both sides
    assert not seq.difference_shown(3, 300, 27, 2700, 0.01, ALPHA)  # too little data yet
    rng = np.random.default_rng(9)
    # The canary is exactly `margin` worse: the claim must be wrong at most alpha of the time, at any look.
    wrong = 0
    for _ in range(300):
        xc, nc = rng.binomial(100, 0.03, 100).cumsum(), np.arange(1, 101) * 100.0
        xs, ns = rng.binomial(900, 0.02, 100).cumsum(), np.arange(1, 101) * 900.0
        wrong += any(seq.difference_shown(a, b, c, e, 0.01, ALPHA) for a, b, c, e in zip(xc, nc, xs, ns, strict=True))
    assert wrong / 300 <= ALPHA + SLACK


def test_jensen_shannon_divergence_basics():
    assert seq.js_divergence([70, 30], [7, 3]) == pytest.approx(0.0)
    assert seq.js_divergence([1, 0], [0, 1]) == pytest.approx(1.0)
    assert seq.js_divergence([0.7, 0.3], [0.5, 0.5]) == pytest.approx(0.0303, abs=1e-3)
    assert seq.js_divergence([0.7, 0.3], [0.3, 0.7]) == pytest.approx(seq.js_divergence([0.3, 0.7], [0.7, 0.3]))
    assert math.isnan(seq.js_divergence([0, 0], [1, 1]))


def test_jensen_shannon_bounds_contain_the_truth_and_separate_clear_shifts():
    rng = np.random.default_rng(10)
    p, q = np.array([0.5, 0.5]), np.array([0.7, 0.3])
    truth = seq.js_divergence(p, q)
    missed = 0
    for _ in range(300):
        c, s = rng.multinomial(500, p), rng.multinomial(4500, q)
        _, lo, up = seq.js_bounds(c, s, ALPHA)
        missed += not (lo <= truth <= up)
    assert missed / 300 <= ALPHA + SLACK
    est, lo, up = seq.js_bounds([700, 300], [6300, 2700], ALPHA)
    assert est == pytest.approx(0.0) and lo == 0.0 and up < 0.01
    _, lo, _ = seq.js_bounds([2000, 2000], [7000, 3000], ALPHA)
    assert lo > 0.01


@pytest.mark.parametrize(("q", "expected"), [(0.5, 0.0075), (0.99, 0.00995)])
def test_quantile_interpolates_inside_bucket(q, expected):
    assert seq.quantile_from_buckets({0.005: 0, 0.01: 100, float("inf"): 100}, q) == pytest.approx(expected)


def test_quantile_without_data_is_none():
    assert seq.quantile_from_buckets({}, 0.5) is None
    assert seq.quantile_from_buckets({0.01: 0, float("inf"): 0}, 0.5) is None
