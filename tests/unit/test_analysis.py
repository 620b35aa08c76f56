"""The canary judge as a user sees it: promote healthy canaries, roll back regressions, never pass missing data."""

import json
import math
from dataclasses import dataclass, field, replace

import numpy as np
import pytest

from mlcicd.config import (
    CanaryChecks,
    CanaryPolicy,
    CustomCheck,
    ErrorRateCheck,
    LatencyCheck,
    PredictionCheck,
)
from mlcicd.delivery.analysis import Look, judge, quantile_from_buckets
from mlcicd.delivery.metrics.base import Snapshot

BOUNDS = (0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.06, 0.08, 0.1, 0.125, 0.15, 0.2, 0.25, 0.3,
          0.4, 0.5, 0.6, 0.8, 1.0, 1.5, 2.0, 5.0, math.inf)
POLICY = CanaryPolicy(min_requests=200, confidence=0.95)


def _shares(median: float, sigma: float = 0.5) -> list[float]:
    """Log-normal latency split over the buckets."""
    cdf = [0.5 * (1 + math.erf(math.log(b / median) / (sigma * math.sqrt(2)))) if math.isfinite(b) else 1.0
           for b in BOUNDS]
    return [hi - lo for lo, hi in zip([0.0, *cdf[:-1]], cdf, strict=True)]


@dataclass
class Server:
    """Cumulative counters that grow by expected (fractional) counts: deterministic traffic."""

    error_rate: float = 0.01
    median: float = 0.02
    mix: tuple[float, float] = (0.7, 0.3)
    requests: float = 0.0
    errors: float = 0.0
    buckets: list[float] = field(default_factory=lambda: [0.0] * len(BOUNDS))
    labels: list[float] = field(default_factory=lambda: [0.0, 0.0])

    def serve(self, n: float) -> None:
        self.requests += n
        self.errors += n * self.error_rate
        self.buckets = [b + n * s for b, s in zip(self.buckets, _shares(self.median), strict=True)]
        self.labels = [v + n * m for v, m in zip(self.labels, self.mix, strict=True)]

    def snapshot(self) -> Snapshot:
        cumulative, running = {}, 0.0
        for bound, count in zip(BOUNDS, self.buckets, strict=True):
            running += count
            cumulative[bound] = running
        return Snapshot({"200": self.requests - self.errors, "500": self.errors}, cumulative,
                        {"0": self.labels[0], "1": self.labels[1]})


@dataclass
class Bake:
    """Drives the judge like the monitor: one look per interval, the whole history each time."""

    canary: Server = field(default_factory=Server)
    stable: Server = field(default_factory=Server)
    policy: CanaryPolicy = field(default_factory=lambda: POLICY)
    first_release: bool = False
    rate: float = 100.0  # requests per second, both servers
    interval: float = 10.0
    looks: list[Look] = field(default_factory=list)

    def look(self, weight: int = 10, *, canary_ok: bool = True, stable_ok: bool = True, final: bool = False,
             custom: dict | None = None, step: int = 0, last_look: bool = False):
        n = self.rate * self.interval
        share = 1.0 if self.first_release else weight / 100
        self.canary.serve(n * share)
        self.stable.serve(n * (1 - share))
        stable = None if self.first_release or not stable_ok else self.stable.snapshot()
        self.looks.append(Look(self.interval * (len(self.looks) + 1), self.canary.snapshot() if canary_ok else None,
                               stable, weight, custom or {}, step=step, last_look=last_look))
        return judge(self.looks, self.policy, first_release=self.first_release, final=final)

    def until(self, *decisions: str, limit: int = 180, **kwargs):
        for _ in range(limit):
            j = self.look(**kwargs)
            if j.decision in decisions:
                return j
        raise AssertionError(f"no {decisions} within {limit} looks; last: {j.decision}: {j.reason}")


def _metric(j, name):
    return next(m for m in j.metrics if m.name == name)


def test_healthy_canary_waits_for_min_requests_then_promotes():
    bake = Bake()
    first = bake.look()
    assert first.decision == "continue"
    j = bake.until("promote", "rollback", "inconclusive")
    assert j.decision == "promote"
    served = _metric(j, "error_rate").evidence["canary_requests"]
    assert served >= POLICY.min_requests
    assert "error rate" in j.reason and "latency" in j.reason and "prediction mix" in j.reason
    assert all(m.outcome == "promote" for m in j.metrics)


def test_promotion_needs_min_requests_even_with_perfect_data():
    bake = Bake(policy=replace(POLICY, min_requests=5000), canary=Server(error_rate=0.0),
                stable=Server(error_rate=0.0))
    for _ in range(30):
        j = bake.look()
        if _metric(j, "error_rate").evidence["canary_requests"] < 5000:
            assert j.decision == "continue"
    assert bake.until("promote").decision == "promote"


