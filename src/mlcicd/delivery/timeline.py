"""One entry of the canary's timeline per look: what the report plots and a human reads afterwards.

Counts are cumulative since the analysis began (as the judge sees them). Latency quantiles are
per interval, since the previous successful read of the same server: a cumulative quantile
hides a regression that starts late under all the healthy traffic before it, and the plot is
there to show when things changed. They come from the servers' latency histograms, read off
with the interpolation the latency check uses for its figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mlcicd.delivery.analysis import Judgement, Look
from mlcicd.delivery.histograms import histogram_total, quantile_from_buckets
from mlcicd.delivery.metrics.base import Snapshot


def entry(looks: Sequence[Look], judgement: Judgement, step: int, quantiles: Sequence[float]) -> dict[str, Any]:
    """The latest look (``looks[-1]``) as a JSON-ready dict."""
    look = looks[-1]
    out: dict[str, Any] = {
        "t": round(look.elapsed, 2), "step": step + 1, "weight": look.canary_weight, "decision": judgement.decision,
        "canary_requests": look.canary.total if look.canary else None,
        "canary_errors": look.canary.errors if look.canary else None,
        "stable_requests": look.stable.total if look.stable else None,
        "stable_errors": look.stable.errors if look.stable else None,
    }
    for side in ("canary", "stable"):
        out[f"{side}_latency_ms"] = interval_quantiles(looks, side, quantiles)
    return out


def interval_quantiles(looks: Sequence[Look], side: str, quantiles: Sequence[float]) -> dict[str, float] | None:
    """``{"p50": ms, ...}`` of the requests one server answered since its previous read; None without any."""
    now: Snapshot | None = getattr(looks[-1], side)
    if now is None:
        return None
    before = next((s for s in (getattr(look, side) for look in reversed(looks[:-1])) if s is not None), None)
    interval = now.minus(before) if before is not None else now
    buckets = interval.latency_buckets
    if histogram_total(buckets) <= 0:
        return None
    out = {}
    for q in quantiles:
        value = quantile_from_buckets(buckets, q)
        if value is not None:
            out[f"p{100 * q:g}"] = round(1000 * value, 3)
    return out or None
