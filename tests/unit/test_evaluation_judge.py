"""The gate's rules, without MLflow: checks, verdict sentence, tags, config validation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mlcicd.config import parse_config
from mlcicd.errors import ConfigError
from mlcicd.evaluation.judge import NO_CHAMPION, Judge, summary
from mlcicd.evaluation.scoring import Scored
from mlcicd.registry import ModelVersion
from mlcicd.report import Status, Verdict
from mlcicd.stages.gate import _check_gate_config, _without_credentials

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


def _judge(gate, candidate, champion=None, sensitive=None):
    return Judge(gate, Y, candidate, champion, CHAMPION if champion is not None else None, sensitive or {})


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
    assert "exceeds the limit 0.1" in check.message
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
])
def test_gate_config_errors_name_the_key(gate, key, hint):
    cfg = parse_config({"data": {"label": "y"}, "mlflow": {"model_name": "m"}, "gate": gate})
    with pytest.raises(ConfigError) as err:
        _check_gate_config(cfg.gate, "mlci.yaml")
    assert f"mlci.yaml: {key}" in str(err.value) and hint in str(err.value)


def test_credentials_never_reach_the_report():
    assert _without_credentials("https://u:secret@mlflow.example.com:5000/x") == "https://mlflow.example.com:5000/x"
    assert _without_credentials("sqlite:////tmp/m.db") == "sqlite:////tmp/m.db"
