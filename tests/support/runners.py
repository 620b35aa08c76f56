"""Helpers for tests on real tools: CI runners (act, gitlab-ci-local), Prometheus, image tools.

``require`` skips a test whose tool is missing on a developer's machine, and fails it where
``MLCI_REQUIRE_TOOLS=1`` (`.ci/run`): CI must never pass by skipping.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from consumer import REPO

REQUIRED = os.environ.get("MLCI_REQUIRE_TOOLS") == "1"
# `make e2e-tools` installs gitlab-ci-local (and the Node 22 it needs) here.
NODE_BIN = REPO / ".e2e-tools" / "node_modules" / ".bin"
# act --json reports a step's outputs as `::set-output:: name=value` messages.
SET_OUTPUT = re.compile(r"::set-output:: ([A-Za-z0-9_-]+)=(.*)$")


def require(ok: bool, what: str) -> None:
    if ok:
        return
    if REQUIRED:
        pytest.fail(f"{what} (MLCI_REQUIRE_TOOLS=1: CI runs every test on the real tool)")
    pytest.skip(what)


def keep_log(runner: str, log: str) -> None:
    """With MLCI_E2E_LOG_DIR set, keep a runner's whole log there (one file per run, in start order):
    where the minutes of an e2e pipeline go, job by job (act --json stamps every line)."""
    keep = os.environ.get("MLCI_E2E_LOG_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        (Path(keep) / f"{time.strftime('%H%M%S')}-{os.getpid()}-{runner}.log").write_text(log)


def tool(name: str, *extra_dirs: Path) -> str:
    path = os.pathsep.join([*map(str, extra_dirs), os.environ.get("PATH", "")])
    found = shutil.which(name, path=path)
    require(found is not None, f"{name} is not installed; `make e2e-tools` installs it")
    assert found is not None
    return found


@dataclass(frozen=True)
class Images:
    registry: str
    base: str
    storage: Path  # buildah's private storage root (MLCI_BUILDAH_ROOT)


def clean_env(**extra: str) -> dict[str, str]:
    """The runner's environment: the host's, minus anything of this test process that a job could
    pick up by accident (our venv on PATH, MLflow/ml-cicd settings, CI variables, and the AWS
    settings that point this process at moto: a job gets AWS credentials only the way CI gives them)."""
    venv = str(REPO / ".venv")
    drop = ("MLCI_", "MLFLOW_", "GITHUB_", "GITLAB_", "CI_", "VIRTUAL_ENV", "PYTEST_", "AWS_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop) and k != "CI"}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(venv))
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    return {**env, **extra}


@dataclass
class ActRun:
    code: int
    log: str
    artifacts: Path | None = None  # act's artifact store of this run, when it had one
    outputs: dict[str, dict[str, str]] = field(default_factory=lambda: defaultdict(dict))
    results: dict[str, str] = field(default_factory=dict)  # job id -> success / failure

    @classmethod
    def parse(cls, code: int, stdout: str, stderr: str, artifacts: Path | None = None) -> ActRun:
        run = cls(code, stdout + stderr, artifacts)
        for line in stdout.splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            job, msg = event.get("jobID"), str(event.get("msg", ""))
            if not job:
                continue
            if event.get("jobResult"):
                run.results[job] = event["jobResult"]
            m = SET_OUTPUT.search(msg)
            if m:
                run.outputs[job][m.group(1)] = m.group(2).strip()
        return run

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.splitlines()[-lines:])
