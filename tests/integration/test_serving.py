"""The model server as a real process: protocol, metrics, errors, graceful SIGTERM, worker processes.

The shared server runs two workers (whatever this machine's core count), so every protocol
test also goes through the supervisor's shared socket and the merged metrics; lifecycle
tests run both shapes, one process and a supervisor with workers.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests
from serving_process import Server, start_server, stop_server

from mlcicd.delivery.metrics.scrape import parse
from mlcicd.delivery.targets.processes import free_port

if TYPE_CHECKING:
    from mlflow_project import MlflowProject

pytestmark = pytest.mark.integration
FEATURES = ["f0", "f1", "f2", "f3"]  # the columns of conftest's training frame


@pytest.fixture(scope="module")
def server(mlflow_project: MlflowProject, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(mlflow_project, "1", tmp_path_factory.mktemp("serving") / "server.log", "--workers", "2")
    print(f"\nmodel server ready {srv.startup_seconds:.2f} s after start")
    try:
        yield srv
    finally:
        stop_server(srv)


def invoke(server: Server, body: Any, content_type: str = "application/json") -> requests.Response:
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return requests.post(server.url + "/invocations", data=data, headers={"Content-Type": content_type}, timeout=10)


def test_health_ready_version(server: Server, mlflow_project: MlflowProject) -> None:
    for path in ("/health", "/ready"):
        r = requests.get(server.url + path, timeout=5)
        assert r.status_code == 200
        assert r.headers["X-Model-Version"] == "1"
    r = requests.get(server.url + "/version", timeout=5)
    assert r.json() == {"model_name": mlflow_project.model_name, "model_version": "1",
                        "run_id": mlflow_project.versions[0].run_id}
    r = requests.get(server.url + "/nope", timeout=5)
    assert r.status_code == 404 and r.headers["X-Model-Version"] == "1"


def _bodies(rows: list[dict[str, Any]]) -> dict[str, tuple[Any, str]]:
    """The same rows in every accepted format; the first has a missing value, one value is an int."""
    rows = [dict(r) for r in rows]
    rows[0]["f3"] = None
    rows[1]["f0"] = 1  # JSON clients send whole numbers without ".0"
    matrix = [[r[c] for c in FEATURES] for r in rows]
    csv_lines = [",".join(FEATURES)] + [",".join("" if v is None else str(v) for v in line) for line in matrix]
    return {
        "dataframe_split": ({"dataframe_split": {"columns": FEATURES, "data": matrix}}, "application/json"),
        "dataframe_records": ({"dataframe_records": rows}, "application/json"),
        "instances_rows": ({"instances": rows}, "application/json"),
        "instances_matrix": ({"instances": matrix}, "application/json"),
        "inputs_columns": ({"inputs": {c: [r[c] for r in rows] for c in FEATURES}}, "application/json"),
        "csv": ("\n".join(csv_lines) + "\n", "text/csv"),
    }


def test_every_format_gives_the_same_predictions(server: Server, mlflow_project: MlflowProject) -> None:
    bodies = _bodies(mlflow_project.rows[:8])
    answers = {}
    for name, (body, ctype) in bodies.items():
        r = invoke(server, body, ctype)
        assert r.status_code == 200, (name, r.text)
        assert r.headers["X-Model-Version"] == "1"
        answers[name] = r.json()["predictions"]
    first = answers["dataframe_split"]
    assert len(first) == 8 and set(first) <= {0, 1}
    assert all(a == first for a in answers.values()), answers


@pytest.mark.parametrize("body,ctype", [
    ("this is not json", "application/json"),
    ({"rows": [[1, 2, 3, 4]]}, "application/json"),
    ({"dataframe_split": {"columns": FEATURES, "data": [[1, 2, 3, 4]]}, "instances": [[1, 2, 3, 4]]},
     "application/json"),
    ({"dataframe_records": {"f0": 1}}, "application/json"),
    ({"dataframe_split": {"columns": FEATURES, "data": []}}, "application/json"),
    ([1, 2, 3], "application/json"),
    ("f0,f1\n1,2\n", "application/xml"),
])
def test_malformed_bodies_get_400(server: Server, body: Any, ctype: str) -> None:
    r = invoke(server, body, ctype)
    assert r.status_code == 400, r.text
    assert r.headers["X-Model-Version"] == "1"
    payload = r.json()
    assert payload["error_code"] == "BAD_REQUEST"
    assert "dataframe_split" in payload["message"] and "text/csv" in payload["message"]


def test_metrics_count_requests_errors_and_predictions(server: Server, mlflow_project: MlflowProject) -> None:
    before = parse(requests.get(server.url + "/metrics", timeout=5).text)
    rows = mlflow_project.rows[:3]
    for _ in range(4):
        assert invoke(server, {"dataframe_records": rows}).status_code == 200
    bad = dict(rows[0], f1="not a number")
    r = invoke(server, {"dataframe_records": [bad]})
    assert r.status_code == 500
    assert r.json()["error_code"] == "MODEL_ERROR" and "f1" in r.json()["message"]
    assert invoke(server, "{").status_code == 400
    text = requests.get(server.url + "/metrics", timeout=5).text
    delta = parse(text).minus(before)
    assert delta.requests.get("200") == 4
    assert delta.requests.get("500") == 1
    assert delta.requests.get("400") == 1
    assert delta.latency_buckets[float("inf")] == 6
    assert sum(delta.predictions.values()) == 12  # one per predicted row, labelled by class
    assert set(delta.predictions) <= {"0", "1"}
    assert (f'mlci_model_info{{model_name="{mlflow_project.model_name}",model_version="1",'
            f'run_id="{mlflow_project.versions[0].run_id}"}} 1.0') in text
    assert 'le="0.005"' in text and 'le="10.0"' in text


def test_refuses_a_non_loopback_host(mlflow_project: MlflowProject) -> None:
    out = subprocess.run([sys.executable, "-m", "mlcicd.serving", "--model-dir", "unused", "--port", "1",
                          "--host", "0.0.0.0", "--model-name", "m", "--model-version", "1"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert "--allow-remote" in out.stderr


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigterm_finishes_in_flight_requests_then_exits_zero(mlflow_project: MlflowProject, tmp_path: Path,
                                                             workers: str) -> None:
    srv = start_server(mlflow_project, "2", tmp_path / "server.log", "--workers", workers)
    try:
        body = json.dumps({"dataframe_records": mlflow_project.rows[:5]}).encode()
        head = (f"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
            # Half a request: the server is inside the handler, waiting for the rest of the body.
            sock.sendall(head + body[:10])
            time.sleep(0.3)
            srv.proc.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            assert srv.proc.poll() is None, "exited with a request in flight"
            with pytest.raises(OSError):  # no new connections once stopping
                socket.create_connection(("127.0.0.1", srv.port), timeout=2).close()
            sock.sendall(body[10:])
            response = b""
            while chunk := sock.recv(65536):
                response += chunk
        status, _, rest = response.partition(b"\r\n")
        assert status == b"HTTP/1.1 200 OK", response
        assert b"X-Model-Version: 2" in rest and b"Connection: close" in rest
        assert len(json.loads(rest.split(b"\r\n\r\n", 1)[1])["predictions"]) == 5
        assert srv.proc.wait(10) == 0
        lines = srv.log_text().splitlines()
        assert sum("mlci-serve" in line for line in lines) == 2, lines  # one start line, one stop line
        assert "ready on" in lines[-2] and "all in-flight requests finished" in lines[-1]
    finally:
        stop_server(srv)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_model_that_cannot_load_exits_non_zero_with_the_reason(tmp_path: Path, workers: str) -> None:
    port = free_port()
    with (tmp_path / "server.log").open("wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "mlcicd.serving", "--model-dir", str(tmp_path / "missing"),
                                 "--port", str(port), "--model-name", "m", "--model-version", "9",
                                 "--workers", workers],
                                stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        assert proc.wait(60) == 1
    finally:
        if proc.poll() is None:
            proc.kill()
    log = (tmp_path / "server.log").read_text()
    assert "could not load the model" in log and str(tmp_path / "missing") in log
    assert log.count("could not load the model") == 1  # said once, not once per worker
