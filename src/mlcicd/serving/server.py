"""The model server's HTTP layer: a small stdlib server around :class:`ModelService`.

The HTTP layer is ``http.server``: a pyfunc prediction costs milliseconds, so a web
framework would add dependencies without adding throughput. The model (and mlflow,
pandas, numpy) loads after the port is bound, so ``/health`` answers while it loads.
"""

from __future__ import annotations

import collections
import contextlib
import json
import socket
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from mlcicd.serving.balance import DEFER, Balance
from mlcicd.serving.metrics import ServerMetrics
from mlcicd.serving.service import ACCEPTED, MAX_BODY, BadRequest, ModelService, to_json_predictions


def _json_bytes(obj: Any) -> bytes:
    """A JSON body as the server sends it: compact, and strict (NaN is not JSON)."""
    return json.dumps(obj, allow_nan=False, separators=(",", ":")).encode()


class Turns:
    """At most ``permits`` requests at once, the rest served in arrival order.

    One thread per connection: with all of them predicting at once, each request is slowed by
    all the others under the GIL, and the GIL (like ``threading.Lock``) wakes an arbitrary
    waiter, so with 8 connections some requests waited through several turns (p99 2.5x the
    median; taking turns brought it to 1.3x in bench/serve.py). A model that waits on I/O
    rather than the CPU wants more permits (``--concurrency``).
    """

    def __init__(self, permits: int = 1) -> None:
        self._guard = threading.Lock()
        self._waiters: collections.deque[threading.Lock] = collections.deque()
        self._free = permits

    def __enter__(self) -> None:
        with self._guard:
            if self._free > 0:
                self._free -= 1
                return
            turn = threading.Lock()
            turn.acquire()
            self._waiters.append(turn)
        turn.acquire()  # released by a finishing request, which handed its permit to this one

    def __exit__(self, *_exc: object) -> None:
        with self._guard:
            if self._waiters:
                self._waiters.popleft().release()
            else:
                self._free += 1


