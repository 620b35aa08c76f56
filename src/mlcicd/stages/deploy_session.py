"""What the deploy stages share: the target, the registry, and keeping them in agreement.

It lives with the stages because it opens both from a stage's context; the target and the
registry themselves know nothing of stages.

Ordering rule that keeps aliases honest: traffic moves first, aliases follow, and a
server stops only after no alias and no traffic point at it. Every re-run starts by
reading the target's real state, so a crash at any point converges on the next run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from mlcicd.delivery.progression import DECISION_TAG
from mlcicd.delivery.targets import open_target
from mlcicd.delivery.targets.base import Release, Target, TargetState
from mlcicd.registry import CANARY, CHALLENGER, ModelVersion, Registry
from mlcicd.stages import StageContext

# build-image records the image it pushed, pinned by digest, on the model version;
# deploy-canary the image it deployed (the image input may name another).
IMAGE_TAG = "mlci.image"
DEPLOYED_IMAGE_TAG = "mlci.deploy.image"


@dataclass
class DeploySession:
    target: Target
    registry: Registry

    @classmethod
    def open(cls, ctx: StageContext) -> DeploySession:
        """The project's target (the target input, applied to deploy.target) and registry."""
        registry = Registry.from_config(ctx.config)
        return cls(open_target(ctx.config, registry=registry), registry)

    def release(self, mv: ModelVersion, image: str | None = None) -> Release:
        """What to deploy; the image defaults to the one that last ran this version (a restore brings
        back exactly that), else the one build-image recorded on the version (by digest)."""
        found = image or mv.tags.get(DEPLOYED_IMAGE_TAG) or mv.tags.get(IMAGE_TAG)
        return Release(mv.name, mv.version, mv.uri, mv.run_id, found or None)

    def reconcile_aliases(self, state: TargetState) -> None:
        """Alias ``canary`` names exactly the version in the canary slot, or nothing."""
        canary = self.registry.by_alias(CANARY)
        serving = state.canary.release.version if state.canary else None
        if serving is None and canary is not None:
            self.registry.delete_alias(CANARY)
        elif serving is not None and (canary is None or canary.version != serving):
            self.registry.set_alias(CANARY, serving)

    def decision(self, version: str) -> tuple[str, str] | None:
        """(decision, reason) monitor-canary recorded on the version, or None.

        Jobs on hosted runners share no files: the registry carries the decision from the
        monitor's job to the promote and rollback jobs.
        """
        raw = self.registry.version(version).tags.get(DECISION_TAG)
        try:
            found = json.loads(raw) if raw else None
        except ValueError:
            return None
        return (str(found.get("decision", "")), str(found.get("reason", ""))) if isinstance(found, dict) else None

    def retire_challenger(self, version: str) -> None:
        """Challenger means "passed the gate, not yet released": clear it once the version was
        promoted or rolled back, so `@challenger` never redeploys it by accident."""
        challenger = self.registry.by_alias(CHALLENGER)
        if challenger is not None and challenger.version == version:
            self.registry.delete_alias(CHALLENGER)


    def withdraw_canary(self, candidate: ModelVersion, reason: str) -> TargetState:
        """A new version that must never take traffic (never healthy, failed smoke checks): its server
        goes, it stops being the challenger, and why is recorded on the version."""
        self.target.remove_backend("canary")
        state = self.target.state()
        self.reconcile_aliases(state)
        self.retire_challenger(candidate.version)
        self.registry.set_tags(candidate.version, {"mlci.rollback.reason": reason[:5000], "mlci.rollback.at": now()})
        return state

def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
