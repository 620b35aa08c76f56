"""Worker processes behind one port: every worker serves, /metrics counts them all, crashes heal.

Real servers on 127.0.0.1; which worker answered is never visible to a client, so the tests
look where a user would: CPU time each worker process spent (/proc), the merged /metrics,
the process tree, and the server's log.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import requests
from serving_process import READY_TIMEOUT, start_server, stop_server

from mlcicd.delivery.metrics.scrape import parse
from mlcicd.delivery.targets.processes import free_port, pid_alive, wait_gone, wait_http_ok

if TYPE_CHECKING:
    from conftest import MlflowProject

pytestmark = pytest.mark.integration


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _invoke(url: str, rows: list[dict], session: requests.Session | None = None) -> int:
    post = session.post if session else requests.post
    return post(url + "/invocations", json={"dataframe_records": rows}, timeout=30).status_code


def _requests_total(url: str) -> float:
    return sum(parse(requests.get(url + "/metrics", timeout=10).text).requests.values())


def test_every_worker_serves_and_metrics_count_them_all(mlflow_project: MlflowProject, tmp_path: Path) -> None:
    srv = start_server(mlflow_project, "1", tmp_path / "server.log", "--workers", "2")
    try:
        workers = srv.workers()
        assert len(workers) == 2, workers
        before = {pid: _cpu_seconds(pid) for pid in workers}
        rows = mlflow_project.rows[:20]
        n = 240

        def client(i: int) -> list[int]:
            with requests.Session() as session:  # keep-alive, like a load balancer's pool
                return [_invoke(srv.url, rows, session) for _ in range(n // 8)]

        with ThreadPoolExecutor(8) as pool:
            codes = [c for batch in pool.map(client, range(8)) for c in batch]
        assert codes == [200] * n
        spent = {pid: _cpu_seconds(pid) - before[pid] for pid in workers}
        # Each worker did real work (predictions cost milliseconds; an idle worker spends ~nothing).
        assert min(spent.values()) >= 0.1 * sum(spent.values()), spent
        # Whichever worker answers the scrape, it reports every worker's requests.
        totals = {_requests_total(srv.url) for _ in range(12)}  # fresh connections: both workers answer
        assert totals == {n}, totals
        delta = parse(requests.get(srv.url + "/metrics", timeout=10).text)
        assert sum(delta.predictions.values()) == n * len(rows)
        assert delta.latency_buckets[float("inf")] == n
    finally:
        stop_server(srv)
    assert "Traceback" not in srv.log_text()


def _connections_per_worker(port: int, workers: set[int]) -> list[int]:
    """Established connections each worker holds on ``port`` (from `ss`, iproute2)."""
    out = subprocess.run(["ss", "-tnpH", "state", "established", f"( sport = :{port} )"], capture_output=True,
                         text=True, check=True).stdout
    return sorted(sum(f"pid={pid}," in line for line in out.splitlines()) for pid in workers)


def test_keep_alive_connections_spread_evenly_over_the_workers(mlflow_project: MlflowProject,
                                                               tmp_path: Path) -> None:
    """8 pooled connections over 2 workers: 4/4, where first-come accept gives 1/7 to 3/5 most of the time."""
    srv = start_server(mlflow_project, "1", tmp_path / "server.log", "--workers", "2")
    try:
        splits = []
        for _ in range(5):
            pool = []
            for _ in range(8):  # one after the other, like a pool growing with the load
                sock = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                sock.recv(65536)
                pool.append(sock)
            splits.append(_connections_per_worker(srv.port, srv.workers()))
            for sock in pool:
                sock.close()
            time.sleep(0.5)
        # A busy machine may keep the idle worker from taking its turn in time (the other then
        # accepts after all): most pools must still split evenly.
        assert sum(split == [4, 4] for split in splits) >= 3, splits
    finally:
        stop_server(srv)


def _reset(port: int, payload: bytes, read: bool) -> None:
    """Send ``payload`` and close with a TCP RST (SO_LINGER 0), as a dropped client or a LB does."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.sendall(payload)
    if read:
        sock.recv(65536)
    sock.close()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_client_dropping_its_connection_prints_no_traceback(mlflow_project: MlflowProject, tmp_path: Path,
                                                              workers: str) -> None:
    srv = start_server(mlflow_project, "1", tmp_path / "server.log", "--workers", workers)
    try:
        health = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
        for _ in range(6):
            _reset(srv.port, health, read=True)  # idle keep-alive connection reset after a response
            _reset(srv.port, health + b"GET /health HT", read=True)  # reset in the middle of a request line
            _reset(srv.port, b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{", read=False)
        time.sleep(1.0)
        assert _invoke(srv.url, mlflow_project.rows[:2]) == 200
    finally:
        stop_server(srv)
    log = srv.log_text()
    assert "Traceback" not in log and "ConnectionResetError" not in log, log


def test_a_worker_that_dies_is_replaced_and_counts_are_kept(mlflow_project: MlflowProject, tmp_path: Path) -> None:
    srv = start_server(mlflow_project, "1", tmp_path / "server.log", "--workers", "2")
    try:
        for answered in range(1, 11):
            assert _invoke(srv.url, mlflow_project.rows[:1]) == 200
            # Counted before the answer went out, so a scrape right after it never misses one.
            assert _requests_total(srv.url) == answered
        victim = min(srv.workers())
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + READY_TIMEOUT
        while (len(srv.workers()) < 2 or victim in srv.workers()) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(srv.workers()) == 2 and victim not in srv.workers()
        for _ in range(10):  # the survivor answers meanwhile; the replacement joins once loaded
            assert _invoke(srv.url, mlflow_project.rows[:1]) == 200
        assert _requests_total(srv.url) == 20  # the dead worker's requests still count
    finally:
        stop_server(srv)
    assert f"worker {victim} exited with code -9; starting a new one" in srv.log_text()


def test_workers_stop_when_their_supervisor_is_killed(mlflow_project: MlflowProject, tmp_path: Path) -> None:
    srv = start_server(mlflow_project, "1", tmp_path / "server.log", "--workers", "2")
    workers = srv.workers()
    try:
        os.kill(srv.proc.pid, signal.SIGKILL)
        srv.proc.wait(10)
        assert all(wait_gone(pid, 40) for pid in workers), [p for p in workers if pid_alive(p)]
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", srv.port), timeout=2).close()
    finally:
        stop_server(srv)


def test_worker_count_from_flag_and_environment(mlflow_project: MlflowProject, tmp_path: Path) -> None:
    three = start_server(mlflow_project, "1", tmp_path / "three.log", "--workers", "3")
    try:
        assert len(three.workers()) == 3
        assert "with 3 workers" in three.log_text()
    finally:
        stop_server(three)
    single = start_server(mlflow_project, "1", tmp_path / "one.log", env={"MLCI_SERVE_WORKERS": "1"})
    try:
        assert single.workers() == set()  # one process, no supervisor
    finally:
        stop_server(single)
    out = subprocess.run([sys.executable, "-m", "mlcicd.serving", "--model-dir", "unused", "--port", "1",
                          "--model-name", "m", "--model-version", "1"], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "MLCI_SERVE_WORKERS": "none"})
    assert out.returncode == 2 and "$MLCI_SERVE_WORKERS" in out.stderr and "--workers 2" in out.stderr


def test_answers_loading_then_hands_over_to_loaded_workers(mlflow_project: MlflowProject, tmp_path: Path) -> None:
    """/health answers from the start; nothing but "loading" comes back before every worker has the model."""
    from serving_process import server_argv

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with (tmp_path / "server.log").open("wb") as fh:
        proc = subprocess.Popen(server_argv(mlflow_project, "1", port, "--workers", "2"), stdout=fh,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        assert wait_http_ok(url + "/health", 60, pid=proc.pid)
        seen = []
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            r = requests.get(url + "/ready", timeout=10)
            seen.append(r.status_code)
            if r.status_code == 200:
                break
            assert r.headers.get("Connection") == "close"  # nobody stays attached to the loading supervisor
            # The workers may finish loading between the two requests: a 200 then means they answer.
            code = _invoke(url, mlflow_project.rows[:1])
            assert code == 503 or (code == 200 and requests.get(url + "/ready", timeout=10).status_code == 200)
            time.sleep(0.05)
        assert seen[0] == 503 and seen[-1] == 200, seen
        assert all(_invoke(url, mlflow_project.rows[:1]) == 200 for _ in range(20))  # no 503 after ready
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(40) == 0


def test_a_worker_predicts_one_request_at_a_time_unless_told_otherwise(
        mlflow_project: MlflowProject, faulty_model_version: tuple[str, Path], tmp_path: Path) -> None:
    """Four requests to a model that waits 300 ms: in turn by default, at once with --concurrency 4."""
    version, switch = faulty_model_version
    rows = [{"f0": 1.0}]

    def four_at_once(url: str) -> float:
        started = time.monotonic()
        with ThreadPoolExecutor(4) as pool:
            codes = list(pool.map(lambda _: _invoke(url, rows), range(4)))
        assert codes == [200] * 4
        return time.monotonic() - started

    switch.write_text("slow:300")
    try:
        for extra, env, at_once in (((), {}, False), (("--concurrency", "4"), {}, True),
                                    ((), {"MLCI_SERVE_CONCURRENCY": "4"}, True)):
            srv = start_server(mlflow_project, version, tmp_path / "server.log", "--workers", "1", *extra, env=env)
            try:
                _invoke(srv.url, rows)  # warm
                took = four_at_once(srv.url)
            finally:
                stop_server(srv)
            assert (took < 1.1) if at_once else (took >= 1.19), (extra, env, took)  # 4 x 300 ms in turn
    finally:
        switch.write_text("")
    out = subprocess.run([sys.executable, "-m", "mlcicd.serving", "--model-dir", "unused", "--port", "1",
                          "--model-name", "m", "--model-version", "1", "--concurrency", "0"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "--concurrency: expected a whole number" in out.stderr, out.stderr
