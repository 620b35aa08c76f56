"""This repository's own CI on act: the lint job of .github/workflows/ci.yml, on this checkout.

The checkout (uncommitted changes included, as `export_tree` copies it) becomes a git repository
that act runs the job in. act copies it for actions/checkout; actions/setup-python maps to a local
stand-in (a venv of this host's Python 3.11, tests/e2e/stand-ins); the job's own step, `make lint`,
runs for real: it installs the lint extra from the package index into the job's workspace and runs
ruff, mypy, `mlci-gen sync --check`, zizmor, actionlint and check-jsonschema.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from act_stand_ins import run_act
from consumer import git
from runners import clean_env

pytestmark = pytest.mark.e2e

WORKFLOW = ".github/workflows/ci.yml"


def test_ci_lint_job_passes_on_this_checkout(suite: Path, tmp_path: Path) -> None:
    root = tmp_path / "ml-cicd"
    shutil.copytree(suite, root)
    git(root, "init", "-q", "-b", "main")
    git(root, "remote", "add", "origin", "https://github.com/org/ml-cicd.git")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "this checkout")
    env = clean_env(HOME=str(tmp_path / "home"), PIP_CACHE_DIR=str(Path.home() / ".cache" / "pip"))
    run = run_act(root, WORKFLOW, "-j", "lint", env=env, work=tmp_path / "act", timeout=900)
    assert run.code == 0, run.tail(80)
    assert run.results == {"lint": "success"}, run.tail(80)
    # Every linter ran (make stops at the first failure, so success alone would not say which ran).
    for command in ("ruff check", "mypy", "mlci-gen sync --check", "zizmor", "actionlint", "check-jsonschema"):
        assert command in run.log, command
