"""act on this repository's own workflows, offline: the remote actions they use, mapped to stand-ins.

act replaces `actions/checkout` by a copy of the local tree (with its .git) but fetches every other
`uses:` from GitHub, and there is no network here. Each pinned action these workflows use maps
to a small local action that does the same job on this host, through act's
`--local-repository owner/repo@ref=DIR`: setup-python, pypi-publish and attest-build-provenance to
tests/e2e/stand-ins, upload-artifact and download-artifact to tests/support/act_artifacts.py, which
speaks the real actions' protocol to act's own artifact server (started on 127.0.0.1 for a run that
uses them).
The refs are read from the workflow, so a version bump keeps the mapping; an action without a
stand-in fails the test by name.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from act_artifacts import stand_ins
from consumer import REPO
from runners import ActRun, tool

from mlcicd.delivery.targets.processes import free_port

STAND_INS = REPO / "tests" / "e2e" / "stand-ins"
STAND_IN_FOR = {
    "actions/setup-python": "setup-python",
    "pypa/gh-action-pypi-publish": "pypi-publish",
    "actions/attest-build-provenance": "attest-build-provenance",
}
ARTIFACT_ACTIONS = ("actions/upload-artifact", "actions/download-artifact")
# Commands a hosted runner has that this host lacks or must not reach for real (gh calls GitHub's API).
STAND_IN_BIN = STAND_INS / "bin"


def _uses(workflow: Path) -> dict[str, str]:
    """action (owner/repo) -> the ref the workflow pins it to (owner/repo@sha)."""
    doc = yaml.safe_load(workflow.read_text(encoding="utf-8"))
    refs = sorted({step["uses"] for job in doc["jobs"].values() for step in job.get("steps", []) if "uses" in step})
    return {ref.split("@", 1)[0]: ref for ref in refs}


def local_repositories(workflow: Path, work: Path) -> list[str]:
    """act's --local-repository arguments for every action ``workflow`` uses but checkout; the
    artifact actions' stand-ins are written under ``work``."""
    uses = _uses(workflow)
    argv: list[str] = []
    for action, ref in uses.items():
        if action == "actions/checkout" or action in ARTIFACT_ACTIONS:
            continue
        if action not in STAND_IN_FOR:
            pytest.fail(f"{workflow.name} uses {ref}, which has no offline stand-in in {STAND_INS}")
        argv += ["--local-repository", f"{ref}={STAND_INS / STAND_IN_FOR[action]}"]
    if any(action in uses for action in ARTIFACT_ACTIONS):
        upload, download = (uses.get(action, f"{action}@v4") for action in ARTIFACT_ACTIONS)
        argv += stand_ins(work / "artifact-actions", upload, download)
    return argv


def run_act(root: Path, workflow: str, *args: str, env: dict[str, str], work: Path, timeout: float = 1200) -> ActRun:
    """`act push` for ``workflow`` of the repository at ``root``, every job on this host.

    ``work`` keeps what the run needs besides the repository: the artifact stand-ins and, when
    the workflow passes artifacts between jobs, act's artifact store (``ActRun.artifacts``)."""
    argv = [tool("act", REPO / ".venv" / "bin"), "push", "-W", workflow, "--json", "-P",
            "ubuntu-latest=-self-hosted", "--no-cache-server", *local_repositories(root / workflow, work)]
    artifacts = None
    if any(action in _uses(root / workflow) for action in ARTIFACT_ACTIONS):
        artifacts = work / "artifacts"
        artifacts.mkdir(parents=True, exist_ok=True)
        argv += ["--artifact-server-path", str(artifacts), "--artifact-server-addr", "127.0.0.1",
                 "--artifact-server-port", str(free_port())]
    proc = subprocess.run([*argv, *args], cwd=root, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout)
    return ActRun.parse(proc.returncode, proc.stdout, proc.stderr, artifacts)
