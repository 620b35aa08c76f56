"""Shared fixtures for integration tests: real MLflow models, real processes on 127.0.0.1.

``mlflow_project`` (session): a SQLite MLflow store with one registered model in two
versions that answer differently. ``project_config``: a fresh project root and a free
router port per test. ``model_dir``: a registered version's files, downloaded once.
Everything a test starts is stopped by PID in its teardown; ``reaper`` is the last resort.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from mlflow_globals import mlflow_uri
from mlflow_project import MODEL_NAME, MlflowProject, create_mlflow_project
from mlflow_server import mlflow_server  # noqa: F401 - fixture shared by every integration test
from reaper import Reaper

from mlcicd.config import Config
from mlcicd.registry import Registry


@pytest.fixture(scope="session")
def mlflow_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowProject]:
    """Two versions of an imputer + logistic regression pipeline, logged with mlcicd.log_model."""
    yield create_mlflow_project(tmp_path_factory.mktemp("mlflow-project"))


@dataclass
class FaultyModel:
    """A registered version whose answers a test switches: "" normal, "error" 500s, "slow:<ms>"."""

    version: str
    switch: Path

    def set(self, mode: str) -> None:
        self.switch.write_text(mode)


@pytest.fixture(scope="session")
def faulty_model_version(mlflow_project: MlflowProject) -> tuple[str, Path]:
    import mlflow

    switch = mlflow_project.root / "fault-switch"
    with mlflow_uri(mlflow_project.tracking_uri):
        experiment = mlflow.get_experiment_by_name("mlci-integration")
        with mlflow.start_run(experiment_id=experiment.experiment_id) as run:
            mlflow.pyfunc.log_model(name="model", python_model=str(Path(__file__).parents[1] / "support" /
                                                                    "faulty_model.py"),
                                    model_config={"switch": str(switch)}, pip_requirements=["mlflow"])
    mv = Registry(mlflow_project.tracking_uri, MODEL_NAME).register(f"runs:/{run.info.run_id}/model",
                                                                     run.info.run_id, {"kind": "faulty"})
    mlflow_project.versions.append(mv)
    return mv.version, switch


@pytest.fixture
def faulty_model(faulty_model_version: tuple[str, Path]) -> Iterator[FaultyModel]:
    version, switch = faulty_model_version
    model = FaultyModel(version, switch)
    model.set("")
    yield model
    model.set("")


@pytest.fixture
def project_config(mlflow_project: MlflowProject, tmp_path: Path) -> Config:
    """A Config for a fresh project root with a free deploy.local.port."""
    root = tmp_path / "project"
    root.mkdir()
    return mlflow_project.config(root)


@pytest.fixture
def reaper() -> Iterator[Reaper]:
    r = Reaper()
    yield r
    r.kill()
