"""The metric-source protocol and the snapshot it returns.

A snapshot holds cumulative counters as the model server exposes them; the
monitor subtracts the snapshot taken when analysis started, so traffic a slot
served before the canary began never counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from mlcicd.delivery.targets.base import Backend, TargetState
from mlcicd.errors import MlciError


class MeasurementError(MlciError):
    """A source could not answer; the judge counts it, it never reads as healthy."""


@dataclass(frozen=True)
class Snapshot:
    """Cumulative counts from one backend at one moment."""

    requests: dict[str, float] = field(default_factory=dict)  # HTTP code -> count
    # Latency histogram: upper bound (seconds, inf last) -> cumulative count.
    latency_buckets: dict[float, float] = field(default_factory=dict)
    predictions: dict[str, float] = field(default_factory=dict)  # predicted value -> count

    @property
    def total(self) -> float:
        return sum(self.requests.values())

    @property
    def errors(self) -> float:
        return sum(v for code, v in self.requests.items() if code.startswith("5"))

    def minus(self, earlier: Snapshot) -> Snapshot:
        """Counts since ``earlier``; a restarted server (counters went down) counts from zero."""

        def sub(now: dict[Any, float], before: dict[Any, float]) -> dict[Any, float]:
            if any(now.get(k, 0) < v for k, v in before.items()):
                return dict(now)
            return {k: v - before.get(k, 0) for k, v in now.items()}

        return Snapshot(
            sub(self.requests, earlier.requests),
            sub(self.latency_buckets, earlier.latency_buckets),
            sub(self.predictions, earlier.predictions),
        )


class MetricSource(Protocol):
    """Where the canary monitor reads live metrics. Both methods only read; neither retries
    for long (the monitor looks again next interval) and both raise MeasurementError, never
    return made-up zeros, when the source cannot answer.

    Optional attribute ``resolution`` (seconds): how often the source has new data. A source
    with coarse data (CloudWatch's one-minute periods) sets it; the monitor then looks no more
    often than that, and deploy-canary plans the bake from ``expected_rps`` instead of measuring
    traffic over one second. Optional ``lag`` (seconds): how late a request shows up in reads;
    the monitor stretches the last look past it, so a late regression is seen before promote.
    """

    name: str

    def read(self, backend: Backend) -> Snapshot:
        """Cumulative counters of one backend; raises MeasurementError when it cannot answer."""
        ...

    def value(self, query: str, backend: Backend) -> float:
        """The current value of a custom check's query for one backend (MeasurementError if none)."""
        ...

    def check(self, state: TargetState) -> list[str]:
        """Called by deploy-canary before any traffic moves: can the analysis read what it needs?

        Raises UsageError (exit 2) naming the setting that is wrong (an address, a selector, a
        namespace, a permission); returns notes for the report (what the stable serves now).
        """
        ...