class ModelHTTPServer(ThreadingHTTPServer):
    """Counts in-flight requests so a SIGTERM can let them finish before the process exits.

    With ``sock`` the server accepts on a listening socket it inherited (a worker process of
    :mod:`mlcicd.serving.supervisor`) instead of binding one.
    """

    daemon_threads = True
    # Idle keep-alive connections park a thread in a blocking read: never join those on close.
    block_on_close = False
    # The default backlog of 5 makes a burst of new connections wait for SYN retries (1 s and up).
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], service: ModelService, metrics: ServerMetrics,
                 sock: socket.socket | None = None, balance: Balance | None = None, concurrency: int = 1) -> None:
        self.service = service
        self.metrics = metrics
        self.stopping = False
        # False while the supervisor answers for workers that are still loading: every response
        # closes its connection, so no client stays attached to a process that hands over.
        self.keep_alive = True
        self._inflight = 0
        self._idle = threading.Condition()
        self.balance = balance
        self.connections = 0
        self._conn_lock = threading.Lock()
        self.turns = Turns(concurrency)
        super().__init__(address, Handler, bind_and_activate=sock is None)
        if sock is not None:
            self.socket.close()
            self.socket = sock
            self.server_address = sock.getsockname()

    def get_request(self) -> tuple[socket.socket, Any]:
        if self.balance is not None and self.balance.busier_than_least(self.connections):
            time.sleep(DEFER)  # a less busy worker may take this connection meanwhile (balance.py)
        request = self.socket.accept()  # BlockingIOError when another worker took it: skipped
        self._count(+1)
        return request

    def shutdown_request(self, request: Any) -> None:
        super().shutdown_request(request)
        self._count(-1)

    def _count(self, change: int) -> None:
        with self._conn_lock:
            self.connections += change
            if self.balance is not None:
                self.balance.publish(self.connections)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that drops its connection is normal traffic, not a server error: no traceback.

        Keep-alive clients (load balancers, pools) close or reset idle connections whenever they
        like; the handler's next read then raises ConnectionResetError.
        """
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)  # a bug of ours: keep the whole traceback

    def enter(self) -> None:
        with self._idle:
            self._inflight += 1

    def leave(self) -> None:
        with self._idle:
            self._inflight -= 1
            if self._inflight == 0:
                self._idle.notify_all()

    def drain(self, timeout: float) -> int:
        """Wait for in-flight requests; return how many were still running at the timeout."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._inflight and time.monotonic() < deadline:
                self._idle.wait(deadline - time.monotonic())
            return self._inflight


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: nginx reuses its upstream connections
    # Headers and body go out as two writes; without TCP_NODELAY Nagle + delayed ACK add ~40 ms.
    disable_nagle_algorithm = True
    # Longer than nginx's upstream keepalive_timeout (60 s), so nginx closes idle connections first.
    timeout = 120
    server: ModelHTTPServer
    server_version = "mlci-serve"
    sys_version = ""

    def version_string(self) -> str:
        return self.server_version

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """No access log: one line per request would drown the start/stop lines."""

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Model-Version", self.server.service.model_version)
        if self.server.stopping or not self.server.keep_alive:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, obj: Any) -> None:
        self._send(status, _json_bytes(obj))

    def do_GET(self) -> None:
        service = self.server.service
        path = self.path.split("?", 1)[0]
        if path == "/health":
            self._json(200, {"status": "ok"})
        elif path in ("/ready", "/ping"):
            ready = service.ready.is_set()
            self._json(200 if ready else 503, {"status": "ready" if ready else "loading"})
        elif path == "/version":
            self._json(200, {"model_name": service.model_name, "model_version": service.model_version,
                             "run_id": service.run_id})
        elif path == "/metrics":
            body, ctype = self.server.metrics.render()
            self._send(200, body, ctype)
        else:
            self._json(404, {"error_code": "NOT_FOUND", "message": f"no such endpoint: {path}"})

    def do_POST(self) -> None:
        if self.path.split("?", 1)[0] != "/invocations":
            self._json(404, {"error_code": "NOT_FOUND", "message": f"no such endpoint: {self.path}"})
            return
        started = time.perf_counter()
        self.server.enter()
        counted = False
        try:
            code, payload, rows = self._invoke()
            body = _json_bytes(payload)
            # Count before answering: a client (or the canary judge's scrape right after the last
            # answer) must find every answered request in /metrics, also if this worker dies next.
            if rows:
                self.server.metrics.observe_predictions(rows)
            self.server.metrics.observe_request(code, time.perf_counter() - started)
            counted = True
            self._send(code, body)
        finally:
            if not counted:
                self.server.metrics.observe_request(500, time.perf_counter() - started)
            self.server.leave()

    def _invoke(self) -> tuple[int, dict[str, Any], list[Any]]:
        service = self.server.service
        try:
            body = self._body()
        except BadRequest as exc:
            return 400, {"error_code": "BAD_REQUEST", "message": str(exc)}, []
        if not service.ready.is_set():
            return 503, {"error_code": "NOT_READY", "message": "the model is still loading"}, []
        # Only the model's work takes a turn: reading the body and writing the answer wait on the
        # client's socket, and a slow client must not hold up the requests queued behind it.
        with self.server.turns:
            try:
                data, params = service.parse(body, self.headers.get("Content-Type", ""))
            except BadRequest as exc:
                return 400, {"error_code": "BAD_REQUEST", "message": f"{exc}. Accepted: {ACCEPTED}"}, []
            try:
                # Every failure of predict counts as the model's, schema mismatches included: the canary
                # judge reads 5xx, and a version that rejects what clients send is a failing version.
                raw = service.predict(data, params)
                predictions, rows = to_json_predictions(raw)
            except Exception as exc:
                return 500, {"error_code": "MODEL_ERROR", "message": f"{type(exc).__name__}: {exc}"}, []
        return 200, {"predictions": predictions}, rows

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._chunked()
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            raise BadRequest("invalid Content-Length") from None
        if length > MAX_BODY:
            self.close_connection = True  # the unread body would be parsed as the next request
            raise BadRequest(f"body larger than {MAX_BODY} bytes")
        return self.rfile.read(length) if length > 0 else b""

    def _chunked(self) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            try:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
            except ValueError:
                self.close_connection = True
                raise BadRequest("malformed chunked body") from None
            if size == 0:
                while self.rfile.readline().strip():  # trailers
                    pass
                return b"".join(parts)
            total += size
            if total > MAX_BODY:
                self.close_connection = True
                raise BadRequest(f"body larger than {MAX_BODY} bytes")
            parts.append(self.rfile.read(size))
            self.rfile.readline()

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Protocol-level errors (bad request line, unsupported method) as JSON, with the version header."""
        self.close_connection = True
        with contextlib.suppress(OSError, ValueError):  # the client may already be gone
            self._json(code, {"error_code": HTTPStatus(code).phrase.upper().replace(" ", "_"),
                              "message": message or HTTPStatus(code).phrase})
