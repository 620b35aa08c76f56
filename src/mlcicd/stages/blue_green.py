"""deploy-canary under ``deploy.strategy: blue-green``: smoke checks, then all traffic at once.

The new version is already up at 0% (``ensure_backend`` waited for it to be healthy). Smoke
checks go to it directly (``Target.direct_url``: its own server locally, the test listener on
ECS), never through the users' router: ``GET /health`` and every ``deploy.blue_green.smoke``
request with its expected answer. A failure withdraws it before any user saw it. On success the
router sends it 100% in one change; the old version keeps running, warm, for
``deploy.blue_green.keep_seconds``, while monitor-canary judges the new one and can switch back.
"""

from __future__ import annotations

from collections.abc import Callable

from mlcicd.delivery.smoke import SmokeRequest, run_smoke
from mlcicd.delivery.targets.base import Release
from mlcicd.registry import CANARY, ModelVersion
from mlcicd.report import Check, StageResult, Status, Verdict
from mlcicd.stages import StageContext
from mlcicd.stages.deploy_session import DEPLOYED_IMAGE_TAG, DeploySession, now

Withdraw = Callable[[DeploySession, ModelVersion, str, list[Check]], StageResult]


def switch(ctx: StageContext, session: DeploySession, candidate: ModelVersion, release: Release,
           checks: list[Check], withdraw: Withdraw) -> StageResult:
    target, registry, bg = session.target, session.registry, ctx.config.deploy.blue_green
    url = target.direct_url("canary")
    requests = [SmokeRequest(s.name, s.request, s.expect, s.expect_status) for s in bg.smoke]
    report = run_smoke(url, requests)
    checks += [Check(f"smoke.{r.name}", Status.PASS if r.ok else Status.FAIL, r.detail) for r in report.results]
    if not report.ok:
        failed = "; ".join(f"{r.name}: {r.detail}" for r in report.failures())
        reason = (f"v{candidate.version} failed its smoke checks at {url} and received no traffic: {failed}. "
                  "Fix the model or the expected answers in deploy.blue_green.smoke, then deploy again")
        return withdraw(session, candidate, reason, checks)
    target.set_canary_weight(100)
    registry.set_alias(CANARY, candidate.version)
    registry.set_tags(candidate.version, {"mlci.deploy.target": target.name, "mlci.deploy.weight": 100,
                                          "mlci.deploy.strategy": "blue-green", "mlci.deploy.at": now(),
                                          **({DEPLOYED_IMAGE_TAG: release.image} if release.image else {})})
    state = target.state()
    old = state.stable.release.version if state.stable else ""
    summary = (f"blue-green: v{candidate.version} passed {len(report.results)} smoke checks and takes all traffic at "
               f"{state.endpoint}; v{old} stays warm for {bg.keep_seconds:g} s (monitor-canary switches back on a "
               "regression, promote retires it)")
    checks.append(Check("switch", Status.PASS, summary, observed="100%"))
    return StageResult("deploy-canary", Verdict.PASS, summary, checks=checks,
                       outputs={"endpoint": state.endpoint or "", "canary-version": candidate.version,
                                "stable-version": old},
                       figures={"canary_weight": 100, "first_release": False, "strategy": "blue-green",
                                "smoke": [{"name": r.name, "ok": r.ok, "detail": r.detail} for r in report.results]})
