"""The latency check: quantiles of the canary against the stable's, from the servers' histograms.

Per quantile q, a bound b_q is fixed from the stable's histogram before the analysis (its
history) or once it has served enough requests: its q-quantile + ``tolerance_pct``. The
bound rarely sits on a bucket edge; requests in its bucket count with a fixed fraction
(:func:`..histograms.split_bucket`), so the tolerance holds as configured (within about
a point on the model server's buckets) instead of rounding up to the next edge.
Regression: slower than b_q more often than the stable (ratio test) AND than 1 - q,
restarted per segment (a late slowdown is judged on its own evidence). Promote, on the last
step, on all the traffic since the bound was fixed: that share shown <= 1 - q (a quantile
within a few percent of its tolerance needs tens of thousands of requests: the last step's
alone would rarely do). Plus ``max_p99_ms`` (>1% slower than it), the only yardstick on a
first release.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from mlcicd.delivery import histograms as hg
from mlcicd.delivery import sequential as seq
from mlcicd.delivery.checks.base import Claims, Context, MetricResult, conf, e_value, ms, pct
from mlcicd.delivery.looks import HTOT, Counters
from mlcicd.delivery.metrics.base import Snapshot

# A quantile needs this many samples before it is more than the maximum.
MIN_LATENCY_SAMPLES = 100
# The stable sample that fixes a latency bound must expect this many requests beyond the quantile.
MIN_QUANTILE_TAIL = 10


def _slower(side: Counters, split: hg.Split, totals: np.ndarray) -> np.ndarray:
    """Cumulative scores of requests slower than the split's bound, per read of one server."""
    above_hi = totals - side.column(split.hi)
    above_lo = totals - side.column(split.lo) if split.lo > 0 else totals
    return np.asarray(split.slower(above_lo, above_hi))


@functools.lru_cache(maxsize=256)
def fixed_bound(reference: tuple[tuple[float, float], ...], bounds: tuple[float, ...], q: float,
                scale: float) -> tuple[float, hg.Split | None, seq.Prior]:
    """From a reference histogram (fixed before it is used): the stable's q-quantile, the bound's split of its
    bucket, and the promote test's prior, centred on a canary as fast as the reference (its expected share
    slower than the bound vs 1 - q)."""
    hist = dict(reference)
    s_q = hg.reference_quantile(hist, q) or 0.0
    split = hg.split_bucket(hist, bounds, s_q * scale, scale)
    if split is None:
        return s_q, None, seq.DETECT
    f_lo = hg.reference_cdf(hist, split.lo) if split.lo > 0 else 0.0
    f_hi = hg.reference_cdf(hist, split.hi)
    share = min(max(1.0 - f_hi + split.fraction * (f_hi - f_lo), 1e-6), 1 - q)
    return s_q, split, seq.Prior.lognormal(max(float(seq.logit(1 - q) - seq.logit(share)), 0.05), 0.6)


def check(ctx: Context, a_lat: float, m: Claims, reference: Snapshot | None = None) -> MetricResult:
    """``reference``: the stable's counters from before the analysis, to fix the quantile bounds at once."""
    chk, alpha, d, ev = ctx.policy.checks.latency, ctx.policy.alpha, ctx.d, m.ev
    bounds = d.bounds
    ref_total = reference.latency_buckets.get(math.inf, 0.0) if reference is not None else 0.0
    n_all, limit = d.canary.cum[:, HTOT], chk.max_p99_ms / 1000
    if not len(n_all) or not bounds or not n_all[-1]:
        return m.result(None, "latency: no canary histogram yet")
    a = a_lat / (1 + (0 if ctx.first_release else len(chk.quantiles)))  # Bonferroni over the latency claims
    p99 = hg.quantile_from_buckets(d.canary.hist(len(n_all) - 1, bounds), 0.99)
    ev.update(canary_requests=n_all[-1], canary_p99_ms=None if p99 is None else 1000 * p99,
              max_p99_ms=chk.max_p99_ms, alpha_rollback_each=a, alpha_promote=alpha, quantiles={})
    hi = hg.bound_index(bounds, limit, up=True)
    if hi is not None:  # the absolute limit: more than 1% of requests slower than it, on a real sample
        slow = n_all - d.canary.column(bounds[hi])
        flags, log_e = m.rate_above(slow, n_all, 0.01, d.canary.index, a, MIN_LATENCY_SAMPLES)
        ev["e_limit"] = e_value(log_e)
        if flags[-1]:
            low = float(seq.binomial_bound(slow[-1], n_all[-1], a, upper=False))
            m.claim(flags, f"latency p99: canary {ms(p99)} over the {chk.max_p99_ms:,.0f} ms limit "
                           f"({pct(slow[-1] / n_all[-1])} of canary requests slower than {ms(bounds[hi])}, at least "
                           f"{pct(low)} > 1% at {conf(a)} confidence, anytime-valid) after {n_all[-1]:,.0f} "
                           "canary requests")
    if ctx.first_release:
        lo_i = hg.bound_index(bounds, limit, up=False)
        slow_lo = n_all[-1] - (d.canary.column(bounds[lo_i])[-1] if lo_i is not None else 0.0)
        up = ev["slower_than_limit_upper"] = float(seq.binomial_bound(slow_lo, n_all[-1], alpha, upper=True))
        ok = n_all[-1] >= max(ctx.policy.min_requests, MIN_LATENCY_SAMPLES) and up <= 0.01
        return m.result(f"latency: p99 {ms(p99)}, within the {chk.max_p99_ms:,.0f} ms limit at {conf(alpha)} "
                        "confidence" if ok else None, f"latency: p99 {ms(p99)} after {n_all[-1]:,.0f} canary "
                        f"requests, not yet shown within the {chk.max_p99_ms:,.0f} ms limit")
    waiting = [w for q in chk.quantiles if (w := _quantile(ctx, m, q, a, reference, ref_total))]
    tol = f"{chk.tolerance_pct:g}%"
    if not ctx.last_step:
        return m.result(f"latency: no regression shown on the {ctx.step_label()} (quantiles are shown within "
                        f"+{tol} on the last step)", "")
    shown = ", ".join(f"{lb} ≤ {e['bound_ms']:,.1f} ms" for lb, e in ev["quantiles"].items())
    return m.result(None if waiting else f"latency: {shown} (the stable's + {tol}) at {conf(alpha)} confidence",
                    "latency: " + "; ".join(waiting))


