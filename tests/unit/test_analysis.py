"""The canary judge: promote healthy canaries, roll back regressions, never pass missing data."""

import pytest

from mlcicd.config import CanaryPolicy
from mlcicd.delivery.analysis import (
    Observation,
    judge,
    psi,
    quantile_from_buckets,
    rate_difference_interval,
    wilson,
)
from mlcicd.delivery.metrics.base import Snapshot

POLICY = CanaryPolicy(min_requests=200, max_error_rate_increase=0.01, confidence=0.95)
FAST = {0.005: 0, 0.01: 0, 0.025: 0, 0.05: 0, float("inf"): 0}


def snap(requests, errors, latency_ms=8.0):
    buckets = {}
    for bound in (0.005, 0.01, 0.025, 0.05, float("inf")):
        buckets[bound] = requests if latency_ms / 1000 <= bound else 0
    return Snapshot({"200": requests - errors, "500": errors}, buckets, {"0": requests * 0.7, "1": requests * 0.3})


def test_wilson_and_newcombe_are_sane():
    lo, hi = wilson(0, 100, 1.96)
    assert lo == 0 and 0.03 < hi < 0.04
    d, lo, hi = rate_difference_interval(10, 100, 10, 100, 1.96)
    assert d == 0 and lo < 0 < hi


def test_regression_rolls_back_early():
    obs = Observation(canary=snap(100, 6), stable=snap(900, 1), elapsed=10)
    j = judge(obs, POLICY, final=False)
    assert j.decision == "rollback"
    assert "canary 5xx rate 6.00% vs stable 0.11%" in j.reason


def test_healthy_canary_waits_for_min_requests_then_promotes():
    assert judge(Observation(snap(50, 0), snap(450, 0), 5), POLICY, final=False).decision == "continue"
    assert judge(Observation(snap(400, 0), snap(3600, 0), 50), POLICY, final=False).decision == "promote"


def test_missing_data_is_never_a_pass():
    j = judge(Observation(snap(0, 0), snap(0, 0), 60), POLICY, final=True)
    assert j.decision == "inconclusive"
    j = judge(Observation(Snapshot(), snap(500, 0), 60, canary_read_failures=3), POLICY, final=False)
    assert j.decision == "rollback" and "unreadable" in j.reason
    j = judge(Observation(snap(500, 0), Snapshot(), 60, stable_read_failures=3), POLICY, final=False)
    assert j.decision == "inconclusive"


def test_latency_regression_rolls_back():
    obs = Observation(canary=snap(400, 0, latency_ms=45), stable=snap(3600, 0, latency_ms=8), elapsed=30)
    j = judge(obs, POLICY, final=False)
    assert j.decision == "rollback" and "p99" in j.reason


def test_first_release_uses_absolute_limits():
    policy = CanaryPolicy(min_requests=200, max_error_rate=0.02)
    assert judge(Observation(snap(400, 0), None, 30), policy, final=False).decision == "promote"
    assert judge(Observation(snap(200, 20), None, 30), policy, final=False).decision == "rollback"


@pytest.mark.parametrize(("q", "expected"), [(0.5, 0.0075), (0.99, 0.00995)])
def test_quantile_interpolates_inside_bucket(q, expected):
    buckets = {0.005: 0, 0.01: 100, float("inf"): 100}
    assert quantile_from_buckets(buckets, q) == pytest.approx(expected)


def test_psi_zero_for_same_mix():
    assert psi({"0": 70, "1": 30}, {"0": 7, "1": 3}) == pytest.approx(0)
    assert psi({"0": 70, "1": 30}, {"0": 30, "1": 70}) > 0.5
