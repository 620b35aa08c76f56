"""Faults a canary release must survive, each on real processes: model servers, nginx, MLflow.

Users send traffic through nginx for the whole test; after every fault the router keeps
answering with a healthy version, and the deploy converges when the stage is re-run.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from consumer import answering_versions
from runners import require

from mlcicd.ci.local import LocalAdapter
from mlcicd.config import load_config
from mlcicd.delivery.targets import open_target
from mlcicd.delivery.targets.local import LocalTarget
from mlcicd.delivery.targets.processes import free_port
from mlcicd.delivery.traffic import LoadGenerator
from mlcicd.registry import CHAMPION, Registry
from mlcicd.report import StageResult
from mlcicd.runner import execute

pytestmark = pytest.mark.integration

# Fast but real: users at 60 req/s, a look every half second, two traffic steps.
POLICY: dict[str, Any] = {
    "steps": [20, 50], "min_requests": 60, "interval": 0.5, "duration": 45, "confidence": 0.95, "last_look": 2,
    "checks": {"error_rate": {"margin": 0.05, "max": 0.05},
               "latency": {"quantiles": [0.5, 0.9], "tolerance_pct": 50, "max_p99_ms": 1000},
               "predictions": {"mode": "observe"}},
}


@dataclass
class Rollout:
    """One project with its mlci.yaml, driving the stages like `mlci run` does."""

    root: Path
    tracking_uri: str
    model_name: str
    port: int
    rows: list[dict[str, Any]]

    @property
    def config(self) -> Path:
        return self.root / "mlci.yaml"

    def write(self, **policy: Any) -> None:
        cfg = {"data": {"label": "label"}, "mlflow": {"model_name": self.model_name, "tracking_uri": self.tracking_uri},
               "deploy": {"local": {"port": self.port}, "canary": {**POLICY, **policy}}}
        self.config.write_text(yaml.safe_dump(cfg))

    def stage(self, name: str, **inputs: Any) -> tuple[int, StageResult | None, str]:
        stream = io.StringIO()
        values = {"config": str(self.config), "report-dir": str(self.root / "report"),
                  **{k.replace("_", "-"): str(v) for k, v in inputs.items()}}
        code, result = execute(name, values, env={"MLFLOW_DISABLE_TELEMETRY": "true"}, ci=LocalAdapter({}, stream))
        return code, result, stream.getvalue()

    def target(self) -> LocalTarget:
        target = open_target(load_config(self.config))
        assert isinstance(target, LocalTarget)
        return target

    def registry(self) -> Registry:
        return Registry(self.tracking_uri, self.model_name)

    def users(self, rate: float = 60.0) -> LoadGenerator:
        return LoadGenerator(f"http://127.0.0.1:{self.port}", self.rows, rate=rate, workers=4, timeout=5.0)

    def release_champion(self, version: str) -> None:
        """A first release, straight through the target: v<version> serves everything, alias champion."""
        code, _, log = self.stage("deploy-canary", model_uri=f"models:/{self.model_name}/{version}")
        assert code == 0, log
        self.target().promote_canary()
        self.registry().set_alias(CHAMPION, version)

    def deploy(self, version: str) -> None:
        code, result, log = self.stage("deploy-canary", model_uri=f"models:/{self.model_name}/{version}")
        assert code == 0, log
        assert result is not None and result.outputs["canary-version"] == version

    def answering(self, n: int = 30) -> dict[str, int]:
        return answering_versions(f"http://127.0.0.1:{self.port}", self.rows[:n])


@pytest.fixture
def rollout(mlflow_project, tmp_path, reaper) -> Iterator[Rollout]:
    r = Rollout(tmp_path, mlflow_project.tracking_uri, mlflow_project.model_name, free_port(), mlflow_project.rows)
    r.write()
    yield r
    target = r.target()
    reaper.track(*target.pids())
    target.shutdown()
    for alias in ("champion", "canary", "challenger", "previous-champion"):
        r.registry().delete_alias(alias)


def _in_background(fn: Any) -> tuple[threading.Thread, list[Any]]:
    box: list[Any] = []
    thread = threading.Thread(target=lambda: box.append(fn()), daemon=True)
    thread.start()
    return thread, box


def _wait(condition: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def _assert_users_never_saw_router_errors(stats: dict[str, Any]) -> None:
    """nginx itself never failed a request: no 502/503/504 (a model's own 500 is its answer)."""
    assert not {c for c in stats["codes"] if c in ("502", "503", "504")}, stats
    print(f"\nusers: {stats}")


def test_healthy_canary_walks_every_step_and_is_promoted_without_a_lost_request(rollout):
    rollout.release_champion("1")
    with rollout.users() as users:
        rollout.deploy("2")
        code, result, log = rollout.stage("monitor-canary")
        assert code == 0, log
        assert result is not None and result.outputs["decision"] == "promote"
        assert [s["weight"] for s in result.figures["steps"]] == [20, 50]
        assert rollout.target().state().canary_weight == 50  # promote-ready at the last step
        code, _, log = rollout.stage("promote")
        assert code == 0, log
        assert rollout.answering() == {"2": 30}
    stats = users.stats.as_dict()
    assert stats["codes"] == {"200": stats["sent"] - stats["connection_errors"]}
    assert stats["connection_errors"] == 0, stats  # traffic shifts and the old server's exit lose nothing
    assert set(stats["versions"]) == {"1", "2"}


def test_deploy_then_rollback_loses_no_request(rollout):
    """deploy -> rollback while users send traffic: every request answered 200, no connection reset."""
    rollout.release_champion("1")
    with rollout.users() as users:
        rollout.deploy("2")
        _wait(lambda: users.stats.as_dict()["versions"].get("2", 0) >= 20)  # the canary really serves
        code, result, log = rollout.stage("rollback", reason="changed our mind")
        assert code == 0, log
        assert result is not None
        assert (result.outputs["champion-version"], result.outputs["rolled-back-version"]) == ("1", "2")
        assert rollout.answering() == {"1": 30}
    stats = users.stats.as_dict()
    assert stats["codes"] == {"200": stats["sent"]} and stats["connection_errors"] == 0, stats
    assert rollout.registry().version("2").tags["mlci.rollback.reason"] == "changed our mind"


def test_canary_process_dies_mid_analysis(rollout):
    rollout.release_champion("1")
    with rollout.users() as users:
        rollout.deploy("2")
        thread, box = _in_background(lambda: rollout.stage("monitor-canary"))
        _wait(lambda: (rollout.root / "report").exists() or rollout.target().state().canary_weight == 20)
        time.sleep(1.5)
        os.kill(rollout.target()._read().slots["canary"].pid, signal.SIGKILL)
        thread.join(60)
        code, result, log = box[0]
        assert code == 1, log
        assert result.outputs["decision"] == "rollback"
        assert "canary" in result.summary and ("unreadable" in result.summary or "down" in result.summary)
        assert rollout.target().state().canary_weight == 0
        assert rollout.answering() == {"1": 30}
        code, _, log = rollout.stage("rollback")
        assert code == 0, log
    _assert_users_never_saw_router_errors(users.stats.as_dict())
    assert users.stats.as_dict()["codes"].get("500", 0) == 0  # nginx retried what the dying server dropped


@pytest.mark.parametrize(("mode", "metric"), [("error", "error"), ("slow:250", "latency")])
def test_canary_turns_bad_mid_analysis(rollout, faulty_model, mode, metric):
    rollout.release_champion("1")
    with rollout.users() as users:
        rollout.deploy(faulty_model.version)
        thread, box = _in_background(lambda: rollout.stage("monitor-canary"))
        time.sleep(1.5)  # healthy at first
        faulty_model.set(mode)
        decided = time.monotonic()
        thread.join(60)
        code, result, log = box[0]
        assert code == 1, log
        assert result.outputs["decision"] == "rollback"
        assert metric in result.summary.lower(), result.summary
        print(f"\n{mode}: rolled back {time.monotonic() - decided:.1f} s after the fault; {result.summary}")
        assert rollout.answering() == {"1": 30}
    _assert_users_never_saw_router_errors(users.stats.as_dict())


def test_metrics_source_unreachable_is_never_a_pass(rollout, tmp_path):
    from prometheus_server import binary, running_prometheus

    require(binary() is not None, "prometheus is not installed (apt-get install -y prometheus; .ci/run installs it)")
    rollout.release_champion("1")
    with rollout.users() as users:
        rollout.deploy("2")
        target = rollout.target()
        with running_prometheus(tmp_path / "prometheus", target.scrape_targets_file) as prom:
            rollout.write(source="prometheus", sources={"prometheus": {"url": prom.url}}, duration=40)
            for backend in (target.state().stable, target.state().canary):
                assert backend is not None and prom.scraped(backend.url.split("://")[1])
            thread, box = _in_background(lambda: rollout.stage("monitor-canary"))
            time.sleep(2.0)
        # Prometheus is gone: every read fails from here on.
        thread.join(90)
        code, result, log = box[0]
        assert result is not None, log
        assert result.verdict.value == "inconclusive" and code == 3, log
        assert result.outputs["decision"] == "rollback"  # on_inconclusive: rollback (the default)
        assert "the metric source is down or unreachable" in result.summary, result.summary
        assert f"Prometheus at {prom.url} did not answer" in log
    _assert_users_never_saw_router_errors(users.stats.as_dict())


def test_a_rejected_router_config_keeps_the_previous_split_and_a_rerun_converges(rollout, monkeypatch):
    """nginx refuses the config of step 2: step 1's split stays live; the re-run walks on."""
    from mlcicd.delivery.targets import local

    rollout.release_champion("1")
    real = local.render_config

    def broken_at_half(port: int, upstreams: Any, **kw: Any) -> str:
        text = real(port, upstreams, **kw)
        return text.replace("keepalive 16;", "keepalive_is_not_a_directive 16;") \
            if any(u.weight == 50 for u in upstreams) else text

    with rollout.users() as users:
        rollout.deploy("2")
        monkeypatch.setattr(local, "render_config", broken_at_half)
        code, result, log = rollout.stage("monitor-canary")
        assert code == 4 and result is None, log  # an unexpected error, said as such
        assert "nginx rejected the new router config; the previous one stays live" in log
        assert rollout.target().state().canary_weight == 20
        assert rollout.answering(40).keys() == {"1", "2"}  # still split 80/20
        monkeypatch.setattr(local, "render_config", real)
        code, result, log = rollout.stage("monitor-canary")
        assert code == 0, log
        assert result is not None and result.figures["resumed_at_step"] == 0
        assert [s["weight"] for s in result.figures["steps"]] == [20, 50]
    _assert_users_never_saw_router_errors(users.stats.as_dict())


def test_a_killed_monitor_resumes_where_traffic_is(rollout):
    rollout.release_champion("1")
    rollout.write(min_requests=150)  # a longer first step, to kill the monitor in the second
    mlci = Path(sys.executable).with_name("mlci")
    with rollout.users() as users:
        rollout.deploy("2")
        log = (rollout.root / "monitor-1.log").open("w")
        proc = subprocess.Popen([str(mlci), "run", "monitor-canary", "--config", str(rollout.config),
                                 "--report-dir", str(rollout.root / "report")], stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "MLCI_CI": "local"})
        _wait(lambda: rollout.target().state().canary_weight == 50, timeout=60)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert rollout.target().state().canary_weight == 50  # the runner died with traffic half-shifted
        code, result, out = rollout.stage("monitor-canary")
        assert code == 0, out
        assert result is not None and result.figures["resumed_at_step"] == 1
        assert [s["weight"] for s in result.figures["steps"]] == [50]
        assert "resuming the analysis of v2 at step 2 (50%)" in out
        code, _, out = rollout.stage("promote")
        assert code == 0, out
        assert rollout.answering() == {"2": 30}
    _assert_users_never_saw_router_errors(users.stats.as_dict())


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_cancelled_monitor_stops_within_two_seconds_leaves_traffic_and_says_how_to_go_on(rollout, sig):
    """CI cancels a job with SIGINT (GitHub) or SIGTERM (GitLab): the monitor stops within 2 s, leaves traffic
    where it is, writes its report (step, weight, evidence, how to resume or roll back) and exits non-zero."""
    import json

    rollout.release_champion("1")
    rollout.write(min_requests=400)  # a long first step: the signal comes while it is being judged
    mlci = Path(sys.executable).with_name("mlci")
    with rollout.users() as users:
        rollout.deploy("2")
        log_path = rollout.root / "monitor.log"
        with log_path.open("w") as log:
            proc = subprocess.Popen([str(mlci), "run", "monitor-canary", "--config", str(rollout.config),
                                     "--report-dir", str(rollout.root / "report")], stdout=log,
                                    stderr=subprocess.STDOUT,
                                    env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "MLCI_CI": "local"})
            _wait(lambda: log_path.read_text().count("| progress:") >= 2, timeout=60)  # judging, with progress
            weight = rollout.target().state().canary_weight
            sent = time.monotonic()
            proc.send_signal(sig)
            code = proc.wait(10)
            took = time.monotonic() - sent
        out = log_path.read_text()
        print(f"\n{sig.name}: the monitor ended {took:.2f} s after the signal with exit code {code}")
        assert took < 2.0, out
        assert code == 3, out  # inconclusive: no decision, never a pass
        assert rollout.target().state().canary_weight == weight == 20  # traffic left where it was
        report = json.loads((rollout.root / "report" / "monitor-canary.json").read_text())
        assert report["verdict"] == "inconclusive" and report["outputs"]["decision"] == "hold"
        assert report["figures"]["cancelled"] == sig.name and report["figures"]["canary_weight"] == 20
        assert report["figures"]["steps"][-1] == {**report["figures"]["steps"][-1], "index": 0, "weight": 20,
                                                   "outcome": "cancelled"}
        summary = report["summary"]
        assert f"cancelled by {sig.name}" in summary and "at step 1/2 with the canary at 20% of traffic" in summary
        assert "re-run monitor-canary" in summary and "mlci run rollback" in summary
        assert {c["name"] for c in report["checks"]} >= {"cancelled", "error_rate", "latency"}  # the evidence so far
        assert report["evidence"]["timeline"]
        # Resuming: a re-run continues at the step traffic is at and decides.
        rollout.write()  # the usual 60 canary requests a step
        code, result, out = rollout.stage("monitor-canary")
        assert code == 0, out
        assert result is not None and result.figures["resumed_at_step"] == 0
    _assert_users_never_saw_router_errors(users.stats.as_dict())


