"""promote: the canary takes all traffic and becomes champion; the old release retires.

Order (each step idempotent, so a re-run after a crash converges): traffic 100% to
the canary -> alias previous-champion on the version leaving -> alias champion on the
canary -> the target relabels the canary as stable and stops the old server ->
alias canary removed.
"""

from __future__ import annotations

from mlcicd.errors import UsageError
from mlcicd.registry import CHAMPION, PREVIOUS_CHAMPION
from mlcicd.report import Check, StageResult, Status, Verdict, read_report
from mlcicd.stages import StageContext
from mlcicd.stages.deploy_session import DeploySession, now


def run(ctx: StageContext) -> StageResult:
    session = DeploySession.open(ctx)
    target, registry = session.target, session.registry
    state = target.state()
    champion = registry.by_alias(CHAMPION)
    if state.canary is None:
        if state.stable is not None and champion is not None and state.stable.release.version == champion.version:
            session.reconcile_aliases(state)
            previous = registry.by_alias(PREVIOUS_CHAMPION)
            return StageResult(
                "promote", Verdict.PASS, f"v{champion.version} is already champion and serving all traffic",
                checks=[Check("converged", Status.PASS, "nothing left to promote")],
                outputs={"champion-version": champion.version,
                         "previous-champion-version": previous.version if previous else ""},
            )
        raise UsageError("there is no canary to promote", where=f"target {target.name}",
                         fix="run deploy-canary (and monitor-canary) first")
    monitor = read_report(ctx.report_dir, "monitor-canary")
    if monitor is not None and monitor.get("outputs", {}).get("decision") == "rollback" and \
            monitor.get("figures", {}).get("canary_version") == state.canary.release.version:
        raise UsageError(
            f"monitor-canary decided to roll back v{state.canary.release.version}: {monitor.get('summary')}",
            where=f"{ctx.report_dir}/monitor-canary.json",
            fix="run the rollback stage; to promote anyway, delete that report first",
        )
    new = state.canary.release
    old_version = state.stable.release.version if state.stable else None
    target.set_canary_weight(100)
    if old_version is not None and old_version != new.version:
        registry.set_alias(PREVIOUS_CHAMPION, old_version)
    registry.set_alias(CHAMPION, new.version)
    registry.set_tags(new.version, {"mlci.promoted.at": now(), "mlci.promoted.previous": old_version or ""})
    target.promote_canary()
    final = target.state()
    session.reconcile_aliases(final)
    session.retire_challenger(new.version)
    checks = [
        Check("traffic", Status.PASS, f"v{new.version} serves 100% at {final.endpoint}"),
        Check("aliases", Status.PASS, f"champion -> v{new.version}"
              + (f", previous-champion -> v{old_version}" if old_version else "")),
    ]
    if old_version:
        checks.append(Check("retired", Status.PASS, f"v{old_version} stopped"))
    return StageResult(
        "promote", Verdict.PASS,
        f"v{new.version} promoted to champion" + (f", replacing v{old_version}" if old_version else ""),
        checks=checks,
        outputs={"champion-version": new.version, "previous-champion-version": old_version or ""},
    )
