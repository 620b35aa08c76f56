"""monitor-canary: watch canary and stable side by side and decide.

Reads both servers' metrics every ``interval`` seconds for at most ``duration``
seconds and asks the judge (:mod:`mlcicd.delivery.analysis`) after each read. A
rollback decision takes the canary out of traffic at once (the rollback stage then
stops it and records why), so a bad model stops answering within one interval.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from mlcicd.delivery.analysis import Judgement, Observation, judge
from mlcicd.delivery.metrics import get_source
from mlcicd.delivery.metrics.base import MeasurementError, MetricSource, Snapshot
from mlcicd.delivery.session import DeploySession
from mlcicd.delivery.targets.base import Backend
from mlcicd.errors import UsageError
from mlcicd.report import Check, StageResult, Status, Verdict
from mlcicd.stages import StageContext

_VERDICT = {"promote": Verdict.PASS, "rollback": Verdict.FAIL, "inconclusive": Verdict.INCONCLUSIVE}


def _read(source: MetricSource, backend: Backend | None) -> Snapshot | None:
    if backend is None:
        return None
    try:
        return source.read(backend)
    except MeasurementError:
        return None


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


def run(ctx: StageContext) -> StageResult:
    session = DeploySession.open(ctx)
    target = session.target
    state = target.state()
    if state.canary is None:
        raise UsageError("there is no canary to monitor", where=f"target {target.name}",
                         fix="run deploy-canary first")
    policy = dataclasses.replace(
        ctx.config.deploy.canary,
        duration=float(ctx.inputs.duration), interval=float(ctx.inputs.interval),
        min_requests=int(ctx.inputs.min_requests),
    )
    source = get_source("scrape")
    canary0, stable0 = _read(source, state.canary), _read(source, state.stable)
    if canary0 is None:
        canary0 = Snapshot()
    if stable0 is None:
        stable0 = Snapshot()
    first_release = state.stable is None
    traffic = _start_traffic(ctx, state.endpoint or "")
    started = time.monotonic()
    failures = {"canary": 0 if state.canary.healthy else 1, "stable": 0}
    timeline: list[dict[str, Any]] = []
    judgement: Judgement | None = None
    try:
        while True:
            time.sleep(policy.interval)
            elapsed = time.monotonic() - started
            current = target.state()
            c_now = _read(source, current.canary)
            s_now = None if first_release else _read(source, current.stable)
            failures["canary"] = 0 if c_now is not None else failures["canary"] + 1
            if not first_release:
                failures["stable"] = 0 if s_now is not None else failures["stable"] + 1
            obs = Observation(
                canary=(c_now or canary0).minus(canary0),
                stable=None if first_release else (s_now or stable0).minus(stable0),
                elapsed=elapsed,
                canary_read_failures=failures["canary"],
                stable_read_failures=failures["stable"],
            )
            judgement = judge(obs, policy, final=elapsed >= policy.duration)
            ctx.ci.log(
                f"[{elapsed:5.1f}s] canary {obs.canary.total:.0f} req / {obs.canary.errors:.0f} 5xx"
                + ("" if obs.stable is None else f" | stable {obs.stable.total:.0f} req / {obs.stable.errors:.0f} 5xx")
                + f" -> {judgement.decision}: {judgement.reason}"
            )
            timeline.append({"t": round(elapsed, 2), "decision": judgement.decision,
                             "canary_requests": obs.canary.total, "canary_errors": obs.canary.errors,
                             "stable_requests": obs.stable.total if obs.stable else None,
                             "stable_errors": obs.stable.errors if obs.stable else None})
            if judgement.decision != "continue":
                break
    finally:
        load = traffic.stop().as_dict() if traffic is not None else None

    assert judgement is not None
    decision = judgement.decision
    if decision == "inconclusive" and policy.on_inconclusive == "rollback":
        action = "rollback"
    elif decision == "inconclusive":
        action = "hold"
    else:
        action = decision
    if action == "rollback" and not first_release:
        # Protect users now; the rollback stage stops the canary and records why.
        target.set_canary_weight(0)
    checks = [
        Check(m.name, _status(m.outcome, m.enforced), m.message, details=m.evidence)
        for m in judgement.metrics
    ]
    elapsed = time.monotonic() - started
    summary = f"{decision} after {elapsed:.0f} s: {judgement.reason}"
    if action == "rollback" and not first_release:
        summary += " — canary taken out of traffic"
    return StageResult(
        "monitor-canary", _VERDICT[decision], summary, checks=checks,
        outputs={"decision": action},
        figures={"elapsed_s": round(elapsed, 2), "first_release": first_release, "traffic": load,
                 "canary_version": state.canary.release.version,
                 "stable_version": state.stable.release.version if state.stable else None},
        evidence={"timeline": timeline, "policy": dataclasses.asdict(policy)},
    )


def _status(outcome: str, enforced: bool) -> Status:
    if not enforced:
        return Status.SKIP if outcome == "continue" else Status.PASS
    return {"promote": Status.PASS, "rollback": Status.FAIL, "inconclusive": Status.WARN,
            "continue": Status.WARN}[outcome]
