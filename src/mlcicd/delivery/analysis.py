"""The canary judge: a pure function from the history of looks to a decision. No I/O.

Four outcomes, per metric and overall: ``continue`` (not enough evidence yet), ``promote``
(the canary is shown to be no worse than allowed), ``rollback`` (a regression is shown) and
``inconclusive`` (the bake ended without enough evidence, or a source stayed unreadable).
Missing data is never a pass. Every claim is anytime-valid (:mod:`.sequential`), so the
monitor may ask after every read for the whole bake without inflating its error rates:
rollback claims share the budget ``alpha = 1 - confidence`` (``ALPHA_WEIGHTS``), so a
healthy canary is rolled back with probability <= alpha overall; each promote claim is
wrong with probability <= alpha.

error_rate  rate ratio canary/stable on concurrent traffic (conditional-binomial mixture,
            H0: ratio <= max_ratio); promote when p_c - p_s <= margin is shown (confidence
            sequences for both rates, alpha/2 each). First release: the rate against ``max``.
latency     per quantile q, a bound b_q fixed from the stable's histogram once it has enough
            requests (its q-quantile + tolerance, rounded up to a bucket bound); later requests
            slower than b_q are counted. Regression: slower than b_q more often than the stable
            (ratio test) AND more often than 1 - q (the canary's q-quantile is above b_q).
            Promote: that share shown <= 1 - q. Plus ``max_p99_ms`` (>1% slower than it), the
            only yardstick on a first release.
predictions Jensen-Shannon divergence of the label mixes: regression when its lower bound
            exceeds ``max_divergence``, promote when its upper bound does not.
custom      Flagger style: a value outside [min, max] fails the look.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from mlcicd.config import CanaryPolicy, CustomCheck, ErrorRateCheck, LatencyCheck, PredictionCheck
from mlcicd.delivery import sequential as seq
from mlcicd.delivery.looks import ERR, HTOT, PRED, REQ, History, Look, trailing
from mlcicd.delivery.metrics.base import Snapshot
from mlcicd.delivery.sequential import quantile_from_buckets

__all__ = ["ALPHA_WEIGHTS", "Judgement", "Look", "MetricResult", "Outcome", "judge", "quantile_from_buckets"]

Outcome = Literal["continue", "promote", "rollback", "inconclusive"]
# Shares of the false-rollback budget among the enforced statistical checks: the error rate,
# the check that catches most bad releases and whose speed matters most, gets 60%.
ALPHA_WEIGHTS = {"error_rate": 3.0, "latency": 1.0, "predictions": 1.0}
# A quantile needs this many samples before it is more than the maximum.
MIN_LATENCY_SAMPLES = 100
# The stable sample that fixes a latency bound must expect this many requests beyond the quantile.
MIN_QUANTILE_TAIL = 10
_X = "\u00d7"  # the multiplication sign


@dataclass(frozen=True)
class MetricResult:
    name: str
    outcome: Outcome
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    enforced: bool = True
    critical: bool = False


@dataclass(frozen=True)
class Judgement:
    decision: Outcome
    reason: str
    metrics: tuple[MetricResult, ...]


def _pct(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{100 * x:.1f}%" if abs(x) >= 0.01 else f"{100 * x:.2f}%"


def _conf(alpha: float) -> str:  # 0.03 -> "97%", 0.0125 -> "98.75%"
    return f"{100 * (1 - alpha):.2f}".rstrip("0").rstrip(".") + "%"


def _ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{1000 * seconds:,.0f} ms"


def _e(log_e: float) -> float:  # an e-value for the evidence, finite for JSON
    return float(np.exp(min(float(log_e), 700.0)))


class _Metric:
    """Collects one metric's claims and evidence and turns them into a MetricResult."""

    def __init__(self, name: str, enforced: bool, critical: bool, span: int, final: bool, n_looks: int):
        self.name, self.enforced, self.critical, self.span, self.final = name, enforced, critical, span, final
        self.n_looks, self.flags, self.ev = n_looks, [False] * span, dict[str, Any]()
        self.regression: str | None = None  # message of the first claim standing at this look

    def claim(self, flags: list[bool], message: str) -> None:
        self.flags = [a or b for a, b in zip(self.flags, flags, strict=True)]
        if flags[-1] and self.regression is None:
            self.regression = message

    def rate_above(self, s: np.ndarray, n: np.ndarray, p0: float, index: np.ndarray, a: float,
                   min_n: float = 0.0) -> tuple[list[bool], float]:
        """Claim flags (trailing looks) that a rate exceeds p0, from cumulative counts; and the last log e-value."""
        s, n = s[-self.span:], n[-self.span:]
        log_e = np.where(n >= min_n, seq.binomial_log_evalue(s, n, p0), -np.inf)
        flags = trailing(log_e >= seq.log_threshold(a), index[-self.span:], self.n_looks, self.span)
        return flags, float(log_e[-1])

    def result(self, promote: str | None, waiting: str) -> MetricResult:
        outcome: Outcome = "inconclusive" if self.final else "continue"
        if self.regression and all(self.flags):
            outcome, waiting = "rollback", self.regression
        elif self.regression:
            shown = next((i for i, f in enumerate(reversed(self.flags)) if not f), self.span)
            waiting = f"{self.regression} (on {shown} of the {self.span} consecutive looks needed)"
        elif promote:
            outcome, waiting = "promote", promote
        return MetricResult(self.name, outcome, waiting, self.ev, self.enforced, self.critical)