def test_doubled_error_rate_rolls_back_with_a_one_sentence_reason():
    bake = Bake(canary=Server(error_rate=0.02))
    j = bake.until("rollback", "promote")
    assert j.decision == "rollback"
    assert j.reason.startswith("error rate: canary 2.0% vs stable 1.0% (\u00d72.0, at least \u00d7")
    assert "confidence, anytime-valid) after" in j.reason and j.reason.endswith("canary requests")
    assert ". " not in j.reason  # one sentence
    ev = _metric(j, "error_rate").evidence
    assert ev["e_value"] >= ev["e_threshold"] and 1 < ev["ratio_lower"] <= 2.0
    assert bake.looks[-1].elapsed <= 300


def test_latency_regression_rolls_back():
    bake = Bake(canary=Server(median=0.03))  # every latency x1.5: p99 +50%
    j = bake.until("rollback", "promote")
    assert j.decision == "rollback"
    assert j.reason.startswith("latency p")
    assert "bound" in j.reason and "anytime-valid" in j.reason and ". " not in j.reason


def test_the_stables_history_fixes_latency_bounds_at_the_first_look():
    """Without it the p99 bound waits for 1,000 stable requests inside the analysis."""
    history = Server()
    history.serve(5000)  # what the champion served before the canary arrived
    with_history = Bake()
    j_with = with_history.look()
    judge_with = judge(with_history.looks, POLICY, first_release=False, final=False, reference=history.snapshot())
    assert "waiting for" in _metric(j_with, "latency").message  # no reference: still waiting
    assert "waiting for" not in _metric(judge_with, "latency").message
    assert set(_metric(judge_with, "latency").evidence["quantiles"]) == {"p50", "p99"}


def test_small_latency_change_within_tolerance_is_promoted():
    bake = Bake(canary=Server(median=0.0205))
    assert bake.until("rollback", "promote").decision == "promote"


def test_prediction_shift_rolls_back_only_beyond_max_divergence():
    strict = replace(POLICY, checks=CanaryChecks(predictions=PredictionCheck(max_divergence=0.01)))
    bake = Bake(canary=Server(mix=(0.5, 0.5)), policy=strict)
    seen_pending = False
    for _ in range(120):
        j = bake.look()
        pred = _metric(j, "predictions")
        if j.decision == "rollback":
            break
        seen_pending |= "consecutive looks needed" in pred.message
    assert j.decision == "rollback" and j.reason.startswith("prediction mix: Jensen-Shannon divergence 0.030")
    assert seen_pending  # non-critical: the regression had to stand on failure_limit consecutive looks
    # A looser limit tolerates the same shift: champion and challenger may differ a little.
    loose = replace(POLICY, checks=CanaryChecks(predictions=PredictionCheck(max_divergence=0.05)))
    assert Bake(canary=Server(mix=(0.5, 0.5)), policy=loose).until("rollback", "promote").decision == "promote"
    # The default (0.02) catches it.
    assert Bake(canary=Server(mix=(0.5, 0.5))).until("rollback", "promote").decision == "rollback"


def test_observe_mode_records_but_never_decides():
    observe = replace(POLICY, checks=CanaryChecks(error_rate=ErrorRateCheck(mode="observe")))
    bake = Bake(canary=Server(error_rate=0.03), policy=observe)
    j = bake.until("promote", "rollback")
    assert j.decision == "promote"
    err = _metric(j, "error_rate")
    assert not err.enforced and err.outcome == "rollback" and err.evidence["e_value"] > 1


def test_non_critical_check_needs_failure_limit_consecutive_looks():
    def first_rollback(critical: bool) -> int:
        policy = replace(POLICY, failure_limit=4,
                         checks=CanaryChecks(error_rate=ErrorRateCheck(critical=critical)))
        bake = Bake(canary=Server(error_rate=0.03), policy=policy)
        bake.until("rollback")
        return len(bake.looks)

    assert first_rollback(critical=False) == first_rollback(critical=True) + 3


def test_custom_check_fails_after_failure_limit_looks_and_missing_values_are_errors():
    checks = CanaryChecks(custom=[CustomCheck("queue", "q", max=10.0)])
    bake = Bake(policy=replace(POLICY, failure_limit=2, checks=checks))
    assert bake.look(custom={"queue": 50.0}).decision == "continue"
    j = bake.look(custom={"queue": 50.0})
    assert j.decision == "rollback" and j.reason == "queue: 50 outside [-inf, 10] on 2 consecutive looks"
    bake = Bake(policy=replace(POLICY, checks=checks))
    outcomes = [bake.look(custom={"queue": None}).decision for _ in range(3)]
    assert outcomes[:2] == ["continue", "continue"] and outcomes[2] == "inconclusive"
    critical = CanaryChecks(custom=[CustomCheck("queue", "q", max=10.0, critical=True)])
    assert Bake(policy=replace(POLICY, checks=critical)).look(custom={"queue": 11.0}).decision == "rollback"
    healthy = Bake(policy=replace(POLICY, checks=checks))
    assert healthy.until("promote", custom={"queue": 3.0}).decision == "promote"


