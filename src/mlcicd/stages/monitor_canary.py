"""monitor-canary: judge the canary against the stable release on live traffic, step by step.

The walk over the traffic steps lives in :mod:`mlcicd.delivery.progression`, the verdict in
:mod:`mlcicd.delivery.analysis`; this stage wires inputs, the target, the metric source and
the optional synthetic traffic together and turns the analysis into a report.

Cancelled by CI (SIGINT or SIGTERM) it stops at once, without waiting for a metric read in
progress, leaves traffic where it is and still writes its report: step, weight, the evidence
so far, and how to resume or roll back.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from mlcicd.delivery import planner
from mlcicd.delivery.analysis import MetricResult
from mlcicd.delivery.cancel import Cancellation
from mlcicd.delivery.metrics import open_source
from mlcicd.delivery.progression import Analysis, CanaryAnalysis
from mlcicd.errors import UsageError
from mlcicd.report import Check, StageResult, Status, Verdict
from mlcicd.stages import StageContext
from mlcicd.stages.deploy_session import DeploySession

_VERDICT = {"promote": Verdict.PASS, "rollback": Verdict.FAIL, "inconclusive": Verdict.INCONCLUSIVE}


def _start_traffic(ctx: StageContext, endpoint: str) -> Any:
    rate = float(ctx.inputs.generate_traffic or 0)
    if rate <= 0:
        return None
    from mlcicd.delivery.traffic import LoadGenerator, read_rows

    path = ctx.input_path("eval-data")
    if path is None or not path.is_file():
        raise UsageError("generate-traffic needs rows to send", where="input eval-data / data.eval",
                         fix="point data.eval at a CSV file, or set generate-traffic: 0 to rely on real traffic")
    rows = read_rows(path, drop=(ctx.config.data.label,))
    return LoadGenerator(endpoint, rows, rate=rate, workers=max(2, min(8, int(rate // 10) + 1))).start()


# Periods of published data the last look must see beyond a lagging source's delay.
LAST_LOOK_PERIODS = 3


def run(ctx: StageContext) -> StageResult:
    session = DeploySession.open(ctx)
    state = session.target.state()
    if state.canary is None:
        raise UsageError("there is no canary to monitor", where=f"target {session.target.name}",
                         fix="run deploy-canary first")
    blue_green = ctx.config.deploy.strategy == "blue-green" and state.stable is not None
    # Blue-green watches the window the old version stays warm, unless a duration was passed.
    window = blue_green and not ctx.inputs.given("duration")
    duration = ctx.config.deploy.blue_green.keep_seconds if window else float(ctx.inputs.duration)
    duration_key = "deploy.blue_green.keep_seconds" if window else "deploy.canary.duration"
    policy = dataclasses.replace(
        ctx.config.deploy.canary,
        duration=duration, interval=float(ctx.inputs.interval),
        min_requests=int(ctx.inputs.min_requests),
    )
    source = open_source(ctx.config)
    resolution = float(getattr(source, "resolution", 0.0) or 0.0)  # e.g. CloudWatch's period
    if resolution > policy.interval:
        ctx.ci.log(f"{source.name} has new data every {resolution:g} s: looking every {resolution:g} s instead of "
                   f"{policy.interval:g} s")
        policy = dataclasses.replace(policy, interval=resolution)
    # Requests reach a lagging source (CloudWatch) minutes late: the last look must outlast the lag,
    # or a regression that starts at promote-readiness is published only after the verdict
    # (bench/canary_sim.py: caught 2.5% of the time with 120 s, 98% with delay + 4 periods).
    lag = float(getattr(source, "lag", 0.0) or 0.0)
    watch = lag + LAST_LOOK_PERIODS * max(resolution, policy.interval)
    if lag and policy.last_look < watch:
        ctx.ci.log(f"{source.name} shows requests {lag:g} s late: the last look lasts {watch:g} s instead of "
                   f"{policy.last_look:g} s")
        policy = dataclasses.replace(policy, last_look=watch)
    with Cancellation() as cancel:
        analysis = CanaryAnalysis(session.target, source, policy, session.registry, log=ctx.ci.log,
                                  sleep=cancel.wait, stopped=cancel.stopped, blue_green=blue_green,
                                  duration_key=duration_key, interrupt=cancel.event)
        traffic = _start_traffic(ctx, state.endpoint or "")
        try:
            result = analysis.run(state)
        finally:
            load = traffic.stop(timeout=0.5 if cancel.stopped() else None).as_dict() if traffic is not None else None
    return _result(result, policy, state.stable is None, load, state.canary.release.version,
                   state.stable.release.version if state.stable else None, duration_key)


def _action(decision: str, on_inconclusive: str) -> str:
    if decision == "inconclusive":
        return "rollback" if on_inconclusive == "rollback" else "hold"
    return decision


def _result(analysis: Analysis, policy: Any, first_release: bool, load: dict[str, Any] | None,
            canary_version: str, stable_version: str | None, duration_key: str) -> StageResult:
    judgement = analysis.judgement
    if analysis.cancelled:
        return _cancelled(analysis, policy, load, canary_version, stable_version)
    # A split somebody else set is theirs: no automatic rollback acts on it (hold, and say why).
    action = "hold" if analysis.router_changed else _action(analysis.decision, policy.on_inconclusive)
    checks = [_check(m) for m in judgement.metrics] + _plan_checks(analysis, policy, duration_key)
    passed = [s for s in analysis.steps if s.outcome == "promote"]
    walk = ", ".join(f"{s.weight}%" for s in passed)
    summary = f"{analysis.decision} after {analysis.elapsed:.0f} s: {judgement.reason}"
    if analysis.decision == "promote" and not first_release:
        summary = f"promote-ready after {analysis.elapsed:.0f} s (steps passed: {walk}): {judgement.reason}"
    if analysis.traffic_off_seconds is not None:
        summary += f" — canary taken out of traffic in {analysis.traffic_off_seconds:.2f} s"
    if analysis.decision == "inconclusive" and analysis.plan is not None:
        advice = analysis.plan.advice(policy.duration, duration_key)
        if advice:
            summary += f". The bake was too short for this traffic: {advice}"
    return StageResult(
        "monitor-canary", _VERDICT[analysis.decision], summary, checks=checks,
        outputs={"decision": action}, figures=_figures(analysis, first_release, load, canary_version, stable_version),
        evidence={"timeline": analysis.timeline, "policy": dataclasses.asdict(policy)},
    )


def _figures(analysis: Analysis, first_release: bool, load: dict[str, Any] | None, canary_version: str,
             stable_version: str | None) -> dict[str, Any]:
    plan = analysis.plan
    return {"elapsed_s": round(analysis.elapsed, 2), "first_release": first_release, "traffic": load,
            "canary_version": canary_version, "stable_version": stable_version,
            "steps": [dataclasses.asdict(s) for s in analysis.steps], "resumed_at_step": analysis.resumed_at_step,
            "traffic_off_seconds": analysis.traffic_off_seconds, "looks": len(analysis.looks),
            "canary_weight": analysis.weight, "cancelled": analysis.cancelled,
            "plan": None if plan is None else {"summary": plan.summary(), "expected_s": plan.seconds,
                                               "recommended_duration_s": plan.recommended,
                                               "step_requests": plan.step_requests}}


def _plan_checks(analysis: Analysis, policy: Any, duration_key: str) -> list[Check]:
    """What the bake plan said at the traffic seen: a warning when the duration was too short for it."""
    return [] if analysis.plan is None else [planner.plan_check(analysis.plan, policy.duration, duration_key)]


def _cancelled(analysis: Analysis, policy: Any, load: dict[str, Any] | None, canary_version: str,
               stable_version: str | None) -> StageResult:
    """Stopped by CI: traffic stays where it was; say where that is and how to go on from there."""
    step = analysis.steps[-1] if analysis.steps else None
    at = "before its first step" if step is None else \
        f"at step {step.index + 1}/{len(policy.weights())} with the canary at {step.weight}% of traffic"
    last = analysis.judgement
    summary = (f"cancelled by {analysis.cancelled} after {analysis.elapsed:.0f} s {at}; traffic was left where it "
               f"is. The evidence so far said: {last.decision}: {last.reason}. To resume, re-run monitor-canary: "
               "it continues at the step traffic is at, with the time already spent. To roll back instead, run "
               "the rollback stage (`mlci run rollback`): it sends all traffic to the stable release.")
    checks = [_check(m) for m in last.metrics]
    checks.insert(0, Check("cancelled", Status.WARN, summary, observed=analysis.cancelled))
    return StageResult("monitor-canary", Verdict.INCONCLUSIVE, summary, checks=checks, outputs={"decision": "hold"},
                       figures=_figures(analysis, False, load, canary_version, stable_version),
                       evidence={"timeline": analysis.timeline, "policy": dataclasses.asdict(policy)})


def _check(m: MetricResult) -> Check:
    if not m.enforced:
        status = Status.SKIP if m.outcome == "continue" else Status.PASS
        if m.outcome == "rollback":
            status = Status.WARN  # observe mode: would have rolled back
    else:
        status = {"promote": Status.PASS, "rollback": Status.FAIL, "inconclusive": Status.WARN,
                  "continue": Status.WARN}[m.outcome]
    return Check(m.name, status, m.message, details=m.evidence)
