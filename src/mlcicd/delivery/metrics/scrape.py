"""Read a model server's Prometheus ``/metrics`` page directly (no Prometheus needed).

Custom checks on this source name a series rather than a PromQL expression:
``metric_name`` or ``metric_name{label="value",...}``; the value is the sum of the
matching samples on the page (a counter, a gauge, a histogram's ``_count``...).
Pages and selectors are parsed by prometheus_client's own parser, so label values may
hold any character the format allows (a predicted class ``a}b``, escaped quotes...).
"""

from __future__ import annotations

from dataclasses import dataclass

import requests

from mlcicd.delivery.metrics.base import MeasurementError, Snapshot
from mlcicd.delivery.targets.base import Backend, TargetState
from mlcicd.errors import UsageError
from mlcicd.plugins import SettingsError

Sample = tuple[str, dict[str, str], float]


def samples(text: str) -> list[Sample]:
    """(name, labels, value) of every sample in the Prometheus text format."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        return [(s.name, dict(s.labels), float(s.value))
                for family in text_string_to_metric_families(text) for s in family.samples]
    except ValueError as exc:  # the page is not the Prometheus text format
        raise MeasurementError(f"unreadable metrics page: {exc}") from exc


def parse(text: str) -> Snapshot:
    """Pick ml-cicd's serving metrics out of the Prometheus text format."""
    requests_by_code: dict[str, float] = {}
    buckets: dict[float, float] = {}
    predictions: dict[str, float] = {}
    for name, labels, value in samples(text):
        if name == "mlci_requests_total":
            requests_by_code[labels.get("code", "")] = value
        elif name == "mlci_request_duration_seconds_bucket":
            buckets[float(labels["le"])] = value
        elif name == "mlci_predictions_total":
            predictions[labels.get("value", "")] = value
    return Snapshot(requests_by_code, buckets, predictions)


def select(text: str, query: str) -> float:
    """Sum of the samples ``query`` (``name{label="v"}``) matches; MeasurementError if none does."""
    try:
        # A selector is a sample line without its value: let the same parser read it.
        ((name, wanted, _),) = samples(query.strip() + " 0\n")
    except (MeasurementError, ValueError):
        raise UsageError(f"custom check query {query!r} is not a series selector",
                         where="mlci.yaml: deploy.canary.checks.custom[].query (source: scrape)",
                         fix='the scrape source reads one series, e.g. `mlci_requests_total{code="500"}`; '
                         "use `source: prometheus` for PromQL expressions") from None
    values = [v for sample_name, labels, v in samples(text)
              if sample_name == name and all(labels.get(k) == want for k, want in wanted.items())]
    if not values:
        raise MeasurementError(f"no series matches {query!r}")
    return sum(values)


@dataclass
class ScrapeSettings:
    """``deploy.canary.sources.scrape``."""

    # Seconds to wait for one /metrics page.
    timeout: float = 2.0

    def check(self) -> None:
        if self.timeout <= 0:
            raise SettingsError("timeout", f"must be positive, got {self.timeout}", "e.g. `timeout: 2`")


class ScrapeSource:
    name = "scrape"
    settings_type = ScrapeSettings

    def __init__(self, settings: ScrapeSettings | None = None) -> None:
        self.timeout = (settings or ScrapeSettings()).timeout
        self.session = requests.Session()

    def _page(self, backend: Backend) -> str:
        url = backend.url.rstrip("/") + "/metrics"
        try:
            response = self.session.get(url, timeout=self.timeout)
            response.raise_for_status()
        except requests.RequestException as exc:
            raise MeasurementError(f"{backend.slot} metrics at {url} unreadable: {exc}") from exc
        return response.text

    def read(self, backend: Backend) -> Snapshot:
        return parse(self._page(backend))

    def value(self, query: str, backend: Backend) -> float:
        return select(self._page(backend), query)

    def check(self, state: TargetState) -> list[str]:
        """The serving stable's page must be readable from here (a canary is judged against it)."""
        if state.stable is None or not state.stable.healthy:
            return []
        try:
            snap = self.read(state.stable)
        except MeasurementError as exc:
            raise UsageError(str(exc), where="mlci.yaml: deploy.canary.source (scrape)",
                             fix="the scrape source reads each server's /metrics directly, so the job must reach "
                             "them (the local target); for a remote target use prometheus or cloudwatch") from exc
        return [f"stable: {snap.total:,.0f} requests served so far (read from {state.stable.url}/metrics)"]
