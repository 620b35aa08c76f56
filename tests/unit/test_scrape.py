"""The scrape source parses the model server's Prometheus text."""

from mlcicd.delivery.metrics.base import Snapshot
from mlcicd.delivery.metrics.scrape import parse

TEXT = """\
# HELP mlci_requests_total Requests
# TYPE mlci_requests_total counter
mlci_requests_total{code="200"} 95.0
mlci_requests_total{code="500"} 5.0
mlci_request_duration_seconds_bucket{le="0.01"} 90.0
mlci_request_duration_seconds_bucket{le="+Inf"} 100.0
mlci_predictions_total{value="1"} 30.0
mlci_predictions_total{value="0"} 65.0
"""


def test_parse_picks_serving_metrics():
    s = parse(TEXT)
    assert s.total == 100 and s.errors == 5
    assert s.latency_buckets == {0.01: 90, float("inf"): 100}
    assert s.predictions == {"1": 30, "0": 65}


def test_minus_handles_restart():
    before = parse(TEXT)
    restarted = Snapshot({"200": 3.0})
    assert restarted.minus(before).total == 3
    later = Snapshot({"200": 195.0, "500": 5.0})
    assert later.minus(before).requests == {"200": 100.0, "500": 0.0}
