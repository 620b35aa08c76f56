"""The canary benchmark runs end to end with a handful of replications and prints its table."""

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "canary_sim.py"


def test_bench_prints_a_table_and_exits_zero():
    done = subprocess.run([sys.executable, str(BENCH), "--reps", "2", "--jobs", "1"], capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "rollback%" in out and "promote%" in out
    for name in ("judge (anytime-valid)", "Flagger-style", "Kayenta-style", "naive z-test"):
        assert name in out
    verdicts = [line for line in out.splitlines() if line.startswith(("PASS", "MISS"))]
    assert len(verdicts) == 4
