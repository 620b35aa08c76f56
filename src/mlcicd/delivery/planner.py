"""Plan the bake before it starts: how much canary traffic, and time, each promote claim needs.

The judge's claims get decided by evidence, and evidence comes with traffic: a bake that is
too short for the traffic it sees ends inconclusive, and with ``on_inconclusive: rollback``
a perfectly healthy canary is rolled back. The planner runs the judge's own claim
functions (:mod:`.claims`, :mod:`.mixes`, the latency share test) on the *expected* counts
of a healthy canary, the canary exactly as good as the stable, and bisects for the number
of canary requests at which each claim is first shown:

* every step: its error-rate claim on its own traffic (the step margin) and ``min_requests``;
* a first release (no stable to compare with): the error rate and p99 within their absolute limits;
* the last step: the error rate's promote margin, each latency quantile and the prediction mix
  on all the traffic since the analysis began (the last step lasts until the pooled counts
  suffice);
* then the last look.

Expected counts give about the median: half of healthy bakes decide sooner, half later,
so the duration to set carries :data:`HEADROOM` (in the benchmark, 1.5x still left 4% of
healthy low-traffic bakes undecided; twice the median leaves about none). With the stable's 5xx rate unknown (before
any traffic) the plan takes the slowest of :data:`TYPICAL_RATES`. deploy-canary and
``mlci-gen check`` print the plan; monitor-canary reports progress toward it at each look.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np

from mlcicd.config import CanaryPolicy
from mlcicd.delivery import histograms as hg
from mlcicd.delivery import mixes
from mlcicd.delivery import sequential as seq
from mlcicd.delivery.checks.error_rate import promote_margin, step_margin
from mlcicd.delivery.checks.latency import MIN_LATENCY_SAMPLES
from mlcicd.delivery.claims import Margin, noninferior
from mlcicd.report import Check, Status

# Planned duration = expected time x this, rounded up to a minute: nearly every healthy bake decides within it.
HEADROOM = 2.0
# Stable 5xx rates planned for when none has been observed: the slowest one decides.
TYPICAL_RATES = (0.0, 0.001, 0.01, 0.05)
# Without a stable histogram, latencies are taken as log-normal with this log-sd (p99 ~3.2x the median).
ASSUMED_LOG_SD = 0.5
# Without a stable mix, predictions are taken as this two-class mix.
ASSUMED_MIX = (0.7, 0.3)
_MAX_REQUESTS = 1e8


@dataclass(frozen=True)
class Observed:
    """What is known about the traffic before (or during) the bake; None: not known."""

    rps: float | None = None  # requests per second, both versions together
    error_rate: float | None = None  # the stable's 5xx rate
    latency: Mapping[float, float] | None = None  # the stable's cumulative histogram
    mix: Mapping[str, float] | None = None  # the stable's label counts


@dataclass(frozen=True)
class Need:
    step: int  # index into the policy's weights
    weight: int
    claim: str  # e.g. "error rate (x2 + 0.5 points)", "latency p99", "prediction mix"
    requests: float  # canary requests (on the step's own traffic; all of it for the prediction mix)


@dataclass
class Plan:
    weights: list[int]
    needs: list[Need]
    rps: float | None
    last_look: float
    rates_planned: tuple[float, ...]
    step_requests: list[float] = field(default_factory=list)  # per step: the most any of its claims needs
    step_seconds: list[float] | None = None

    @property
    def seconds(self) -> float | None:
        """Expected time to promote-ready for a healthy canary, last look included."""
        return None if self.step_seconds is None else sum(self.step_seconds) + self.last_look

    @property
    def recommended(self) -> float | None:
        """The ``duration`` to set: the expected time with headroom, in whole minutes."""
        s = self.seconds
        return None if s is None or not math.isfinite(s) else 60.0 * math.ceil(HEADROOM * s / 60.0)

    def binding(self, step: int) -> Need | None:
        """The claim that needs the most of a step's traffic."""
        own = [n for n in self.needs if n.step == step]
        return max(own, key=lambda n: n.requests) if own else None

    def too_short(self, duration: float) -> bool:
        rec = self.recommended
        return rec is not None and duration < rec

    def summary(self) -> str:
        """One line per step, e.g. "step 1 (10%): ~2,200 canary requests (error rate x2 + 0.5 points), ~4 min"."""
        lines = []
        for i, w in enumerate(self.weights):
            b = self.binding(i)
            if b is None:
                continue
            when = "" if self.step_seconds is None else f", ~{_minutes(self.step_seconds[i])}"
            lines.append(f"step {i + 1} ({w}%): ~{self.step_requests[i]:,.0f} canary requests ({b.claim}){when}")
        if self.last_look:
            lines.append(f"last look: {self.last_look:g} s")
        rates = ("the stable's observed 5xx rate" if len(self.rates_planned) == 1 else
                 "the slowest of stable 5xx rates " + "/".join(f"{100 * r:g}%" for r in self.rates_planned))
        total = "" if self.seconds is None else f"; about {_minutes(self.seconds)} in all at {self.rps:,.1f} req/s"
        return "; ".join(lines) + f" (for {rates}{total})"

    def advice(self, duration: float, key: str = "deploy.canary.duration") -> str | None:
        """What to tell a user whose ``duration`` is too short, naming the number to set; None when it is fine."""
        if self.seconds is None:
            return None
        if not math.isfinite(self.seconds):
            return (f"no duration is enough: the claims cannot be shown at {self.rps:,.1f} req/s with these "
                    "margins; loosen them (checks.error_rate.margin / step_margin) or send more traffic")
        if not self.too_short(duration):
            return None
        return (f"{key} is {duration:g} s, but a healthy canary needs about {_minutes(self.seconds)} at "
                f"{self.rps:,.1f} req/s to show every promote claim ({self.summary()}); set {key}: "
                f"{self.recommended:.0f} (or send more traffic), or the bake ends inconclusive")


