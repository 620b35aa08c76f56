"""Explicit plugin registries: built-ins by name, plus an entry-point group for third parties.

Two kinds, found the same way (a spec is ``module:attribute``, imported only when used):

* deploy targets (entry-point group ``mlcicd.targets``), picked by ``deploy.target``: the
  factory is called as ``factory(settings, env)`` with the target's own settings
  (``deploy.<name>``) and a :class:`~mlcicd.delivery.targets.base.TargetEnv`;
* metric sources (``mlcicd.metrics``), picked by ``deploy.canary.source``: called as
  ``factory(settings)`` with the source's settings (``deploy.canary.sources.<name>``).

A plugin owns its configuration: the factory's ``settings_type`` attribute is a dataclass that
:mod:`mlcicd.config` builds from the plugin's section with the same checks as the rest of
mlci.yaml (errors name the key path and the fix). The dataclass may define ``check()``, which
raises :class:`SettingsError` for what types alone cannot say (a range, two keys that exclude
each other). No ``settings_type`` means the plugin takes no settings.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import import_module
from importlib.metadata import entry_points
from typing import Any

from mlcicd.errors import UsageError


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: there are two
class Kind:
    name: str  # in messages: "deploy target"
    group: str  # entry-point group
    builtin: Mapping[str, str]  # name -> "module:attribute"
    selected_by: str  # the mlci.yaml key that picks one
    input: str | None = None  # the stage input that overrides it

    @property
    def where(self) -> str:
        return (f"input {self.input} / " if self.input else "") + f"mlci.yaml: {self.selected_by}"


TARGETS = Kind("deploy target", "mlcicd.targets", {"local": "mlcicd.delivery.targets.local:LocalTarget"},
               "deploy.target", "target")
METRICS = Kind("metric source", "mlcicd.metrics", {
    "scrape": "mlcicd.delivery.metrics.scrape:ScrapeSource",
    "prometheus": "mlcicd.delivery.metrics.prometheus:PrometheusSource",
}, "deploy.canary.source")
KINDS = (TARGETS, METRICS)


class SettingsError(Exception):
    """Raised by a settings dataclass's ``check()``: ``key`` is relative to the plugin's section."""

    def __init__(self, key: str, what: str, fix: str) -> None:
        super().__init__(f"{key}: {what}")
        self.key, self.what, self.fix = key, what, fix


class PluginError(UsageError):
    """A plugin is not installed or cannot be loaded."""


def available(kind: Kind) -> dict[str, str]:
    """Name -> spec of every plugin of ``kind``: the built-ins, then installed entry points (built-ins win)."""
    found = dict(kind.builtin)
    for ep in entry_points(group=kind.group):
        found.setdefault(ep.name, ep.value)
    return found


def installed(kind: Kind, name: str) -> bool:
    # Built-ins need no scan of the installed distributions' entry points.
    return name in kind.builtin or name in available(kind)


def load(kind: Kind, name: str) -> Any:
    """The factory of plugin ``name``; PluginError (exit 2) naming the choices when there is none."""
    specs = available(kind)
    if name not in specs:
        raise PluginError(
            f"unknown {kind.name} {name!r}", where=kind.where,
            fix=f"use one of: {', '.join(sorted(specs))}, or install a plugin that registers an entry point "
            f"in the `{kind.group}` group")
    module, _, attr = specs[name].partition(":")
    try:
        return getattr(import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise PluginError(f"{kind.name} {name!r} ({specs[name]}) cannot be loaded: {exc}",
                          where=kind.where,
                          fix="install the plugin's package (and its extras) in this job") from exc


def settings_type(kind: Kind, name: str) -> type | None:
    """The dataclass a plugin's section is built into, or None when it takes no settings."""
    found = getattr(load(kind, name), "settings_type", None)
    return found if isinstance(found, type) and dataclasses.is_dataclass(found) else None


def get(kind: Kind, name: str, *args: Any) -> Any:
    """Plugin ``name`` of ``kind``, made by its factory from ``args`` (see the module docstring)."""
    return load(kind, name)(*args)


def setting_keys(tp: type | None) -> list[tuple[str, Any]]:
    """(key, default) of a settings dataclass; ``dataclasses.MISSING`` for a required key."""
    if tp is None:
        return []
    hints = typing.get_type_hints(tp)
    keys = []
    for f in dataclasses.fields(tp):
        if f.name not in hints:
            continue
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        keys.append((f.name, default))
    return keys
