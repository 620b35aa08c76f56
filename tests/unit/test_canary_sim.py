"""The canary benchmark runs end to end with a handful of replications and prints its table;
its CloudWatch granularity shows a look only the whole periods published by then."""

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "canary_sim.py"
sys.path.insert(0, str(BENCH.parent))

import canary_sim  # noqa: E402
from canary_baselines import BAKE, CLOUDWATCH, Granularity, Traffic, run_flagger  # noqa: E402

from mlcicd.delivery.metrics.cloudwatch import CloudWatchConfig  # noqa: E402

ROWS = {sc.key: sc for sc in canary_sim.SCENARIOS}


def _run(*args: str) -> str:
    done = subprocess.run([sys.executable, str(BENCH), "--reps", "2", "--jobs", "1", "--quick", *args],
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_bench_prints_a_table_and_exits_zero():
    out = _run()
    assert "rollback%" in out and "promote%" in out and "incon%" in out
    for name in ("judge (anytime-valid)", "Flagger, calibrated", "Flagger, docs", "Kayenta-style", "naive z-test"):
        assert name in out
    for row in ("from step 5", "at promote-ready", "0.1% -> 0.3%", "0% -> 0.5%", "latency +20%", "shared incidents",
                "drift at 80% of limit", "5xx 1% -> 2% at CloudWatch granularity [regression]",
                "A/A healthy at CloudWatch granularity [healthy]"):
        assert row in out
    verdicts = [line for line in out.splitlines() if line.startswith(("PASS", "MISS"))]
    assert len(verdicts) == 8
    # Information, not a target: what the 120 s last look would miss at CloudWatch granularity.
    assert any(line.startswith("info: if the last look were not stretched (120 s): ") for line in out.splitlines())


def test_only_runs_the_chosen_rows_and_their_target_lines():
    out = _run("--only", "cloudwatch")
    assert "at CloudWatch granularity [healthy]" in out
    assert "A/A 1% 5xx, 100 req/s" not in out and "Kayenta-style (30 min)  " not in out
    verdicts = [line for line in out.splitlines() if line.startswith(("PASS", "MISS"))]
    assert len(verdicts) == 3 and all("CloudWatch granularity" in line for line in verdicts)


def test_the_granularity_is_the_cloudwatch_sources_defaults():
    assert (CLOUDWATCH.period, CLOUDWATCH.delay) == (CloudWatchConfig().period, CloudWatchConfig().delay)
    assert ROWS["cw_err_2x"].interval == CLOUDWATCH.period  # a look once a period


@pytest.mark.parametrize(("t", "seen"), [(0, 0), (179.9, 0), (180, 60), (239.9, 60), (240, 120), (659, 480)])
def test_a_look_at_t_sees_up_to_the_newest_period_published(t, seen):
    assert Granularity(60.0, 120.0).cutoff(t) == seen


def test_a_look_sees_only_the_periods_published_by_then():
    """At 180 s the counts are exactly the first minute's, whatever was served since; nothing before."""
    sc = ROWS["cw_err_2x"]
    late, now = Traffic(sc, 7), Traffic(replace(sc, grain=None), 7)
    now.advance(60.0, 10)
    first_minute = now.cum["canary"].copy()
    for t in (60.0, 120.0):
        late.advance(60.0, 10)
        assert late.snapshot("canary").total == 0 and late.newest("canary", 60.0)[0] == 0, t
    late.advance(60.0, 10)
    assert late.cum["canary"][0] > 2 * first_minute[0]  # served three minutes ...
    np.testing.assert_array_equal(late.visible("canary"), first_minute)  # ... shows the first
    assert late.snapshot("canary").total == first_minute[0]
    late.advance(30.0, 10)  # mid-period: nothing new published
    np.testing.assert_array_equal(late.visible("canary"), first_minute)
    late.advance(30.0, 10)
    assert late.newest("canary", 60.0)[0] == late.visible("canary")[0] - first_minute[0] > 0


def test_flagger_checks_before_the_first_published_period_fail():
    """Two one-minute checks find nothing published: a threshold of 2 rolls back every canary at the third."""
    sc = ROWS["cw_aa"]
    assert canary_sim.no_data_checks(sc.grain) == 2
    lenient = {**canary_sim.FLAGGER_DOCS, "success_min": 0.0, "p99_max_ms": 1e9}
    assert run_flagger(sc, 3, {**lenient, "threshold": 2}, BAKE).t == 180.0
    assert run_flagger(sc, 3, {**lenient, "threshold": 2}, BAKE).decision == "rollback"
    assert run_flagger(replace(sc, grain=None), 3, {**lenient, "threshold": 2}, BAKE).decision == "promote"


def test_the_judge_cannot_decide_before_the_first_period_is_published():
    sc = ROWS["cw_p99_50"]
    first = CLOUDWATCH.delay + CLOUDWATCH.period
    for seed in range(3):
        res = canary_sim.run_monitor(canary_sim.judge, sc, seed, sc.interval, BAKE)
        assert res.decision == "rollback" and first <= res.t <= first + 2 * CLOUDWATCH.period
