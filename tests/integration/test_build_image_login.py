"""build-image logs in to the registry it pushes to, with the CI job's own credentials.

A real docker-registry on 127.0.0.1 that demands HTTP basic auth (htpasswd) stands for
ECR, GHCR and the GitLab registry: each accepts exactly the user and password the real
one would get from the job. ECR's token comes from moto in server mode over HTTP
(`GetAuthorizationToken`, as boto3 would call AWS). The image is busybox (the build
mechanics only). After every run no credential may be left in the project or in a
temporary auth file.
"""

from __future__ import annotations

import base64
import io
import json
import tempfile
from pathlib import Path

import pytest
import yaml
from image_registry import missing_tools, registry_with_busybox, running_registry
from mlflow_globals import mlflow_uri
from runners import REQUIRED

from mlcicd.ci.local import LocalAdapter
from mlcicd.delivery.targets.processes import free_port
from mlcicd.runner import execute

pytestmark = pytest.mark.integration

MODEL_NAME = "login-model"
SHA = "89abcdef0123456789abcdef0123456789abcdef"
ECR_ACCOUNT = "123456789012"  # moto's default account
ECR_PASSWORD = f"{ECR_ACCOUNT}-auth-token"  # what moto's GetAuthorizationToken hands out
GITHUB_TOKEN = "ghs_github-token-for-this-job"
GITLAB_PASSWORD = "glcbt-job-token-for-this-job"
USERS = {"AWS": ECR_PASSWORD, "octocat": GITHUB_TOKEN, "gitlab-ci-token": GITLAB_PASSWORD}
SECRETS = (ECR_PASSWORD, GITHUB_TOKEN, GITLAB_PASSWORD)

_missing = missing_tools()
if _missing:
    _why = f"needs {', '.join(_missing)} (.ci/run installs them)"
    if REQUIRED:
        pytest.fail(_why, pytrace=False)
    pytest.skip(_why, allow_module_level=True)


@pytest.fixture(scope="module")
def locked_registry(tmp_path_factory):
    with running_registry(tmp_path_factory.mktemp("locked-registry"), users=USERS) as address:
        yield address


@pytest.fixture(scope="module")
def base_image(tmp_path_factory):
    """busybox from an open registry: pulling the base needs no login, pushing the image does."""
    with registry_with_busybox(tmp_path_factory.mktemp("open")) as (_, base):
        yield base


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory):
    import mlflow
    from sklearn.dummy import DummyClassifier

    from mlcicd.registry import Registry

    home = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{home}/mlflow.db"
    with mlflow_uri(uri):
        mlflow.set_experiment(experiment_id=mlflow.create_experiment("login", artifact_location=home.as_uri()))
        with mlflow.start_run() as run:
            import mlflow.sklearn

            mlflow.sklearn.log_model(DummyClassifier().fit([[0], [1]], [0, 1]), name="model",
                                     pip_requirements=["scikit-learn"], serialization_format="cloudpickle")
    registry = Registry(uri, MODEL_NAME)
    mv = registry.register(f"runs:/{run.info.run_id}/model", run.info.run_id, {})
    registry.set_alias("challenger", mv.version)
    return uri


