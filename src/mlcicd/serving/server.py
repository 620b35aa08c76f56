"""The model server: an MLflow pyfunc model behind a small stdlib HTTP server.

The protocol follows MLflow's scoring server (``/invocations`` with the
``dataframe_split`` / ``dataframe_records`` / ``instances`` / ``inputs`` bodies or
CSV), so clients written for ``mlflow models serve`` work unchanged. The HTTP layer
is ``http.server``: a pyfunc prediction costs milliseconds, so a web framework
would add dependencies without adding throughput.

mlflow, pandas and numpy are imported by :meth:`ModelService.load`, after the port
is bound, so ``/health`` answers while the model is still loading.
"""

from __future__ import annotations

import contextlib
import io
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

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
ACCEPTED = (
    'a JSON object with exactly one of "dataframe_split" ({"columns": [...], "data": [[...]]}), '
    '"dataframe_records" ([{column: value}, ...]), "instances" or "inputs" (optionally with "params"), '
    "or a CSV body with Content-Type: text/csv"
)
MAX_BODY = 64 * 1024 * 1024
_FLOAT_TYPES = {"float", "double"}


class BadRequest(Exception):
    """The body cannot be turned into model input; the client gets a 400."""


class ModelService:
    """The loaded model plus the request-to-input and output-to-JSON conversions."""

    def __init__(self, model_name: str, model_version: str, run_id: str | None) -> None:
        self.model_name = model_name
        self.model_version = model_version
        self.run_id = run_id
        self.model: Any = None
        self.ready = threading.Event()
        self.columns: list[str] = []  # input names of a column-based signature, in order
        self.float_columns: list[str] = []

    def load(self, model_dir: str) -> None:
        import mlflow.pyfunc
        import numpy  # noqa: F401 - imported here so the first request does not pay for it
        import pandas  # noqa: F401

        model = mlflow.pyfunc.load_model(model_dir)
        schema = model.metadata.get_input_schema()
        if schema is not None and not schema.is_tensor_spec() and schema.has_input_names():
            self.columns = list(schema.input_names())
            self.float_columns = [str(c.name) for c in schema.inputs
                                  if str(getattr(c.type, "name", c.type)) in _FLOAT_TYPES]
        self.model = model
        self.ready.set()

    # -- request body -> model input -------------------------------------------------------
    def parse(self, body: bytes, content_type: str) -> tuple[Any, dict[str, Any] | None]:
        import pandas as pd

        ctype = content_type.split(";", 1)[0].strip().lower()
        if ctype == "text/csv":
            try:
                frame = pd.read_csv(io.BytesIO(body))
            except Exception as exc:  # pandas raises several unrelated types for bad CSV
                raise BadRequest(f"the CSV body could not be read: {exc}") from None
            return self._conform(frame), None
        if ctype not in ("", "application/json"):
            raise BadRequest(f"unsupported Content-Type {ctype!r}")
        try:
            doc = json.loads(body)
        except ValueError as exc:
            raise BadRequest(f"the body is not valid JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise BadRequest("the JSON body must be an object")
        keys = [k for k in FORMATS if k in doc]
        unknown = sorted(set(doc) - set(FORMATS) - {"params"})
        if len(keys) != 1 or unknown:
            found = ", ".join(sorted(doc)) or "nothing"
            raise BadRequest(f"unrecognised body (found keys: {found})")
        params = doc.get("params")
        if params is not None and not isinstance(params, dict):
            raise BadRequest('"params" must be a JSON object')
        try:
            data = self._to_input(keys[0], doc[keys[0]])
        except BadRequest:
            raise
        except (ValueError, TypeError) as exc:
            raise BadRequest(f'"{keys[0]}" could not be turned into model input: {exc}') from None
        return data, params

    def _to_input(self, key: str, payload: Any) -> Any:
        import numpy as np
        import pandas as pd

        if key == "dataframe_split":
            if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
                raise BadRequest('"dataframe_split" must be an object with a "data" list')
            return self._conform(pd.DataFrame(data=payload["data"], columns=payload.get("columns"),
                                              index=payload.get("index")))
        if key == "dataframe_records":
            if not isinstance(payload, list) or not all(isinstance(r, dict) for r in payload):
                raise BadRequest('"dataframe_records" must be a list of objects')
            return self._conform(pd.DataFrame(data=payload))
        # instances / inputs: TF-serving style. Rows of objects or a dict of columns are frames;
        # a plain array is a tensor, given column names when the model's signature has them.
        if isinstance(payload, dict):
            if self.columns:
                return self._conform(pd.DataFrame({k: v if isinstance(v, list) else [v] for k, v in payload.items()}))
            return {k: np.asarray(v) for k, v in payload.items()}
        if not isinstance(payload, list):
            raise BadRequest(f'"{key}" must be a list or an object')
        if payload and all(isinstance(r, dict) for r in payload):
            return self._conform(pd.DataFrame(data=payload))
        array = np.asarray(payload)
        if self.columns and array.ndim == 2 and array.shape[1] == len(self.columns):
            return self._conform(pd.DataFrame(array, columns=self.columns))
        if self.columns and array.ndim == 1 and len(self.columns) == 1:
            return self._conform(pd.DataFrame({self.columns[0]: array}))
        if array.size == 0:
            raise BadRequest("no rows in the input")
        return array

    def _conform(self, frame: Any) -> Any:
        """Whole numbers sent for float columns become floats, as MLflow's own server does.

        JSON has no int/float distinction (``1`` vs ``1.0``) and MLflow's schema check
        refuses int64 -> float64 as unsafe, so without this a client sending ``1``
        would get an error.
        """
        if len(frame) == 0:
            raise BadRequest("no rows in the input")
        for name in self.float_columns:
            if name in frame.columns and frame[name].dtype.kind in "iub":
                frame[name] = frame[name].astype("float64")
        return frame

    def predict(self, data: Any, params: dict[str, Any] | None) -> Any:
        return self.model.predict(data, params=params) if params else self.model.predict(data)


def to_json_predictions(raw: Any) -> tuple[Any, list[Any]]:
    """(JSON-safe predictions, one value per row for the prediction metric)."""
    import numpy as np
    import pandas as pd

    if isinstance(raw, pd.DataFrame):
        records = _clean(raw.to_dict(orient="records"))
        rows = [next(iter(r.values())) for r in records] if raw.shape[1] == 1 else ["multi"] * len(records)
        return records, rows
    if isinstance(raw, pd.Series):
        values = _clean(raw.tolist())
        return values, values
    if isinstance(raw, np.ndarray):
        values = _clean(raw.tolist())
        if raw.ndim == 1:
            return values, values
        return values, ["multi"] * (raw.shape[0] if raw.ndim else 1)
    if isinstance(raw, dict):
        return _clean(raw), ["multi"]
    if isinstance(raw, list | tuple):
        values = _clean(list(raw))
        return values, [v if not isinstance(v, list | dict) else "multi" for v in values]
    value = _clean(raw)
    return value, [value]


def _clean(obj: Any) -> Any:
    """numpy scalars -> Python, NaN/inf -> null (JSON has neither)."""
    if isinstance(obj, float):
        return obj if obj == obj and obj not in (float("inf"), float("-inf")) else None
    if isinstance(obj, str | int | bool) or obj is None:
        return obj
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    item = getattr(obj, "item", None)  # numpy scalar, pandas Timestamp-like
    if callable(item):
        return _clean(item())
    if hasattr(obj, "tolist"):
        return _clean(obj.tolist())
    return str(obj)


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
                 sock: socket.socket | None = None, balance: Balance | None = None) -> None:
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
        self._send(status, json.dumps(obj, allow_nan=False, separators=(",", ":")).encode())

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
        code = 500
        try:
            code, payload, rows = self._invoke()
            self._json(code, payload)
            if rows:
                self.server.metrics.observe_predictions(rows)
        finally:
            self.server.metrics.observe_request(code, time.perf_counter() - started)
            self.server.leave()

    def _invoke(self) -> tuple[int, dict[str, Any], list[Any]]:
        service = self.server.service
        try:
            body = self._body()
        except BadRequest as exc:
            return 400, {"error_code": "BAD_REQUEST", "message": str(exc)}, []
        if not service.ready.is_set():
            return 503, {"error_code": "NOT_READY", "message": "the model is still loading"}, []
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
