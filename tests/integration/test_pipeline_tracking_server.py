"""Every stage through the runner against a real MLflow tracking server on 127.0.0.1.

Two releases (first release, then a canary), a rollback to previous-champion, and
re-runs of promote/rollback that must converge without changing anything.
"""

import io
import shutil
from pathlib import Path

import pytest

from mlcicd import plugins
from mlcicd.ci.local import LocalAdapter
from mlcicd.config import load_config
from mlcicd.delivery.targets import open_target
from mlcicd.delivery.targets.processes import free_port
from mlcicd.delivery.traffic import probe_versions
from mlcicd.registry import Registry
from mlcicd.runner import execute

pytestmark = pytest.mark.integration
EXAMPLE = Path(__file__).parents[2] / "examples" / "credit-risk"
ROW = {"age": 40.0, "income": 52000.0, "debt_ratio": 0.3, "credit_lines": 4.0, "late_payments": 1.0,
       "employment": "salaried", "region": "north", "gender": "female"}


@pytest.fixture
def project(tmp_path, mlflow_server, monkeypatch):
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    for name in ("mlci.yaml", "train.py", "data"):
        src = EXAMPLE / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / name)
    text = (tmp_path / "mlci.yaml").read_text()
    text = text.replace("tracking_uri: sqlite:///.mlci/mlflow.db", f"tracking_uri: {mlflow_server.url}")
    text = text.replace("port: 8080", f"port: {free_port()}")
    (tmp_path / "mlci.yaml").write_text(text)
    yield tmp_path
    open_target(load_config(tmp_path / "mlci.yaml")).shutdown()


def run(project, stage, **inputs):
    stream = io.StringIO()
    values = {"config": str(project / "mlci.yaml"), "report-dir": str(project / "r"),
              **{k.replace("_", "-"): str(v) for k, v in inputs.items()}}
    code, result = execute(stage, values, env={}, ci=LocalAdapter({}, stream))
    assert result is not None or code != 0, stream.getvalue()
    return code, result, stream.getvalue()


def release(project, command):
    code, train, log = run(project, "train", command=command)
    assert code == 0, log
    code, gate, log = run(project, "gate", model_uri=train.outputs["model-uri"])
    assert code == 0, log
    code, deploy, log = run(project, "deploy-canary")
    assert code == 0, log
    # A healthy canary ends the bake once every promote claim is shown (~70 s at this rate on a quiet
    # machine, as the bake plan says); 180 s leaves room for a loaded CI machine.
    code, monitor, log = run(project, "monitor-canary", generate_traffic=60, duration=180, interval=1)
    assert code == 0 and monitor.outputs["decision"] == "promote", log
    code, promote, log = run(project, "promote")
    assert code == 0, log
    return gate.outputs["model-version"], deploy, promote


def versions_answering(project, n=30):
    port = load_config(project / "mlci.yaml").plugin_settings(plugins.TARGETS, "local").port
    answers = probe_versions(f"http://127.0.0.1:{port}", [ROW], n)
    assert answers.codes == {200: n}
    return set(answers.versions)


def test_all_stages_against_tracking_server(project, mlflow_server):
    code, _, log = run(project, "validate-data")
    assert code == 0, log

    v1, deploy, _ = release(project, "python train.py")
    assert deploy.outputs["stable-version"] == "" and deploy.figures["first_release"] is True
    v2, deploy, promote = release(project, "python train.py --C 0.5")
    assert deploy.outputs["stable-version"] == v1
    assert promote.outputs == {"champion-version": v2, "previous-champion-version": v1}
    registry = Registry(mlflow_server.url, "credit-risk")
    assert registry.aliases() == {"champion": v2, "previous-champion": v1}
    assert versions_answering(project) == {v2}

    # Re-running promote after it finished changes nothing.
    code, again, _ = run(project, "promote")
    assert code == 0 and "already champion" in again.summary

    code, back, log = run(project, "rollback", to="previous-champion", reason="latency complaints")
    assert code == 0, log
    assert back.outputs == {"champion-version": v1, "rolled-back-version": v2}
    assert registry.aliases() == {"champion": v1}
    assert registry.version(v2).tags["mlci.rollback.reason"] == "latency complaints"
    assert versions_answering(project) == {v1}
    state = open_target(load_config(project / "mlci.yaml")).state()
    assert state.canary is None and state.stable.release.version == v1 and state.stable.healthy

    code, again, _ = run(project, "rollback", to="previous-champion")
    assert code == 0 and "nothing to restore" in again.summary
    code, again, _ = run(project, "rollback")
    assert code == 0 and again.outputs["rolled-back-version"] == ""