def test_missing_data_is_never_a_pass():
    bake = Bake(rate=1.0)  # far too few requests in the bake
    assert bake.look(final=True).decision == "inconclusive"
    bake = Bake()
    bake.look()
    judgements = [bake.look(canary_ok=False) for _ in range(3)]
    assert [j.decision for j in judgements] == ["continue", "continue", "rollback"]
    assert judgements[-1].reason == "canary metrics unreadable 3 times in a row (the canary is down or hung)"
    bake = Bake()
    bake.look()
    decisions = [bake.look(stable_ok=False).decision for _ in range(3)]
    assert decisions == ["continue", "continue", "inconclusive"]
    bake = Bake(canary=Server(error_rate=0.013))  # slightly worse: neither regression nor non-inferiority
    for _ in range(20):
        bake.look()
    j = bake.look(final=True)
    assert j.decision == "inconclusive" and "neither a regression" in j.reason


def test_a_dead_metric_source_is_inconclusive_not_a_rollback():
    bake = Bake()
    bake.look()
    decisions = [bake.look(canary_ok=False, stable_ok=False) for _ in range(3)]
    assert [j.decision for j in decisions] == ["continue", "continue", "inconclusive"]
    assert decisions[-1].reason.startswith("canary and stable metrics unreadable 3 times in a row")
    first = Bake(first_release=True)
    first.look()
    assert [first.look(canary_ok=False).decision for _ in range(3)][-1] == "rollback"


def test_failed_reads_fold_into_the_next_one():
    bake = Bake(canary=Server(error_rate=0.03))
    bake.look()
    bake.look(canary_ok=False)
    j = bake.look()
    ev = _metric(j, "error_rate").evidence
    assert ev["canary_requests"] == pytest.approx(300)  # three intervals of 100 canary requests
    assert j.decision in ("continue", "rollback")


def test_first_release_uses_absolute_limits():
    policy = replace(POLICY, checks=CanaryChecks(error_rate=ErrorRateCheck(max=0.02)))
    j = Bake(first_release=True, policy=policy, canary=Server(error_rate=0.005)).until("promote", "rollback")
    assert j.decision == "promote" and "within the 2.0% limit" in j.reason
    assert not _metric(j, "predictions").enforced
    j = Bake(first_release=True, policy=policy, canary=Server(error_rate=0.2)).until("promote", "rollback")
    assert j.decision == "rollback" and j.reason.startswith("error rate: canary 20.0% over the 2.0% limit")
    slow = replace(POLICY, checks=CanaryChecks(latency=LatencyCheck(max_p99_ms=100)))
    j = Bake(first_release=True, policy=slow, canary=Server(median=0.08)).until("promote", "rollback")
    assert j.decision == "rollback" and j.reason.startswith("latency p99: canary")


def test_one_slow_burst_on_a_tiny_sample_does_not_roll_back():
    policy = replace(POLICY, checks=CanaryChecks(latency=LatencyCheck(max_p99_ms=100)))
    burst = Snapshot({"200": 5.0}, {b: (0.0 if b < 1.0 else 5.0) for b in BOUNDS}, {"0": 5.0})
    j = judge([Look(5.0, burst, None, 100)], policy, first_release=True, final=False)
    assert j.decision == "continue"


def test_weight_changes_between_looks_are_handled():
    # Both servers go from 0.1% to 5% errors just as the canary goes from 5% to 50% of traffic:
    # over the whole bake the canary's pooled rate is ~5x the stable's, yet in every interval they
    # are equal. Per-interval counts see that; cumulative totals would roll a healthy canary back.
    bake = Bake(canary=Server(error_rate=0.001), stable=Server(error_rate=0.001))
    decisions = [bake.look(weight=5).decision for _ in range(30)]
    bake.canary.error_rate = bake.stable.error_rate = 0.05
    decisions += [bake.look(weight=50).decision for _ in range(10)]
    ev = _metric(judge(bake.looks, POLICY, first_release=False, final=False), "error_rate").evidence
    assert ev["canary_rate"] > 3 * ev["stable_rate"]
    assert "rollback" not in decisions


def test_restarted_server_counters_do_not_confuse_the_judge():
    bake = Bake()
    for _ in range(3):
        bake.look()
    bake.canary = Server()  # the canary restarted: its counters start again from zero
    decisions = [bake.look().decision for _ in range(3)]
    assert "rollback" not in decisions


