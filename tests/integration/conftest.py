"""Shared fixtures for integration tests: real MLflow models, real processes on 127.0.0.1.

``mlflow_project`` (session): a SQLite MLflow store with one registered model in two
versions that answer differently. ``project_config``: a fresh project root and a free
router port per test. ``model_dir``: a registered version's files, downloaded once.
Everything a test starts is stopped by PID in its teardown; ``reaper`` is the last resort.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aws_rig import moto_fixture
from mlflow_globals import mlflow_uri
from mlflow_server import mlflow_server  # noqa: F401 - fixture shared by every integration test

from mlcicd.config import Config, parse_config
from mlcicd.delivery.targets.base import Release
from mlcicd.delivery.targets.processes import free_port, pid_alive
from mlcicd.registry import ModelVersion, Registry

moto = moto_fixture()  # one moto server (AWS stand-in) for the session
MODEL_NAME = "mlci-it-model"
FEATURES = ["f0", "f1", "f2", "f3"]


@dataclass
class MlflowProject:
    """An MLflow store with model ``MODEL_NAME`` registered as versions "1" and "2"."""

    root: Path
    tracking_uri: str
    model_name: str
    versions: list[ModelVersion]
    rows: list[dict[str, float | None]]  # feature rows the models accept (JSON-ready)
    features: list[str] = field(default_factory=lambda: list(FEATURES))
    _downloads: dict[str, Path] = field(default_factory=dict)

    def release(self, version: str) -> Release:
        mv = next(v for v in self.versions if v.version == version)
        return Release(mv.name, mv.version, mv.uri, mv.run_id)

    def config(self, root: Path, port: int | None = None, **deploy: Any) -> Config:
        cfg = parse_config({
            "data": {"label": "label"},
            "mlflow": {"model_name": self.model_name, "tracking_uri": self.tracking_uri},
            "deploy": {"local": {"port": port or free_port()}, **deploy},
        })
        cfg.root = root
        return cfg

    def model_dir(self, version: str) -> Path:
        """The version's MLmodel directory, downloaded from the registry once per session."""
        if version not in self._downloads:
            dst = self.root / "downloads" / version
            self._downloads[version] = Registry(self.tracking_uri, self.model_name).download(version, dst)
        return self._downloads[version]


def _training_frame(n: int = 300, seed: int = 7) -> Any:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n, len(FEATURES))), columns=FEATURES)
    label = (frame.f0 + 0.5 * frame.f1 - 0.25 * frame.f2 > 0).astype(int)
    frame.loc[frame.sample(frac=0.05, random_state=seed).index, "f3"] = np.nan  # the imputer has work
    return frame, label


@pytest.fixture(scope="session")
def mlflow_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowProject]:
    """Two versions of an imputer + logistic regression pipeline, logged with mlcicd.log_model."""
    import mlflow
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from mlcicd.tracking import log_model

    root = tmp_path_factory.mktemp("mlflow-project")
    uri = f"sqlite:///{root}/mlflow.db"
    frame, label = _training_frame()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        client = mlflow.MlflowClient(tracking_uri=uri)
        # Artifacts inside the temp dir, not ./mlruns of whatever directory pytest runs in.
        experiment = client.create_experiment("mlci-integration", artifact_location=(root / "artifacts").as_uri())
        registry = Registry(uri, MODEL_NAME)
        versions = []
        # Strong vs heavy regularisation: the two versions disagree on some rows.
        for c in (1.0, 0.001):
            model = make_pipeline(SimpleImputer(strategy="median"), LogisticRegression(C=c)).fit(frame, label)
            with mlflow_uri(uri), mlflow.start_run(experiment_id=experiment) as run:
                model_uri = log_model(model, input_example=frame.head(5), params={"C": c})
            versions.append(registry.register(model_uri, run.info.run_id, {"C": str(c)}))
    rows = [{k: (None if v != v else float(v)) for k, v in r.items()} for r in frame.head(50).to_dict("records")]
    yield MlflowProject(root, uri, MODEL_NAME, versions, rows)


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


class Reaper:
    """Last-resort cleanup: SIGKILL every tracked PID that still runs when the test ends."""

    def __init__(self) -> None:
        self.pids: set[int] = set()

    def track(self, *pids: int | None) -> None:
        self.pids.update(p for p in pids if p)

    def kill(self, pids: Iterable[int] | None = None) -> list[int]:
        """Kill ``pids`` (default: all tracked); return those that were still running."""
        survivors = [pid for pid in (self.pids if pids is None else pids) if pid_alive(pid)]
        for pid in survivors:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                # Our servers and nginx's master lead their own process group: take nginx's workers too.
                if os.getpgid(pid) == pid:
                    os.killpg(pid, signal.SIGKILL)
                else:
                    os.kill(pid, signal.SIGKILL)
        return survivors


@pytest.fixture
def reaper() -> Iterator[Reaper]:
    r = Reaper()
    yield r
    r.kill()
