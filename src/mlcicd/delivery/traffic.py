"""A small, bounded load generator: replays data rows against an endpoint; and a probe.

Used by ``monitor-canary --generate-traffic`` (pre-production canaries with no real
users), by ``mlci demo`` and by the tests. It counts what a client would see: status
codes, connection errors and which model version answered (``X-Model-Version``).
:func:`probe_versions` asks a fixed number of times, one request after another, which
version answers: what serves where, seen from the outside.
"""

from __future__ import annotations

import collections
import csv
import itertools
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

Row = dict[str, Any]
VERSION_HEADER = "X-Model-Version"


def read_rows(path: Path, drop: tuple[str, ...] = (), limit: int = 5000) -> list[Row]:
    """Rows of a CSV file with numbers as floats (JSON-ready), minus the label column."""
    rows: list[Row] = []
    with path.open(newline="") as fh:
        for raw in itertools.islice(csv.DictReader(fh), limit):
            row: Row = {}
            for key, value in raw.items():
                if key in drop:
                    continue
                try:
                    row[key] = float(value) if value != "" else None
                except ValueError:
                    row[key] = value
            rows.append(row)
    return rows


@dataclass
class TrafficStats:
    sent: int = 0
    codes: collections.Counter[int] = field(default_factory=collections.Counter)
    versions: collections.Counter[str] = field(default_factory=collections.Counter)
    connection_errors: int = 0
    #: Requests resent once because the proxy closed an idle keep-alive connection as they were sent.
    resent: int = 0
    #: When each version answered first and last (``time.monotonic()``).
    first_seen: dict[str, float] = field(default_factory=dict)
    last_seen: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, code: int | None, version: str | None) -> None:
        with self.lock:
            self.sent += 1
            if code is None:
                self.connection_errors += 1
            else:
                self.codes[code] += 1
                if version:
                    self.versions[version] += 1
                    now = time.monotonic()
                    self.first_seen.setdefault(version, now)
                    self.last_seen[version] = now

    def record_resend(self) -> None:
        with self.lock:
            self.resent += 1

    def answering(self, within: float) -> dict[str, float]:
        """The versions that answered in the last ``within`` seconds, each with when it answered first."""
        now = time.monotonic()
        with self.lock:
            return {v: self.first_seen[v] for v, last in self.last_seen.items() if now - last <= within}

    def as_dict(self) -> dict[str, Any]:
        with self.lock:
            return {"sent": self.sent, "codes": {str(k): v for k, v in sorted(self.codes.items())},
                    "versions": dict(self.versions), "connection_errors": self.connection_errors,
                    "resent": self.resent}


#: A rate that follows what the traffic sees: called with the stats before each request is scheduled.
RatePolicy = Callable[[TrafficStats], float]


class LoadGenerator:
    """Send ``rate`` requests per second from ``workers`` threads until stopped or ``max_requests``.

    ``rate`` is a number, or a :data:`RatePolicy` asked before each request (e.g. test users
    who send a trickle between canary bakes and a full load during them).
    """

    def __init__(
        self,
        endpoint: str,
        rows: list[Row],
        *,
        rate: float | RatePolicy,
        workers: int = 4,
        max_requests: int = 1_000_000,
        mutate: Callable[[int, Row], Row] | None = None,
        timeout: float = 5.0,
    ) -> None:
        if not rows:
            raise ValueError("no rows to send")
        self.url = endpoint.rstrip("/") + "/invocations"
        self.rows = rows
        self.rate = rate
        self.workers = workers
        self.max_requests = max_requests
        self.mutate = mutate
        self.timeout = timeout
        self.stats = TrafficStats()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._counter: Iterator[int] = itertools.count()
        self._counter_lock = threading.Lock()
        self._due = 0.0

    def _rate_now(self) -> float:
        rate = self.rate(self.stats) if callable(self.rate) else self.rate
        if not rate > 0:
            raise ValueError(f"request rate must be positive, got {rate!r}")
        return rate

    def _next(self) -> tuple[int, float] | None:
        """The next request's index and when it is due."""
        with self._counter_lock:
            i = next(self._counter)
            if i >= self.max_requests:
                return None
            if i:  # the first is due at the start
                self._due += 1.0 / self._rate_now()
            return i, self._due

    def _worker(self) -> None:
        session = requests.Session()
        while not self._stop.is_set():
            claimed = self._next()
            if claimed is None:
                return
            # Pace by schedule, not by sleeping a fixed gap: keeps the rate steady under slow replies.
            i, due = claimed
            delay = due - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                return
            row = self.rows[i % len(self.rows)]
            if self.mutate is not None:
                row = self.mutate(i, dict(row))
            body = {"dataframe_records": [{k: (None if isinstance(v, float) and math.isnan(v) else v)
                                           for k, v in row.items()}]}
            try:
                r = self._post(session, body)
                self.stats.record(r.status_code, r.headers.get(VERSION_HEADER))
            except requests.RequestException:
                self.stats.record(None, None)

    def _post(self, session: requests.Session, body: dict[str, Any]) -> requests.Response:
        """POST once; resend once on a fresh connection if a reused one was closed under us.

        A proxy that reloads (nginx on SIGHUP, an ALB scaling) closes idle keep-alive connections;
        a request sent at that instant meets a closed socket before any response. HTTP clients
        resend such a request (RFC 9112 section 9.3.1), and a prediction is safe to resend.
        Timeouts and refused connections are never resent: those are real losses.
        """
        try:
            return session.post(self.url, json=body, timeout=self.timeout)
        except requests.ConnectionError as exc:
            if not _closed_before_response(exc):
                raise
            self.stats.record_resend()
            session.close()
            return session.post(self.url, json=body, timeout=self.timeout)


    def start(self) -> LoadGenerator:
        self._rate_now()  # a bad rate fails here, not in the worker threads
        self._due = time.monotonic()
        for _ in range(self.workers):
            t = threading.Thread(target=self._worker, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self, timeout: float | None = None) -> TrafficStats:
        """Stop sending; wait for requests in flight at most ``timeout`` seconds in all (default: their own)."""
        self._stop.set()
        deadline = time.monotonic() + (self.timeout + 1 if timeout is None else timeout)
        for t in self._threads:
            t.join(timeout=max(deadline - time.monotonic(), 0.0))
        return self.stats

    def __enter__(self) -> LoadGenerator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class Answers:
    """What a probe saw: requests per answering model version ("?" without the header) and per status."""

    versions: collections.Counter[str] = field(default_factory=collections.Counter)
    codes: collections.Counter[int] = field(default_factory=collections.Counter)


def probe_versions(endpoint: str, rows: list[Row], n: int | None = None, *, timeout: float = 10.0) -> Answers:
    """``n`` predictions (default: one per row, rows reused in turn) through ``endpoint`` on one
    keep-alive session: which model version answered each, and with which status."""
    if not rows:
        raise ValueError("no rows to send")
    answers = Answers()
    with requests.Session() as session:
        for i in range(len(rows) if n is None else n):
            r = session.post(endpoint.rstrip("/") + "/invocations",
                             json={"dataframe_records": [rows[i % len(rows)]]}, timeout=timeout)
            answers.codes[r.status_code] += 1
            answers.versions[r.headers.get(VERSION_HEADER, "?")] += 1
    return answers


def _closed_before_response(exc: requests.ConnectionError) -> bool:
    """True when the server closed a connection before answering (not a refusal or a timeout)."""
    text = repr(exc)
    return "RemoteDisconnected" in text or "ConnectionResetError" in text or "Connection aborted" in text
