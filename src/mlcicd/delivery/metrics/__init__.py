"""Metric sources: where the canary monitor reads request counts and latencies.

A source implements :class:`~mlcicd.delivery.metrics.base.MetricSource`; ``scrape``
(read the model servers' ``/metrics`` directly) is the embedded default.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlcicd.errors import UsageError

if TYPE_CHECKING:
    from mlcicd.delivery.metrics.base import MetricSource

BUILTIN_SOURCES = {"scrape": "mlcicd.delivery.metrics.scrape:ScrapeSource"}


def get_source(name: str) -> MetricSource:
    from importlib import import_module

    if name not in BUILTIN_SOURCES:
        raise UsageError(f"unknown metric source {name!r}", where="deploy.metrics",
                         fix=f"use one of: {', '.join(BUILTIN_SOURCES)}")
    module, _, attr = BUILTIN_SOURCES[name].partition(":")
    source: MetricSource = getattr(import_module(module), attr)()
    return source
