"""End-to-end fixtures: real CI runners (act, gitlab-ci-local) on generated pipelines.

Shared for the session: this checkout exported as the ml-cicd project the consumer's
pipelines use, a real MLflow tracking server, a real image registry with a base image, and
moto's server for the pipelines that deploy to ECS.
`.ci/run` sets MLCI_REQUIRE_TOOLS=1, so a missing runner fails there instead of skipping.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from aws_rig import moto_fixture
from consumer import export_tree
from gitlab_runner import GitlabLocal, bare_components, gitlab_runner, job_venv
from image_registry import missing_tools, push_busybox_base, running_registry
from mlflow_server import MlflowServer, running_mlflow_server
from runners import Images, require
from shared_cache import session_dir

moto = moto_fixture()  # one moto server (the AWS stand-in) for the session, for the pipelines on `target: ecs`


@pytest.fixture(scope="session")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This checkout as the ml-cicd project the consumer's pipelines use (what a tag would hold)."""
    return export_tree(tmp_path_factory.mktemp("suite") / "ml-cicd")


@pytest.fixture(scope="session")
def mlflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    with running_mlflow_server(tmp_path_factory.mktemp("e2e-mlflow")) as server:
        yield server


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Images]:
    missing = missing_tools()
    require(not missing, f"needs {', '.join(missing)} for build-image (make system-test installs them)")
    home = tmp_path_factory.mktemp("e2e-images")
    with running_registry(home / "registry") as address:
        yield Images(address, push_busybox_base(address, home / "base"), home / "buildah")


# Per test file (module scope): each file runs on one pytest worker, and these are homes of runs.
@pytest.fixture(scope="module")
def runner_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """act's HOME: its work, and the runner tool cache where the actions keep their venv.

    The tool cache is the session's (every worker's act runs share it), as on a self-hosted runner
    that keeps its tool cache between jobs: the actions' venv is keyed by the source's hash and
    built under a lock (scripts/install-action.sh), so it is built once, not once per test file.
    """
    home = tmp_path_factory.mktemp("act-home")
    (home / ".cache" / "act").mkdir(parents=True)
    (home / ".cache" / "act" / "tool_cache").symlink_to(session_dir(tmp_path_factory, "act-tool-cache"))
    return home


@pytest.fixture(scope="module")
def components(suite: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bare_components(suite, tmp_path_factory.mktemp("components"))


@pytest.fixture(scope="session")
def job_python(suite: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The GitLab jobs' Python: one venv for every worker of the session (the suite is the same checkout)."""
    return job_venv(suite, session_dir(tmp_path_factory, "job-python"))


@pytest.fixture(scope="module")
def gitlab_local(components: Path, job_python: tuple[Path, Path], images: Images) -> GitlabLocal:
    return gitlab_runner(components, job_python, images)
