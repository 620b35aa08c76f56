"""The canary judge: a pure function from the history of looks to a decision. No I/O.

Four outcomes, per metric and overall: ``continue`` (not enough evidence yet), ``promote``
(the current step shows the canary no worse than allowed), ``rollback`` (a regression is
shown) and ``inconclusive`` (the time ran out without enough evidence, or a source stayed
unreadable). Missing data is never a pass.

**Rollback claims** share the false-rollback budget ``alpha = 1 - confidence`` between the
enforced statistical checks (``ALPHA_WEIGHTS``), and within a check between *segments*.
Every rollback test is an e-process: a nonnegative supermartingale starting at one under
"healthy". It is run from the analysis start, and restarted where each later step begins
and where the last look begins (:class:`.looks.Segments`), and the check rejects when

    E_t = w_0 E_t^(start) + sum_k w_k E_t^(k) >= 1 / alpha_check,   sum_k w_k = 1,

where ``E^(k)`` is 1 until segment k starts and the product of the likelihood ratios since
then afterwards. A step starts at a stopping time (when the walk decides to advance), and
a supermartingale started at a stopping time with value one is still a supermartingale,
so ``E_t`` is one too and Ville's inequality bounds ``P(ever >= 1/alpha_check)`` by
``alpha_check``: a healthy canary is rolled back with probability at most ``alpha`` over
all steps and looks, however many. Half the weight stays on the analysis start (a bad
model is usually bad from its first request), a quarter on the last look (a regression
that starts after promote-readiness has only its window), the rest is shared evenly by
the later steps: with five steps a regression that starts at step 4 is judged on step 4's
evidence at a threshold log(16) ~ 2.8 nats higher than the start's, instead of being
diluted by three healthy steps.

**Promote claims** are non-inferiority claims, each wrong with probability <= alpha
(:mod:`.claims`). A step never passes on pooled evidence alone: every step must show on its
own traffic that its error rate is within the loose step margin (``step_max_ratio`` /
``step_margin``: a doubled rate never passes a step). The last step must also show the
promote margins on all the evidence since the analysis began (error rate; latency
quantiles; the prediction mix): weight changes cost the error-rate test nothing, and the
most evidence decides fastest. The monitor then keeps watching for ``last_look`` seconds,
with its own restart, before it reports promote-ready (:mod:`.progression`).

error_rate  :mod:`.checks.error_rate`   latency  :mod:`.checks.latency`
predictions :mod:`.checks.predictions`  custom   :mod:`.checks.custom`
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mlcicd.config import CanaryPolicy, ErrorRateCheck, LatencyCheck, PredictionCheck
from mlcicd.delivery.checks import custom, error_rate, latency, predictions
from mlcicd.delivery.checks.base import Claims, Context, MetricResult, Outcome
from mlcicd.delivery.histograms import quantile_from_buckets
from mlcicd.delivery.looks import History, Look, Segments
from mlcicd.delivery.metrics.base import Snapshot

__all__ = ["ALPHA_WEIGHTS", "Judgement", "Look", "MetricResult", "Outcome", "judge", "quantile_from_buckets"]

# Shares of the false-rollback budget among the enforced statistical checks: the error rate,
# the check that catches most bad releases and whose speed matters most, gets 60%.
ALPHA_WEIGHTS = {"error_rate": 3.0, "latency": 1.0, "predictions": 1.0}


@dataclass(frozen=True)
class Judgement:
    decision: Outcome
    reason: str
    metrics: tuple[MetricResult, ...]


def judge(looks: Sequence[Look], policy: CanaryPolicy, *, first_release: bool, final: bool,
          reference: Snapshot | None = None) -> Judgement:
    """Decide from the whole history of this analysis; ``final`` is True when its time is over.

    ``reference`` is the stable's cumulative counters from before the analysis began (its
    history since it started serving), chosen before any look: latency bounds are fixed from
    it at once instead of after the stable served enough requests during the analysis.
    Each look says which step it belongs to (``Look.step``, an index into ``policy.weights()``)
    and whether it is part of the last look; "promote" means the current step passed.
    """
    checks = policy.checks
    modes: dict[str, ErrorRateCheck | LatencyCheck | PredictionCheck] = {
        "error_rate": checks.error_rate, "latency": checks.latency, "predictions": checks.predictions}
    stats = [k for k, c in modes.items() if c.mode == "enforce" and not (first_release and k == "predictions")]
    budget = sum(ALPHA_WEIGHTS[k] for k in stats)
    alpha_of = {k: policy.alpha * ALPHA_WEIGHTS[k] / (budget if k in stats else sum(ALPHA_WEIGHTS.values()))
                for k in modes}
    n_steps = 1 if first_release else len(policy.weights())
    results: list[MetricResult] = []
    served = 0.0
    if looks:
        d = History.of(looks, first_release)
        ctx = Context(looks, d, policy, first_release, final, Segments.of(d.steps, d.last_look, n_steps), n_steps)

        def claims(key: str) -> Claims:
            return Claims(ctx, key, modes[key].mode == "enforce", modes[key].critical)

        served = ctx.step_requests()
        results.append(error_rate.check(ctx, alpha_of["error_rate"], claims("error_rate")))
        results.append(latency.check(ctx, alpha_of["latency"], claims("latency"), reference))
        results.append(MetricResult("predictions", "promote", "prediction mix: first release, no stable predictions "
                                    "to compare with", {}, enforced=False) if first_release
                       else predictions.check(ctx, alpha_of["predictions"], claims("predictions")))
    results += [custom.check(c, looks, policy, final) for c in checks.custom]
    return _combine(looks, policy, tuple(results), first_release, final, served)


class _Side(Sequence[Snapshot | None]):
    """One side's reads of the looks, without copying the history (streaks only look at its end)."""

    def __init__(self, looks: Sequence[Look], side: str) -> None:
        self.looks, self.side = looks, side

    def __len__(self) -> int:
        return len(self.looks)

    def __getitem__(self, i: int) -> Snapshot | None:  # type: ignore[override]
        return getattr(self.looks[i], self.side)


