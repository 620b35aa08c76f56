"""Single-row inference latency of a loaded model, as a serving request would see it.

Online traffic arrives one row at a time, so batch throughput says little about the
p99 a user waits. We call ``predict`` on one-row frames (sliced beforehand, so the
timer sees only the model, including pyfunc's schema enforcement that a real server
also pays), after a few warm-up calls that fill caches and lazy imports.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

WARMUP_CALLS = 10


@dataclass(frozen=True)
class LatencyResult:
    rows: int
    warmup: int
    p50_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float

    def as_metrics(self) -> dict[str, float]:
        return {"latency_p50_ms": self.p50_ms, "latency_p99_ms": self.p99_ms}


def benchmark(predict: Callable[[Any], Any], frame: Any, rows: int, *, warmup: int = WARMUP_CALLS) -> LatencyResult:
    """Time ``predict`` on ``rows`` single-row slices of ``frame`` (cycling if it is shorter)."""
    if rows <= 0:
        raise ValueError("rows must be positive")
    total = len(frame)
    if total == 0:
        raise ValueError("no rows to time")
    singles = [frame.iloc[i % total : i % total + 1] for i in range(rows)]
    for single in singles[: min(warmup, rows)]:
        predict(single)
    timings = np.empty(rows, dtype=float)
    clock = time.perf_counter_ns
    for i, single in enumerate(singles):
        start = clock()
        predict(single)
        timings[i] = clock() - start
    timings /= 1e6
    p50, p99 = np.percentile(timings, [50, 99])
    return LatencyResult(rows, min(warmup, rows), float(p50), float(p99), float(timings.mean()),
                         float(timings.max()))
