"""deploy-canary: start the challenger next to the serving champion with a share of traffic.

Converges rather than assumes: the stable slot is (re)started for the current
champion if it is not serving, the canary slot is made to serve the requested
version, then traffic is split and finally alias ``canary`` is set. With no champion
(a first release) the canary takes all traffic and is judged on absolute limits.

Then it plans the bake (:mod:`mlcicd.delivery.planner`): from the stable's counters (its
5xx rate, latency histogram, prediction mix, and the traffic it serves, read twice a
second apart) or ``deploy.canary.expected_rps``, how many canary requests and minutes each
promote claim needs; a ``duration`` too short to decide is a warning naming the one to set.
"""

from __future__ import annotations

import time
from typing import Any

from mlcicd.config import CanaryPolicy
from mlcicd.delivery import planner
from mlcicd.delivery.metrics import open_source
from mlcicd.delivery.metrics.base import MeasurementError, MetricSource
from mlcicd.delivery.targets.base import BackendUnhealthy
from mlcicd.errors import UsageError
from mlcicd.registry import CANARY, CHAMPION, ModelVersion
from mlcicd.report import Check, StageResult, Status, Verdict
from mlcicd.stages import StageContext, blue_green
from mlcicd.stages.deploy_session import DEPLOYED_IMAGE_TAG, DeploySession, now


def run(ctx: StageContext) -> StageResult:
    session = DeploySession.open(ctx)
    registry, target = session.registry, session.target
    candidate = registry.resolve(ctx.inputs.model_uri)
    champion = registry.by_alias(CHAMPION)
    if champion is not None and champion.version == candidate.version:
        raise UsageError(
            f"version {candidate.version} is already the champion",
            where=f"input model-uri ({ctx.inputs.model_uri})",
            fix="deploy a new challenger (run train and gate first), or use rollback to change the champion",
        )
    checks: list[Check] = []
    state = target.state()
    if champion is not None:
        stable = state.stable
        if stable is None or stable.release.version != champion.version or not stable.healthy:
            target.ensure_backend("stable", session.release(champion))
            checks.append(Check("stable", Status.PASS, f"champion v{champion.version} (re)started as stable"))
        else:
            checks.append(Check("stable", Status.PASS, f"champion v{champion.version} is serving as stable"))
    elif state.stable is not None:
        checks.append(Check("stable", Status.WARN,
                            f"stable slot serves v{state.stable.release.version} but no version has alias "
                            "champion; it stays the baseline"))

    # Before anything reaches the canary: can the analysis read the metrics it will judge on?
    source = open_source(ctx.config)
    check = getattr(source, "check", None)  # a third-party source may predate check()
    notes = check(target.state()) if callable(check) else []
    checks += [Check("metrics", Status.PASS, f"{source.name}: {note}") for note in notes]
    release = session.release(candidate, ctx.inputs.image)
    try:
        backend = target.ensure_backend("canary", release)
    except BackendUnhealthy as exc:
        reason = f"canary v{candidate.version} never became healthy and received no traffic: {exc}"
        return withdrawn(session, candidate, reason, checks)
    first_release = target.state().stable is None
    if ctx.config.deploy.strategy == "blue-green" and not first_release:
        return blue_green.switch(ctx, session, candidate, release, checks, withdrawn)
    policy = ctx.config.deploy.canary
    # With progressive steps the canary starts at the first one, unless a weight was passed.
    explicit = ctx.inputs.given("canary-weight")
    weight = 100 if first_release else int(ctx.inputs.canary_weight) if explicit or not policy.steps \
        else policy.weights()[0]
    if not 1 <= weight <= 100:
        raise UsageError(f"canary-weight must be 1..100, got {weight}", where="input canary-weight",
                         fix="e.g. canary-weight: 10")
    target.set_canary_weight(weight)
    registry.set_alias(CANARY, candidate.version)
    registry.set_tags(candidate.version, {"mlci.deploy.target": target.name, "mlci.deploy.weight": weight,
                                          "mlci.deploy.at": now(),
                                          **({DEPLOYED_IMAGE_TAG: release.image} if release.image else {})})
    state = target.state()
    checks.append(Check("canary", Status.PASS, f"v{candidate.version} serving at {backend.url}",
                        observed=f"{weight}%"))
    plan = _plan(source, policy, state, weight, first_release, ctx.ci.log)
    checks.append(planner.plan_check(plan, policy.duration))
    stable_version = state.stable.release.version if state.stable else ""
    summary = (
        f"first release: v{candidate.version} takes 100% of traffic at {state.endpoint}"
        if first_release
        else f"canary v{candidate.version} takes {weight}% next to stable v{stable_version} at {state.endpoint}"
    )
    return StageResult(
        "deploy-canary", Verdict.PASS, summary, checks=checks,
        outputs={"endpoint": state.endpoint or "", "canary-version": candidate.version,
                 "stable-version": stable_version},
        figures={"canary_weight": weight, "first_release": first_release,
                 "plan": {"summary": plan.summary(), "expected_s": plan.seconds, "rps": plan.rps,
                          "recommended_duration_s": plan.recommended, "step_requests": plan.step_requests}},
    )


def withdrawn(session: DeploySession, candidate: ModelVersion, reason: str, checks: list[Check]) -> StageResult:
    """The new version never took traffic and never will: take it down, say why (verdict fail, exit 1)."""
    state = session.withdraw_canary(candidate, reason)
    checks.append(Check("canary", Status.FAIL, reason))
    stable = state.stable.release.version if state.stable else ""
    return StageResult("deploy-canary", Verdict.FAIL, reason, checks=checks,
                       outputs={"endpoint": state.endpoint or "", "canary-version": candidate.version,
                                "stable-version": stable},
                       figures={"canary_weight": 0, "first_release": state.stable is None})


# Seconds between the two reads of the stable's counters that measure the traffic it serves.
TRAFFIC_SAMPLE = 1.0


def _plan(source: MetricSource, policy: CanaryPolicy, state: Any, weight: int, first_release: bool,
          log: Any) -> planner.Plan:
    """The bake plan at the traffic the stable serves (or ``expected_rps`` where none can be measured)."""
    seen = planner.Observed(rps=policy.expected_rps)
    resolution = float(getattr(source, "resolution", 0.0) or 0.0)  # e.g. CloudWatch's one-minute periods
    if state.stable is not None and resolution > TRAFFIC_SAMPLE:
        log(f"bake plan: {source.name} counts per {resolution:g} s, too coarse to measure traffic in "
            f"{TRAFFIC_SAMPLE:g} s; planning from deploy.canary.expected_rps")
    elif state.stable is not None:
        try:
            first = source.read(state.stable)
            time.sleep(TRAFFIC_SAMPLE)
            second = source.read(state.stable)
        except MeasurementError as exc:
            log(f"bake plan: could not read the stable's counters ({exc}); planning from the config")
        else:
            served = second.total - first.total
            share = max(1.0 - weight / 100, 0.01)
            rps = served / TRAFFIC_SAMPLE / share if served > 0 else policy.expected_rps
            seen = planner.Observed(rps=rps, error_rate=second.errors / second.total if second.total else None,
                                    latency=second.latency_buckets or None, mix=second.predictions or None)
    bounds = tuple(sorted(seen.latency)) if seen.latency else ()
    return planner.plan(policy, seen, first_release=first_release, bounds=bounds)
