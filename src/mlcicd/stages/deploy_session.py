"""What the deploy stages share: the target, the registry, and keeping them in agreement.

It lives with the stages because it opens both from a stage's context; the target and the
registry themselves know nothing of stages.

Ordering rule that keeps aliases honest: traffic moves first, aliases follow, and a
server stops only after no alias and no traffic point at it. Every re-run starts by
reading the target's real state, so a crash at any point converges on the next run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from mlcicd.delivery.targets import open_target
from mlcicd.delivery.targets.base import Release, Target, TargetState
from mlcicd.registry import CANARY, CHALLENGER, ModelVersion, Registry
from mlcicd.stages import StageContext


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
        return Release(mv.name, mv.version, mv.uri, mv.run_id, image)

    def reconcile_aliases(self, state: TargetState) -> None:
        """Alias ``canary`` names exactly the version in the canary slot, or nothing."""
        canary = self.registry.by_alias(CANARY)
        serving = state.canary.release.version if state.canary else None
        if serving is None and canary is not None:
            self.registry.delete_alias(CANARY)
        elif serving is not None and (canary is None or canary.version != serving):
            self.registry.set_alias(CANARY, serving)

    def retire_challenger(self, version: str) -> None:
        """Challenger means "passed the gate, not yet released": clear it once the version was
        promoted or rolled back, so `@challenger` never redeploys it by accident."""
        challenger = self.registry.by_alias(CHALLENGER)
        if challenger is not None and challenger.version == version:
            self.registry.delete_alias(CHALLENGER)


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