def _error_rate(d: History, policy: CanaryPolicy, a_rb: float, first_release: bool, m: _Metric) -> MetricResult:
    chk, alpha = policy.checks.error_rate, policy.alpha
    ev = m.ev
    ev.update(alpha_rollback=a_rb, alpha_promote=alpha, e_threshold=1 / a_rb)
    if first_release:
        n, x = d.canary.cum[:, REQ], d.canary.cum[:, ERR]
        if not len(n):
            return m.result(None, "error rate: no canary reads yet")
        flags, log_e = m.rate_above(x, n, chk.max, d.canary.index, a_rb)
        rate, up = x[-1] / max(n[-1], 1.0), float(seq.binomial_bound(x[-1], n[-1], alpha, upper=True))
        ev.update(canary_requests=n[-1], canary_errors=x[-1], canary_rate=rate, limit=chk.max, upper=up,
                  e_value=_e(log_e))
        if flags[-1]:
            lo = ev["lower"] = float(seq.binomial_bound(x[-1], n[-1], a_rb, upper=False))
            m.claim(flags, f"error rate: canary {_pct(rate)} over the {_pct(chk.max)} limit (at least {_pct(lo)} "
                           f"at {_conf(a_rb)} confidence, anytime-valid) after {n[-1]:,.0f} canary requests")
        ok = n[-1] >= policy.min_requests and up <= chk.max
        return m.result(f"error rate: canary {_pct(rate)}, at most {_pct(up)} at {_conf(alpha)} confidence, within "
                        f"the {_pct(chk.max)} limit" if ok else None, f"error rate: canary {_pct(rate)} of "
                        f"{n[-1]:,.0f} requests, at most {_pct(up)} so far (limit {_pct(chk.max)})")
    if not len(d.joint):
        return m.result(None, "error rate: no concurrent canary and stable reads yet")
    jc, js = d.canary.cum[d.rc, :2], d.stable.cum[d.rs, :2]
    ic, is_ = np.diff(jc, axis=0, prepend=np.zeros((1, 2))), np.diff(js, axis=0, prepend=np.zeros((1, 2)))
    log_es = seq.ratio_log_evalue(ic[:, 1], is_[:, 1], ic[:, 0], is_[:, 0], chk.max_ratio, tail=m.span)
    (nc, xc), (ns, xs) = jc[-1], js[-1]
    pc, ps = xc / max(nc, 1.0), xs / max(ns, 1.0)
    ratio = pc / ps if ps else math.inf if pc else 1.0
    ev.update(canary_requests=nc, canary_errors=xc, stable_requests=ns, stable_errors=xs, canary_rate=pc,
              stable_rate=ps, rate_ratio=ratio if math.isfinite(ratio) else None, max_ratio=chk.max_ratio,
              e_value=_e(log_es[-1]), difference=pc - ps, margin=chk.margin, canary_weight=d.looks[-1].canary_weight)
    flags = trailing(log_es >= seq.log_threshold(a_rb), d.joint[-m.span:], m.n_looks, m.span)
    if flags[-1]:
        lcb = ev["ratio_lower"] = seq.ratio_lower_bound(ic[:, 1], is_[:, 1], ic[:, 0], is_[:, 0], a_rb)
        times = "" if math.isinf(ratio) else f"{_X}{ratio:.1f}, "
        m.claim(flags, f"error rate: canary {_pct(pc)} vs stable {_pct(ps)} ({times}at least {_X}{lcb:.3g} at "
                       f"{_conf(a_rb)} confidence, anytime-valid) after {nc:,.0f} canary requests")
    ok = nc >= policy.min_requests and seq.difference_shown(xc, nc, xs, ns, chk.margin, alpha)
    worse = ""
    if ok or m.final:  # the exact bounds cost two root searches: only for a verdict's evidence
        up_c, lo_s = (float(v) for v in seq.binomial_bound([xc, xs], [nc, ns], alpha / 2, upper=[True, False]))
        ev.update(canary_upper=up_c, stable_lower=lo_s, difference_upper=up_c - lo_s)
        worse = f"at most {(up_c - lo_s) * 100:+.2f} points worse at {_conf(alpha)} confidence"
    return m.result(f"error rate: canary {_pct(pc)} vs stable {_pct(ps)}, {worse} (margin {chk.margin * 100:.2f})"
                    if ok else None, f"error rate: canary {_pct(pc)} vs stable {_pct(ps)} after {nc:,.0f} canary "
                    f"requests; neither a regression (e-value {ev['e_value']:.3g} of {1 / a_rb:.0f}) nor "
                    f"non-inferiority (margin {chk.margin * 100:.2f} points) shown" + (f", {worse}" if worse else ""))


