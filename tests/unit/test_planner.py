"""The bake plan: what a healthy canary needs, said before the bake starts, with the duration to set."""

import math
from dataclasses import replace

import pytest

from mlcicd.config import CanaryPolicy, parse_config
from mlcicd.delivery.planner import Observed, config_lines, plan, plan_check
from mlcicd.report import Status
from mlcicd.serving.metrics import LATENCY_BUCKETS

BOUNDS = (*LATENCY_BUCKETS, math.inf)
STEPS = CanaryPolicy(steps=[10, 20, 30, 40, 50])


def test_a_short_low_traffic_bake_is_called_too_short_naming_the_duration_to_set():
    """The issue's new user: a 2-minute bake at ~3 canary req/s (30 req/s at 10%), a perfect model."""
    policy = replace(CanaryPolicy(), duration=120)
    found = plan(policy, Observed(rps=30, error_rate=0.0), bounds=BOUNDS)
    advice = found.advice(policy.duration)
    assert advice is not None and f"set deploy.canary.duration: {found.recommended:.0f}" in advice
    assert found.recommended is not None and found.recommended > 120 and found.recommended % 60 == 0
    assert found.seconds is not None and found.recommended >= 1.5 * found.seconds
    check = plan_check(found, policy.duration)
    assert check.status is Status.WARN and check.expected == found.recommended


def test_a_long_enough_bake_passes_and_every_step_has_a_need():
    found = plan(STEPS, Observed(rps=100, error_rate=0.01), bounds=BOUNDS)
    assert found.advice(1800) is None and plan_check(found, 1800).status is Status.PASS
    assert len(found.step_requests) == 5 and all(n >= STEPS.min_requests for n in found.step_requests)
    assert found.step_seconds is not None and found.seconds is not None
    assert found.seconds == pytest.approx(sum(found.step_seconds) + STEPS.last_look)
    assert "step 1 (10%)" in found.summary() and "last look: 120 s" in found.summary()


def test_lower_traffic_needs_proportionally_longer_and_unknown_rates_plan_for_the_slowest():
    fast = plan(STEPS, Observed(rps=100, error_rate=0.01), bounds=BOUNDS)
    slow = plan(STEPS, Observed(rps=10, error_rate=0.01), bounds=BOUNDS)
    assert slow.seconds - STEPS.last_look == pytest.approx(10 * (fast.seconds - STEPS.last_look), rel=0.01)
    unknown = plan(STEPS, Observed(rps=100), bounds=BOUNDS)
    slowest = max(plan(STEPS, Observed(rps=100, error_rate=r), bounds=BOUNDS).seconds for r in (0.0, 0.001, 0.01))
    assert unknown.seconds >= 0.97 * slowest  # the searches stop within 3%
    assert "slowest of stable 5xx rates" in unknown.summary()


def test_the_plan_matches_when_the_judge_shows_a_steps_claim():
    """A deterministic healthy canary: the judge shows step 1's claim within a few percent of the plan."""
    from test_analysis import Bake, Server

    policy = replace(STEPS, min_requests=1)
    found = plan(policy, Observed(rps=100, error_rate=0.01), bounds=BOUNDS)
    bake = Bake(canary=Server(), stable=Server(), policy=policy, interval=1.0)
    served = next(bake.canary.requests for _ in range(2000) if bake.look(10, step=0).decision == "promote")
    assert served == pytest.approx(found.step_requests[0], rel=0.15)


def test_mlci_gen_check_plans_from_the_config():
    raw = {"data": {"label": "y"}, "mlflow": {"model_name": "m"}}
    lines = config_lines(parse_config(raw).deploy.canary)
    assert len(lines) == 1 and "expected_rps" in lines[0] and "canary requests" in lines[0]
    short = {**raw, "deploy": {"canary": {"expected_rps": 5, "duration": 60}}}
    (line,) = config_lines(parse_config(short).deploy.canary)
    assert line.startswith("warning: deploy.canary.duration is 60 s") and "set deploy.canary.duration: " in line
    fine = {**raw, "deploy": {"canary": {"expected_rps": 500}}}
    assert config_lines(parse_config(fine).deploy.canary)[0].startswith("bake plan: duration 1800 s is enough")


def test_a_first_release_plans_for_its_p99_limit_as_the_judge_shows_it():
    """With no stable, p99 within max_p99_ms takes a few hundred requests even with none slow: planned, not a
    surprise (a 20 s blue-green bake at ~25 canary req/s ended inconclusive on it while the plan said 19 s)."""
    from test_analysis import Bake, Server

    policy = replace(CanaryPolicy(), min_requests=1, last_look=0)
    found = plan(policy, Observed(rps=10, error_rate=0.0), first_release=True, bounds=BOUNDS)
    need = found.binding(0)
    assert need is not None and need.claim == "p99 within 1,000 ms" and 250 < need.requests < 1000
    bake = Bake(canary=Server(error_rate=0.0), first_release=True, policy=policy, rate=10, interval=1.0)
    served = next(bake.canary.requests for _ in range(2000) if bake.look(100).decision == "promote")
    assert served == pytest.approx(found.step_requests[0], rel=0.1)
