"""The canary benchmark runs end to end with a handful of replications and prints its table."""

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "canary_sim.py"


def test_bench_prints_a_table_and_exits_zero():
    done = subprocess.run([sys.executable, str(BENCH), "--reps", "2", "--jobs", "1", "--quick"], capture_output=True,
                          text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "rollback%" in out and "promote%" in out and "incon%" in out
    for name in ("judge (anytime-valid)", "Flagger, calibrated", "Flagger, docs", "Kayenta-style", "naive z-test"):
        assert name in out
    for row in ("from step 5", "at promote-ready", "0.1% -> 0.3%", "0% -> 0.5%", "latency +20%", "shared incidents",
                "drift at 80% of limit"):
        assert row in out
    verdicts = [line for line in out.splitlines() if line.startswith(("PASS", "MISS"))]
    assert len(verdicts) == 5
