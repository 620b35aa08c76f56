"""CI adapters: the only code that knows where outputs, summaries and annotations go.

Stages never touch ``$GITHUB_OUTPUT`` or dotenv files; they return a StageResult and
the runner hands it to the adapter detected here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from mlcicd.ci.base import CIAdapter
from mlcicd.ci.github import GitHubAdapter
from mlcicd.ci.gitlab import GitLabAdapter
from mlcicd.ci.local import LocalAdapter
from mlcicd.errors import UsageError

ADAPTERS: dict[str, type[CIAdapter]] = {
    "github": GitHubAdapter,
    "gitlab": GitLabAdapter,
    "local": LocalAdapter,
}


def detect(env: Mapping[str, str] | None = None, override: str | None = None) -> CIAdapter:
    """Pick the adapter: explicit override, then ``MLCI_CI``, then the CI's own variables."""
    env = os.environ if env is None else env
    name = override or env.get("MLCI_CI") or ""
    if not name:
        if env.get("GITHUB_ACTIONS") == "true":
            name = "github"
        elif env.get("GITLAB_CI") == "true":
            name = "gitlab"
        else:
            name = "local"
    if name not in ADAPTERS:
        raise UsageError(
            f"unknown CI system {name!r}",
            where="MLCI_CI" if not override else "--ci",
            fix=f"use one of: {', '.join(ADAPTERS)} (or unset it to detect from the environment)",
        )
    return ADAPTERS[name](env)


__all__ = ["ADAPTERS", "CIAdapter", "detect"]
