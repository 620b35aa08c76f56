"""A real Prometheus on 127.0.0.1 that scrapes the local target's model servers every second.

It discovers them through the file_sd file the local target keeps up to date
(``<state dir>/prometheus-targets.json``), the way a user would point their Prometheus at it.
Stopped by PID.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests
import yaml

from mlcicd.delivery.targets.processes import free_port, start_detached, stop_pid, tail


@dataclass
class PrometheusServer:
    url: str
    pid: int
    log: Path

    def stop(self) -> None:
        stop_pid(self.pid, expect="prometheus", timeout=10)

    def scraped(self, address: str, timeout: float = 30.0) -> bool:
        """Wait until Prometheus has a sample of ``address``'s request counter."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(requests.RequestException, ValueError, KeyError):
                body = requests.get(f"{self.url}/api/v1/query", timeout=2,
                                    params={"query": f'mlci_model_info{{instance="{address}"}}'}).json()
                if body["data"]["result"]:
                    return True
            time.sleep(0.25)
        return False


def binary() -> str | None:
    return shutil.which("prometheus")


def start_prometheus(home: Path, targets_file: Path) -> PrometheusServer:
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": "mlci-model", "scrape_interval": "1s", "scrape_timeout": "900ms",
                            "file_sd_configs": [{"files": [str(targets_file)], "refresh_interval": "1s"}]}],
    }
    (home / "prometheus.yml").write_text(yaml.safe_dump(config))
    argv = [binary() or "prometheus", f"--config.file={home / 'prometheus.yml'}",
            f"--storage.tsdb.path={home / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=1h", "--log.level=warn"]
    log = home / "prometheus.log"
    pid = start_detached(argv, log, cwd=home)
    server = PrometheusServer(f"http://127.0.0.1:{port}", pid, log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{server.url}/-/ready", timeout=1).status_code == 200:
                return server
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"prometheus did not become ready:\n{tail(log)}")


@contextlib.contextmanager
def running_prometheus(home: Path, targets_file: Path) -> Iterator[PrometheusServer]:
    server = start_prometheus(home, targets_file)
    try:
        yield server
    finally:
        server.stop()
