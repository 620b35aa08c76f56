"""Data, models and projects for the gate's integration tests.

Three real scikit-learn models logged with :func:`mlcicd.tracking.log_model`:

``good``      logistic regression on the numeric features (~0.9 accuracy, fair)
``shuffled``  the same, trained on shuffled labels: a clearly worse candidate
``unfair``    uses the sensitive ``group`` column and was trained on a label biased by it

The evaluation CSV holds an integer column (``accounts``) that the models were trained on
as float, as in real projects: the gate must conform it to the signature, not fail.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlflow_globals import mlflow_uri

from mlcicd.ci.local import LocalAdapter
from mlcicd.report import StageResult
from mlcicd.runner import execute

NUMERIC = ["f0", "f1", "accounts"]
LABEL = "label"
SENSITIVE = "group"
ENV = {"MLFLOW_DISABLE_TELEMETRY": "true"}


def make_frame(n: int, seed: int) -> Any:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "f0": rng.normal(size=n).round(4),
        "f1": rng.normal(size=n).round(4),
        "accounts": rng.integers(0, 5, n),
        SENSITIVE: rng.choice(["a", "b"], n),
    })
    signal = frame.f0 + 0.5 * frame.f1 + 0.3 * (frame.accounts - 2) + rng.normal(scale=0.3, size=n)
    frame[LABEL] = (signal > 0).astype(int)
    return frame


def train_models(frame: Any) -> dict[str, Any]:
    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    X = frame[NUMERIC].astype("float64")
    y = frame[LABEL]
    good = LogisticRegression().fit(X, y)
    shuffled = LogisticRegression().fit(X, np.random.default_rng(0).permutation(y.to_numpy()))
    biased = ((frame.f0 + 0.5 * frame.f1 + 2.0 * (frame[SENSITIVE] == "a") - 1.0) > 0).astype(int)
    X_group = frame[[*NUMERIC, SENSITIVE]].astype({c: "float64" for c in NUMERIC})
    unfair = make_pipeline(
        ColumnTransformer([("group", OneHotEncoder(), [SENSITIVE])], remainder="passthrough"),
        LogisticRegression(),
    ).fit(X_group, biased)
    return {"good": (good, X), "shuffled": (shuffled, X), "unfair": (unfair, X_group)}


@dataclass
class GateStore:
    """A SQLite MLflow store with the three models logged (not registered)."""

    root: Path
    tracking_uri: str
    model_uris: dict[str, str]  # kind -> runs:/<id>/model
    eval_frame: Any


def log_models(tracking_uri: str, artifact_root: Path | None) -> dict[str, str]:
    """Log the three models to ``tracking_uri``; artifacts under ``artifact_root`` (None: the server's)."""
    import mlflow

    from mlcicd.tracking import log_model

    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    location = artifact_root.as_uri() if artifact_root is not None else None
    experiment = client.create_experiment("gate-it", artifact_location=location)
    uris = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", tracking_uri)
        mp.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        with mlflow_uri(tracking_uri):
            for kind, (model, X) in train_models(make_frame(1500, seed=1)).items():
                with mlflow.start_run(experiment_id=experiment, run_name=kind):
                    uris[kind] = log_model(model, input_example=X.head(5))
    return uris


def write_project(root: Path, tracking_uri: str, model_name: str, *, gate: dict[str, Any] | None = None,
                  eval_frame: Any = None, sensitive: list[str] | None = None) -> Path:
    """mlci.yaml plus data/eval.csv in ``root``; returns the config path."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "data").mkdir(exist_ok=True)
    frame = make_frame(1000, seed=2) if eval_frame is None else eval_frame
    frame.to_csv(root / "data" / "eval.csv", index=False)
    config = {
        "version": 1,
        "data": {"eval": "data/eval.csv", "label": LABEL,
                 "sensitive": [SENSITIVE] if sensitive is None else sensitive},
        "mlflow": {"model_name": model_name, "tracking_uri": tracking_uri},
        "gate": {"latency_rows": 50, **(gate or {})},
    }
    path = root / "mlci.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def run_gate(config: Path, model_uri: str, **inputs: str) -> tuple[int, StageResult | None, str]:
    stream = io.StringIO()
    values = {"config": str(config), "model-uri": model_uri, "report-dir": str(config.parent / "mlci-report"),
              **inputs}
    code, result = execute("gate", values, env=dict(ENV), ci=LocalAdapter({}, stream))
    return code, result, stream.getvalue()
