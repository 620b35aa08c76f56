"""The metric-source contract, run against every source in ``KITS`` with real servers.

A source must report exactly what the model servers served (per backend: status codes,
latency histogram, prediction mix), answer a custom check's query, and raise
MeasurementError (never made-up zeros) when it cannot answer. ``prometheus`` runs a real
Prometheus on 127.0.0.1 that finds the model servers through the local target's file_sd file.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from runners import require

from mlcicd.config import parse_config
from mlcicd.delivery.metrics import open_source
from mlcicd.delivery.metrics.base import MeasurementError, MetricSource, Snapshot
from mlcicd.delivery.targets import open_target
from mlcicd.delivery.targets.base import Backend
from mlcicd.delivery.targets.local import LocalTarget
from mlcicd.delivery.traffic import probe_versions

pytestmark = pytest.mark.integration


@dataclass
class SourceKit:
    name: str
    # Build the source for a running target; returns it and a function that makes it unreachable.
    start: Callable[[LocalTarget, Path], contextlib.AbstractContextManager[tuple[MetricSource, Callable[[], None]]]]
    custom_query: str  # a query whose value is the backend's count of HTTP 200 answers


@contextlib.contextmanager
def _scrape(target: LocalTarget, home: Path) -> Iterator[tuple[MetricSource, Callable[[], None]]]:
    source = open_source(parse_config({"data": {"label": "y"}, "mlflow": {"model_name": "m"}}), "scrape")

    def unreachable() -> None:  # the server whose page it reads is gone
        target.remove_backend("canary")

    yield source, unreachable


@contextlib.contextmanager
def _prometheus(target: LocalTarget, home: Path) -> Iterator[tuple[MetricSource, Callable[[], None]]]:
    from prometheus_server import binary, running_prometheus

    require(binary() is not None, "prometheus is not installed (apt-get install -y prometheus; .ci/run installs it)")
    with running_prometheus(home / "prometheus", target.scrape_targets_file) as server:
        config = parse_config({"data": {"label": "y"}, "mlflow": {"model_name": "m"},
                               "deploy": {"canary": {"source": "prometheus",
                                                     "sources": {"prometheus": {"url": server.url}}}}})
        for backend in (target.state().stable, target.state().canary):
            assert backend is not None and server.scraped(backend.url.split("://")[1]), server.log.read_text()
        yield open_source(config), server.stop


KITS = {
    "scrape": SourceKit("scrape", _scrape, 'mlci_requests_total{code="200"}'),
    "prometheus": SourceKit("prometheus", _prometheus, 'sum(mlci_requests_total{{selector},code="200"})'),
}


@pytest.fixture(params=sorted(KITS))
def kit(request: pytest.FixtureRequest) -> SourceKit:
    return KITS[request.param]


@pytest.fixture
def split(project_config, mlflow_project, reaper) -> Iterator[LocalTarget]:
    """v1 stable and v2 canary behind nginx, 50/50."""
    target = open_target(project_config)
    assert isinstance(target, LocalTarget)
    try:
        target.ensure_backend("canary", mlflow_project.release("1"))
        target.set_canary_weight(100)
        target.promote_canary()
        target.ensure_backend("canary", mlflow_project.release("2"))
        target.set_canary_weight(50)
        yield target
    finally:
        reaper.track(*target.pids())
        target.shutdown()


def _send(endpoint: str, rows: list[dict], n: int) -> dict[str, int]:
    answers = probe_versions(endpoint, rows, n)
    assert answers.codes == {200: n}
    return dict(answers.versions)


def _eventually(read: Callable[[], Snapshot], expected_total: float, timeout: float = 20.0) -> Snapshot:
    """Sources may lag (Prometheus scrapes every second): wait until the count arrives."""
    deadline = time.monotonic() + timeout
    while True:
        snap = read()
        if snap.total >= expected_total or time.monotonic() > deadline:
            return snap
        time.sleep(0.25)


def test_counts_are_what_each_backend_served(kit, split, mlflow_project, tmp_path):
    with kit.start(split, tmp_path) as (source, _):
        state = split.state()
        assert state.stable and state.canary and state.endpoint
        before = {b.slot: source.read(b) for b in (state.stable, state.canary)}
        answered = _send(state.endpoint, mlflow_project.rows, 200)
        assert answered == {"1": 100, "2": 100}  # the split is exact
        for backend in (state.stable, state.canary):
            served = answered[backend.release.version]
            now = _eventually(lambda b=backend: source.read(b).minus(before[b.slot]), served)
            assert now.total == served and now.errors == 0
            assert now.requests == {"200": served}
            assert now.latency_buckets[float("inf")] == served  # every request is in the histogram
            assert sum(now.predictions.values()) == served  # one row, one prediction per request
            assert set(now.predictions) <= {"0", "1"}


def test_a_custom_query_reads_one_number(kit, split, mlflow_project, tmp_path):
    with kit.start(split, tmp_path) as (source, _):
        state = split.state()
        assert state.canary and state.endpoint
        canary = state.canary
        served = _send(state.endpoint, mlflow_project.rows, 40)[canary.release.version]
        expected = _eventually(lambda: source.read(canary), served).requests["200"]
        assert expected >= served
        deadline = time.monotonic() + 20
        while (value := source.value(kit.custom_query, state.canary)) < expected and time.monotonic() < deadline:
            time.sleep(0.25)
        assert value == expected


def test_an_unreachable_source_raises_a_measurement_error(kit, split, tmp_path):
    with kit.start(split, tmp_path) as (source, make_unreachable):
        canary = split.state().canary
        assert canary is not None
        source.read(canary)
        make_unreachable()
        gone = Backend(canary.slot, canary.release, canary.url, healthy=False)
        with pytest.raises(MeasurementError):
            source.read(gone)
        with pytest.raises(MeasurementError):
            source.value(kit.custom_query, gone)