def _latency(d: History, policy: CanaryPolicy, a_lat: float, first_release: bool, m: _Metric,
             reference: Snapshot | None = None) -> MetricResult:
    """``reference``: the stable's counters from before the analysis, to fix the quantile bounds at once."""
    chk, alpha, bounds, ev = policy.checks.latency, policy.alpha, d.bounds, m.ev
    ref_total = reference.latency_buckets.get(math.inf, 0.0) if reference is not None else 0.0
    n_all, limit = d.canary.cum[:, HTOT], chk.max_p99_ms / 1000
    if not len(n_all) or not bounds or not n_all[-1]:
        return m.result(None, "latency: no canary histogram yet")
    a = a_lat / (1 + (0 if first_release else len(chk.quantiles)))  # Bonferroni over the latency claims
    p99 = quantile_from_buckets(d.canary.hist(len(n_all) - 1, bounds), 0.99)
    ev.update(canary_requests=n_all[-1], canary_p99_ms=None if p99 is None else 1000 * p99,
              max_p99_ms=chk.max_p99_ms, alpha_rollback_each=a, alpha_promote=alpha, quantiles={})
    hi = seq.bound_index(bounds, limit, up=True)
    if hi is not None:  # the absolute limit: more than 1% of requests slower than it, on a real sample
        slow = n_all - d.canary.column(bounds[hi])
        flags, log_e = m.rate_above(slow, n_all, 0.01, d.canary.index, a, MIN_LATENCY_SAMPLES)
        ev["e_limit"] = _e(log_e)
        if flags[-1]:
            low = float(seq.binomial_bound(slow[-1], n_all[-1], a, upper=False))
            m.claim(flags, f"latency p99: canary {_ms(p99)} over the {chk.max_p99_ms:,.0f} ms limit "
                           f"({_pct(slow[-1] / n_all[-1])} of canary requests slower than {_ms(bounds[hi])}, at least "
                           f"{_pct(low)} > 1% at {_conf(a)} confidence, anytime-valid) after {n_all[-1]:,.0f} "
                           "canary requests")
    if first_release:
        lo_i = seq.bound_index(bounds, limit, up=False)
        slow_lo = n_all[-1] - (d.canary.column(bounds[lo_i])[-1] if lo_i is not None else 0.0)
        up = ev["slower_than_limit_upper"] = float(seq.binomial_bound(slow_lo, n_all[-1], alpha, upper=True))
        ok = n_all[-1] >= max(policy.min_requests, MIN_LATENCY_SAMPLES) and up <= 0.01
        return m.result(f"latency: p99 {_ms(p99)}, within the {chk.max_p99_ms:,.0f} ms limit at {_conf(alpha)} "
                        "confidence" if ok else None, f"latency: p99 {_ms(p99)} after {n_all[-1]:,.0f} canary "
                        f"requests, not yet shown within the {chk.max_p99_ms:,.0f} ms limit")
    waiting: list[str] = []
    tc, ts = d.canary.cum[d.rc, HTOT], d.stable.cum[d.rs, HTOT]
    for q in chk.quantiles:
        label, tail = f"p{100 * q:g}", max(MIN_LATENCY_SAMPLES, MIN_QUANTILE_TAIL / (1 - q))
        if ref_total >= tail:
            # Fixed from the stable's history before the analysis began: every look counts.
            s_q, r0 = quantile_from_buckets(reference.latency_buckets, q) or 0.0, None  # type: ignore[union-attr]
        else:
            ready = np.flatnonzero(ts >= tail)
            if not len(ready):
                waiting.append(f"{label}: waiting for {tail:,.0f} stable requests to fix its bound")
                continue
            # The bound is fixed at row r0; only later traffic counts: requests n and requests x slower than it.
            r0 = int(ready[0])
            s_q = quantile_from_buckets(d.stable.hist(int(d.rs[r0]), bounds), q) or 0.0
        j = seq.bound_index(bounds, s_q * (1 + chk.tolerance_pct / 100), up=True)
        if j is None:
            waiting.append(f"{label}: the stable's {_ms(s_q)} is beyond the histogram's last bound")
            continue
        fast_c, fast_s = d.canary.column(bounds[j])[d.rc], d.stable.column(bounds[j])[d.rs]
        if r0 is None:  # a zero row before the first look stands for the start of the analysis
            nc, ns, fast_c, fast_s = (np.concatenate([[0.0], v]) for v in (tc, ts, fast_c, fast_s))
            after = d.joint
        else:
            nc, ns, fast_c, fast_s = tc[r0:] - tc[r0], ts[r0:] - ts[r0], fast_c[r0:], fast_s[r0:]
            after = d.joint[r0 + 1:]
        xc, xs = nc - (fast_c - fast_c[0]), ns - (fast_s - fast_s[0])
        n_c, s_c, f_s = float(nc[-1]), float(xc[-1]), float(xs[-1] / max(ns[-1], 1.0))
        within = float(seq.binomial_log_evalue(s_c, n_c, 1 - q, upper=False))
        qev = ev["quantiles"][label] = {"bound_ms": 1000 * bounds[j], "stable_at_choice_ms": 1000 * s_q,
                                        "canary_slower": s_c / max(n_c, 1.0), "stable_slower": f_s,
                                        "canary_requests_tested": n_c, "e_within": _e(within)}
        if len(nc) > 1:  # regression: slower than the bound more often than the stable AND than 1 - q
            ratio_e = seq.ratio_log_evalue(np.diff(xc), np.diff(xs), np.diff(nc), np.diff(ns), 1.0, tail=m.span)
            share, log_share = m.rate_above(xc[1:], nc[1:], 1 - q, after, a, 1 / (1 - q))
            ratio = trailing(ratio_e >= seq.log_threshold(a), after[-m.span:], m.n_looks, m.span)
            qev.update(e_ratio=_e(ratio_e[-1]), e_share=_e(log_share), e_threshold=1 / a)
            if ratio[-1] and share[-1]:
                low = float(seq.binomial_bound(s_c, n_c, a, upper=False))
                c_q = quantile_from_buckets(d.canary.hist(int(d.rc[-1]), bounds), q)
                s_now = quantile_from_buckets(d.stable.hist(int(d.rs[-1]), bounds), q)
                m.claim([r and s for r, s in zip(ratio, share, strict=True)],
                        f"latency {label}: canary {_ms(c_q)} vs stable {_ms(s_now)} ({_pct(s_c / n_c)} of canary "
                        f"requests slower than the {_ms(bounds[j])} bound, the stable's {label} + "
                        f"{chk.tolerance_pct:g}% rounded up to a bucket, vs {_pct(f_s)} of stable's; at least "
                        f"{_pct(low)} > {_pct(1 - q)} at {_conf(a)} confidence, anytime-valid) after {n_c:,.0f} "
                        "canary requests")
        if m.final:
            qev["canary_slower_upper"] = float(seq.binomial_bound(s_c, n_c, alpha, upper=True))
        if not (n_c >= 1 / (1 - q) and within >= seq.log_threshold(alpha)):
            waiting.append(f"{label}: {_pct(s_c / max(n_c, 1.0))} of canary requests slower than {_ms(bounds[j])}, "
                           f"not yet shown below {_pct(1 - q)}")
    shown = ", ".join(f"{lb} ≤ {e['bound_ms']:,.0f} ms" for lb, e in ev["quantiles"].items())
    return m.result(None if waiting else f"latency: {shown} (the stable's + {chk.tolerance_pct:g}%, bucket-rounded)"
                    f" at {_conf(alpha)} confidence", "latency: " + "; ".join(waiting))