def _minutes(seconds: float) -> str:
    return f"{seconds:,.0f} s" if seconds < 120 else f"{seconds / 60:,.1f} min"


def _bisect(shown: Callable[[float], bool], lo: float = 10.0) -> float:
    """The smallest n (to ~3%) with shown(n); inf when even _MAX_REQUESTS is not enough. shown must be monotone."""
    if shown(lo):
        return lo
    hi = lo
    while not shown(hi):
        hi *= 8
        if hi > _MAX_REQUESTS:
            return math.inf
    lo = hi / 8
    while hi / lo > 1.03:
        mid = math.sqrt(lo * hi)
        lo, hi = (lo, mid) if shown(mid) else (mid, hi)
    return hi


def error_rate_requests(rate: float, weight: float, margin: Margin, alpha: float) -> float:
    """Canary requests at ``weight`` % for a healthy canary's error-rate claim, on its step's own traffic."""
    ratio = (100 - weight) / weight
    a = np.ones(1)

    def shown(n: float) -> bool:
        return noninferior(a * rate * n, a * rate * n * ratio, a * n, a * n * ratio, margin, alpha).shown

    return _bisect(shown)


def latency_requests(q: float, tolerance_pct: float, alpha: float, hist: Mapping[float, float] | None,
                     bounds: tuple[float, ...]) -> float:
    """Canary requests for a quantile's claim (share slower than the stable's q-quantile + tolerance <= 1 - q)."""
    scale = 1 + tolerance_pct / 100
    if hist:
        s_q = hg.reference_quantile(hist, q) or 0.0
        split = hg.split_bucket(hist, bounds, s_q * scale, scale)
        if split is None:
            return math.inf
        f_lo = hg.reference_cdf(hist, split.lo) if split.lo > 0 else 0.0
        f_hi = hg.reference_cdf(hist, split.hi)
        share = 1.0 - f_hi + split.fraction * (f_hi - f_lo)
    else:
        z = NormalDist().inv_cdf(q)
        share = 1.0 - NormalDist().cdf(z + math.log(scale) / ASSUMED_LOG_SD)
    share = min(max(share, 1e-6), 1 - q)
    prior = seq.Prior.lognormal(max(float(seq.logit(1 - q) - seq.logit(share)), 0.05), 0.6)
    threshold = seq.log_threshold(alpha)
    return _bisect(lambda n: n >= 1 / (1 - q) and float(
        seq.binomial_log_evalue(share * n, n, 1 - q, upper=False, prior=prior)) >= threshold)


