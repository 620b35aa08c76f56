"""The latency benchmark times single rows after a warm-up."""

from __future__ import annotations

import pandas as pd
import pytest

from mlcicd.evaluation.latency import benchmark


def test_times_single_rows_after_warmup_and_cycles_short_frames():
    frame = pd.DataFrame({"x": range(7)})
    seen: list[int] = []

    def predict(rows: pd.DataFrame) -> list[int]:
        assert len(rows) == 1
        seen.append(int(rows["x"].iloc[0]))
        return [0]

    result = benchmark(predict, frame, rows=20, warmup=3)
    assert result.rows == 20 and result.warmup == 3
    assert seen[:3] == [0, 1, 2]  # warm-up calls
    assert seen[3:] == [i % 7 for i in range(20)]  # then every timed row, cycling the frame
    assert 0 <= result.p50_ms <= result.p99_ms <= result.max_ms
    assert result.as_metrics() == {"latency_p50_ms": result.p50_ms, "latency_p99_ms": result.p99_ms}


def test_measures_the_predict_call():
    import time

    result = benchmark(lambda rows: time.sleep(0.002), pd.DataFrame({"x": [1, 2]}), rows=10, warmup=1)
    assert result.p50_ms >= 2.0


def test_rejects_empty_inputs():
    with pytest.raises(ValueError):
        benchmark(lambda rows: None, pd.DataFrame({"x": []}), rows=5)
    with pytest.raises(ValueError):
        benchmark(lambda rows: None, pd.DataFrame({"x": [1]}), rows=0)