def _quantile(ctx: Context, m: Claims, q: float, a: float, reference: Snapshot | None,
              ref_total: float) -> str | None:
    """Claims for one quantile; returns what it still waits for (None once shown, or on earlier steps)."""
    chk, alpha, d, ev = ctx.policy.checks.latency, ctx.policy.alpha, ctx.d, m.ev
    bounds = d.bounds
    label, tail = f"p{100 * q:g}", max(MIN_LATENCY_SAMPLES, MIN_QUANTILE_TAIL / (1 - q))
    tc, ts = d.canary.cum[d.rc, HTOT], d.stable.cum[d.rs, HTOT]
    if reference is not None and ref_total >= tail:
        hist, r0 = dict(reference.latency_buckets), None  # fixed before the analysis began: every look counts
    else:
        ready = np.flatnonzero(ts >= tail)
        if not len(ready):
            return f"{label}: waiting for {tail:,.0f} stable requests to fix its bound"
        r0 = int(ready[0])  # the bound is fixed at this joint row; only later traffic counts
        hist = d.stable.hist(int(d.rs[r0]), bounds)
    s_q, split, prior = fixed_bound(tuple(sorted(hist.items())), bounds, q, 1 + chk.tolerance_pct / 100)
    if split is None:
        return f"{label}: the stable's {ms(s_q)} is beyond the histogram's last bound"
    slow_c, slow_s = _slower(d.canary, split, d.canary.cum[:, HTOT])[d.rc], _slower(d.stable, split,
                                                                                    d.stable.cum[:, HTOT])[d.rs]
    if r0 is None:  # a zero row before the first look stands for the start of the analysis
        nc, ns, xc, xs = (np.concatenate([[0.0], v]) for v in (tc, ts, slow_c, slow_s))
        after = d.joint
    else:
        nc, ns, xc, xs = (v[r0:] - v[r0] for v in (tc, ts, slow_c, slow_s))
        after = d.joint[r0 + 1:]
    n_c, s_c, f_s = float(nc[-1]), float(xc[-1]), float(xs[-1] / max(ns[-1], 1.0))
    qev = ev["quantiles"][label] = {"bound_ms": 1000 * split.bound, "stable_at_choice_ms": 1000 * s_q,
                                    "bucket_ms": [1000 * split.lo, 1000 * split.hi],
                                    "bucket_fraction": split.fraction, "canary_slower": s_c / max(n_c, 1.0),
                                    "stable_slower": f_s, "canary_requests_tested": n_c}
    if len(nc) > 1:  # regression: slower than the bound more often than the stable AND than 1 - q
        ratio, log_ratio = m.ratio_above(np.diff(xc), np.diff(xs), np.diff(nc), np.diff(ns), 1.0, after, a)
        share, log_share = m.rate_above(xc[1:], nc[1:], 1 - q, after, a, 1 / (1 - q))
        qev.update(e_ratio=e_value(log_ratio), e_share=e_value(log_share), e_threshold=1 / a)
        if ratio[-1] and share[-1]:
            low = float(seq.binomial_bound(s_c, n_c, a, upper=False))
            c_q = hg.quantile_from_buckets(d.canary.hist(int(d.rc[-1]), bounds), q)
            s_now = hg.quantile_from_buckets(d.stable.hist(int(d.rs[-1]), bounds), q)
            m.claim([r and s for r, s in zip(ratio, share, strict=True)],
                    f"latency {label}: canary {ms(c_q)} vs stable {ms(s_now)} ({pct(s_c / n_c)} of canary "
                    f"requests slower than the {split.bound * 1000:,.1f} ms bound, the stable's {label} + "
                    f"{chk.tolerance_pct:g}%, vs {pct(f_s)} of stable's; at least {pct(low)} > {pct(1 - q)} at "
                    f"{conf(a)} confidence, anytime-valid) after {n_c:,.0f} canary requests")
    if not ctx.last_step:
        return None
    # Promotion: every canary request since the bound was fixed.
    within = float(seq.binomial_log_evalue(s_c, n_c, 1 - q, upper=False, prior=prior))
    qev["e_within"] = e_value(within)
    if ctx.final:
        qev["canary_slower_upper"] = float(seq.binomial_bound(s_c, n_c, alpha, upper=True))
    if n_c >= 1 / (1 - q) and within >= seq.log_threshold(alpha):
        return None
    return (f"{label}: {pct(s_c / max(n_c, 1.0))} of {n_c:,.0f} canary requests slower than "
            f"{split.bound * 1000:,.1f} ms, not yet shown below {pct(1 - q)}")
