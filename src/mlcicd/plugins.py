"""Explicit plugin registries: built-ins by name, plus an entry-point group for third parties.

Deploy targets (``mlcicd.targets``) and metric sources (``mlcicd.metrics``) are both found
this way; a spec is ``module:attribute``, imported only when the plugin is used.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import entry_points
from typing import Any


def available(builtin: dict[str, str], group: str) -> dict[str, str]:
    """Name -> spec of every plugin: the built-ins, then installed entry points (built-ins win)."""
    found = dict(builtin)
    for ep in entry_points(group=group):
        found.setdefault(ep.name, ep.value)
    return found


def load(spec: str) -> Any:
    module, _, attr = spec.partition(":")
    return getattr(import_module(module), attr)