class _StallingProxy(ThreadingHTTPServer):
    """An HTTP proxy on 127.0.0.1 for the monitor's metric reads: it passes each GET on until ``stall`` is set,
    then holds the next ones unanswered, as a source that hangs does, until it is closed."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _StallingHandler)
        self.stall, self.stalled, self.closing = threading.Event(), threading.Event(), threading.Event()
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> _StallingProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.closing.set()
        self.shutdown()
        self.server_close()


class _StallingHandler(BaseHTTPRequestHandler):
    server: _StallingProxy
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def do_GET(self) -> None:  # the name http.server calls
        if self.server.stall.is_set():
            self.server.stalled.set()
            self.server.closing.wait(60)
            return
        with self.direct.open(self.path, timeout=5) as upstream:  # a proxy is asked for the absolute URL
            status, kind, body = upstream.status, upstream.headers.get("Content-Type", "text/plain"), upstream.read()
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_a_monitor_cancelled_while_a_metric_read_hangs_still_stops_within_two_seconds(rollout):
    """A slow source blocks a read for its whole timeout (10 s for CloudWatch; 30 s here): SIGTERM must not wait
    for it. The scrape source's reads go through a proxy that stops answering; the signal comes while one hangs."""
    import json

    rollout.release_champion("1")
    rollout.write(min_requests=400, sources={"scrape": {"timeout": 30}})  # one long step; reads may hang 30 s
    mlci = Path(sys.executable).with_name("mlci")
    with rollout.users() as users, _StallingProxy() as proxy:
        rollout.deploy("2")
        # Only the scrape source's reads (requests) heed the proxy: health checks and the registry go direct.
        env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "no_proxy")}
        log_path = rollout.root / "monitor.log"
        with log_path.open("w") as log:
            proc = subprocess.Popen([str(mlci), "run", "monitor-canary", "--config", str(rollout.config),
                                     "--report-dir", str(rollout.root / "report")], stdout=log,
                                    stderr=subprocess.STDOUT, env={**env, "http_proxy": proxy.url,
                                                                   "MLFLOW_DISABLE_TELEMETRY": "true",
                                                                   "MLCI_CI": "local"})
            try:
                _wait(lambda: "| progress:" in log_path.read_text(), timeout=60)  # judging, with evidence
                proxy.stall.set()
                assert proxy.stalled.wait(10), log_path.read_text()  # the next look's read hangs
                weight = rollout.target().state().canary_weight
                sent = time.monotonic()
                proc.send_signal(signal.SIGTERM)
                code = proc.wait(10)
                took = time.monotonic() - sent
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        out = log_path.read_text()
        print(f"\nSIGTERM mid-read: the monitor ended {took:.2f} s after the signal with exit code {code}")
        assert took < 2.0, out
        assert code == 3, out
        assert rollout.target().state().canary_weight == weight == 20  # traffic left where it was
        report = json.loads((rollout.root / "report" / "monitor-canary.json").read_text())
        assert report["verdict"] == "inconclusive" and report["outputs"]["decision"] == "hold"
        assert report["figures"]["cancelled"] == "SIGTERM" and report["figures"]["canary_weight"] == 20
        assert report["figures"]["steps"][-1]["outcome"] == "cancelled"
        assert "re-run monitor-canary" in report["summary"] and "mlci run rollback" in report["summary"]
        assert {c["name"] for c in report["checks"]} >= {"cancelled", "error_rate", "latency"}  # the completed looks
    _assert_users_never_saw_router_errors(users.stats.as_dict())


