"""A real MLflow tracking server on 127.0.0.1 for integration tests.

Use the function anywhere, or the module-scoped fixture from a test module::

    from mlflow_server import mlflow_server  # noqa: F401  (pytest finds the fixture by name)

    def test_x(mlflow_server): ...  # mlflow_server.url == "http://127.0.0.1:<port>"

The server stores runs in SQLite and proxies artifacts (``--artifacts-destination``), so
clients need no shared filesystem, exactly like a remote server. ``--workers 1`` and
``MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false`` keep it to two processes (~9 s to start)
instead of fifteen. It is stopped by PID; its worker is stopped by PID if it outlives it.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mlcicd.delivery.targets.processes import (
    children,
    free_port,
    pid_alive,
    start_detached,
    stop_pid,
    wait_http_ok,
)

START_TIMEOUT = 90.0


@dataclass
class MlflowServer:
    url: str
    pid: int
    root: Path
    log: Path
    workers: set[int] = field(default_factory=set)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        # The uvicorn worker is the server's child: note it before the parent goes away.
        self.workers |= children(self.pid)
        stop_pid(self.pid, expect="mlflow", timeout=15)
        for pid in self.workers:
            stop_pid(pid, expect="uvicorn", timeout=5)


def start_mlflow_server(root: Path, *, port: int | None = None, timeout: float = START_TIMEOUT) -> MlflowServer:
    """Start ``mlflow server`` with its store under ``root``; return once /health answers."""
    root.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    mlflow_bin = Path(sys.executable).with_name("mlflow")
    argv = [
        str(mlflow_bin), "server",
        "--host", "127.0.0.1", "--port", str(port),
        "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination", str(root / "artifacts"),
        "--workers", "1",
    ]
    env = {
        **os.environ,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        # The server's own PATH must find the venv's Python for its worker.
        "PATH": os.pathsep.join([str(mlflow_bin.parent), os.environ.get("PATH", "")]),
    }
    log = root / "server.log"
    pid = start_detached(argv, log, env=env, cwd=root)
    server = MlflowServer(f"http://127.0.0.1:{port}", pid, root, log)
    if not wait_http_ok(f"{server.url}/health", timeout, pid=pid):
        tail = server.log_tail()
        server.stop()
        raise RuntimeError(f"mlflow server did not become healthy within {timeout:.0f} s:\n{tail}")
    server.workers |= children(pid)
    return server


@contextlib.contextmanager
def running_mlflow_server(
    root: Path, *, port: int | None = None, timeout: float = START_TIMEOUT
) -> Iterator[MlflowServer]:
    server = start_mlflow_server(root, port=port, timeout=timeout)
    try:
        yield server
    finally:
        server.stop()
        assert not pid_alive(server.pid, "mlflow"), f"mlflow server {server.pid} still runs"


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    with running_mlflow_server(tmp_path_factory.mktemp("mlflow-server")) as server:
        yield server
