"""train runs the user's command under a real MLflow run and records lineage."""

import io
import os
import shutil
from pathlib import Path

import pytest
from mlflow_globals import mlflow_uri

from mlcicd.ci.local import LocalAdapter
from mlcicd.runner import execute

EXAMPLE = Path(__file__).parents[2] / "examples" / "credit-risk"
pytestmark = pytest.mark.integration


@pytest.fixture
def project(tmp_path):
    for name in ("mlci.yaml", "train.py", "data"):
        src = EXAMPLE / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / name)
    return tmp_path


def _run(project, **inputs):
    stream = io.StringIO()
    values = {"config": str(project / "mlci.yaml"), "report-dir": str(project / "r"), **inputs}
    code, result = execute("train", values, env={"MLFLOW_DISABLE_TELEMETRY": "true"}, ci=LocalAdapter({}, stream))
    return code, result, stream.getvalue()


def test_train_logs_model_with_lineage(project):
    from mlflow.tracking import MlflowClient

    code, result, log = _run(project)
    assert code == 0, log
    run_id = result.outputs["run-id"]
    assert result.outputs["model-uri"] == f"runs:/{run_id}/model"
    client = MlflowClient(tracking_uri=f"sqlite:///{project}/.mlci/mlflow.db")
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert len(run.data.params["data.train.sha256"]) == 64
    assert run.data.params["data.train.path"] == "data/train.csv"
    assert run.data.metrics["train_accuracy"] > 0.7
    assert run.data.tags["mlci.command"] == "python train.py"
    assert [a.path for a in client.list_artifacts(run_id, "mlci")] == ["mlci/mlci.yaml"]
    import mlflow.pyfunc

    with mlflow_uri(f"sqlite:///{project}/.mlci/mlflow.db"):
        model = mlflow.pyfunc.load_model(result.outputs["model-uri"])
    import pandas as pd

    rows = pd.read_csv(project / "data" / "eval.csv").drop(columns=["default"]).head(3).astype(
        {c: "float64" for c in ("age", "income", "debt_ratio", "credit_lines", "late_payments")})
    assert len(model.predict(rows)) == 3


def test_failing_command_fails_the_run(project):
    (project / "train.py").write_text("import sys\nprint('boom: no GPU')\nsys.exit(3)\n")
    code, result, _ = _run(project)
    assert code == 1
    assert "exit 3" in result.summary and "boom: no GPU" in result.summary


def test_command_that_logs_no_model(project):
    (project / "train.py").write_text("print('trained, forgot to log')\n")
    code, result, _ = _run(project)
    assert code == 1 and "mlcicd.log_model(model)" in result.summary


def test_missing_command_binary_is_usage_error(project):
    code, result, log = _run(project, command="no-such-trainer --fast")
    assert code == 2 and result is None
    assert "training command not found: 'no-such-trainer'" in log


def test_stages_leave_mlflow_globals_alone(project):
    """In-process callers (the demo, tests) must not inherit a stage's tracking URI."""
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    def state():
        return tracking_utils._tracking_uri, registry_utils._registry_uri, os.environ.get("MLFLOW_TRACKING_URI")

    before = state()
    code, result, log = _run(project)
    assert code == 0, log
    stream = io.StringIO()
    code, _ = execute("gate", {"config": str(project / "mlci.yaml"), "report-dir": str(project / "r"),
                               "model-uri": result.outputs["model-uri"]},
                      env={}, ci=LocalAdapter({}, stream))
    assert code == 0, stream.getvalue()
    assert state() == before
