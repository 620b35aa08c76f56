"""This repository's own CI: the lint job of .github/workflows/ci.yml on act, and .gitlab-ci.yml on
gitlab-ci-local (its lint job, and the components it includes from this very commit).

The checkout (uncommitted changes included, as `export_tree` copies it) becomes a git repository
that act runs the job in. act copies it for actions/checkout; actions/setup-python maps to a local
stand-in (a venv of this host's Python 3.11, tests/e2e/stand-ins); the job's own step, `make lint`,
runs for real: it installs the lint extra from the package index into the job's workspace and runs
ruff, mypy, `mlci-gen sync --check`, zizmor, actionlint and check-jsonschema.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from act_stand_ins import run_act
from consumer import git
from gitlab_runner import HOST, gitlab_runner
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


def test_gitlab_ci_lint_job_and_the_components_of_this_commit(components, job_python, mlflow, tmp_path: Path) -> None:
    """gitlab-ci-local on this repository's .gitlab-ci.yml, as GitLab's org/ml-cicd: the lint job,
    then the on-demand component jobs validate-data, train and gate, each included at
    `$CI_COMMIT_SHA` (this commit, resolved from GitLab's org/ml-cicd, here a bare repository of this
    checkout). train's dotenv output reaches gate through the stages' order; the jobs share only
    the MLflow tracking server, given as the project's CI/CD variable. (Installing ml-cicd from the
    project's archive at the commit needs GitLab's HTTP API: the jobs take the checkout's wheel
    through the `package` input's variable instead.)"""
    root = tmp_path / "ml-cicd"
    git(tmp_path, "clone", "-q", str(components), str(root))
    git(root, "remote", "set-url", "origin", f"https://{HOST}/org/ml-cicd.git")
    runner = gitlab_runner(components, job_python)
    lint = runner.run(root, "lint")
    assert lint.code == 0 and lint.results == {"lint": "PASS"}, lint.tail(80)
    for command in ("ruff check", "mypy", "mlci-gen sync --check", "zizmor", "actionlint", "check-jsonschema"):
        assert command in lint.log, command
    # One job per call, in the stages' order: gitlab-ci-local starts the jobs named on one command
    # line together, and a later call imports the artifacts (dotenv reports) of the earlier ones.
    log = []
    for job in ("component-validate-data", "component-train", "component-gate"):
        run = runner.run(root, job, variables=(f"MLCI_TRACKING_URI={mlflow.url}",))
        assert run.code == 0 and run.results == {job: "PASS"}, run.tail(80)
        log.append(run.log)
    # gate judged train's model (its mandatory model-uri is train's dotenv output) and registered it.
    artifacts = root / ".gitlab-ci-local" / "artifacts"
    train = dict(line.split("=", 1) for line in
                 (artifacts / "component-train" / "mlci-report" / "train.env").read_text().splitlines())
    gate = json.loads((artifacts / "component-gate" / "mlci-report" / "gate.json").read_text())
    assert gate["verdict"] == "pass", gate["summary"]
    assert f"with {train['MLCI_TRAIN_MODEL_URI']}" in log[-1]  # what gate scored
    from mlflow import MlflowClient

    registered = MlflowClient(mlflow.url).get_model_version("credit-risk", gate["outputs"]["model-version"])
    assert registered.run_id == train["MLCI_TRAIN_RUN_ID"], (registered.run_id, train)
