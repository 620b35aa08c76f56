"""Registry of deploy targets: built-ins plus the ``mlcicd.targets`` entry-point group."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from mlcicd.errors import UsageError

if TYPE_CHECKING:
    from mlcicd.config import Config
    from mlcicd.delivery.targets.base import Target

BUILTIN_TARGETS: dict[str, str] = {
    "local": "mlcicd.delivery.targets.local:LocalTarget",
}


def _load(spec: str) -> Callable[..., Target]:
    module, _, attr = spec.partition(":")
    factory: Callable[..., Target] = getattr(import_module(module), attr)
    return factory


def available_targets() -> dict[str, str]:
    found = dict(BUILTIN_TARGETS)
    for ep in entry_points(group="mlcicd.targets"):
        found.setdefault(ep.name, ep.value)
    return found


def get_target(name: str, config: Config) -> Target:
    targets = available_targets()
    if name not in targets:
        raise UsageError(
            f"unknown deploy target {name!r}",
            where="input target / mlci.yaml: deploy.target",
            fix=f"use one of: {', '.join(sorted(targets))}, or install a plugin that registers "
            "an entry point in the `mlcicd.targets` group",
        )
    return _load(targets[name])(config)
