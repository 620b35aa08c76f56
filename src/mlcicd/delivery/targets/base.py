"""The deploy-target plugin protocol.

A target runs model servers in two slots, ``stable`` and ``canary``, behind one
router that splits traffic between them. State lives in the target itself (which
processes or services run, what the router sends where), never only in the
runner's memory, so every stage can re-read it after a crash.

Every mutating method is idempotent: calling it again with the same arguments after
success, or after a crash half-way through, converges on the same state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

from mlcicd.errors import TargetError

if TYPE_CHECKING:
    from mlcicd.registry import Registry

Slot = Literal["stable", "canary"]


class RouterConflict(TargetError):
    """The router's split was changed outside ml-cicd; ml-cicd will not overwrite it on its own."""


class BackendUnhealthy(TargetError):
    """A new version never became healthy (ensure_backend). Traffic was not moved to it."""


@dataclass(frozen=True)
class TargetEnv:
    """What a target factory gets besides its own settings (``deploy.<name>``)."""

    # The project root (mlci.yaml's directory): relative paths in the settings are relative to it.
    root: Path
    # <root>/.mlci: where ml-cicd keeps what it must keep on this machine.
    state_dir: Path
    # The model registry, where a release's model files come from.
    registry: Registry


@dataclass(frozen=True)
class Release:
    """What a slot serves: a registered model version and where its files come from."""

    model_name: str
    version: str
    model_uri: str
    run_id: str | None = None
    image: str | None = None


@dataclass(frozen=True)
class Backend:
    slot: Slot
    release: Release
    # Where the server answers directly (for /metrics, /health), bypassing the router; for remote
    # targets an identifier of this deployment of the slot (a new deploy gets a new one).
    url: str
    healthy: bool
    # What metric sources need to find this backend's series (e.g. CloudWatch dimensions).
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TargetState:
    endpoint: str | None
    stable: Backend | None
    canary: Backend | None
    # Percent of requests the router sends to the canary slot (0..100).
    canary_weight: int
    # Why the router's split is not one ml-cicd set (somebody changed it), or None.
    drift: str | None = None

    def backend(self, slot: Slot) -> Backend | None:
        return self.stable if slot == "stable" else self.canary


@runtime_checkable
class Target(Protocol):
    name: str

    def state(self) -> TargetState:
        """Read the actual state; never mutates."""
        ...

    def ensure_backend(self, slot: Slot, release: Release) -> Backend:
        """Make ``slot`` serve ``release`` and wait until it is healthy. Traffic is unchanged,
        except that a slot that receives traffic is replaced without dropping requests."""
        ...

    def set_canary_weight(self, percent: int) -> None:
        """Route ``percent`` of requests to the canary (0..100). The router comes up on first use."""
        ...

    def direct_url(self, slot: Slot) -> str:
        """An HTTP address that reaches only ``slot``'s servers, never through the traffic split:
        where blue-green's smoke checks go before any user traffic does. A target that must route
        it (a test listener) points it at the slot; idempotent. TargetError when there is none."""
        ...

    def promote_canary(self) -> None:
        """The canary becomes the stable slot with 100% of traffic; the old stable server stops."""
        ...

    def remove_backend(self, slot: Slot) -> None:
        """Stop the slot's server (after moving its traffic to the other slot)."""
        ...

    def shutdown(self) -> None:
        """Stop the router and every server."""
        ...
