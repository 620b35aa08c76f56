"""Smoke checks: a new version answers before any user traffic reaches it (blue-green).

Sent straight to the new version (``Target.direct_url``): ``/health`` must answer 200, then
each configured request must get its expected answer (``expect`` compares the predictions,
``expect_status`` the HTTP status). A failed check names the request and what came back.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests


@dataclass
class SmokeRequest:
    """One request and its expected answer."""

    name: str
    # The /invocations body, e.g. {"dataframe_records": [{"income": 52000, "age": 41}]}.
    body: dict[str, Any]
    # The expected predictions (numbers compared to 1e-6), or None to only check the status.
    expect: list[Any] | None = None
    expect_status: int = 200


@dataclass
class SmokeResult:
    name: str
    ok: bool
    detail: str


@dataclass
class SmokeReport:
    url: str
    results: list[SmokeResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.results) and all(r.ok for r in self.results)

    def failures(self) -> list[SmokeResult]:
        return [r for r in self.results if not r.ok]


def run_smoke(url: str, checks: list[SmokeRequest], *, timeout: float = 10.0, wait: float = 30.0,
              sleep: Callable[[float], None] = time.sleep) -> SmokeReport:
    """``/health`` (retried for up to ``wait`` seconds: a route may take a moment), then every check once."""
    report = SmokeReport(url.rstrip("/"))
    session = requests.Session()
    deadline = time.monotonic() + wait
    while True:
        try:
            status = session.get(report.url + "/health", timeout=timeout).status_code
        except requests.RequestException as exc:
            status, error = None, str(exc)
        else:
            error = f"HTTP {status}"
        if status == 200 or time.monotonic() >= deadline:
            break
        sleep(1.0)
    report.results.append(SmokeResult("health", status == 200, "GET /health: 200" if status == 200 else
                                      f"GET /health: {error}"))
    if status != 200:
        return report
    for check in checks:
        report.results.append(_one(session, report.url, check, timeout))
    return report


def _one(session: requests.Session, url: str, check: SmokeRequest, timeout: float) -> SmokeResult:
    try:
        response = session.post(url + "/invocations", json=check.body, timeout=timeout)
    except requests.RequestException as exc:
        return SmokeResult(check.name, False, f"POST /invocations failed: {exc}")
    if response.status_code != check.expect_status:
        return SmokeResult(check.name, False, f"HTTP {response.status_code} (expected {check.expect_status}): "
                           f"{response.text[:200]}")
    if check.expect is None:
        return SmokeResult(check.name, True, f"HTTP {response.status_code}")
    try:
        got = response.json().get("predictions")
    except (ValueError, AttributeError):
        return SmokeResult(check.name, False, f"not a JSON predictions answer: {response.text[:200]}")
    if not _same(got, check.expect):
        return SmokeResult(check.name, False, f"predicted {json.dumps(got)[:200]}, expected "
                           f"{json.dumps(check.expect)[:200]}")
    return SmokeResult(check.name, True, f"predicted {json.dumps(got)[:120]} as expected")


def _same(got: Any, want: Any) -> bool:
    if isinstance(want, list):
        return isinstance(got, list) and len(got) == len(want) and all(_same(g, w) for g, w in zip(got, want,
                                                                                                   strict=True))
    if isinstance(want, dict):
        return isinstance(got, dict) and got.keys() == want.keys() and all(_same(got[k], want[k]) for k in want)
    if isinstance(want, int | float) and not isinstance(want, bool) and isinstance(got, int | float):
        return math.isclose(float(got), float(want), rel_tol=1e-6, abs_tol=1e-9)
    return bool(got == want)
