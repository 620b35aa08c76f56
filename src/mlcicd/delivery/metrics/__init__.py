"""Metric sources: where the canary monitor reads request counts, latencies and predictions.

A source implements :class:`~mlcicd.delivery.metrics.base.MetricSource` (``read`` and
``value``). Built in: ``scrape`` (read the model servers' ``/metrics`` pages directly, the
embedded default) and ``prometheus`` (PromQL over Prometheus' HTTP API). Third parties add
sources through the ``mlcicd.metrics`` entry-point group; a factory takes the canary policy.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from mlcicd.errors import UsageError

if TYPE_CHECKING:
    from mlcicd.config import CanaryPolicy
    from mlcicd.delivery.metrics.base import MetricSource

BUILTIN_SOURCES = {
    "scrape": "mlcicd.delivery.metrics.scrape:ScrapeSource",
    "prometheus": "mlcicd.delivery.metrics.prometheus:PrometheusSource",
}


def available_sources() -> dict[str, str]:
    found = dict(BUILTIN_SOURCES)
    for ep in entry_points(group="mlcicd.metrics"):
        found.setdefault(ep.name, ep.value)
    return found


def get_source(name: str, policy: CanaryPolicy) -> MetricSource:
    sources = available_sources()
    if name not in sources:
        raise UsageError(f"unknown metric source {name!r}", where="mlci.yaml: deploy.canary.source",
                         fix=f"use one of: {', '.join(sorted(sources))}, or install a plugin that registers an "
                         "entry point in the `mlcicd.metrics` group")
    module, _, attr = sources[name].partition(":")
    factory: Callable[[CanaryPolicy], MetricSource] = getattr(import_module(module), attr)
    return factory(policy)
