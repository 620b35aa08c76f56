"""gate against real MLflow stores: a SQLite store, and a real tracking server on 127.0.0.1."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from gate_fixtures import GateStore, log_models, make_frame, run_gate, write_project
from mlflow_globals import mlflow_uri
from mlflow_server import MlflowServer

from mlcicd.registry import CHALLENGER, CHAMPION, Registry

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GateStore]:
    root = tmp_path_factory.mktemp("gate-store")
    uri = f"sqlite:///{root}/mlflow.db"
    uris = log_models(uri, root / "artifacts")
    yield GateStore(root, uri, uris, make_frame(1000, seed=2))


def _project(store: GateStore, tmp_path: Path, name: str, **kw) -> tuple[Path, Registry]:
    # One registered model name per test: each starts with an empty registry history.
    return write_project(tmp_path, store.tracking_uri, name, **kw), Registry(store.tracking_uri, name)


def _checks(result) -> dict[str, str]:
    return {c.name: c.status.value for c in result.checks}


def test_first_model_passes_and_is_registered_as_challenger(store: GateStore, tmp_path: Path):
    config, registry = _project(store, tmp_path, "gate-first", gate={"thresholds": {"accuracy": {"min": 0.8}}})
    started = time.perf_counter()
    code, result, log = run_gate(config, store.model_uris["good"])
    seconds = time.perf_counter() - started
    assert code == 0, log
    assert result.outputs == {"model-version": "1", "model-uri": "models:/gate-first/1"}
    assert result.summary.startswith("gate passed: first model: no champion to compare with")
    checks = {c.name: c for c in result.checks}
    assert checks["non_inferiority"].message == "first model: no champion to compare with"
    assert checks["fairness"].status.value == "pass"
    assert registry.aliases() == {CHALLENGER: "1"}
    tags = registry.version("1").tags
    assert tags["mlci.gate.verdict"] == "pass"
    assert float(tags["mlci.gate.accuracy"]) > 0.8
    assert tags["mlci.gate.champion_version"] == "none"
    assert json.loads(tags["mlci.gate.report"])["checks"]["thresholds.accuracy"] == "pass"
    assert float(tags["mlci.gate.latency_p99_ms"]) > 0
    # The registered version loads (MLflow 3 keeps logged models outside the run's artifacts).
    import mlflow.pyfunc

    with mlflow_uri(store.tracking_uri):
        assert len(mlflow.pyfunc.load_model("models:/gate-first/1").predict(
            store.eval_frame[["f0", "f1", "accounts"]].astype("float64").head(3))) == 3
    report = json.loads((tmp_path / "mlci-report" / "gate.json").read_text())
    assert report["figures"]["candidate"]["roc_auc"] > 0.9
    assert set(report["figures"]["fairness"]["columns"]["group"]["selection_rates"]) == {"a", "b"}
    # The report's curves: the candidate's alone (no champion yet), downsampled, the same AUC as the metric.
    curves = report["figures"]["curves"]
    assert curves["kind"] == "roc_pr" and curves["average"] == "binary" and "champion" not in curves
    assert len(curves["candidate"]["roc"]["fpr"]) <= 100
    assert abs(curves["candidate"]["roc"]["auc"] - report["figures"]["candidate"]["roc_auc"]) < 1e-9
    assert (tmp_path / "mlci-report" / "gate.env").read_text().count("MODEL_VERSION=1") == 1
    print(f"\ngate wall time (first model, in-process): {seconds:.2f} s; stage phases: {report['figures']['seconds']}")


def test_rerun_reuses_the_version(store: GateStore, tmp_path: Path):
    config, registry = _project(store, tmp_path, "gate-rerun")
    assert run_gate(config, store.model_uris["good"])[0] == 0
    code, result, log = run_gate(config, store.model_uris["good"])
    assert code == 0, log
    assert result.outputs["model-version"] == "1"
    assert len(registry.client.search_model_versions("name='gate-rerun'")) == 1


def test_worse_candidate_than_champion_fails_and_is_not_registered(store: GateStore, tmp_path: Path):
    config, registry = _project(store, tmp_path, "gate-worse",
                                gate={"champion": {"f1": {"min_absolute_change": 0.01}}})
    assert run_gate(config, store.model_uris["good"])[0] == 0
    registry.set_alias(CHAMPION, "1")
    code, result, log = run_gate(config, store.model_uris["shuffled"])
    assert code == 1, log
    assert result.outputs == {"model-version": "", "model-uri": ""}
    checks = _checks(result)
    assert checks["non_inferiority"] == "fail" and checks["champion.f1"] == "fail"
    assert "non_inferiority" in result.summary and "vs champion" in result.summary
    assert "below margin -0.01 at 95%" in result.summary
    assert len(registry.client.search_model_versions("name='gate-worse'")) == 1  # nothing new registered
    assert registry.aliases() == {CHALLENGER: "1", CHAMPION: "1"}
    ni = result.figures["non_inferiority"]
    assert ni["lower"] < -0.2 and ni["losses"] > ni["wins"]
    assert result.figures["champion"]["version"] == "1"
    junit = (tmp_path / "mlci-report" / "gate.junit.xml").read_text()
    assert 'name="non_inferiority"' in junit and "<failure" in junit


def test_good_candidate_against_champion_passes(store: GateStore, tmp_path: Path):
    config, registry = _project(store, tmp_path, "gate-same")
    assert run_gate(config, store.model_uris["good"])[0] == 0
    registry.set_alias(CHAMPION, "1")
    code, result, log = run_gate(config, store.model_uris["good"])
    assert code == 0, log
    assert result.figures["non_inferiority"]["accuracy_difference"] == 0
    assert "lower bound +0.000 above margin -0.01 at 95%" in result.summary


def test_unfair_candidate_fails_fairness(store: GateStore, tmp_path: Path):
    config, registry = _project(store, tmp_path, "gate-unfair",
                                gate={"fairness": {"max_demographic_parity_difference": 0.1}})
    code, result, log = run_gate(config, store.model_uris["unfair"])
    assert code == 1, log
    assert _checks(result)["fairness"] == "fail"
    assert result.summary.startswith("gate failed on fairness: demographic parity difference")
    rates = result.figures["fairness"]["columns"]["group"]["selection_rates"]
    assert rates["a"] - rates["b"] > 0.3
    assert registry.aliases() == {}


def test_no_sensitive_columns_skips_fairness_with_how_to_enable(store: GateStore, tmp_path: Path):
    config, _ = _project(store, tmp_path, "gate-nosens", sensitive=[])
    code, result, log = run_gate(config, store.model_uris["unfair"], register="false")
    assert code == 0, log
    fairness = next(c for c in result.checks if c.name == "fairness")
    assert fairness.status.value == "skip" and "sensitive" in fairness.message
    assert result.outputs == {"model-version": "", "model-uri": ""}
    assert "Not registered" in result.summary


@pytest.mark.parametrize(("case", "expected"), [
    ("missing-eval", "eval data file not found"),
    ("no-label", "column 'label'"),
    ("unknown-metric", "gate.thresholds.accurcy"),
    ("missing-sensitive", "data.sensitive"),
    ("bad-model-uri", "input model-uri"),
    ("text-label", "holds text (e.g. 'no') but the model"),
    ("no-store", "no MLflow store at"),
])
def test_bad_inputs_exit_2_naming_the_key(store: GateStore, tmp_path: Path, case: str, expected: str):
    gate = {"thresholds": {"accurcy": {"min": 0.8}}} if case == "unknown-metric" else None
    frame = store.eval_frame.drop(columns=["label"]) if case == "no-label" else None
    if case == "text-label":
        frame = store.eval_frame.assign(label=store.eval_frame["label"].map({0: "no", 1: "yes"}))
    config, _ = _project(store, tmp_path, f"gate-bad-{case}", gate=gate, eval_frame=frame,
                         sensitive=["gender"] if case == "missing-sensitive" else None)
    if case == "missing-eval":
        (tmp_path / "data" / "eval.csv").unlink()
    model_uri = "runs:/0123456789abcdef0123456789abcdef/model" if case == "bad-model-uri" \
        else store.model_uris["good"]
    inputs = {"tracking-uri": f"sqlite:///{tmp_path}/missing.db"} if case == "no-store" else {}
    code, result, log = run_gate(config, model_uri, **inputs)
    assert code == 2 and result is None, log
    assert expected in log
    if case == "unknown-metric":
        assert "did you mean `accuracy`?" in log and "valid metrics: accuracy, precision" in log
    if case == "missing-eval":
        assert "data/eval.csv" in log and "data.eval" in log


def test_champion_that_cannot_score_the_data_is_inconclusive(store: GateStore, tmp_path: Path):
    """The champion needs a column the new evaluation data dropped: no comparison, so no pass (exit 3)."""
    config, registry = _project(store, tmp_path, "gate-incomparable", sensitive=[])
    assert run_gate(config, store.model_uris["unfair"])[0] == 0  # this model takes `group` as a feature
    registry.set_alias(CHAMPION, "1")
    config = write_project(tmp_path, store.tracking_uri, "gate-incomparable", sensitive=[],
                           eval_frame=store.eval_frame.drop(columns=["group"]))
    code, result, log = run_gate(config, store.model_uris["good"])
    assert code == 3, log
    assert result.verdict.value == "inconclusive" and result.outputs["model-version"] == ""
    assert "champion v1 could not be evaluated: the evaluation data lacks columns" in result.summary
    assert "group" in result.summary
    assert registry.aliases() == {CHALLENGER: "1", CHAMPION: "1"}


def test_gate_against_a_real_tracking_server(mlflow_server: MlflowServer, tmp_path: Path):
    uris = log_models(mlflow_server.url, None)  # artifacts go through the server's proxy
    config = write_project(tmp_path, mlflow_server.url, "gate-remote",
                           gate={"thresholds": {"accuracy": {"min": 0.8}}})
    registry = Registry(mlflow_server.url, "gate-remote")
    code, result, log = run_gate(config, uris["good"])
    assert code == 0, log
    assert result.outputs["model-uri"] == "models:/gate-remote/1"
    assert registry.version("1").tags["mlci.gate.verdict"] == "pass"
    registry.set_alias(CHAMPION, "1")
    code, result, log = run_gate(config, uris["shuffled"])
    assert code == 1, log
    assert result.figures["champion"]["version"] == "1"
    assert registry.aliases() == {CHALLENGER: "1", CHAMPION: "1"}
