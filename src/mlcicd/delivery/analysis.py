"""The canary judge: a pure function from observations to a decision. No I/O.

Four outcomes, per metric and overall: ``continue`` (not enough evidence yet),
``promote`` (the canary is shown to be no worse than allowed), ``rollback`` (a
regression is shown) and ``inconclusive`` (the bake ended without enough data or
the metrics could not be read). Missing data is never a pass.

Error rates are compared with Newcombe's hybrid score interval for a difference of
two proportions (built from Wilson intervals, well-behaved at zero errors); latency
by the p99 interpolated from the servers' histogram buckets; the prediction mix by
the population stability index, recorded for tuning but not enforced.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any, Literal

from mlcicd.config import CanaryPolicy
from mlcicd.delivery.metrics.base import Snapshot

Outcome = Literal["continue", "promote", "rollback", "inconclusive"]
# p99 needs at least 100 observations to be more than the maximum.
MIN_LATENCY_SAMPLES = 100
# Histogram buckets are coarse: never call a latency regression smaller than this.
LATENCY_FLOOR_MS = 5.0


@dataclass(frozen=True)
class Observation:
    canary: Snapshot  # counts since analysis started
    stable: Snapshot | None  # None on a first release: nothing to compare with
    elapsed: float
    canary_read_failures: int = 0  # consecutive failures to read the canary's metrics
    stable_read_failures: int = 0


@dataclass(frozen=True)
class MetricResult:
    name: str
    outcome: Outcome
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    enforced: bool = True


@dataclass(frozen=True)
class Judgement:
    decision: Outcome
    reason: str
    metrics: tuple[MetricResult, ...]


def wilson(successes: float, n: float, z: float) -> tuple[float, float]:
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def rate_difference_interval(x1: float, n1: float, x2: float, n2: float, z: float) -> tuple[float, float, float]:
    """Newcombe's hybrid score interval for p1 - p2: (estimate, lower, upper)."""
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson(x1, n1, z)
    l2, u2 = wilson(x2, n2, z)
    d = p1 - p2
    lower = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    upper = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return d, lower, upper


def quantile_from_buckets(buckets: dict[float, float], q: float) -> float | None:
    """Quantile (seconds) by linear interpolation inside cumulative histogram buckets."""
    if not buckets:
        return None
    bounds = sorted(buckets)
    total = buckets[bounds[-1]]
    if total <= 0:
        return None
    rank = q * total
    prev_bound, prev_count = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return prev_bound  # beyond the last finite bucket: report its edge
            span = count - prev_count
            frac = (rank - prev_count) / span if span > 0 else 1.0
            return prev_bound + frac * (bound - prev_bound)
        prev_bound, prev_count = bound, count
    return prev_bound


def psi(expected: dict[str, float], actual: dict[str, float], eps: float = 1e-4) -> float | None:
    keys = set(expected) | set(actual)
    te, ta = sum(expected.values()), sum(actual.values())
    if te <= 0 or ta <= 0:
        return None
    total = 0.0
    for k in keys:
        e = max(expected.get(k, 0.0) / te, eps)
        a = max(actual.get(k, 0.0) / ta, eps)
        total += (a - e) * math.log(a / e)
    return total


def _judge_errors(obs: Observation, policy: CanaryPolicy, z: float, final: bool) -> MetricResult:
    n_c, e_c = obs.canary.total, obs.canary.errors
    enough = n_c >= policy.min_requests
    if obs.stable is None:
        lo, hi = wilson(e_c, n_c, z)
        rate = e_c / n_c if n_c else 0.0
        ev = {"canary_requests": n_c, "canary_errors": e_c, "rate": rate, "lower": lo, "upper": hi,
              "limit": policy.max_error_rate}
        if n_c and lo > policy.max_error_rate:
            return MetricResult("error_rate", "rollback",
                                f"canary 5xx rate {rate:.2%} exceeds the {policy.max_error_rate:.2%} limit "
                                f"(lower bound {lo:.2%} at {policy.confidence:.0%})", ev)
        if enough and (hi <= policy.max_error_rate or (final and rate <= policy.max_error_rate)):
            return MetricResult("error_rate", "promote",
                                f"canary 5xx rate {rate:.2%} within the {policy.max_error_rate:.2%} limit", ev)
        return _waiting("error_rate", n_c, policy, final, ev)
    n_s, e_s = obs.stable.total, obs.stable.errors
    if n_c == 0 or n_s == 0:
        return _waiting("error_rate", n_c, policy, final, {"canary_requests": n_c, "stable_requests": n_s})
    d, lo, hi = rate_difference_interval(e_c, n_c, e_s, n_s, z)
    margin = policy.max_error_rate_increase
    ev = {"canary_requests": n_c, "canary_errors": e_c, "stable_requests": n_s, "stable_errors": e_s,
          "canary_rate": e_c / n_c, "stable_rate": e_s / n_s, "difference": d, "lower": lo, "upper": hi,
          "margin": margin, "confidence": policy.confidence}
    if lo > margin:
        return MetricResult("error_rate", "rollback",
                            f"canary 5xx rate {e_c / n_c:.2%} vs stable {e_s / n_s:.2%}: +{d:.2%}, at least "
                            f"+{lo:.2%} at {policy.confidence:.0%} confidence, over the +{margin:.2%} allowed", ev)
    if enough and (hi <= margin or (final and d <= margin)):
        return MetricResult("error_rate", "promote",
                            f"canary 5xx rate {e_c / n_c:.2%} vs stable {e_s / n_s:.2%} "
                            f"(difference at most {hi:+.2%})", ev)
    return _waiting("error_rate", n_c, policy, final, ev)


