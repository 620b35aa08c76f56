"""Metric sources: where the canary monitor reads request counts, latencies and predictions.

A source implements :class:`~mlcicd.delivery.metrics.base.MetricSource` (``read`` and
``value``). Built in: ``scrape`` (read the model servers' ``/metrics`` pages directly, the
embedded default) and ``prometheus`` (PromQL over Prometheus' HTTP API). Third parties add
sources through the ``mlcicd.metrics`` entry-point group (see :mod:`mlcicd.plugins`); each
gets its own settings from ``deploy.canary.sources.<name>``.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from mlcicd import plugins

if TYPE_CHECKING:
    from mlcicd.config import Config
    from mlcicd.delivery.metrics.base import MetricSource


def open_source(cfg: Config, name: str | None = None) -> MetricSource:
    """The metric source ``name`` (default: ``deploy.canary.source``) with its settings."""
    name = name or cfg.deploy.canary.source
    settings = cfg.plugin_settings(plugins.METRICS, name)
    # A source on the target's cloud reads where the target runs unless told otherwise (CloudWatch in
    # deploy.ecs.region): a CI job given AWS credentials by OIDC alone may have no AWS_REGION at all.
    if dataclasses.is_dataclass(settings) and getattr(settings, "region", "") is None:
        region = getattr(cfg.plugin_settings(plugins.TARGETS, cfg.deploy.target), "region", None)
        if region:
            settings = dataclasses.replace(settings, region=region)  # type: ignore[type-var]
    source: MetricSource = plugins.get(plugins.METRICS, name, settings)
    return source
