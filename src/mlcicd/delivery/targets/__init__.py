"""Registry of deploy targets: built-ins plus the ``mlcicd.targets`` entry-point group."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from mlcicd import plugins
from mlcicd.errors import UsageError

if TYPE_CHECKING:
    from mlcicd.config import Config
    from mlcicd.delivery.targets.base import Target

BUILTIN_TARGETS: dict[str, str] = {
    "local": "mlcicd.delivery.targets.local:LocalTarget",
}


def available_targets() -> dict[str, str]:
    return plugins.available(BUILTIN_TARGETS, "mlcicd.targets")


def get_target(name: str, config: Config) -> Target:
    targets = available_targets()
    if name not in targets:
        raise UsageError(
            f"unknown deploy target {name!r}",
            where="input target / mlci.yaml: deploy.target",
            fix=f"use one of: {', '.join(sorted(targets))}, or install a plugin that registers "
            "an entry point in the `mlcicd.targets` group",
        )
    factory: Callable[..., Target] = plugins.load(targets[name])
    return factory(config)
