"""deploy.strategy: blue-green on the local target, stage by stage as `mlci run` drives it.

The new version comes up at 0%, smoke checks go straight to its own server, then all traffic
switches at once while the old version stays warm; monitor-canary judges the new one for
keep_seconds and switches back on a regression; promote retires the old one.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import test_canary_faults as faults
from test_canary_faults import Rollout, _assert_users_never_saw_router_errors, _in_background

from mlcicd.delivery.traffic import probe_versions

pytestmark = pytest.mark.integration
rollout = faults.rollout  # the same project fixture as the canary fault tests


def _expected(project: Any, version: str, row: dict[str, Any]) -> list[Any]:
    """What the model itself predicts for ``row`` (loaded by MLflow, not asked through a server)."""
    import mlflow.pyfunc
    import pandas as pd

    return list(mlflow.pyfunc.load_model(str(project.model_dir(version))).predict(pd.DataFrame([row])))


def _blue_green(rollout: Rollout, smoke: list[dict[str, Any]], keep_seconds: float = 6.0) -> None:
    import yaml

    cfg = yaml.safe_load(rollout.config.read_text())
    cfg["deploy"]["strategy"] = "blue-green"
    cfg["deploy"]["blue_green"] = {"keep_seconds": keep_seconds, "smoke": smoke}
    # Judged alone on absolute limits: an anytime-valid p99 bound needs more requests than a few
    # seconds bring, so the latency limit only watches here (the error rate decides).
    cfg["deploy"]["canary"]["checks"]["latency"]["mode"] = "observe"
    rollout.config.write_text(yaml.safe_dump(cfg))


def test_smoke_checks_then_all_traffic_at_once_with_the_old_version_warm_until_promote(rollout, mlflow_project):
    row = mlflow_project.rows[0]
    _blue_green(rollout, [{"name": "first row", "request": {"dataframe_records": [row]},
                           "expect": [int(p) for p in _expected(mlflow_project, "2", row)]}])
    rollout.release_champion("1")
    with rollout.users() as users:
        code, result, log = rollout.stage("deploy-canary", model_uri=f"models:/{rollout.model_name}/2")
        assert code == 0, log
        assert {c.name: c.status.value for c in result.checks}["smoke.first row"] == "pass", log
        assert result.figures["canary_weight"] == 100 and "stays warm" in result.summary
        assert rollout.answering() == {"2": 30}  # every user request, at once
        state = rollout.target().state()
        assert state.stable is not None and state.stable.healthy and state.stable.release.version == "1"
        assert probe_versions(rollout.target().direct_url("stable"), mlflow_project.rows, 5).versions == {"1": 5}
        started = time.monotonic()
        code, result, log = rollout.stage("monitor-canary")
        assert code == 0 and result.outputs["decision"] == "promote", log
        assert time.monotonic() - started >= 6.0  # it watched the whole window the old version stayed warm
        code, _, log = rollout.stage("promote")
        assert code == 0, log
        assert rollout.answering() == {"2": 30}
        assert rollout.target().state().canary is None
    stats = users.stats.as_dict()
    _assert_users_never_saw_router_errors(stats)
    assert stats["codes"] == {"200": stats["sent"]} and stats["connection_errors"] == 0, stats
    assert rollout.registry().aliases()["champion"] == "2"


def test_a_version_that_fails_its_smoke_checks_never_serves_a_user(rollout, mlflow_project):
    row = mlflow_project.rows[0]
    wrong = [1 - int(p) for p in _expected(mlflow_project, "2", row)]
    _blue_green(rollout, [{"name": "first row", "request": {"dataframe_records": [row]}, "expect": wrong}])
    rollout.release_champion("1")
    with rollout.users() as users:
        code, result, log = rollout.stage("deploy-canary", model_uri=f"models:/{rollout.model_name}/2")
        assert code == 1, log
        assert "failed its smoke checks" in result.summary and "first row" in result.summary
        assert f"expected {wrong}".replace(" ", "") in result.summary.replace(" ", ""), result.summary
        assert rollout.answering() == {"1": 30}
        assert rollout.target().state().canary is None
    assert "2" not in users.stats.as_dict()["versions"]  # no user ever got an answer from v2
    registry = rollout.registry()
    assert "canary" not in registry.aliases() and registry.aliases()["champion"] == "1"
    assert "smoke checks" in registry.version("2").tags["mlci.rollback.reason"]


def test_a_regression_inside_the_window_switches_back_to_the_warm_version(rollout, faulty_model):
    _blue_green(rollout, [], keep_seconds=30.0)
    rollout.release_champion("1")
    with rollout.users() as users:
        code, _, log = rollout.stage("deploy-canary", model_uri=f"models:/{rollout.model_name}/{faulty_model.version}")
        assert code == 0, log
        assert rollout.answering() == {faulty_model.version: 30}
        thread, box = _in_background(lambda: rollout.stage("monitor-canary"))
        time.sleep(1.5)
        faulty_model.set("error")
        faulted = time.monotonic()
        thread.join(60)
        code, result, log = box[0]
        assert code == 1 and result.outputs["decision"] == "rollback", log
        print(f"\nswitched back {time.monotonic() - faulted:.1f} s after the fault: {result.summary}")
        assert rollout.answering() == {"1": 30}  # the old version was warm: no cold start
        code, _, log = rollout.stage("rollback")
        assert code == 0, log
    _assert_users_never_saw_router_errors(users.stats.as_dict())
