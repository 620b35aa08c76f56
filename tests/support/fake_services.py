"""GitHub, GitLab, Slack and a generic webhook receiver on 127.0.0.1, for the comment and notify clients.

One threaded HTTP server records every request and answers as the real endpoints do:

* GitHub issue comments: ``GET/POST /repos/<o>/<r>/issues/<n>/comments`` (pages of
  ``per_page``), ``PATCH/DELETE /repos/<o>/<r>/issues/comments/<id>``; ``Authorization: Bearer``;
* GitLab notes: ``GET/POST /api/v4/projects/<id>/merge_requests/<iid>/notes`` (``X-Next-Page``),
  ``PUT/DELETE .../notes/<id>``; ``PRIVATE-TOKEN`` (a ``JOB-TOKEN`` gets 401, as on GitLab);
* anything else (``/slack/...``, ``/hook``): 200 ``ok``.

``script(path, [(status, headers), ...])`` makes the next requests to a path answer those
statuses first (429 with Retry-After, 500, ...). ``delay`` slows every answer, which widens
the window in which concurrent reporters race.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class FakeServices:
    token: str = "tok-secret"
    delay: float = 0.0
    page_size: int = 100
    requests: list[Recorded] = field(default_factory=list)
    comments: dict[int, dict[str, Any]] = field(default_factory=dict)
    scripts: dict[str, list[tuple[int, dict[str, str]]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1001))
    url: str = ""

    def script(self, path: str, answers: list[tuple[int, dict[str, str]]]) -> None:
        with self.lock:
            self.scripts[path] = list(answers)

    def to(self, prefix: str, method: str | None = None) -> list[Recorded]:
        return [r for r in self.requests if r.path.startswith(prefix) and method in (None, r.method)]

    def thread(self, prefix: str) -> list[dict[str, Any]]:
        return [c for c in sorted(self.comments.values(), key=lambda c: c["id"]) if c["thread"] == prefix]


_GH_THREAD = re.compile(r"^/repos/[^/]+/[^/]+/issues/(\d+)/comments$")
_GH_ONE = re.compile(r"^/repos/[^/]+/[^/]+/issues/comments/(\d+)$")
_GL_THREAD = re.compile(r"^/api/v4/projects/[^/]+/merge_requests/(\d+)/notes$")
_GL_ONE = re.compile(r"^/api/v4/projects/[^/]+/merge_requests/(\d+)/notes/(\d+)$")


def _handler(state: FakeServices) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _answer(self, status: int, payload: Any = None, headers: dict[str, str] | None = None) -> None:
            body = b"" if payload is None else (payload if isinstance(payload, bytes) else json.dumps(payload).encode())
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            path, _, query = self.path.partition("?")
            with state.lock:
                state.requests.append(Recorded(self.command, path, dict(self.headers), body))
                scripted = state.scripts.get(path)
                answer = scripted.pop(0) if scripted else None
            if state.delay:
                time.sleep(state.delay)
            if answer is not None:
                status, headers = answer
                self._answer(status, b"scripted", headers)
                return
            if path.startswith("/repos/"):
                self._github(path, query, body)
            elif path.startswith("/api/v4/"):
                self._gitlab(path, query, body)
            else:
                self._answer(200, b"ok")

        def _page(self, items: list[dict[str, Any]], query: str) -> tuple[list[dict[str, Any]], int, bool]:
            params = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
            size = min(int(params.get("per_page", 30)), state.page_size)
            page = int(params.get("page", 1))
            chunk = items[(page - 1) * size: page * size]
            return chunk, page, page * size < len(items)

        def _github(self, path: str, query: str, body: bytes) -> None:
            if self.headers.get("Authorization") != f"Bearer {state.token}":
                self._answer(401, {"message": "Bad credentials"})
                return
            if m := _GH_THREAD.match(path):
                prefix = f"gh:{m[1]}"
                if self.command == "GET":
                    with state.lock:
                        items = [{"id": c["id"], "body": c["body"]} for c in state.thread(prefix)]
                    chunk, page, more = self._page(items, query)
                    headers = {"Link": f'<{state.url}{path}?per_page={state.page_size}&page={page + 1}>; rel="next"'} \
                        if more else {}
                    self._answer(200, chunk, headers)
                    return
                if self.command == "POST":
                    with state.lock:
                        cid = next(state.ids)
                        state.comments[cid] = {"id": cid, "thread": prefix, "body": json.loads(body)["body"]}
                    self._answer(201, {"id": cid, "body": state.comments[cid]["body"],
                                       "html_url": f"https://github.example/pr#issuecomment-{cid}"})
                    return
            if m := _GH_ONE.match(path):
                cid = int(m[1])
                with state.lock:
                    found = state.comments.get(cid)
                    if found is not None and self.command == "PATCH":
                        found["body"] = json.loads(body)["body"]
                    if found is not None and self.command == "DELETE":
                        del state.comments[cid]
                if found is None:
                    self._answer(404, {"message": "Not Found"})
                elif self.command == "DELETE":
                    self._answer(204)
                else:
                    self._answer(200, {"id": cid, "body": found["body"]})
                return
            self._answer(404, {"message": "Not Found"})

        def _gitlab(self, path: str, query: str, body: bytes) -> None:
            if self.headers.get("JOB-TOKEN") or self.headers.get("PRIVATE-TOKEN") != state.token:
                self._answer(401, {"message": "401 Unauthorized"})
                return
            if m := _GL_THREAD.match(path):
                prefix = f"gl:{m[1]}"
                if self.command == "GET":
                    with state.lock:
                        items = [{"id": c["id"], "body": c["body"], "system": False} for c in state.thread(prefix)]
                    items.insert(0, {"id": 1, "body": "added 1 commit", "system": True})
                    chunk, page, more = self._page(items, query)
                    self._answer(200, chunk, {"X-Next-Page": str(page + 1) if more else ""})
                    return
                if self.command == "POST":
                    with state.lock:
                        cid = next(state.ids)
                        state.comments[cid] = {"id": cid, "thread": prefix, "body": json.loads(body)["body"]}
                    self._answer(201, {"id": cid, "body": state.comments[cid]["body"]})
                    return
            if m := _GL_ONE.match(path):
                cid = int(m[2])
                with state.lock:
                    found = state.comments.get(cid)
                    if found is not None and self.command == "PUT":
                        found["body"] = json.loads(body)["body"]
                    if found is not None and self.command == "DELETE":
                        del state.comments[cid]
                if found is None:
                    self._answer(404, {"message": "404 Not found"})
                elif self.command == "DELETE":
                    self._answer(204)
                else:
                    self._answer(200, {"id": cid, "body": found["body"]})
                return
            self._answer(404, {"message": "404 Not found"})

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle

    return Handler


@contextmanager
def fake_services(**kw: Any) -> Iterator[FakeServices]:
    state = FakeServices(**kw)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
