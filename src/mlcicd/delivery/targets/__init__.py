"""Deploy targets: built-ins plus the ``mlcicd.targets`` entry-point group (see :mod:`mlcicd.plugins`).

A target factory is called as ``factory(settings, env)``: its own settings from
``deploy.<name>`` and a :class:`~mlcicd.delivery.targets.base.TargetEnv` (project root,
state directory, registry), never the whole config.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlcicd import plugins
from mlcicd.delivery.targets.base import TargetEnv
from mlcicd.registry import Registry

if TYPE_CHECKING:
    from mlcicd.config import Config
    from mlcicd.delivery.targets.base import Target


def open_target(cfg: Config, name: str | None = None, registry: Registry | None = None) -> Target:
    """The deploy target ``name`` (default: ``deploy.target``) with its settings."""
    name = name or cfg.deploy.target
    env = TargetEnv(cfg.root, cfg.state_dir, registry or Registry.from_config(cfg))
    target: Target = plugins.get(plugins.TARGETS, name, cfg.plugin_settings(plugins.TARGETS, name), env)
    return target
