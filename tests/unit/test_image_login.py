"""Which registry login a build uses, from the registry host and the CI job's environment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlcicd.errors import EXIT_USAGE, UsageError
from mlcicd.images.login import _docker_config, credentials, detect, logged_in

ECR = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"


@pytest.mark.parametrize(("registry", "env", "expected"), [
    (ECR, {}, "ecr"),
    (f"{ECR}/team", {}, "ecr"),
    ("123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com", {}, "ecr"),
    ("ghcr.io/org", {"GITHUB_TOKEN": "t"}, "ghcr"),
    ("ghcr.io/org", {}, "none"),  # an earlier step (docker/login-action) may have logged in
    ("registry.gitlab.example:5050/g/p", {"CI_REGISTRY": "registry.gitlab.example:5050"}, "gitlab"),
    ("registry.gitlab.example/g/p", {"CI_REGISTRY": "registry.gitlab.example:5050"}, "none"),
    ("127.0.0.1:5000", {"GITHUB_TOKEN": "t"}, "none"),
])
def test_auto_detects_from_the_host(registry, env, expected):
    assert detect(registry, env) == expected


def test_ghcr_uses_the_jobs_token_as_the_actor():
    creds = credentials("auto", "ghcr.io/org", {"GITHUB_TOKEN": "tok", "GITHUB_ACTOR": "octocat"})
    assert creds is not None and (creds.registry, creds.username, creds.password) == ("ghcr.io", "octocat", "tok")
    assert creds.source == "GITHUB_TOKEN"  # what the report shows: never the secret


def test_ghcr_without_a_token_names_the_variable_and_the_permission():
    with pytest.raises(UsageError) as err:
        credentials("ghcr", "ghcr.io/org", {})
    text = str(err.value)
    assert err.value.exit_code == EXIT_USAGE and "image.login" in text
    assert "GITHUB_TOKEN" in text and "packages: write" in text and "login: none" in text


def test_gitlab_prefers_the_registry_password_then_the_job_token():
    env = {"CI_REGISTRY": "r.example", "CI_REGISTRY_USER": "gitlab-ci-token", "CI_REGISTRY_PASSWORD": "pw",
           "CI_JOB_TOKEN": "jt"}
    assert credentials("auto", "r.example/g", env).password == "pw"  # type: ignore[union-attr]
    job = credentials("gitlab", "r.example/g", {"CI_JOB_TOKEN": "jt"})
    assert job is not None and (job.username, job.password, job.source) == ("gitlab-ci-token", "jt", "CI_JOB_TOKEN")
    with pytest.raises(UsageError, match="CI_JOB_TOKEN"):
        credentials("gitlab", "r.example/g", {})


def test_none_and_unknown():
    assert credentials("none", ECR, {}) is None
    assert credentials("auto", "quay.io/x", {}) is None
    with pytest.raises(UsageError, match="auto, ecr, ghcr, gitlab, none"):
        credentials("dockerhub", "quay.io/x", {})


def test_ecr_without_a_region_says_how_to_give_one():
    with pytest.raises(UsageError, match="AWS_REGION"):
        credentials("ecr", "registry.example", {})


def test_no_credentials_change_nothing():
    with logged_in(None, "buildah", tls_verify=True, env={}) as extra:
        assert extra == {}


def test_docker_config_keeps_the_users_builders_and_plugins(tmp_path):
    user = tmp_path / "home" / ".docker"
    (user / "buildx").mkdir(parents=True)
    (user / "cli-plugins").mkdir()
    private = tmp_path / "private"
    private.mkdir()
    extra = _docker_config(private, {"HOME": str(tmp_path / "home")})
    assert extra == {"DOCKER_CONFIG": str(private)}
    assert (private / "buildx").resolve() == user / "buildx" and (private / "cli-plugins").is_symlink()
    assert json.loads((private / "config.json").read_text()) == {"auths": {}}
    assert (private / "config.json").stat().st_mode & 0o777 == 0o600
    assert not Path(private / "contexts").exists()
