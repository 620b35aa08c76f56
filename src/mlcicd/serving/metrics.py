"""The model server's Prometheus metrics, in a registry of its own.

Names and labels are a contract: the canary monitor (``delivery/metrics/scrape.py``)
and PromQL users read ``mlci_requests_total{code}``, the
``mlci_request_duration_seconds`` histogram and ``mlci_predictions_total{value}``.

With several worker processes behind one port, a scrape reaches one worker at random,
yet must count every worker's requests (the canary judge compares totals). So the
supervisor sets ``PROMETHEUS_MULTIPROC_DIR`` before any process imports
prometheus_client: each process then keeps its values in memory-mapped files there, and
``/metrics`` in any of them sums all files (prometheus_client's multiprocess mode).
Counters of a worker that died and was replaced stay in the sum, so totals never go down.
"""

from __future__ import annotations

import math
import os
import threading
from collections import Counter as Tally
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from mlcicd.serving import MULTIPROC_ENV
from mlcicd.serving.emf import EmfPublisher

# Roughly 25% apart from 1 ms to 10 s: the canary judge compares quantiles bucket by bucket,
# so a +50% latency regression must move a quantile across at least one bound.
LATENCY_BUCKETS = (0.001, 0.0015, 0.002, 0.0025, 0.003, 0.004, 0.005, 0.006, 0.008, 0.01, 0.0125, 0.015, 0.02,
                   0.025, 0.03, 0.04, 0.05, 0.06, 0.08, 0.1, 0.125, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.8,
                   1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
# Every distinct label value is a time series kept forever: cap them. The last slot is "other".
MAX_PREDICTION_LABELS = 50
OTHER = "other"
_MANTISSAS = (1, 2, 5)


def value_label(value: Any) -> str:
    """A low-cardinality label for one predicted value.

    Classes (ints, strings, bools, integral floats) keep their value. Other floats
    fall into fixed buckets, the same in every server, so the canary's and the
    stable's prediction distributions can be compared bucket by bucket: tenths in
    [0, 1) (probabilities, scores), a 1-2-5 grid elsewhere.
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "null"
        if value.is_integer() and abs(value) < 1e6:
            return str(int(value))
        return _float_bucket(value)
    return str(value)[:64]


def _float_bucket(x: float) -> str:
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    if 0.0 <= x < 1.0:
        low = math.floor(x * 10) / 10
        return f"[{low:.1f},{low + 0.1:.1f})"
    mag = abs(x)
    exp = math.floor(math.log10(mag))
    lead = mag / 10.0**exp
    m = max(k for k in _MANTISSAS if k <= lead + 1e-12)
    low = m * 10.0**exp
    high = (_MANTISSAS[_MANTISSAS.index(m) + 1] if m != 5 else 10) * 10.0**exp
    return f"[{low:g},{high:g})" if x > 0 else f"(-{high:g},-{low:g}]"


class ServerMetrics:
    def __init__(self, model_name: str, model_version: str, run_id: str | None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("mlci_requests", "Requests to /invocations by HTTP status code.", ["code"],
                                registry=self.registry)
        self.latency = Histogram("mlci_request_duration_seconds", "Time to answer /invocations.",
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.predictions = Counter("mlci_predictions", "Predicted rows by (bucketed) predicted value.",
                                   ["value"], registry=self.registry)
        # "max" over the processes: one series, no pid label, whichever worker answers.
        self.info = Gauge("mlci_model_info", "The model this server serves (always 1).",
                          ["model_name", "model_version", "run_id"], registry=self.registry,
                          multiprocess_mode="max")
        self.info.labels(model_name, model_version, run_id or "").set(1)
        self._labels: set[str] = set()
        self._lock = threading.Lock()
        # The same counts as CloudWatch EMF log lines when MLCI_EMF_NAMESPACE is set (ECS, awslogs);
        # each worker writes its own lines and CloudWatch sums them.
        self.emf = EmfPublisher.from_env(model_name, model_version)

    def observe_request(self, code: int, seconds: float) -> None:
        self.requests.labels(code=str(code)).inc()
        self.latency.observe(seconds)

    def observe_predictions(self, values: Iterable[Any]) -> None:
        """Count one per predicted row; rows are tallied first so each label is touched once."""
        tally = Tally(value_label(v) for v in values)
        for label, count in tally.items():
            self.predictions.labels(value=self._bounded(label)).inc(count)
        if self.emf is not None:
            self.emf.add(self._bounded(label) for label in tally.elements())

    def _bounded(self, label: str) -> str:
        with self._lock:
            if label in self._labels:
                return label
            if len(self._labels) >= MAX_PREDICTION_LABELS - 1:
                return OTHER
            self._labels.add(label)
            return label

    def render(self) -> tuple[bytes, str]:
        if os.environ.get(MULTIPROC_ENV):
            from prometheus_client import multiprocess

            merged = CollectorRegistry()
            multiprocess.MultiProcessCollector(merged)
            return generate_latest(merged), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
