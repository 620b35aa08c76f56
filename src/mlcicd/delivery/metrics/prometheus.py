"""Read the model servers' metrics from a Prometheus server (HTTP API, PromQL).

The same counters the scrape source reads, summed by Prometheus over the series of one
backend, picked by ``deploy.canary.sources.prometheus.selector`` (default ``instance="{address}"``,
the backend's host:port as Prometheus scrapes it). The local target writes a file_sd file
(``<state dir>/prometheus-targets.json``) so Prometheus finds new canaries by itself.

A backend with no series yet (Prometheus has not scraped a brand-new canary) reads as no
requests, which the judge treats as missing data, never as health; an unreachable server
or a failed query raises MeasurementError.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import requests

from mlcicd.delivery.metrics.base import MeasurementError, Snapshot
from mlcicd.delivery.targets.base import Backend
from mlcicd.plugins import SettingsError


@dataclass
class PrometheusSettings:
    """``deploy.canary.sources.prometheus``."""

    url: str = "http://127.0.0.1:9090"
    # PromQL label selector that picks one backend's series; {address} is its host:port
    # ({slot} and {version} are there too).
    selector: str = 'instance="{address}"'
    timeout: float = 5.0

    def check(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise SettingsError("url", f"{self.url!r} is not an http(s) URL", "e.g. `url: http://prometheus:9090`")
        if self.timeout <= 0:
            raise SettingsError("timeout", f"must be positive, got {self.timeout}", "e.g. `timeout: 5`")


class PrometheusSource:
    name = "prometheus"
    settings_type = PrometheusSettings

    def __init__(self, settings: PrometheusSettings) -> None:
        self.config = settings
        self.url = settings.url.rstrip("/")
        self.session = requests.Session()

    def selector(self, backend: Backend) -> str:
        address = backend.url.split("://", 1)[-1].rstrip("/")
        return self.config.selector.format(address=address, slot=backend.slot, version=backend.release.version)

    def _query(self, promql: str) -> list[dict[str, Any]]:
        try:
            response = self.session.get(f"{self.url}/api/v1/query", params={"query": promql},
                                        timeout=self.config.timeout)
            body = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise MeasurementError(f"Prometheus at {self.url} did not answer {promql!r}: {exc}") from exc
        if body.get("status") != "success":
            raise MeasurementError(f"Prometheus rejected {promql!r}: {body.get('error', response.text[:200])}")
        data = body.get("data", {})
        if data.get("resultType") == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        result: list[dict[str, Any]] = data.get("result", [])
        return result

    def _by_label(self, metric: str, label: str, backend: Backend) -> dict[str, float]:
        rows = self._query(f"sum by ({label}) ({metric}{{{self.selector(backend)}}})")
        return {row["metric"].get(label, ""): float(row["value"][1]) for row in rows}

    def read(self, backend: Backend) -> Snapshot:
        codes = self._by_label("mlci_requests_total", "code", backend)
        buckets = {math.inf if le == "+Inf" else float(le): v
                   for le, v in self._by_label("mlci_request_duration_seconds_bucket", "le", backend).items()}
        predictions = self._by_label("mlci_predictions_total", "value", backend)
        return Snapshot(codes, buckets, predictions)

    def value(self, query: str, backend: Backend) -> float:
        promql = query.replace("{selector}", self.selector(backend)).replace("{slot}", backend.slot)
        rows = self._query(promql)
        if len(rows) != 1:
            raise MeasurementError(f"custom query {promql!r} returned {len(rows)} series; it must return one "
                                   "(aggregate it, e.g. sum(...))")
        value = float(rows[0]["value"][1])
        if math.isnan(value):
            raise MeasurementError(f"custom query {promql!r} is NaN (no data in its window yet)")
        return value
