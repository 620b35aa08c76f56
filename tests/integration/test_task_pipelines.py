"""A regression model and a multiclass model through the whole pipeline, on real processes.

validate-data -> train -> gate -> deploy-canary -> monitor-canary -> promote, twice each (a
first release, then a challenger judged against the champion), with MLflow on SQLite, real
model servers and a real nginx splitting the traffic. The regression project is the
bundled example ``examples/diabetes`` (scikit-learn's diabetes data, a GE suite); the
multiclass one is built here from scikit-learn's wine data (three cultivars).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import requests
import yaml
from test_pipeline_tracking_server import release as shared_release
from test_pipeline_tracking_server import run

from mlcicd import plugins
from mlcicd.config import load_config
from mlcicd.delivery.targets import open_target
from mlcicd.delivery.targets.processes import free_port
from mlcicd.registry import Registry

pytestmark = pytest.mark.integration
EXAMPLES = Path(__file__).parents[2] / "examples"

WINE_TRAIN = '''\
import os
import sys

import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import mlcicd

train = pd.read_csv(os.environ["MLCI_TRAIN_DATA"])
X, y = train.drop(columns=["cultivar", "region"]).astype("float64"), train["cultivar"]
c = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=1000)).fit(X, y)
mlcicd.log_model(model, input_example=X.head(5), params={"C": c})
'''


def _diabetes(root: Path) -> Path:
    for name in ("mlci.yaml", "train.py", "expectations.json", "data"):
        src = EXAMPLES / "diabetes" / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, root / name)
    return root


def _wine(root: Path) -> Path:
    import numpy as np
    from sklearn.datasets import load_wine

    frame = load_wine(as_frame=True).frame.rename(columns={"target": "cultivar"})
    frame.columns = [c.replace("/", "_") for c in frame.columns]
    frame = frame.iloc[np.random.default_rng(7).permutation(len(frame))].reset_index(drop=True)
    frame["region"] = np.where(np.arange(len(frame)) % 3 == 0, "coast", "inland")  # a sensitive attribute
    (root / "data").mkdir()
    frame.iloc[:120].to_csv(root / "data" / "train.csv", index=False)
    frame.iloc[120:].to_csv(root / "data" / "eval.csv", index=False)
    (root / "train.py").write_text(WINE_TRAIN)
    config = {
        "version": 1, "project": "wine",
        "data": {"train": "data/train.csv", "eval": "data/eval.csv", "label": "cultivar", "sensitive": ["region"],
                 "quality": {"max_outlier_pct": 10}},
        "train": {"command": "python train.py"},
        "mlflow": {"model_name": "wine"},
        "gate": {"thresholds": {"accuracy": {"min": 0.85}, "f1": {"min": 0.85}},
                 "champion": {"accuracy": {"max_drop": 0.05}},
                 "non_inferiority": {"margin": 0.05},
                 "fairness": {"max_demographic_parity_difference": 0.3, "max_equalized_odds_difference": 0.4}},
        "deploy": {"local": {"port": 8080}, "canary": {
            "steps": [50], "min_requests": 100, "duration": 120, "interval": 2,
            "checks": {"error_rate": {"margin": 0.02, "max": 0.02},
                       "latency": {"quantiles": [0.5, 0.9], "tolerance_pct": 50, "max_p99_ms": 1000},
                       "predictions": {"max_divergence": 0.1}}}},
    }
    (root / "mlci.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return root


@pytest.fixture
def project(tmp_path, monkeypatch, request):
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    root = {"diabetes": _diabetes, "wine": _wine}[request.param](tmp_path)
    text = (root / "mlci.yaml").read_text().replace("port: 8080", f"port: {free_port()}")
    (root / "mlci.yaml").write_text(text)
    yield root
    open_target(load_config(root / "mlci.yaml")).shutdown()


def release(project: Path, command: str) -> dict:
    """train -> gate -> deploy-canary -> monitor-canary -> promote (the shared steps); the gate's report."""
    version, _, _ = shared_release(project, command)
    report = json.loads((project / "r" / "gate.json").read_text())
    assert report["outputs"]["model-version"] == version
    return report


def answers(project: Path, row: dict, n: int = 20) -> tuple[set[str], list]:
    port = load_config(project / "mlci.yaml").plugin_settings(plugins.TARGETS, "local").port
    versions, predictions = set(), []
    for _ in range(n):
        r = requests.post(f"http://127.0.0.1:{port}/invocations", json={"dataframe_records": [row]}, timeout=10)
        assert r.status_code == 200, r.text
        versions.add(r.headers["X-Model-Version"])
        predictions.append(r.json()["predictions"][0])
    return versions, predictions


@pytest.mark.parametrize("project", ["diabetes"], indirect=True)
def test_regression_example_through_the_whole_pipeline(project):
    code, validate, log = run(project, "validate-data")
    assert code == 0, log
    suite = validate.figures["expectations"]["train"]
    assert len(suite) > 50 and all(e["success"] for e in suite) and {e["engine"] for e in suite} == {"mlci"}

    first = release(project, "python train.py")
    assert first["figures"]["task"] == "regression" and first["figures"]["task_from"] == "model.task"
    assert 40 < first["figures"]["candidate"]["rmse"] < 65 and first["figures"]["candidate"]["r2"] > 0.3
    mae_by_sex = first["figures"]["fairness"]["columns"]["sex"]["by_group"]["mae"]
    assert set(mae_by_sex) == {"1.0", "2.0"}

    second = release(project, "python train.py --alpha 5")
    checks = {c["name"]: c for c in second["checks"]}
    assert checks["non_inferiority"]["status"] == "pass" and "paired bootstrap" in checks["non_inferiority"]["message"]
    assert checks["champion.rmse"]["status"] == "pass" and "allowed x1.05" in checks["champion.rmse"]["message"]
    assert checks["fairness"]["status"] == "pass" and "mae gap between groups" in checks["fairness"]["message"]
    v1, v2 = first["outputs"]["model-version"], second["outputs"]["model-version"]
    assert Registry.from_config(load_config(project / "mlci.yaml")).aliases() == {
        "champion": v2, "previous-champion": v1}
    row = {"age": 50.0, "sex": 1.0, "bmi": 27.0, "bp": 95.0, "s1": 190.0, "s2": 115.0, "s3": 48.0, "s4": 4.0,
           "s5": 4.6, "s6": 90.0}
    versions, predictions = answers(project, row)
    assert versions == {v2} and all(isinstance(p, float) and 25 < p < 350 for p in predictions)


@pytest.mark.parametrize("project", ["wine"], indirect=True)
def test_multiclass_model_through_the_whole_pipeline(project):
    code, _, log = run(project, "validate-data")
    assert code == 0, log
    first = release(project, "python train.py")
    assert first["figures"]["task"] == "multiclass" and first["figures"]["task_from"] == "detected"
    assert first["figures"]["candidate"]["f1"] > 0.85 and first["figures"]["candidate"]["roc_auc"] > 0.9
    region = first["figures"]["fairness"]["columns"]["region"]
    assert region["disparities"]["demographic_parity_difference"]["detail"].startswith("class ")
    second = release(project, "python train.py 0.3")
    checks = {c["name"]: c["status"] for c in second["checks"]}
    assert checks["non_inferiority"] == "pass" and checks["champion.accuracy"] == "pass"
    v2 = second["outputs"]["model-version"]
    import pandas as pd

    row = pd.read_csv(project / "data" / "eval.csv").drop(columns=["cultivar", "region"]).iloc[0].astype(float)
    versions, predictions = answers(project, row.to_dict())
    assert versions == {v2} and set(predictions) <= {0, 1, 2}
