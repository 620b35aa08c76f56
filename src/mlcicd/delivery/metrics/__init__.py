"""Metric sources: where the canary monitor reads request counts, latencies and predictions.

A source implements :class:`~mlcicd.delivery.metrics.base.MetricSource` (``read`` and
``value``). Built in: ``scrape`` (read the model servers' ``/metrics`` pages directly, the
embedded default) and ``prometheus`` (PromQL over Prometheus' HTTP API). Third parties add
sources through the ``mlcicd.metrics`` entry-point group (see :mod:`mlcicd.plugins`); each
gets its own settings from ``deploy.canary.sources.<name>``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlcicd import plugins

if TYPE_CHECKING:
    from mlcicd.config import Config
    from mlcicd.delivery.metrics.base import MetricSource


def open_source(cfg: Config, name: str | None = None) -> MetricSource:
    """The metric source ``name`` (default: ``deploy.canary.source``) with its settings."""
    name = name or cfg.deploy.canary.source
    source: MetricSource = plugins.get(plugins.METRICS, name, cfg.plugin_settings(plugins.METRICS, name))
    return source
