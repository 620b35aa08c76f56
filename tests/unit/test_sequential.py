"""Anytime-valid statistics: error rates hold however often one looks, power where it matters."""

import math

import numpy as np

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
    bounds = [seq.ratio_bound(*_traffic(rng, 60, 0.1, 0.03, 0.01), ALPHA) for _ in range(100)]
    assert np.mean(np.array(bounds) > 3.0) <= ALPHA + SLACK
    assert np.median(bounds) > 1.5
    assert seq.ratio_bound([0], [0], [100], [900], ALPHA) == 0.0


def test_ratio_upper_bound_holds_and_tightens():
    # Downward shifts test H0: ratio >= rho; inverted they bound the ratio from above.
    rng = np.random.default_rng(9)
    bounds = [seq.ratio_bound(*_traffic(rng, 60, 0.2, 0.01, 0.01), ALPHA, upper=True) for _ in range(100)]
    assert np.mean(np.array(bounds) < 1.0) <= ALPHA + SLACK  # below the true ratio at most alpha of the time
    assert np.median(bounds) < 1.5
    assert seq.ratio_bound([0], [0], [100], [900], ALPHA, upper=True) == math.inf  # no events: no bound


def test_the_ratio_memo_gives_what_a_fresh_computation_gives():
    rng = np.random.default_rng(10)
    data = _traffic(rng, 40, 0.2, 0.02, 0.01)
    grown = [seq.ratio_log_lr(*(v[:n] for v in data), 1.0) for n in (10, 25, 40)]
    fresh = seq.ratio_log_lr(*data, 1.0, cache=False)
    assert np.allclose(grown[-1], fresh) and np.allclose(grown[0], fresh[:10])
    changed = (data[0].copy(), *data[1:])
    changed[0][3] += 1  # the same length but different history: never served from the memo
    assert not np.allclose(seq.ratio_log_lr(*changed, 1.0), fresh)


def test_fractional_counts_keep_the_e_process_valid():
    # Latency scores count a request in the bound's bucket with a fixed fraction: [0, 1] observations.
    rng = np.random.default_rng(11)
    looks = 200
    scores = rng.choice([0.0, 0.35, 1.0], p=[0.9, 0.05, 0.05], size=(RUNS, looks, 20)).sum(axis=2).cumsum(axis=1)
    mean = 0.35 * 0.05 + 0.05
    trials = np.arange(1, looks + 1) * 20.0
    crossed = (seq.binomial_log_evalue(scores, trials, mean) >= seq.log_threshold(ALPHA)).any(axis=1)
    assert crossed.mean() <= ALPHA + SLACK