def _mix(counts: np.ndarray, labels: tuple[str, ...]) -> str:
    top = sorted(zip(labels, counts.tolist(), strict=True), key=lambda kv: -kv[1])[:4]
    return ", ".join(f"{k}: {_pct(v / counts.sum())}" for k, v in top)


def _predictions(d: History, policy: CanaryPolicy, a_rb: float, m: _Metric) -> MetricResult:
    chk, ev = policy.checks.predictions, m.ev
    pc, ps = d.canary.cum[d.rc, PRED:], d.stable.cum[d.rs, PRED:]
    if not len(d.joint) or not d.labels:
        return m.result(None, "prediction mix: no predictions from both sides yet")
    used = (pc[-1] + ps[-1]) > 0
    labels = tuple(k for k, u in zip(d.labels, used, strict=True) if u)
    pc, ps = pc[:, used], ps[:, used]
    nc, ns = pc.sum(axis=1), ps.sum(axis=1)
    ev.update(canary_predictions=nc[-1], stable_predictions=ns[-1], max_divergence=chk.max_divergence,
              canary_mix=dict(zip(labels, pc[-1].tolist(), strict=True)), alpha_rollback=a_rb,
              stable_mix=dict(zip(labels, ps[-1].tolist(), strict=True)), alpha_promote=policy.alpha)
    if min(nc[-1], ns[-1]) < chk.min_predictions:
        return m.result(None, f"prediction mix: {nc[-1]:,.0f} canary and {ns[-1]:,.0f} stable predictions, "
                              f"{chk.min_predictions} needed on each side")
    est = ev["divergence"] = seq.js_divergence(pc[-1], ps[-1])
    if est > chk.max_divergence:  # the estimate lies between the bounds: only a regression is possible
        rows = sorted({max(int(np.searchsorted(d.joint, lk, side="right")) - 1, 0)
                       for lk in range(max(m.n_looks - m.span, 0), m.n_looks)})
        lows = seq.js_bounds(pc[rows], ps[rows], a_rb)[1]
        shown = (lows > chk.max_divergence) & (np.minimum(nc[rows], ns[rows]) >= chk.min_predictions)
        low = ev["divergence_lower"] = float(lows[-1])
        m.claim(trailing(shown, d.joint[rows], m.n_looks, m.span),
                f"prediction mix: Jensen-Shannon divergence {est:.3f} between canary ({_mix(pc[-1], labels)}) and "
                f"stable ({_mix(ps[-1], labels)}), at least {low:.3f} > {chk.max_divergence:g} allowed at "
                f"{_conf(a_rb)} confidence (anytime-valid) after {nc[-1]:,.0f} canary predictions")
        return m.result(None, f"prediction mix: divergence {est:.3f}, at least {low:.3f} ({chk.max_divergence:g} "
                              f"allowed) after {nc[-1]:,.0f} canary predictions")
    up = ev["divergence_upper"] = float(seq.js_bounds(pc[-1], ps[-1], policy.alpha)[2])
    return m.result(f"prediction mix: divergence {est:.3f}, at most {up:.3f} ≤ {chk.max_divergence:g} at "
                    f"{_conf(policy.alpha)} confidence" if up <= chk.max_divergence else None,
                    f"prediction mix: divergence {est:.3f}, at most {up:.3f} so far ({chk.max_divergence:g} allowed) "
                    f"after {nc[-1]:,.0f} canary predictions")


