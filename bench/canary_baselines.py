"""The canary benchmark's simulated traffic and the baselines the judge is compared with.

* Flagger, implemented from its docs and ``pkg/controller/scheduler.go``: a check every 60 s
  over the last minute, request-success-rate >= min and request-duration p99 <= max ms
  (histogram_quantile). A failed check halts advancement and increments the failed-checks
  counter, which a passing check does NOT reset; on the tick after it reaches ``threshold``
  the canary is rolled back. Passing checks add stepWeight until maxWeight, and the next
  passing check promotes. No data = failed check. At a granularity (CloudWatch) each check
  reads the newest published period, as Flagger's CloudWatch provider takes the newest
  datapoint of its query; the checks before the first period is published fail.
* Kayenta (NetflixACAJudge): after a fixed 30-min window, per-minute canary vs baseline
  (here: the stable) values of each metric, IQR outlier removal (factor 3), then the
  Mann-Whitney classifier: 98% asymptotic confidence interval of the shift (R's
  wilcox.test logic), "High" when its lower end exceeds 0.25 x |Hodges-Lehmann estimate|
  (and the mean ratio >= allowedIncrease = 1.0, the default). Score = % of metrics
  passing; a failing critical metric fails the canary; pass >= 95, fail < 75.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

from mlcicd.delivery.histograms import quantile_from_buckets
from mlcicd.delivery.metrics.base import Snapshot
from mlcicd.delivery.metrics.cloudwatch import CloudWatchConfig

try:
    from mlcicd.serving.metrics import LATENCY_BUCKETS
except ImportError:  # the serving extra (prometheus_client) is not installed: same values
    LATENCY_BUCKETS = (0.001, 0.0015, 0.002, 0.0025, 0.003, 0.004, 0.005, 0.006, 0.008, 0.01, 0.0125, 0.015,
                       0.02, 0.025, 0.03, 0.04, 0.05, 0.06, 0.08, 0.1, 0.125, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5,
                       0.6, 0.8, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)

BOUNDS = (*LATENCY_BUCKETS, math.inf)
BAKE = 1800.0  # seconds: the default bake (deploy.canary.duration)
LABELS = ("0", "1")
STEPS = 5  # steps w, 2w, ..., 5w (Flagger's stepWeight / maxWeight)


@dataclass(frozen=True)
class Granularity:
    """Metrics published in whole periods, ``delay`` seconds late: what a look at time t can see."""

    period: float
    delay: float

    def cutoff(self, t: float) -> float:
        """The end of the newest period published by ``t`` (0: nothing yet; the canary began at a period start)."""
        return max(0.0, math.floor((t - self.delay) / self.period + 1e-9) * self.period)


# The cloudwatch metric source's own defaults: 60-second ALB periods read 120 s late.
CLOUDWATCH = Granularity(float(CloudWatchConfig.period), float(CloudWatchConfig.delay))


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    healthy: bool
    rate: float = 100.0  # requests per second, both servers together
    weight: int = 10  # first canary weight (%); steps are weight x 1..5
    err_s: float = 0.01  # the stable's 5xx rate
    err_c: float | None = None  # the canary's once regressed (None: as the stable's)
    lat_c: float = 1.0  # canary latency multiplier once regressed
    mix_c: tuple[float, float] = (0.7, 0.3)
    mix_s: tuple[float, float] = (0.7, 0.3)
    onset: int | str | None = None  # regression from: the start (None), step index k, or "ready"
    incidents: bool = False  # shared incidents: both versions at 10% 5xx for 90 s, about every 10 minutes
    bake: float | str = BAKE  # seconds, or "plan": what deploy-canary's bake planner says to set
    interval: float | None = None  # the judge's look interval when not the bench's (a long planned bake)
    grain: Granularity | None = None  # metrics seen in delayed whole periods (None: every request at once)
    methods: tuple[str, ...] | None = None  # the methods run on this row (None: all)
    last_look: float | None = None  # the judge's last_look when not the default


def bucket_probs(scale: float) -> np.ndarray:
    median, sigma = 0.020 * scale, 0.5
    cdf = [0.5 * (1 + math.erf(math.log(b / median) / (sigma * math.sqrt(2)))) if math.isfinite(b) else 1.0
           for b in BOUNDS]
    return np.diff([0.0, *cdf])


INCIDENT_RATE, INCIDENT_SECONDS, INCIDENT_ERRORS = 1 / 600, 90.0, 0.10


def _at(t: float) -> int:
    return round(t * 1000)  # milliseconds: a float time as a dictionary key


class Traffic:
    """Cumulative counters of both servers: [requests, 5xx, per-bucket counts..., per-label counts...].

    ``cum`` is what the servers have served; ``visible``, ``newest`` and ``snapshot`` are what
    the metric source shows: everything, or with the scenario's granularity the whole periods
    published by now (counts kept at every period boundary and at the end of every advance).
    """

    def __init__(self, sc: Scenario, seed: int, horizon: float = 4 * 3600.0):
        self.sc, self.rng, self.grain = sc, np.random.default_rng(seed), sc.grain
        self.regressed = sc.onset is None
        self.probs = {"canary": bucket_probs(1.0), "stable": bucket_probs(1.0), "bad": bucket_probs(sc.lat_c)}
        self.cum = {side: np.zeros(2 + len(BOUNDS) + len(LABELS)) for side in ("canary", "stable")}
        self.t = 0.0
        self.marks = {_at(0.0): {side: row.copy() for side, row in self.cum.items()}}
        starts = np.cumsum(self.rng.exponential(1 / INCIDENT_RATE, 64)) if sc.incidents else np.zeros(0)
        self.incidents = starts[starts < horizon]

    def _incident(self) -> bool:
        return bool(((self.t >= self.incidents) & (self.t < self.incidents + INCIDENT_SECONDS)).any())

    def advance(self, seconds: float, weight: float) -> None:
        """Serve ``seconds`` of traffic in slices of at most 10 s (incidents start and end between slices)."""
        end = self.t + seconds
        while end - self.t > 1e-9:
            stop = end if self.grain is None else \
                min(end, (math.floor(self.t / self.grain.period + 1e-9) + 1) * self.grain.period)
            left = stop - self.t
            while left > 1e-9:
                dt = min(left, 10.0) if len(self.incidents) else left
                self._slice(dt, weight)
                left -= dt
                self.t += dt
            self.t = stop
            self.marks[_at(stop)] = {side: row.copy() for side, row in self.cum.items()}

    def _seen_until(self) -> float:
        return self.t if self.grain is None else self.grain.cutoff(self.t)

    def visible(self, side: str) -> np.ndarray:
        """The cumulative counters the metric source shows now."""
        return self.marks[_at(self._seen_until())][side]

    def newest(self, side: str, seconds: float) -> np.ndarray:
        """The counts of the newest ``seconds`` the metric source shows (all zero before anything is published)."""
        end = self._seen_until()
        return self.marks[_at(end)][side] - self.marks[_at(max(0.0, end - seconds))][side]

    def _slice(self, seconds: float, weight: float) -> None:
        sc, rng = self.sc, self.rng
        n = rng.poisson(sc.rate * seconds)
        nc = rng.binomial(n, weight / 100)
        bad = self.regressed
        err_c = sc.err_c if bad and sc.err_c is not None else sc.err_s
        err_s = sc.err_s
        if self._incident():
            err_c, err_s = max(err_c, INCIDENT_ERRORS), max(err_s, INCIDENT_ERRORS)
        sides = (("canary", nc, err_c, sc.mix_c if bad else sc.mix_s, "bad" if bad else "canary"),
                 ("stable", n - nc, err_s, sc.mix_s, "stable"))
        for side, k, err, mix, lat in sides:
            row = self.cum[side]
            row[0] += k
            row[1] += rng.binomial(k, err)
            row[2:2 + len(BOUNDS)] += rng.multinomial(k, self.probs[lat])
            row[2 + len(BOUNDS):] += rng.multinomial(k, mix)

    def snapshot(self, side: str) -> Snapshot:
        row = self.visible(side)
        hist = np.cumsum(row[2:2 + len(BOUNDS)])
        return Snapshot({"200": float(row[0] - row[1]), "500": float(row[1])},
                        dict(zip(BOUNDS, hist.tolist(), strict=True)),
                        dict(zip(LABELS, row[2 + len(BOUNDS):].tolist(), strict=True)))


@dataclass
class Result:
    decision: str  # rollback | promote | none (inconclusive or out of time)
    t: float
    canary_requests: float


def run_flagger(sc: Scenario, seed: int, cfg: dict[str, Any], bake: float) -> Result:
    tr, interval = Traffic(sc, seed), cfg["interval"]
    weight, max_weight, failed, t = sc.weight, STEPS * sc.weight, 0, 0.0
    ready = False
    while t < bake:
        if isinstance(sc.onset, int) and weight >= (sc.onset + 1) * sc.weight:
            tr.regressed = True
        tr.regressed |= sc.onset == "ready" and ready
        tr.advance(interval, weight)
        t += interval
        if failed >= cfg["threshold"]:  # checked at the start of the tick, before the analysis
            return Result("rollback", t, tr.cum["canary"][0])
        # The last interval, or at a granularity the newest published period(s): Flagger's CloudWatch
        # provider takes the newest datapoint of its query, and none (nothing published yet) fails the check.
        window = tr.newest("canary", interval)
        n = window[0]
        p99 = quantile_from_buckets(dict(zip(BOUNDS, np.cumsum(window[2:2 + len(BOUNDS)]), strict=True)), 0.99)
        ok = n > 0 and 100 * (1 - window[1] / n) >= cfg["success_min"] and p99 is not None \
            and 1000 * p99 <= cfg["p99_max_ms"]
        if not ok:
            failed += 1
        elif weight < max_weight:
            weight = min(weight + sc.weight, max_weight)
        else:
            return Result("promote", t, tr.cum["canary"][0])  # readiness and promotion are the same tick
    return Result("none", t, tr.cum["canary"][0])


def _ranks(v: np.ndarray) -> np.ndarray:
    """Average ranks (ties share the mean of their positions), 1-based."""
    order = np.argsort(v, kind="mergesort")
    sorted_v = v[order]
    starts = np.r_[0, np.nonzero(np.diff(sorted_v))[0] + 1]
    ends = np.r_[starts[1:], len(v)]
    avg = (starts + ends + 1) / 2.0
    ranks = np.empty(len(v))
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def mann_whitney_ci(x: np.ndarray, y: np.ndarray, conf: float) -> tuple[float, float, float]:
    """Asymptotic CI and estimate of the shift x - y, as R's wilcox.test (correct=TRUE) and Kayenta compute them.

    The standardised rank-sum statistic of (x - mu, y) falls as mu grows and only jumps at
    the pairwise differences x_i - y_j, so each root is found by binary search over them.
    """
    nx, ny = len(x), len(y)
    z = NormalDist().inv_cdf(1 - (1 - conf) / 2)
    diffs = np.unique(np.subtract.outer(x, y).ravel())

    def f(mu: float, zq: float) -> float:
        shifted = np.r_[x - mu, y]
        r = _ranks(shifted)
        dz = r[:nx].sum() - nx * (nx + 1) / 2 - nx * ny / 2
        _, counts = np.unique(shifted, return_counts=True)
        sigma = math.sqrt(nx * ny / 12 * ((nx + ny + 1) - (counts ** 3 - counts).sum() / ((nx + ny) * (nx + ny - 1))))
        return (dz - np.sign(dz) * 0.5) / sigma - zq if sigma > 0 else -zq

    def root(zq: float) -> float:
        lo_i, hi_i = 0, len(diffs) - 1
        if f(diffs[lo_i], zq) <= 0:
            return float(diffs[lo_i])
        if f(diffs[hi_i], zq) >= 0:
            return float(diffs[hi_i])
        while hi_i - lo_i > 1:  # invariant: f(diffs[lo_i]) > 0 >= f(diffs[hi_i])
            mid = (lo_i + hi_i) // 2
            lo_i, hi_i = (mid, hi_i) if f(diffs[mid], zq) > 0 else (lo_i, mid)
        return float(0.5 * (diffs[lo_i] + diffs[hi_i]))

    return root(z), root(-z), root(0.0)


def kayenta_classify(canary: np.ndarray, baseline: np.ndarray, direction: str, cfg: dict[str, Any]) -> str:
    def drop_outliers(v: np.ndarray) -> np.ndarray:
        q1, q3 = np.percentile(v, [25, 75])
        keep = (v >= q1 - 3 * (q3 - q1)) & (v <= q3 + 3 * (q3 - q1))
        return v[keep]

    x, y = drop_outliers(canary), drop_outliers(baseline)
    if not len(x) or not len(y):
        return "nodata"
    if np.array_equal(np.sort(x), np.sort(y)) or len(np.unique(np.r_[x, y])) == 1:
        return "pass"
    lower, upper, estimate = mann_whitney_ci(x, y, cfg["conf"])
    bound = cfg["tolerance"] * abs(estimate)
    ratio = x.mean() / y.mean() if y.mean() else math.nan
    big_up = math.isnan(ratio) or ratio >= cfg["allowed_increase"]
    big_down = math.isnan(ratio) or ratio <= 1 / cfg["allowed_increase"]
    if direction in ("increase", "either") and lower > bound and big_up:
        return "high"
    if direction in ("decrease", "either") and upper < -bound and big_down:
        return "low"
    return "pass"


def run_kayenta(sc: Scenario, seed: int, cfg: dict[str, Any]) -> Result:
    """At a fixed weight; a regression "from step k" starts k/5 into the window, "ready" in its last minute."""
    tr = Traffic(sc, seed)
    series: dict[str, list[list[float]]] = {m: [[], []] for m in ("errors", "p99", "share1")}
    before = {side: tr.cum[side].copy() for side in ("canary", "stable")}
    minutes = int(cfg["window"] // 60)
    onset = 0 if sc.onset is None else minutes - 1 if sc.onset == "ready" else int(minutes * int(sc.onset) / STEPS)
    for minute in range(minutes):
        tr.regressed = minute >= onset
        tr.advance(60.0, sc.weight)
        for i, side in enumerate(("canary", "stable")):
            w, before[side] = tr.cum[side] - before[side], tr.cum[side].copy()
            n = w[0]
            p99 = quantile_from_buckets(dict(zip(BOUNDS, np.cumsum(w[2:2 + len(BOUNDS)]), strict=True)), 0.99)
            series["errors"][i].append(w[1] / n if n else 0.0)  # NaN replaced by 0 (nanStrategy default)
            series["p99"][i].append(p99 or 0.0)
            series["share1"][i].append(w[-1] / n if n else 0.0)
    cls = {m: kayenta_classify(np.array(c), np.array(b), d, cfg)
           for (m, (c, b)), d in zip(series.items(), ("increase", "increase", "either"), strict=True)}
    critical_fail = cls["errors"] == "high" or cls["p99"] == "high"
    score = 100 * sum(v == "pass" for v in cls.values()) / len(cls)
    ok = not critical_fail and score >= cfg["marginal"]
    return Result("promote" if ok and score >= cfg["pass"] else "rollback" if not ok else "none", cfg["window"],
                  tr.cum["canary"][0])
