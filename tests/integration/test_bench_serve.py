"""bench/serve.py runs end to end: both servers up, same answers, a table and ratios printed.

One short round per cell; the numbers are not judged here (targets are the benchmark's
business, printed as PASS/FAIL, never a timed assertion in a test).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
BENCH = Path(__file__).resolve().parents[2] / "bench" / "serve.py"


def test_bench_serve_prints_throughput_and_p99_ratios() -> None:
    out = subprocess.run([sys.executable, str(BENCH), "--seconds", "1", "--warmup", "0.5", "--repeat", "1",
                          "--workers", "1", "--rows", "1"], capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    lines = out.stdout.splitlines()
    assert any(line.split()[:3] == ["1", "1", "ml-cicd"] for line in lines if line.strip())
    assert any(line.split()[:3] == ["1", "1", "mlflow"] for line in lines if line.strip())
    assert any("1 rows, 1 worker(s): throughput x" in line and "p99 x" in line for line in lines), out.stdout
