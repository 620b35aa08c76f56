"""rollback: undo a canary (``to: stable``) or a promotion (``to: previous-champion``).

Traffic moves first, then the canary stops, then aliases follow; the reason is
recorded on the version taken out. Safe to re-run: with nothing left to undo it
only brings the aliases back in line with what is serving.
"""

from __future__ import annotations

from mlcicd.errors import UsageError
from mlcicd.registry import CHAMPION, PREVIOUS_CHAMPION
from mlcicd.report import Check, StageResult, Status, Verdict, read_report
from mlcicd.stages import StageContext
from mlcicd.stages.deploy_session import DeploySession, now

DEFAULT_REASON = "manual rollback"


def _reason(ctx: StageContext) -> str:
    reason = str(ctx.inputs.reason or DEFAULT_REASON)
    if reason == DEFAULT_REASON:
        monitor = read_report(ctx.report_dir, "monitor-canary")
        if monitor is not None and monitor.get("outputs", {}).get("decision") == "rollback":
            return f"canary analysis: {monitor.get('summary')}"
    return reason


def run(ctx: StageContext) -> StageResult:
    session = DeploySession.open(ctx)
    if ctx.inputs.to == "previous-champion":
        return _to_previous_champion(ctx, session)
    target, registry = session.target, session.registry
    state = target.state()
    reason = _reason(ctx)
    champion = registry.by_alias(CHAMPION)
    if state.canary is None:
        session.reconcile_aliases(state)
        serving = state.stable.release.version if state.stable else ""
        return StageResult("rollback", Verdict.PASS, "no canary to roll back; nothing changed",
                           checks=[Check("converged", Status.PASS, "no canary is deployed")],
                           outputs={"champion-version": champion.version if champion else serving,
                                    "rolled-back-version": ""})
    version = state.canary.release.version
    if state.stable is not None:
        target.set_canary_weight(0)
    target.remove_backend("canary")
    final = target.state()
    session.reconcile_aliases(final)
    session.retire_challenger(version)
    registry.set_tags(version, {"mlci.rollback.reason": reason, "mlci.rollback.at": now()})
    stable = final.stable.release.version if final.stable else ""
    checks = [Check("traffic", Status.PASS,
                    f"100% on stable v{stable}" if stable else "no stable release: the endpoint serves nothing"),
              Check("canary-stopped", Status.PASS, f"v{version} stopped")]
    return StageResult("rollback", Verdict.PASS, f"rolled back canary v{version}: {reason}", checks=checks,
                       outputs={"champion-version": stable, "rolled-back-version": version},
                       evidence={"reason": reason})


def _to_previous_champion(ctx: StageContext, session: DeploySession) -> StageResult:
    target, registry = session.target, session.registry
    previous = registry.by_alias(PREVIOUS_CHAMPION)
    champion = registry.by_alias(CHAMPION)
    state = target.state()
    if previous is None:
        if champion is not None and state.stable is not None and state.canary is None \
                and state.stable.release.version == champion.version:
            # A re-run after a completed rollback: already converged.
            return StageResult("rollback", Verdict.PASS, f"v{champion.version} is serving; nothing to restore",
                               checks=[Check("converged", Status.PASS, "no previous-champion alias")],
                               outputs={"champion-version": champion.version, "rolled-back-version": ""})
        raise UsageError("no version has alias previous-champion", where=f"model {registry.model_name}",
                         fix="a promotion sets it; to restore a specific version, deploy it with "
                         "deploy-canary model-uri: models:/<name>/<version> and promote it")
    reason = _reason(ctx)
    leaving = state.stable.release.version if state.stable else (champion.version if champion else "")
    if state.canary is not None and state.canary.release.version != previous.version:
        target.set_canary_weight(0)
        target.remove_backend("canary")
    target.ensure_backend("canary", session.release(previous))
    target.set_canary_weight(100)
    registry.set_alias(CHAMPION, previous.version)
    target.promote_canary()
    registry.delete_alias(PREVIOUS_CHAMPION)
    session.reconcile_aliases(target.state())
    if leaving and leaving != previous.version:
        registry.set_tags(leaving, {"mlci.rollback.reason": reason, "mlci.rollback.at": now()})
    return StageResult(
        "rollback", Verdict.PASS, f"restored v{previous.version} as champion, replacing v{leaving}: {reason}",
        checks=[Check("traffic", Status.PASS, f"100% on v{previous.version}"),
                Check("aliases", Status.PASS, f"champion -> v{previous.version}; previous-champion removed")],
        outputs={"champion-version": previous.version, "rolled-back-version": leaving},
        evidence={"reason": reason},
    )