def plan(policy: CanaryPolicy, seen: Observed, *, first_release: bool = False,
         bounds: tuple[float, ...] = ()) -> Plan:
    """What a healthy canary needs under ``policy`` at the traffic ``seen``; ``bounds``: the histogram's edges."""
    chk, alpha = policy.checks, policy.alpha
    weights = [100] if first_release else policy.weights()
    rates = (seen.error_rate,) if seen.error_rate is not None else \
        tuple(r for r in TYPICAL_RATES if not first_release or r < chk.error_rate.max / 2)
    needs: list[Need] = []
    for i, w in enumerate(weights):
        needs.append(Need(i, w, "min_requests", float(policy.min_requests)))
        if first_release or chk.error_rate.mode != "enforce":
            continue
        margin = step_margin(chk.error_rate)
        n = max(error_rate_requests(r, w, margin, alpha) for r in rates)
        needs.append(Need(i, w, f"error rate {margin.short()} on the step", n))
    if first_release:
        needs.append(Need(0, 100, "error rate within the first-release limit",
                          max(_first_release_requests(r, chk.error_rate.max, alpha) for r in rates)))
        if chk.latency.mode == "enforce":  # at most 1% slower than max_p99_ms: ~300 requests even with none slower
            needs.append(Need(0, 100, f"p99 within {chk.latency.max_p99_ms:,.0f} ms", max(
                float(MIN_LATENCY_SAMPLES), _first_release_requests(0.0, 0.01, alpha))))
    out = Plan(weights, needs, seen.rps, policy.last_look, rates)
    out.step_requests = [max((n.requests for n in needs if n.step == i), default=0.0) for i in range(len(weights))]
    if not first_release and chk.error_rate.mode == "enforce":
        margin = promote_margin(chk.error_rate)
        _pooled(out, f"error rate {margin.short()} on all", lambda c, s, _: all(
            noninferior(rate * c, rate * s, c, s, margin, alpha).shown for rate in rates))
    if not first_release and chk.latency.mode == "enforce":
        hist = dict(seen.latency) if seen.latency else None
        edges = tuple(sorted(hist)) if hist else bounds
        for q in chk.latency.quantiles:
            _pooled(out, f"latency p{100 * q:g}", _at_least(latency_requests(q, chk.latency.tolerance_pct, alpha,
                                                                             hist, edges)))
    if not first_release and chk.predictions.mode == "enforce":
        limit = chk.predictions.max_divergence
        _pooled(out, "prediction mix", lambda c, s, r: float(mixes.js_bounds(
            *_mix_counts(seen.mix, float(c.sum()), float(s.sum() / c.sum())), alpha)[2]) <= limit)
    if seen.rps:
        out.step_seconds = [n / (seen.rps * w / 100) for n, w in zip(out.step_requests, weights, strict=True)]
    return out


def _first_release_requests(rate: float, limit: float, alpha: float) -> float:
    if rate >= limit:
        return math.inf
    return _bisect(lambda n: float(seq.binomial_bound(rate * n, n, alpha, upper=True)) <= limit)


def _at_least(n: float) -> Callable[[np.ndarray, np.ndarray, float], bool]:
    """A pooled claim that needs ``n`` canary requests in all."""
    return lambda c, s, _: float(c.sum()) >= n


def _pooled(out: Plan, claim: str, shown: Callable[[np.ndarray, np.ndarray, float], bool]) -> None:
    """A claim on all the evidence: how long the last step must last for the counts since the start to show it.

    ``shown(canary_requests, stable_requests, 1.0)``: per-step counts (one entry per step walked).
    """
    weights, last = out.weights, len(out.weights) - 1
    earlier = np.array(out.step_requests[:last], dtype=float)
    stable_per = np.array([(100 - w) / w for w in weights], dtype=float)

    def shown_after(extra: float) -> bool:
        c = np.append(earlier, extra)
        return shown(c, c * stable_per, 1.0)

    least = max(out.step_requests[last], 1.0)
    extra = least if shown_after(least) else _bisect(shown_after, lo=least)
    out.needs.append(Need(last, weights[last], claim, extra))
    out.step_requests[last] = max(out.step_requests[last], extra)


def _mix_counts(mix: Mapping[str, float] | None, n: float, ratio: float) -> tuple[np.ndarray, np.ndarray]:
    shares = np.array(list(mix.values()) if mix else ASSUMED_MIX, dtype=float)
    shares = shares[shares > 0] / max(shares[shares > 0].sum(), 1e-300)
    return shares * n, shares * n * ratio


def plan_check(plan: Plan, duration: float, key: str = "deploy.canary.duration") -> Check:
    """The bake plan as a report check: a warning, naming the duration to set (at ``key``), when the bake is too
    short."""
    advice = plan.advice(duration, key)
    if advice:
        return Check("bake_plan", Status.WARN, advice, observed=duration, expected=plan.recommended)
    if plan.rps is None:
        return Check("bake_plan", Status.PASS, f"canary requests the claims need: {plan.summary()}; no traffic "
                     "measured to turn them into minutes (set deploy.canary.expected_rps)")
    return Check("bake_plan", Status.PASS, f"duration {duration:g} s is enough: {plan.summary()}",
                 observed=duration, expected=plan.recommended)


def config_lines(policy: CanaryPolicy) -> list[str]:
    """What ``mlci-gen check`` says about a config's bake, before any traffic: at ``expected_rps`` if set."""
    found = plan(policy, Observed(rps=policy.expected_rps))
    warn = found.advice(policy.duration)
    if warn:
        return [f"warning: {warn}"]
    if found.rps is None:
        return [f"bake plan: {found.summary()}; set deploy.canary.expected_rps to turn requests into minutes"]
    return [f"bake plan: duration {policy.duration:g} s is enough: {found.summary()}"]