@pytest.fixture(scope="module")
def moto_endpoint():
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def _build(tmp_path: Path, tracking_uri: str, registry: str, base: str, login: str,
           env: dict[str, str] | None = None) -> tuple[int, object, str]:
    config = {"version": 1, "data": {"label": "y"}, "mlflow": {"model_name": MODEL_NAME, "tracking_uri": tracking_uri},
              "image": {"builder": "buildah", "registry": registry, "base": base, "requirements": "none",
                        "check": False, "login": login}}
    (tmp_path / "mlci.yaml").write_text(yaml.safe_dump(config))
    stream = io.StringIO()
    ci_env = {"MLCI_BUILDAH_ROOT": str(tmp_path / "storage"), "GITHUB_SHA": SHA, **(env or {})}
    before = set(Path(tempfile.gettempdir()).glob("mlci-registry-auth-*"))
    code, result = execute("build-image", {"config": str(tmp_path / "mlci.yaml"),
                                           "report-dir": str(tmp_path / "report")},
                           env={"MLFLOW_DISABLE_TELEMETRY": "true"}, ci=LocalAdapter(ci_env, stream))
    # The temporary auth file is gone, and no secret was written anywhere in the project.
    assert set(Path(tempfile.gettempdir()).glob("mlci-registry-auth-*")) <= before
    for path in tmp_path.rglob("*"):
        if path.is_file() and "storage" not in path.parts and path.stat().st_size < 5_000_000:
            data = path.read_bytes()
            for secret in SECRETS:
                assert secret.encode() not in data and base64.b64encode(secret.encode()) not in data, path
    return code, result, stream.getvalue()


def _pushed(result: object, registry: str) -> None:
    outputs = result.outputs  # type: ignore[attr-defined]
    assert outputs["image-ref"].startswith(f"{registry}/login-model@sha256:")
    assert any(c.name == "login" and c.status.value == "pass" for c in result.checks)  # type: ignore[attr-defined]


def test_ecr_token_from_get_authorization_token(tmp_path, tracking_uri, locked_registry, base_image, moto_endpoint,
                                                monkeypatch):
    for key, value in {"AWS_ENDPOINT_URL": moto_endpoint, "AWS_REGION": "us-east-1",
                       "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(key, value)
    code, result, log = _build(tmp_path, tracking_uri, locked_registry, base_image, "ecr")
    assert code == 0, log
    _pushed(result, locked_registry)
    assert "ECR GetAuthorizationToken (us-east-1)" in json.dumps(result.to_dict())  # type: ignore[attr-defined]


def test_ghcr_with_the_jobs_github_token(tmp_path, tracking_uri, locked_registry, base_image):
    code, result, log = _build(tmp_path, tracking_uri, locked_registry, base_image, "ghcr",
                               {"GITHUB_TOKEN": GITHUB_TOKEN, "GITHUB_ACTOR": "octocat"})
    assert code == 0, log
    _pushed(result, locked_registry)


def test_gitlab_registry_detected_from_ci_registry(tmp_path, tracking_uri, locked_registry, base_image):
    env = {"CI_REGISTRY": locked_registry, "CI_REGISTRY_USER": "gitlab-ci-token",
           "CI_REGISTRY_PASSWORD": GITLAB_PASSWORD}
    code, result, log = _build(tmp_path, tracking_uri, locked_registry, base_image, "auto", env)
    assert code == 0, log
    _pushed(result, locked_registry)


def test_without_login_the_push_is_refused(tmp_path, tracking_uri, locked_registry, base_image):
    code, result, log = _build(tmp_path, tracking_uri, locked_registry, base_image, "auto")
    assert code == 1, log
    assert result.checks[-1].name == "push"  # type: ignore[attr-defined]
    assert "authentication required" in log or "unauthorized" in log.lower()


def test_a_wrong_token_is_a_usage_error_naming_the_key(tmp_path, tracking_uri, locked_registry, base_image):
    code, result, log = _build(tmp_path, tracking_uri, locked_registry, base_image, "ghcr",
                               {"GITHUB_TOKEN": "not-the-token", "GITHUB_ACTOR": "octocat"})
    assert code == 2 and result is None
    assert "image.login" in log and "GITHUB_TOKEN" in log and "refused" in log


def test_a_missing_token_fails_before_any_work(tmp_path, tracking_uri, locked_registry, base_image):
    code, result, log = _build(tmp_path, tracking_uri, locked_registry, base_image, "ghcr")
    assert code == 2 and result is None
    assert "GITHUB_TOKEN is not set" in log and "packages: write" in log
    assert not (tmp_path / ".mlci" / "build").exists()  # nothing downloaded, nothing built
