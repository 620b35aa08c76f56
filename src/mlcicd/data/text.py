"""Small formatting helpers shared by the check messages (stdlib only)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any


def count(n: int) -> str:
    return f"{n:,}"


def pct(share: float) -> str:
    """A share in [0, 1] as a percentage precise enough to tell 0.004% from 0%."""
    value = 100 * share
    if value == 0 or value >= 10:
        return f"{value:.1f}%"
    return f"{value:.2g}%"


def number(value: Any) -> str:
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.6g}"
    return str(value)


def examples(values: Iterable[Any], limit: int = 3) -> str:
    """``'n/a', 'unknown', '?'``: a few offending values, quoted so blanks stay visible."""
    shown: list[str] = []
    for value in values:
        if len(shown) == limit:
            break
        shown.append(repr(value) if isinstance(value, str) else number(value))
    return ", ".join(shown)


def names(items: Iterable[str], limit: int = 20) -> str:
    items = list(items)
    head = ", ".join(items[:limit])
    return head + (f" … (+{len(items) - limit} more)" if len(items) > limit else "")


def finite_or_none(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)
