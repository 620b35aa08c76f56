"""The version probe counts what a client sees: which version answered, with which status."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mlcicd.delivery.traffic import probe_versions


class _TwoVersions(BaseHTTPRequestHandler):
    """Answers like a router in front of two versions: even requests v1, odd ones v2 (a 500)."""

    count = 0
    lock = threading.Lock()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        with self.lock:
            n, type(self).count = type(self).count, type(self).count + 1
        self.send_response(200 if n % 2 == 0 else 500)
        if n % 3 != 2:
            self.send_header("X-Model-Version", "1" if n % 2 == 0 else "2")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[str]:
    _TwoVersions.count = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _TwoVersions)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_counts_versions_and_codes(endpoint):
    answers = probe_versions(endpoint, [{"a": 1.0}], 6)
    # Requests 0..5: versions 1,2,?,2,1,? (no header on every third) and codes 200/500 alternating.
    assert answers.versions == {"1": 2, "2": 2, "?": 2}
    assert answers.codes == {200: 3, 500: 3}


def test_one_request_per_row_by_default(endpoint):
    assert sum(probe_versions(endpoint, [{"a": 1.0}, {"a": 2.0}]).codes.values()) == 2
    with pytest.raises(ValueError, match="no rows"):
        probe_versions(endpoint, [])


class _ClosesSecondRequest(BaseHTTPRequestHandler):
    """Keep-alive server that drops the connection on the second request, as a reloading proxy does."""

    protocol_version = "HTTP/1.1"
    count = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        type(self).count += 1
        if type(self).count == 2:
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.send_response(200)
        self.send_header("X-Model-Version", "1")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


def test_load_generator_resends_once_when_a_kept_alive_connection_closes_and_counts_it():
    _ClosesSecondRequest.count = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ClosesSecondRequest)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        from mlcicd.delivery.traffic import LoadGenerator

        gen = LoadGenerator(f"http://127.0.0.1:{server.server_address[1]}", [{"a": 1.0}],
                            rate=200, workers=1, max_requests=5)
        gen.start()
        for t in gen._threads:
            t.join(timeout=10)
        stats = gen.stats.as_dict()
    finally:
        server.shutdown()
        server.server_close()
    assert stats["codes"] == {"200": 5} and stats["connection_errors"] == 0
    assert stats["resent"] == 1


def test_a_rate_policy_sets_the_pace_from_what_the_traffic_sees(endpoint):
    """Users who send a trickle until a second version answers, then a full load: the pace follows."""
    import time

    from mlcicd.delivery.traffic import LoadGenerator

    def trickle_until_two_versions(stats) -> float:
        return 200.0 if len(stats.answering(within=5)) > 1 else 2.0

    gen = LoadGenerator(endpoint, [{"a": 1.0}], rate=trickle_until_two_versions, workers=2, max_requests=60)
    started = time.monotonic()
    gen.start()
    for t in gen._threads:
        t.join(timeout=20)
    took = time.monotonic() - started
    stats = gen.stats
    # Two answers at 2/s (v1, then v2) take ~0.5 s; the other 58 at 200/s ~0.3 s; at 2/s they would take 29 s.
    assert stats.sent == 60 and took < 5, took
    assert set(stats.answering(within=60)) == {"1", "2"}
    assert stats.first_seen["1"] <= stats.first_seen["2"] <= stats.last_seen["2"]
    with pytest.raises(ValueError, match="rate must be positive"):
        LoadGenerator(endpoint, [{"a": 1.0}], rate=lambda stats: 0.0).start()
