"""bench/serve.py runs end to end: both servers up, same answers, a table and ratios printed.

One short round per cell; the numbers are not judged here (targets are the benchmark's
business, printed as PASS/FAIL, never a timed assertion in a test).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
BENCH = Path(__file__).resolve().parents[2] / "bench" / "serve.py"
SHORT = ["--seconds", "1", "--warmup", "0.5", "--repeat", "1", "--workers", "1", "--rows", "1", "--model", "light"]


def processes_with(marker: str) -> list[int]:
    """PIDs whose environment carries ``marker`` (the bench's servers inherit the bench's environment)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if marker.encode() in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue  # gone, or not ours to read
    return found


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""  # it has exited


def test_bench_serve_prints_throughput_and_p99_ratios() -> None:
    out = subprocess.run([sys.executable, str(BENCH), *SHORT], capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    lines = out.stdout.splitlines()
    assert any(line.split()[:3] == ["1", "1", "ml-cicd"] for line in lines if line.strip())
    assert any(line.split()[:3] == ["1", "1", "mlflow"] for line in lines if line.strip())
    assert any("1 rows, 1 worker(s): throughput x" in line and "p99 x" in line for line in lines), out.stdout


def test_a_bench_stopped_with_sigterm_leaves_no_server_running() -> None:
    marker = f"MLCI_BENCH_TEST={uuid.uuid4().hex}"
    key, value = marker.split("=")
    proc = subprocess.Popen([sys.executable, str(BENCH), *SHORT, "--repeat", "50"], env={**os.environ, key: value},
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 600
    while not any(b"mlcicd.serving" in cmdline(pid) for pid in processes_with(marker)):
        assert proc.poll() is None and time.monotonic() < deadline, "no model server was started"
        time.sleep(0.1)
    time.sleep(1)  # a server starting up, or answering: either way it is the bench's to stop
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)
    deadline = time.monotonic() + 30
    while (left := processes_with(marker)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert left == [], f"server processes still running after the bench was stopped: {left}"
