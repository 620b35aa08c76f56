"""``deploy.strategy`` and ``deploy.blue_green``: how a new version takes traffic.

* ``canary`` (the default): the new version takes a share of traffic, step by step, judged
  against the stable version (``deploy.canary``).
* ``blue-green``: the new version comes up at 0%, smoke checks are sent straight to it (past
  the router), then all traffic switches at once. The old version stays warm for
  ``keep_seconds``; monitor-canary judges the new one on absolute limits in that window and
  switches back at once on a regression; promote then retires the old one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

Strategy = Literal["canary", "blue-green"]


@dataclass
class SmokeCheckConfig:
    """One request sent straight to the new version before it takes traffic, and its answer."""

    name: str
    # The /invocations body, e.g. {dataframe_records: [{income: 52000, age: 41}]}.
    request: Any
    # The expected predictions (numbers compared to 1e-6); omit to check only the status.
    expect: Any = None
    expect_status: int = 200


@dataclass
class BlueGreenConfig:
    # How long the old version stays warm after the switch: monitor-canary's window to switch back.
    keep_seconds: float = 600.0
    # Requests with expected answers, besides GET /health, that must pass before the switch.
    smoke: list[SmokeCheckConfig] = field(default_factory=list)


def check_blue_green(bg: BlueGreenConfig, fail: Callable[[str, str, str], None]) -> None:
    key = "deploy.blue_green"
    if bg.keep_seconds <= 0:
        fail(f"{key}.keep_seconds", f"must be positive, got {bg.keep_seconds}",
             "e.g. `keep_seconds: 600` (the old version stays warm ten minutes after the switch)")
    names = [s.name for s in bg.smoke]
    for i, smoke in enumerate(bg.smoke):
        where = f"{key}.smoke[{i}]"
        if names.count(smoke.name) > 1:
            fail(f"{where}.name", f"name {smoke.name!r} is used twice", "give every smoke check its own name")
        if not isinstance(smoke.request, dict) or not smoke.request:
            fail(f"{where}.request", f"must be an /invocations body (a mapping), got {smoke.request!r}",
                 "e.g. `request: {dataframe_records: [{income: 52000, age: 41}]}`")
        if smoke.expect is not None and not isinstance(smoke.expect, list):
            fail(f"{where}.expect", f"must be the list of expected predictions, got {smoke.expect!r}",
                 "e.g. `expect: [1]` for one row predicted as class 1")
        if not 100 <= smoke.expect_status <= 599:
            fail(f"{where}.expect_status", f"must be an HTTP status, got {smoke.expect_status}",
                 "e.g. `expect_status: 200`")