def test_deploy_canary_says_at_once_when_the_bake_is_too_short_naming_the_duration_to_set(rollout):
    rollout.release_champion("1")
    rollout.write(duration=20)
    with rollout.users():
        code, result, log = rollout.stage("deploy-canary", model_uri=f"models:/{rollout.model_name}/2")
        assert code == 0, log
    assert result is not None
    plan = next(c for c in result.checks if c.name == "bake_plan")
    assert plan.status.value == "warn", plan.message
    assert plan.message.startswith("deploy.canary.duration is 20 s, but a healthy canary needs about")
    assert f"set deploy.canary.duration: {plan.expected:.0f}" in plan.message
    assert "req/s" in plan.message  # measured on the stable's live traffic
    assert result.figures["plan"]["rps"] == pytest.approx(60, rel=0.5)
    assert "WARNING: deploy-canary: bake_plan: deploy.canary.duration is 20 s" in log  # annotated in the deploy job


def test_registry_outage_during_promote_converges_on_rerun(mlflow_server, mlflow_project, tmp_path, reaper,
                                                           monkeypatch):
    """The registry goes away after traffic moved: aliases lag until the re-run puts them in line."""
    import mlflow
    from mlflow_globals import mlflow_uri
    from mlflow_server import start_mlflow_server

    from mlcicd.delivery.targets import local
    from mlcicd.tracking import log_model

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # fail fast while it is down
    name = "registry-outage"
    registry = Registry(mlflow_server.url, name)
    experiment = mlflow.MlflowClient(tracking_uri=mlflow_server.url).create_experiment(name)
    with mlflow_uri(mlflow_server.url):
        for c in (1.0, 0.01):
            model = _fit(c)
            with mlflow.start_run(experiment_id=experiment) as run:
                uri = log_model(model, pip_requirements=["scikit-learn", "numpy", "skops"])
            registry.register(uri, run.info.run_id, {})
    r = Rollout(tmp_path, mlflow_server.url, name, free_port(), mlflow_project.rows)
    r.write()
    try:
        r.release_champion("1")
        with r.users() as users:
            r.deploy("2")
            code, _, log = r.stage("monitor-canary")
            assert code == 0, log
            real = local.LocalTarget.set_canary_weight

            def outage_after_full_traffic(self: Any, percent: int) -> None:
                real(self, percent)
                if percent == 100:
                    mlflow_server.stop()

            monkeypatch.setattr(local.LocalTarget, "set_canary_weight", outage_after_full_traffic)
            code, _, log = r.stage("promote")
            assert code != 0, log
            assert r.answering() == {"2": 30}  # traffic moved; the champion alias could not follow yet
            monkeypatch.setattr(local.LocalTarget, "set_canary_weight", real)
            restarted = start_mlflow_server(mlflow_server.root, port=int(mlflow_server.url.rsplit(":", 1)[1]))
            mlflow_server.pid, mlflow_server.workers = restarted.pid, restarted.workers
            code, _, log = r.stage("promote")
            assert code == 0, log
            assert registry.aliases() == {"champion": "2", "previous-champion": "1"}
            assert r.answering() == {"2": 30}
        _assert_users_never_saw_router_errors(users.stats.as_dict())
    finally:
        target = r.target()
        reaper.track(*target.pids())
        target.shutdown()


def _fit(c: float) -> Any:
    import numpy as np
    import pandas as pd
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    rng = np.random.default_rng(3)
    frame = pd.DataFrame(rng.normal(size=(300, 4)), columns=["f0", "f1", "f2", "f3"])
    label = (frame.f0 + 0.5 * frame.f1 > 0).astype(int)
    return make_pipeline(SimpleImputer(), LogisticRegression(C=c)).fit(frame, label)
