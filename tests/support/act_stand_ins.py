"""act on this repository's own workflows, offline: the remote actions they use, mapped to stand-ins.

act replaces `actions/checkout` by a copy of the local tree (with its .git) but fetches every other
`uses:` from GitHub, and there is no network here. Each pinned action these workflows use maps
to a small local action in tests/e2e/stand-ins that does the same job on this host, through act's
`--local-repository owner/repo@ref=DIR`. The refs are read from the workflow, so a version bump
keeps the mapping; an action without a stand-in fails the test by name.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from consumer import REPO
from runners import ActRun, tool

STAND_INS = REPO / "tests" / "e2e" / "stand-ins"
STAND_IN_FOR = {
    "actions/setup-python": "setup-python",
    "actions/upload-artifact": "upload-artifact",
    "actions/download-artifact": "download-artifact",
    "pypa/gh-action-pypi-publish": "pypi-publish",
}
# Commands a hosted runner has that this host lacks or must not reach for real (gh calls GitHub's API).
STAND_IN_BIN = STAND_INS / "bin"


def local_repositories(workflow: Path) -> list[str]:
    doc = yaml.safe_load(workflow.read_text(encoding="utf-8"))
    refs = sorted({step["uses"] for job in doc["jobs"].values() for step in job.get("steps", []) if "uses" in step})
    argv: list[str] = []
    for ref in refs:
        action = ref.split("@", 1)[0]
        if action == "actions/checkout":
            continue
        if action not in STAND_IN_FOR:
            pytest.fail(f"{workflow.name} uses {ref}, which has no offline stand-in in {STAND_INS}")
        argv += ["--local-repository", f"{ref}={STAND_INS / STAND_IN_FOR[action]}"]
    return argv


def run_act(root: Path, workflow: str, *args: str, env: dict[str, str], timeout: float = 1200) -> ActRun:
    """`act push` for ``workflow`` of the repository at ``root``, every job on this host."""
    argv = [tool("act", REPO / ".venv" / "bin"), "push", "-W", workflow, "--json", "-P",
            "ubuntu-latest=-self-hosted", "--no-cache-server", *local_repositories(root / workflow), *args]
    proc = subprocess.run(argv, cwd=root, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout)
    return ActRun.parse(proc.returncode, proc.stdout, proc.stderr)
