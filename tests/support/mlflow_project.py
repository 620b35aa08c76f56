"""An MLflow store with one registered model in two versions that answer differently.

Built once per integration session (the ``mlflow_project`` fixture) from a small sklearn
pipeline logged with ``mlcicd.log_model``; tests deploy its versions, download their files
and write configs that point at it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from mlflow_globals import mlflow_uri

from mlcicd.config import Config, parse_config
from mlcicd.delivery.targets.base import Release
from mlcicd.delivery.targets.processes import free_port
from mlcicd.registry import ModelVersion, Registry

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


def create_mlflow_project(root: Path) -> MlflowProject:
    """Log and register the two versions in a new SQLite store under ``root``."""
    import mlflow
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from mlcicd.tracking import log_model

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
    return MlflowProject(root, uri, MODEL_NAME, versions, rows)
