"""The gate's checks, without MLflow: every task, tolerances, verdict sentence, tags, config validation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mlcicd.config import parse_config
from mlcicd.errors import ConfigError
from mlcicd.evaluation.gate_checks import NO_CHAMPION, GateChecks, TaskMismatch, summary
from mlcicd.evaluation.scoring import Scored
from mlcicd.registry import ModelVersion
from mlcicd.report import Status, Verdict
from mlcicd.stages.gate import _without_credentials

RNG = np.random.default_rng(0)
Y = RNG.integers(0, 2, 1000)
GROUP = np.where(RNG.random(1000) < 0.5, "a", "b")


def _gate(**gate):
    return parse_config({"data": {"label": "y"}, "mlflow": {"model_name": "m"},
                         "gate": {"latency_rows": 0, **gate}}).gate


def _scored(accuracy: float, seed: int = 1, *, proba: bool = True) -> Scored:
    rng = np.random.default_rng(seed)
    pred = np.where(rng.random(len(Y)) < accuracy, Y, 1 - Y)
    p1 = np.clip(0.5 * pred + 0.5 * rng.random(len(Y)), 0, 1)
    return Scored("runs:/abc/model", None, None, pred, [0, 1],
                  np.column_stack([1 - p1, p1]) if proba else None,
                  "" if proba else "the model has no predict_proba")


CHAMPION = ModelVersion("m", "3", "run", "models:/x", {})


def _judge(gate, candidate, champion=None, sensitive=None, y=None, task=None):
    return GateChecks(gate, Y if y is None else y, candidate, champion, CHAMPION if champion is not None else None,
                      sensitive or {}, task=task)


def _by_name(checks):
    return {c.name: c for c in checks}


def test_first_model_skips_champion_checks_with_the_reason():
    gate = _gate(thresholds={"accuracy": {"min": 0.7}}, champion={"f1": {"min_absolute_change": 0.01}})
    judge = _judge(gate, _scored(0.9))
    checks = _by_name(judge.checks(""))
    assert checks["thresholds.accuracy"].status is Status.PASS
    assert checks["champion.f1"].status is Status.SKIP and checks["champion.f1"].message == NO_CHAMPION
    assert checks["non_inferiority"].status is Status.SKIP and checks["non_inferiority"].message == NO_CHAMPION
    assert checks["fairness"].status is Status.SKIP and "data: {sensitive: [gender]}" in checks["fairness"].message
    text = summary(Verdict.PASS, list(checks.values()), judge, "")
    assert text.startswith("gate passed: first model: no champion to compare with")


def test_worse_candidate_fails_non_inferiority_with_a_deciding_sentence():
    gate = _gate(non_inferiority={"metric": "accuracy", "margin": 0.01, "confidence": 0.95})
    judge = _judge(gate, _scored(0.80, seed=2), _scored(0.90, seed=3))
    checks = judge.checks("")
    ni = _by_name(checks)["non_inferiority"]
    assert ni.status is Status.FAIL
    assert "vs champion" in ni.message and "lower bound" in ni.message and "below margin -0.01 at 95%" in ni.message
    text = summary(Verdict.FAIL, checks, judge, "")
    assert text.startswith("gate failed on non_inferiority: accuracy 0.7") and "vs champion 0.9" in text
    figures = judge.figures()
    assert figures["non_inferiority"]["lower"] < -0.05
    delta = figures["candidate"]["accuracy"] - figures["champion"]["accuracy"]
    assert figures["deltas"]["accuracy"] == pytest.approx(delta)
    assert figures["champion"]["version"] == "3"


def test_error_rate_non_inferiority_is_phrased_as_an_upper_bound():
    gate = _gate(non_inferiority={"metric": "error_rate", "margin": 0.05})
    check = _by_name(_judge(gate, _scored(0.9, seed=4), _scored(0.9, seed=5)).checks(""))["non_inferiority"]
    assert check.status is Status.PASS
    assert check.message.startswith("error_rate 0.") and "upper bound" in check.message
    assert "below margin +0.05" in check.message


def test_change_thresholds_use_direction_of_the_metric():
    gate = _gate(champion={"accuracy": {"min_absolute_change": 0.2}, "error_rate": {}}, non_inferiority=None)
    checks = _by_name(_judge(gate, _scored(0.9, seed=6), _scored(0.8, seed=7)).checks(""))
    assert checks["champion.accuracy"].status is Status.FAIL  # +0.1 is not +0.2
    assert "must be at least 0.2 above" in checks["champion.accuracy"].message
    assert checks["champion.error_rate"].status is Status.PASS  # lower error: no regression
    assert checks["champion.error_rate"].expected.startswith("≤")
    assert checks["non_inferiority"].status is Status.SKIP


def test_fairness_reports_group_rates_and_fails_over_the_limit():
    pred = np.where(GROUP == "a", 1, Y)  # everyone in group a is selected
    candidate = Scored("runs:/abc/model", None, None, pred, [0, 1])
    judge = _judge(_gate(fairness={"max_demographic_parity_difference": 0.1}), candidate,
                   sensitive={"group": GROUP})
    check = _by_name(judge.checks(""))["fairness"]
    assert check.status is Status.FAIL and "across 'group'" in check.message
    assert "exceeds the limit 0.1" in check.message and "95% lower bound" in check.message
    rates = judge.figures()["fairness"]["columns"]["group"]["selection_rates"]
    assert rates["a"] == 1.0 and 0.3 < rates["b"] < 0.7


def test_unmeasurable_metrics_are_skipped_with_the_reason():
    gate = _gate(thresholds={"roc_auc": {"min": 0.8}, "latency_p99_ms": {"max": 50}})
    checks = _by_name(_judge(gate, _scored(0.9, proba=False)).checks(""))
    assert checks["thresholds.roc_auc"].status is Status.SKIP
    assert "predict_proba" in checks["thresholds.roc_auc"].message
    assert "gate.latency_rows: 0" in checks["thresholds.latency_p99_ms"].message


def test_champion_that_cannot_score_makes_the_gate_inconclusive():
    judge = _judge(_gate(), _scored(0.9))
    checks = judge.checks("champion v3 cannot score the evaluation data: lacks column x")
    assert _by_name(checks)["champion"].status is Status.WARN
    assert summary(Verdict.INCONCLUSIVE, checks, judge, "champion v3 cannot score").startswith("gate inconclusive")


def test_tags_carry_the_evidence(tmp_path: Path):
    data = tmp_path / "eval.csv"
    data.write_text("y\n1\n")
    gate = _gate(non_inferiority={"margin": 0.1})
    judge = _judge(gate, _scored(0.9), _scored(0.9, seed=9), sensitive={"group": GROUP})
    checks = judge.checks("")
    tags = judge.tags(checks, Verdict.PASS, data)
    assert tags["mlci.gate.verdict"] == "pass"
    assert float(tags["mlci.gate.accuracy"]) == pytest.approx(judge.metrics["accuracy"], abs=1e-6)
    assert tags["mlci.gate.champion_version"] == "3"
    assert len(tags["mlci.gate.eval_data_sha256"]) == 64
    report = json.loads(tags["mlci.gate.report"])
    assert report["verdict"] == "pass" and report["checks"]["non_inferiority"] == "pass"
    assert all(isinstance(v, str) and len(v) <= 5000 for v in tags.values())


@pytest.mark.parametrize(("gate", "key", "hint"), [
    ({"thresholds": {"accurcy": {"min": 0.8}}}, "gate.thresholds.accurcy", "did you mean `accuracy`?"),
    ({"thresholds": {"auc": {"min": 0.8}}}, "gate.thresholds.auc", "valid metrics: accuracy, precision"),
    ({"champion": {"loss": {}}}, "gate.champion.loss", "valid metrics:"),
    ({"thresholds": {"accuracy": {}}}, "gate.thresholds.accuracy", "min: 0.8"),
    ({"thresholds": {"fpr": {"min": 0.5, "max": 0.1}}}, "gate.thresholds.fpr", "swap"),
    ({"latency_rows": -1}, "gate.latency_rows", "latency_rows: 200"),
    # Tolerances of the wrong sign or direction.
    ({"champion": {"accuracy": {"max_drop": -0.01}}}, "gate.champion.accuracy.max_drop", "min_absolute_change"),
    ({"champion": {"latency_p99_ms": {"max_ratio": 0.9}}}, "gate.champion.latency_p99_ms.max_ratio", "1.1"),
    ({"champion": {"rmse": {"max_drop": 1.0}}}, "gate.champion.rmse.max_drop", "use `max_increase`"),
    ({"champion": {"accuracy": {"min_ratio": 1.5}}}, "gate.champion.accuracy.min_ratio", "0.98"),
    ({"champion": {"accuracy": {"min_absolute_change": -0.01}}}, "gate.champion.accuracy.min_absolute_change",
     "max_drop: 0.01"),
    ({"champion": {"accuracy": {"max_drop": 0.01, "min_absolute_change": 0.01}}}, "gate.champion.accuracy",
     "either"),
    ({"non_inferiority": {"margin": -0.1}}, "gate.non_inferiority.margin", "margin: 0.01"),
    ({"fairness": {"max_group_difference": {"roc_auc": 0.1}}}, "gate.fairness.max_group_difference.roc_auc",
     "use one of"),
    ({"fairness": {"min_demographic_parity_ratio": 1.5}}, "gate.fairness.min_demographic_parity_ratio", "0.1"),
])
def test_gate_config_errors_name_the_key(gate, key, hint):
    with pytest.raises(ConfigError) as err:
        parse_config({"data": {"label": "y"}, "mlflow": {"model_name": "m"}, "gate": gate})
    assert f"mlci.yaml: {key}" in str(err.value) and hint in str(err.value)


@pytest.mark.parametrize(("model", "gate", "key", "hint"), [
    ({"task": "regresion"}, {}, "model.task", "binary, multiclass, regression"),
    ({"task": "binary"}, {"thresholds": {"rmse": {"max": 10}}}, "gate.thresholds.rmse", "not a metric of a binary"),
    ({"task": "regression"}, {"non_inferiority": {"metric": "accuracy"}}, "gate.non_inferiority.metric", "rmse, mae"),
    ({"task": "regression"}, {"fairness": {"max_group_difference": {"accuracy": 0.1}}},
     "gate.fairness.max_group_difference.accuracy", "rmse, mae"),
])
def test_wrong_task_names_the_key(model, gate, key, hint):
    with pytest.raises(ConfigError) as err:
        parse_config({"data": {"label": "y"}, "mlflow": {"model_name": "m"}, "model": model, "gate": gate})
    assert f"mlci.yaml: {key}" in str(err.value) and hint in str(err.value)


def test_tolerance_messages_show_allowed_and_observed():
    gate = _gate(champion={"accuracy": {"max_drop": 0.08}, "error_rate": {"max_increase": 0.01}}, non_inferiority=None)
    checks = _by_name(_judge(gate, _scored(0.86, seed=6), _scored(0.90, seed=7)).checks(""))
    within = checks["champion.accuracy"]
    assert within.status is Status.PASS and "allowed 0.08" in within.message and "dropped 0.0" in within.message
    over = checks["champion.error_rate"]
    assert over.status is Status.FAIL and "allowed 0.01" in over.message and "rose 0.0" in over.message
    assert "not met" in over.message


def test_regression_model_thresholds_champion_and_paired_loss_bootstrap():
    rng = np.random.default_rng(4)
    y = rng.normal(150, 50, 800)
    good = Scored("runs:/a/model", None, None, y + rng.normal(0, 20, 800), None)
    worse = Scored("runs:/b/model", None, None, y + rng.normal(0, 40, 800), None)
    gate = _gate(thresholds={"rmse": {"max": 30}, "r2": {"min": 0.3}}, champion={"rmse": {"max_ratio": 1.1}},
                 non_inferiority={"margin": 2.0})
    judge = _judge(gate, worse, good, y=y)
    assert judge.task == "regression" and judge.task_origin == "detected"
    checks = _by_name(judge.checks(""))
    assert checks["thresholds.rmse"].status is Status.FAIL and checks["thresholds.r2"].status is Status.PASS
    assert checks["champion.rmse"].status is Status.FAIL and "allowed x1.1" in checks["champion.rmse"].message
    ni = checks["non_inferiority"]
    assert ni.status is Status.FAIL and ni.message.startswith("rmse 38.5 vs champion 20.1")
    assert "paired bootstrap" in ni.message
    assert judge.figures()["non_inferiority"]["metric"] == "rmse"
    same = _by_name(_judge(gate, good, good, y=y).checks(""))["non_inferiority"]
    assert same.status is Status.PASS and "improvement lower bound +0" in same.message
    assert summary(Verdict.FAIL, list(checks.values()), judge, "").startswith("gate failed on non_inferiority: rmse")


def test_multiclass_model():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 3, 900)
    pred = np.where(rng.random(900) < 0.8, y, rng.integers(0, 3, 900))
    judge = _judge(_gate(thresholds={"f1": {"min": 0.5}}), Scored("runs:/a/model", None, None, pred, [0, 1, 2]),
                   y=y, sensitive={"group": np.where(rng.random(900) < 0.5, "a", "b")})
    checks = _by_name(judge.checks(""))
    assert judge.task == "multiclass" and checks["thresholds.f1"].status is Status.PASS
    assert checks["fairness"].status is Status.PASS
    assert judge.figures()["fairness"]["columns"]["group"]["disparities"]["demographic_parity_difference"]["detail"]


def test_task_that_contradicts_the_data_is_an_error():
    text = Scored("runs:/a/model", None, None, np.where(Y == 1, "yes", "no"), None)
    with pytest.raises(TaskMismatch) as err:
        _judge(_gate(), text, y=np.where(Y == 1, "yes", "no"), task="regression")
    assert err.value.key == "model.task"
    three = Scored("runs:/a/model", None, None, np.arange(len(Y)) % 3, None)
    with pytest.raises(TaskMismatch):
        _judge(_gate(), three, y=np.arange(len(Y)) % 3, task="binary")
    with pytest.raises(TaskMismatch) as err:
        _judge(_gate(thresholds={"rmse": {"max": 1}}), _scored(0.9))  # detected binary: rmse does not apply
    assert err.value.key == "gate.thresholds.rmse"


def test_credentials_never_reach_the_report():
    assert _without_credentials("https://u:secret@mlflow.example.com:5000/x") == "https://mlflow.example.com:5000/x"
    assert _without_credentials("sqlite:////tmp/m.db") == "sqlite:////tmp/m.db"
