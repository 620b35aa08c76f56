"""A request is counted before its answer goes out: a scrape right after an answer finds it.

The canary judge (and a worker that dies right after answering) depend on this: a count made
after the write can be missed by the next scrape, or lost with the process.
"""

from __future__ import annotations

import threading
import time

import requests

from mlcicd.serving.metrics import ServerMetrics
from mlcicd.serving.server import ModelHTTPServer
from mlcicd.serving.service import ModelService


class SlowToCount(ServerMetrics):
    """Takes its time to count, so an answer sent before counting arrives first."""

    def __init__(self) -> None:
        super().__init__("m", "1", None)
        self.counted = threading.Event()

    def observe_request(self, code: int, seconds: float) -> None:
        time.sleep(0.3)
        super().observe_request(code, seconds)
        self.counted.set()


def test_the_answer_leaves_only_after_the_request_is_counted() -> None:
    metrics = SlowToCount()
    server = ModelHTTPServer(("127.0.0.1", 0), ModelService("m", "1", None), metrics)  # never loaded: 503
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        answer = requests.post(url + "/invocations", json={"inputs": [[1]]}, timeout=10)
        assert answer.status_code == 503
        assert metrics.counted.is_set()
        scraped = requests.get(url + "/metrics", timeout=10).text
        assert 'mlci_requests_total{code="503"} 1.0' in scraped
    finally:
        server.shutdown()
        server.server_close()