def _custom(chk: CustomCheck, looks: Sequence[Look], policy: CanaryPolicy, final: bool) -> MetricResult:
    values = [lk.custom.get(chk.name) for lk in looks]
    read = [v for v in values if v is not None]
    missing = _streak(values)
    inside = [(chk.min is None or v >= chk.min) and (chk.max is None or v <= chk.max) for v in read]
    failed = next((i for i, ok in enumerate(reversed(inside)) if ok), len(read))  # failed reads are skipped
    span = f"[{'-inf' if chk.min is None else f'{chk.min:g}'}, {'inf' if chk.max is None else f'{chk.max:g}'}]"
    ev = {"value": read[-1] if read else None, "min": chk.min, "max": chk.max, "consecutive_failures": failed,
          "consecutive_missing": missing}

    state = "no value yet" if not read else f"{read[-1]:g}" + (f" outside {span}" if failed else " (last query failed)")
    outcome: Outcome = "inconclusive" if final else "continue"
    message = f"{chk.name}: {state}"
    if failed >= (1 if chk.critical else policy.failure_limit):
        outcome, message = "rollback", f"{chk.name}: {read[-1]:g} outside {span} on {failed} consecutive looks"
    elif missing >= policy.max_measurement_errors:
        outcome, message = "inconclusive", f"{chk.name}: query failed {missing} times in a row"
    elif read and not missing and not failed:
        outcome, message = "promote", f"{chk.name}: {read[-1]:g} within {span}"
    return MetricResult(chk.name, outcome, message, ev, chk.mode == "enforce", chk.critical)


