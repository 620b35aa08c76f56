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
