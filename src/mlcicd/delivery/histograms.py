"""Prometheus-style cumulative latency histograms: quantiles, counts at a bound, and bounds between edges.

A latency bound (the stable's quantile + tolerance) rarely falls on a bucket edge. Rounding
it to one would change the tolerance by up to the buckets' spacing (~25% on the model
server), so a request inside the bound's bucket is instead scored with a fixed fraction:
the share of that bucket above the bound, read off the reference histogram. Both that
share and the stable's quantile are interpolated in *probit* space: within one bucket,
Phi^-1(cumulative share) is taken as linear in log latency, which is exact for log-normal
latencies and close for any smooth unimodal one (linear interpolation inside buckets 25%
apart misplaces a p99 by up to ~9%). The score is fixed before it is used, so counts of
scores are valid test statistics (:mod:`.sequential` accepts fractional counts); see
:func:`split_bucket`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from numpy.typing import ArrayLike

_NORMAL = NormalDist()


def quantile_from_buckets(buckets: Mapping[float, float], q: float) -> float | None:
    """Quantile (seconds) by linear interpolation inside cumulative histogram buckets."""
    if not buckets:
        return None
    bounds = sorted(buckets)
    total = buckets[bounds[-1]]
    if total <= 0:
        return None
    rank = q * total
    prev_bound, prev_count = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return prev_bound  # beyond the last finite bucket: report its edge
            span = count - prev_count
            frac = (rank - prev_count) / span if span > 0 else 1.0
            return prev_bound + frac * (bound - prev_bound)
        prev_bound, prev_count = bound, count
    return prev_bound


def histogram_total(hist: Mapping[float, float]) -> float:
    """Observations in a cumulative histogram: its +Inf bucket (0 for an empty histogram)."""
    return hist[math.inf] if math.inf in hist else max(hist.values(), default=0.0)


def bucket_count(hist: Mapping[float, float], bound: float) -> float:
    """Observations <= bound; a missing bound takes the next larger one (cumulative counts only grow)."""
    value = hist.get(bound)
    return min((v for b, v in hist.items() if b >= bound), default=0.0) if value is None else value


def bound_index(bounds: tuple[float, ...], value: float, up: bool) -> int | None:
    """Index of the smallest finite bucket bound >= value (``up``) or of the largest <= value."""
    pick = [i for i, b in enumerate(bounds) if math.isfinite(b) and (b >= value - 1e-12 if up else b <= value)]
    return (pick[0] if up else pick[-1]) if pick else None


@dataclass(frozen=True)
class Split:
    """A latency bound between two bucket edges: slower-than-bound = above(hi) + fraction * (above(lo) - above(hi))."""

    bound: float  # seconds
    lo: float  # the bucket edge below (0.0 for the first bucket)
    hi: float  # the bucket edge at or above
    fraction: float  # share of the (lo, hi] bucket counted as slower than the bound

    def slower(self, above_lo: ArrayLike, above_hi: ArrayLike) -> np.ndarray:
        """Scores of requests slower than the bound, from the counts above each edge (any shape)."""
        lo, hi = np.asarray(above_lo, dtype=float), np.asarray(above_hi, dtype=float)
        return np.asarray(hi + self.fraction * (lo - hi))


def _probit(share: float) -> float | None:
    return _NORMAL.inv_cdf(share) if 0.0 < share < 1.0 else None


def reference_quantile(hist: Mapping[float, float], q: float) -> float | None:
    """The q-quantile (seconds), interpolated in probit space inside its bucket (linearly where that cannot work)."""
    total = histogram_total(hist)
    finite = sorted(b for b in hist if math.isfinite(b))
    if total <= 0 or not finite:
        return None
    prev = 0.0
    for edge in finite:
        if bucket_count(hist, edge) >= q * total:
            z_lo = _probit(bucket_count(hist, prev) / total) if prev > 0 else None
            z_hi = _probit(bucket_count(hist, edge) / total)
            z_q = _probit(q)
            if z_lo is None or z_hi is None or z_q is None or z_hi <= z_lo:
                return quantile_from_buckets(hist, q)
            return prev * (edge / prev) ** ((z_q - z_lo) / (z_hi - z_lo))
        prev = edge
    return finite[-1]  # beyond the last finite bucket: its edge


def reference_cdf(hist: Mapping[float, float], x: float) -> float:
    """Share of observations <= x, interpolated in probit space inside x's bucket (log-uniform, or linear in
    the first bucket, where that cannot work)."""
    total = histogram_total(hist)
    finite = sorted(b for b in hist if math.isfinite(b))
    if total <= 0 or not finite:
        return 0.0
    prev = 0.0
    for edge in finite:
        if x <= edge:
            f_lo, f_hi = (bucket_count(hist, prev) / total if prev > 0 else 0.0), bucket_count(hist, edge) / total
            if prev <= 0:
                return f_hi * x / edge
            t = math.log(x / prev) / math.log(edge / prev)
            z_lo, z_hi = _probit(f_lo), _probit(f_hi)
            if z_lo is None or z_hi is None or f_hi <= f_lo:
                return f_lo + t * (f_hi - f_lo)
            return _NORMAL.cdf(z_lo + t * (z_hi - z_lo))
        prev = edge
    return bucket_count(hist, finite[-1]) / total  # beyond the last edge: the mass there is unknown


def split_bucket(reference: Mapping[float, float], bounds: tuple[float, ...], bound: float,
                 scale: float = 1.0) -> Split | None:
    """Where ``bound`` falls in the histogram and which share of its bucket counts as slower than it.

    The share is the one a server exactly ``scale`` times slower than the reference would
    have above ``bound`` inside that bucket (:func:`reference_cdf` at ``edge / scale``): a
    canary exactly at the tolerance then scores exactly its share above the bound, so the
    tolerance holds as configured rather than up to the buckets' spacing. None when the
    bound lies beyond the last finite edge.
    """
    finite = [b for b in bounds if math.isfinite(b)]
    hi_i = bound_index(tuple(finite), bound, up=True)
    if hi_i is None:
        return None
    hi = finite[hi_i]
    lo = finite[hi_i - 1] if hi_i > 0 else 0.0
    if hi - bound <= 1e-9 * hi:
        return Split(bound, lo, hi, 0.0)
    f_lo, f_b, f_hi = (reference_cdf(reference, x / scale) for x in (lo, bound, hi))
    if f_hi - f_lo <= 1e-12:  # nothing there: uniform in log latency (linear in the first bucket)
        frac = (hi - bound) / hi if lo <= 0 else math.log(hi / bound) / math.log(hi / lo)
        return Split(bound, lo, hi, frac)
    return Split(bound, lo, hi, min(max((f_hi - f_b) / (f_hi - f_lo), 0.0), 1.0))