def _streak(items: Sequence[object | None]) -> int:
    """How many of the latest items are None (consecutive failed reads)."""
    return next((i for i, v in enumerate(reversed(items)) if v is not None), len(items))


def judge(looks: Sequence[Look], policy: CanaryPolicy, *, first_release: bool, final: bool,
          reference: Snapshot | None = None) -> Judgement:
    """Decide from the whole history of this analysis; ``final`` is True when its time is over.

    ``reference`` is the stable's cumulative counters from before the analysis began (its
    history since it started serving), chosen before any look: latency bounds are fixed from
    it at once instead of after the stable served enough requests during the analysis.
    """
    checks = policy.checks
    modes: dict[str, ErrorRateCheck | LatencyCheck | PredictionCheck] = {
        "error_rate": checks.error_rate, "latency": checks.latency, "predictions": checks.predictions}
    stats = [k for k, c in modes.items() if c.mode == "enforce" and not (first_release and k == "predictions")]
    budget = sum(ALPHA_WEIGHTS[k] for k in stats)
    alpha_of = {k: policy.alpha * ALPHA_WEIGHTS[k] / (budget if k in stats else sum(ALPHA_WEIGHTS.values()))
                for k in modes}

    def metric(key: str) -> _Metric:
        c = modes[key]
        span = 1 if c.critical else policy.failure_limit
        return _Metric(key, c.mode == "enforce", c.critical, span, final, len(looks))

    results: list[MetricResult] = []
    served = 0.0
    if looks:
        d = History.of(looks, first_release)
        served = float(d.canary.cum[-1, REQ]) if len(d.canary.cum) else 0.0
        results.append(_error_rate(d, policy, alpha_of["error_rate"], first_release, metric("error_rate")))
        results.append(_latency(d, policy, alpha_of["latency"], first_release, metric("latency"), reference))
        results.append(MetricResult("predictions", "promote", "prediction mix: first release, no stable predictions "
                                    "to compare with", {}, enforced=False) if first_release
                       else _predictions(d, policy, alpha_of["predictions"], metric("predictions")))
    results += [_custom(c, looks, policy, final) for c in checks.custom]
    canary_down = _streak([lk.canary for lk in looks])
    stable_down = 0 if first_release else _streak([lk.stable for lk in looks])
    metrics, enforced = tuple(results), [r for r in results if r.enforced]
    # The canary unreadable while the stable still answers: the canary is down or hung, protect users.
    # Both unreadable over that streak: the metric source is down, which says nothing about the canary.
    source_down = not first_release and stable_down >= canary_down
    if canary_down >= policy.max_measurement_errors and not source_down:
        r = MetricResult("canary_reachable", "rollback", f"canary metrics unreadable {canary_down} times in a row "
                         "(the canary is down or hung)", {"consecutive_failures": canary_down}, critical=True)
        return Judgement("rollback", r.message, (r, *metrics))
    failing = sorted((r for r in enforced if r.outcome == "rollback"), key=lambda r: not r.critical)
    if failing:
        return Judgement("rollback", failing[0].message, metrics)
    if stable_down >= policy.max_measurement_errors:
        both = source_down and canary_down
        why = "the metric source is down or unreachable" if both else "no baseline to judge against"
        r = MetricResult("stable_reachable", "inconclusive", f"{'canary and stable' if both else 'stable'} metrics "
                         f"unreadable {stable_down} times in a row: {why}", {"consecutive_failures": stable_down})
        return Judgement("inconclusive", r.message, (r, *metrics))
    pending = next((r for r in enforced if r.outcome == "inconclusive"), None)
    if pending is not None:
        return Judgement("inconclusive", pending.message, metrics)
    undecided: Outcome = "inconclusive" if final else "continue"
    if canary_down or stable_down:
        return Judgement(undecided, "the latest metrics read failed: waiting for the next one", metrics)
    if served < policy.min_requests:
        return Judgement(undecided, f"{served:,.0f} of {policy.min_requests} canary requests so far", metrics)
    if all(r.outcome == "promote" for r in enforced):
        reason = "; ".join(r.message for r in enforced) or "no check is enforced (all observe-only)"
        return Judgement("promote", f"{reason}; after {served:,.0f} canary requests", metrics)
    return Judgement(undecided, next(r for r in enforced if r.outcome != "promote").message, metrics)
