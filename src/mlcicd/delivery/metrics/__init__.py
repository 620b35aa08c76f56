"""Metric sources: where the canary monitor reads request counts, latencies and predictions.

A source implements :class:`~mlcicd.delivery.metrics.base.MetricSource` (``read`` and
``value``). Built in: ``scrape`` (read the model servers' ``/metrics`` pages directly, the
embedded default) and ``prometheus`` (PromQL over Prometheus' HTTP API). Third parties add
sources through the ``mlcicd.metrics`` entry-point group; a factory takes the canary policy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from mlcicd import plugins
from mlcicd.errors import UsageError

if TYPE_CHECKING:
    from mlcicd.config import CanaryPolicy
    from mlcicd.delivery.metrics.base import MetricSource

BUILTIN_SOURCES = {
    "scrape": "mlcicd.delivery.metrics.scrape:ScrapeSource",
    "prometheus": "mlcicd.delivery.metrics.prometheus:PrometheusSource",
}


def available_sources() -> dict[str, str]:
    return plugins.available(BUILTIN_SOURCES, "mlcicd.metrics")


def get_source(name: str, policy: CanaryPolicy) -> MetricSource:
    sources = available_sources()
    if name not in sources:
        raise UsageError(f"unknown metric source {name!r}", where="mlci.yaml: deploy.canary.source",
                         fix=f"use one of: {', '.join(sorted(sources))}, or install a plugin that registers an "
                         "entry point in the `mlcicd.metrics` group")
    factory: Callable[[CanaryPolicy], MetricSource] = plugins.load(sources[name])
    return factory(policy)
