"""Lineage facts recorded on training runs: source revision and data fingerprints."""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def git_revision(root: Path, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Commit and dirty flag; CI variables win because CI checkouts may be shallow or detached."""
    env = os.environ if env is None else env
    facts: dict[str, str] = {}
    commit = env.get("GITHUB_SHA") or env.get("CI_COMMIT_SHA") or ""
    try:
        if not commit:
            commit = subprocess.run(
                ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, timeout=10, check=True
        ).stdout
        facts["git.dirty"] = str(bool(status.strip())).lower()
    except (OSError, subprocess.SubprocessError):
        pass
    if commit:
        facts["git.commit"] = commit
    repo = env.get("GITHUB_REPOSITORY") or env.get("CI_PROJECT_PATH")
    if repo:
        facts["git.repository"] = repo
    return facts
