"""Read a model server's Prometheus ``/metrics`` page directly (no Prometheus needed)."""

from __future__ import annotations

import re

import requests

from mlcicd.delivery.metrics.base import MeasurementError, Snapshot
from mlcicd.delivery.targets.base import Backend

_LINE = re.compile(r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})?\s+(?P<value>\S+)')
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse(text: str) -> Snapshot:
    """Pick ml-cicd's serving metrics out of the Prometheus text format."""
    requests_by_code: dict[str, float] = {}
    buckets: dict[float, float] = {}
    predictions: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line)
        if not m:
            continue
        name, value = m["name"], float(m["value"])
        labels = dict(_LABEL.findall(m["labels"] or ""))
        if name == "mlci_requests_total":
            requests_by_code[labels.get("code", "")] = value
        elif name == "mlci_request_duration_seconds_bucket":
            buckets[float(labels["le"])] = value
        elif name == "mlci_predictions_total":
            predictions[labels.get("value", "")] = value
    return Snapshot(requests_by_code, buckets, predictions)


class ScrapeSource:
    name = "scrape"

    def __init__(self, timeout: float = 2.0) -> None:
        self.timeout = timeout
        self.session = requests.Session()

    def read(self, backend: Backend) -> Snapshot:
        url = backend.url.rstrip("/") + "/metrics"
        try:
            response = self.session.get(url, timeout=self.timeout)
            response.raise_for_status()
        except requests.RequestException as exc:
            raise MeasurementError(f"{backend.slot} metrics at {url} unreadable: {exc}") from exc
        return parse(response.text)