def _combine(looks: Sequence[Look], policy: CanaryPolicy, metrics: tuple[MetricResult, ...], first_release: bool,
             final: bool, served: float) -> Judgement:
    enforced = [r for r in metrics if r.enforced]
    canary_down = custom.streak(_Side(looks, "canary"))
    stable_down = 0 if first_release else custom.streak(_Side(looks, "stable"))
    # The canary unreadable while the stable still answers: the canary is down or hung, protect users.
    # Both unreadable over that streak: the metric source is down, which says nothing about the canary.
    source_down = not first_release and stable_down >= canary_down
    if canary_down >= policy.max_measurement_errors and not source_down:
        r = MetricResult("canary_reachable", "rollback", f"canary metrics unreadable {canary_down} times in a row "
                         "(the canary is down or hung)", {"consecutive_failures": canary_down}, critical=True)
        return Judgement("rollback", r.message, (r, *metrics))
    failing = sorted((r for r in enforced if r.outcome == "rollback"), key=lambda r: not r.critical)
    if failing:
        return Judgement("rollback", failing[0].message, metrics)
    if stable_down >= policy.max_measurement_errors:
        both = source_down and canary_down
        why = "the metric source is down or unreachable" if both else "no baseline to judge against"
        r = MetricResult("stable_reachable", "inconclusive", f"{'canary and stable' if both else 'stable'} metrics "
                         f"unreadable {stable_down} times in a row: {why}", {"consecutive_failures": stable_down})
        return Judgement("inconclusive", r.message, (r, *metrics))
    pending = next((r for r in enforced if r.outcome == "inconclusive"), None)
    if pending is not None:
        return Judgement("inconclusive", pending.message, metrics)
    undecided: Outcome = "inconclusive" if final else "continue"
    if canary_down or stable_down:
        return Judgement(undecided, "the latest metrics read failed: waiting for the next one", metrics)
    if served < policy.min_requests:
        return Judgement(undecided, f"{served:,.0f} of {policy.min_requests} canary requests on this step so far",
                         metrics)
    if all(r.outcome == "promote" for r in enforced):
        reason = "; ".join(r.message for r in enforced) or "no check is enforced (all observe-only)"
        return Judgement("promote", f"{reason}; after {served:,.0f} canary requests on this step", metrics)
    return Judgement(undecided, next(r for r in enforced if r.outcome != "promote").message, metrics)
