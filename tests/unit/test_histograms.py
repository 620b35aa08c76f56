"""Latency histograms: quantiles, and bounds between bucket edges that keep the tolerance as configured."""

import math

import pytest

from mlcicd.delivery import histograms as hg
from mlcicd.serving.metrics import LATENCY_BUCKETS

BOUNDS = (*LATENCY_BUCKETS, math.inf)


def _survival(x, median, sigma):
    return 0.5 * math.erfc(math.log(x / median) / (sigma * math.sqrt(2)))


def _hist(median, sigma, n=1e6, second=None):
    def cdf(b):
        s = _survival(b, median, sigma)
        if second:
            s = 0.7 * s + 0.3 * _survival(b, *second)
        return 1 - s
    return {b: n * cdf(b) if math.isfinite(b) else n for b in BOUNDS}


@pytest.mark.parametrize(("q", "expected"), [(0.5, 0.0075), (0.99, 0.00995)])
def test_quantile_interpolates_inside_bucket(q, expected):
    assert hg.quantile_from_buckets({0.005: 0, 0.01: 100, math.inf: 100}, q) == pytest.approx(expected)


def test_quantile_without_data_is_none():
    assert hg.quantile_from_buckets({}, 0.5) is None
    assert hg.quantile_from_buckets({0.01: 0, math.inf: 0}, 0.5) is None


def _effective_tolerance(hist, survival, q, tol):
    """The slowdown at which a canary's expected score crosses 1 - q: what the tolerance really is."""
    s_q = hg.reference_quantile(hist, q)
    split = hg.split_bucket(hist, BOUNDS, s_q * (1 + tol), 1 + tol)
    lo, hi = 0.5, 3.0
    for _ in range(60):
        k = (lo + hi) / 2
        score = survival(split.hi / k) + split.fraction * (
            (survival(split.lo / k) if split.lo > 0 else 1.0) - survival(split.hi / k))
        lo, hi = (lo, k) if score > 1 - q else (k, hi)
    return lo - 1


@pytest.mark.parametrize("median", [0.004, 0.011, 0.02, 0.033, 0.07, 0.15])
@pytest.mark.parametrize("q", [0.5, 0.9, 0.99])
@pytest.mark.parametrize("tol", [0.1, 0.5])
def test_the_tolerance_holds_within_two_points_on_the_servers_buckets(median, q, tol):
    """The model server's buckets are ~25% apart; rounding the bound to an edge made 10% behave like ~25%."""
    for sigma, second in ((0.3, None), (0.5, None), (0.8, None), (0.4, (median * 2.5, 0.28))):
        hist = _hist(median, sigma, second=second)

        def survival(x, sigma=sigma, second=second):
            s = _survival(x, median, sigma)
            return 0.7 * s + 0.3 * _survival(x, *second) if second else s

        assert _effective_tolerance(hist, survival, q, tol) == pytest.approx(tol, abs=0.02)


def test_a_bound_on_an_edge_needs_no_fraction_and_one_beyond_the_last_is_none():
    hist = _hist(0.02, 0.5)
    assert hg.split_bucket(hist, BOUNDS, 0.05).fraction == 0.0
    assert hg.split_bucket(hist, BOUNDS, 20.0) is None
    split = hg.split_bucket(hist, BOUNDS, 0.045)
    assert (split.lo, split.hi) == (0.04, 0.05) and 0 < split.fraction < 1
