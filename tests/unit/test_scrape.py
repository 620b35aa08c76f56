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


def test_label_values_with_braces_and_quotes_keep_every_class():
    """A predicted class "a}b" used to end the label set early and drop that class from the counts."""
    from prometheus_client import CollectorRegistry, Counter, generate_latest

    registry = CollectorRegistry()
    counter = Counter("mlci_predictions", "Predicted rows", ["value"], registry=registry)
    for label, n in (("a}b", 3), ('say "hi"', 2), ("[0.1,0.2)", 4), ("plain", 1)):
        counter.labels(value=label).inc(n)
    snapshot = parse(generate_latest(registry).decode())
    assert snapshot.predictions == {"a}b": 3.0, 'say "hi"': 2.0, "[0.1,0.2)": 4.0, "plain": 1.0}


def test_selector_with_a_brace_in_a_label_value():
    from mlcicd.delivery.metrics.scrape import select

    text = 'mlci_predictions_total{value="a}b"} 3.0\nmlci_predictions_total{value="b"} 1.0\n'
    assert select(text, 'mlci_predictions_total{value="a}b"}') == 3.0
    assert select(text, "mlci_predictions_total") == 4.0