def test_evidence_is_json_serialisable_and_names_its_confidence():
    j = Bake(canary=Server(error_rate=0.02)).until("rollback")
    text = json.dumps([m.evidence for m in j.metrics], allow_nan=False)
    assert "alpha_rollback" in text and "e_value" in text
    assert _metric(j, "error_rate").evidence["alpha_rollback"] == pytest.approx(0.03)


@pytest.mark.parametrize(("q", "expected"), [(0.5, 0.0075), (0.99, 0.00995)])
def test_quantile_interpolates_inside_bucket(q, expected):
    assert quantile_from_buckets({0.005: 0, 0.01: 100, float("inf"): 100}, q) == pytest.approx(expected)


STEPS = replace(POLICY, steps=[10, 20, 30, 40, 50])


def _walk(bake: Bake, regress_at: int | None, error_rate: float = 0.02, limit: int = 400):
    """Walk the steps like the monitor (a step passes on promote); the canary turns bad at step ``regress_at``."""
    step, steps_passed = 0, []
    for _ in range(limit):
        if regress_at is not None and step >= regress_at:
            bake.canary.error_rate = error_rate
        j = bake.look(STEPS.steps[step], step=step)
        if j.decision == "promote":
            steps_passed.append(step)
            if step == len(STEPS.steps) - 1:
                return j, steps_passed
            step += 1
        elif j.decision != "continue":
            return j, steps_passed
    raise AssertionError("no decision")


@pytest.mark.parametrize("start", [1, 2, 3, 4])
def test_a_regression_that_starts_at_a_later_step_stops_the_walk_there_and_is_rolled_back(start):
    j, passed = _walk(Bake(policy=STEPS), regress_at=start)
    assert j.decision == "rollback" and j.reason.startswith("error rate: canary")
    assert max(passed, default=-1) < start  # the regressed step never passed
    # The bound in the message comes from the test that rejected: above 1, and on which evidence.
    ev = _metric(j, "error_rate").evidence
    assert ev["ratio_lower"] > 1.0
    assert f"since step {start + 1} began" in j.reason


def test_each_step_shows_its_own_claim_and_the_last_one_the_promote_margin_on_all_traffic():
    j, passed = _walk(Bake(policy=STEPS), regress_at=None, error_rate=0.01)
    assert j.decision == "promote" and passed == [0, 1, 2, 3, 4]
    ev = _metric(j, "error_rate").evidence
    assert ev["step_claim"]["shown"] and ev["promote_claim"]["shown"]
    assert ev["step_claim"]["on"].startswith("the last step's")
    assert ev["promote_claim"]["on"].startswith("all ")
    assert "max(" not in ev["promote_claim"]["margin"] and "whichever is larger" in ev["step_claim"]["margin"]


def test_the_last_look_restarts_the_rollback_test_for_a_regression_after_promote_readiness():
    bake = Bake(policy=STEPS)
    j, _ = _walk(bake, regress_at=None, error_rate=0.01)
    assert j.decision == "promote"
    bake.canary.error_rate = 0.03  # turns bad right after the last step showed promote
    decisions = [bake.look(50, step=4, last_look=True).decision for _ in range(30)]
    assert "rollback" in decisions and decisions.index("rollback") < 12


def test_segment_restarts_keep_the_false_rollback_rate_over_every_step_and_look():
    """Five steps at growing weights, a look every 10 s, a restart at every step and the last look:
    the combined e-process of a healthy canary still crosses at most alpha of the time."""
    from mlcicd.delivery import sequential as seq
    from mlcicd.delivery.looks import Segments

    rng = np.random.default_rng(3)
    steps = np.repeat(np.arange(6), 30)  # 5 steps and the last look, 30 looks each
    weights = np.r_[[0.1, 0.2, 0.3, 0.4, 0.5], 0.5][steps]
    segments = Segments.of(np.minimum(steps, 4), steps == 5, 5)
    index = np.arange(len(steps))
    starts = segments.starts(index)
    alpha, crossed = 0.03, 0
    for _ in range(400):
        n = rng.poisson(1000, len(steps))
        nc = rng.binomial(n, weights)
        xc, xs = rng.binomial(nc, 0.01), rng.binomial(n - nc, 0.01)
        cum = seq.ratio_log_lr(xc, xs, nc, n - nc, 1.0, cache=False)
        per = np.stack([seq.logsumexp(cum - (cum[row - 1] if row else 0.0) + seq.DETECT.log_weights)
                        for row, _ in starts])
        crossed += bool((segments.combine(per, starts, index) >= seq.log_threshold(alpha)).any())
    assert crossed / 400 <= alpha + 0.025
    assert sum(segments.weight(k) for k in range(6)) == pytest.approx(1.0)
