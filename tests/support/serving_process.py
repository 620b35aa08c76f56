"""The model server as a real process for tests: started on a free loopback port, stopped by PID."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from mlcicd.delivery.targets.processes import children, free_port, wait_http_ok

if TYPE_CHECKING:
    from conftest import MlflowProject

# Several workers each import mlflow and load the model; a shared, busy machine makes that slow.
READY_TIMEOUT = 180


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    url: str
    port: int
    log: Path
    startup_seconds: float

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def workers(self) -> set[int]:
        return children(self.proc.pid)


def server_argv(project: MlflowProject, version: str, port: int, *extra: str) -> list[str]:
    mv = next(v for v in project.versions if v.version == version)
    return [sys.executable, "-m", "mlcicd.serving", "--model-dir", str(project.model_dir(version)),
            "--port", str(port), "--model-name", project.model_name, "--model-version", version,
            "--run-id", mv.run_id or "", *extra]


def start_server(project: MlflowProject, version: str, log: Path, *extra: str,
                 env: dict[str, str] | None = None) -> Server:
    port = free_port()
    started = time.monotonic()
    with log.open("wb") as fh:
        proc = subprocess.Popen(server_argv(project, version, port, *extra), stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True, env={**os.environ, **(env or {})})
    url = f"http://127.0.0.1:{port}"
    server = Server(proc, url, port, log, 0.0)
    if not wait_http_ok(url + "/ready", READY_TIMEOUT, pid=proc.pid):
        stop_server(server)
        pytest.fail(f"server did not become ready:\n{log.read_text(errors='replace')}")
    server.startup_seconds = time.monotonic() - started
    return server


def stop_server(server: Server) -> None:
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)
        try:
            server.proc.wait(40)
        except subprocess.TimeoutExpired:
            # Our own session (start_new_session): its group holds the server and its workers.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.proc.pid, signal.SIGKILL)
            server.proc.wait(5)