def _waiting(name: str, n_c: float, policy: CanaryPolicy, final: bool, ev: dict[str, Any]) -> MetricResult:
    if final:
        if n_c < policy.min_requests:
            return MetricResult(name, "inconclusive",
                                f"only {n_c:.0f} canary requests, {policy.min_requests} needed", ev)
        return MetricResult(name, "rollback", "no evidence that the canary is no worse by the end of the bake", ev)
    return MetricResult(name, "continue", f"{n_c:.0f} of {policy.min_requests} canary requests so far", ev)


def _judge_latency(obs: Observation, policy: CanaryPolicy, final: bool) -> MetricResult:
    c99 = quantile_from_buckets(obs.canary.latency_buckets, 0.99)
    n_c = obs.canary.total
    if c99 is None or n_c < max(MIN_LATENCY_SAMPLES, policy.min_requests):
        return _waiting("latency_p99", n_c, policy, final, {"canary_requests": n_c})
    c_ms = c99 * 1000
    ev: dict[str, Any] = {"canary_p99_ms": c_ms, "limit_ms": policy.max_p99_latency_ms}
    if c_ms > policy.max_p99_latency_ms:
        return MetricResult("latency_p99", "rollback",
                            f"canary p99 {c_ms:.0f} ms over the {policy.max_p99_latency_ms:.0f} ms limit", ev)
    if obs.stable is not None:
        s99 = quantile_from_buckets(obs.stable.latency_buckets, 0.99)
        if s99 is None or obs.stable.total < MIN_LATENCY_SAMPLES:
            return _waiting("latency_p99", min(n_c, obs.stable.total), policy, final, ev)
        s_ms = s99 * 1000
        allowed = s_ms * (1 + policy.max_p99_latency_increase_pct / 100) + LATENCY_FLOOR_MS
        ev.update(stable_p99_ms=s_ms, allowed_ms=allowed)
        if c_ms > allowed:
            return MetricResult("latency_p99", "rollback",
                                f"canary p99 {c_ms:.0f} ms vs stable {s_ms:.0f} ms: more than the "
                                f"+{policy.max_p99_latency_increase_pct:.0f}% allowed", ev)
    return MetricResult("latency_p99", "promote", f"canary p99 {c_ms:.0f} ms within limits", ev)


def _judge_predictions(obs: Observation) -> MetricResult:
    if obs.stable is None:
        return MetricResult("prediction_shift", "promote", "no stable predictions to compare with", {},
                            enforced=False)
    value = psi(obs.stable.predictions, obs.canary.predictions)
    ev = {"psi": value, "canary": obs.canary.predictions, "stable": obs.stable.predictions}
    text = "no predictions yet" if value is None else f"PSI {value:.3f} between canary and stable predictions"
    return MetricResult("prediction_shift", "promote", text + " (observed, not enforced)", ev, enforced=False)


def judge(obs: Observation, policy: CanaryPolicy, *, final: bool, max_read_failures: int = 3) -> Judgement:
    """Decide from everything observed so far. ``final`` is True when the bake time is over."""
    if obs.canary_read_failures >= max_read_failures:
        result = MetricResult("canary_reachable", "rollback",
                              f"canary metrics unreadable {obs.canary_read_failures} times in a row "
                              "(the canary is down or hung)")
        return Judgement("rollback", result.message, (result,))
    if obs.stable_read_failures >= max_read_failures:
        result = MetricResult("stable_reachable", "inconclusive",
                              f"stable metrics unreadable {obs.stable_read_failures} times in a row: "
                              "no baseline to judge against")
        return Judgement("inconclusive", result.message, (result,))
    z = NormalDist().inv_cdf(policy.confidence)
    results = (
        _judge_errors(obs, policy, z, final),
        _judge_latency(obs, policy, final),
        _judge_predictions(obs),
    )
    enforced = [r for r in results if r.enforced]
    for r in enforced:
        if r.outcome == "rollback":
            return Judgement("rollback", r.message, results)
    if all(r.outcome == "promote" for r in enforced):
        return Judgement("promote", "; ".join(r.message for r in enforced), results)
    for r in enforced:
        if r.outcome == "inconclusive":
            return Judgement("inconclusive", r.message, results)
    waiting = next(r for r in enforced if r.outcome == "continue")
    return Judgement("continue", waiting.message, results)
