"""The error-rate check: the canary's 5xx rate against the stable's (or an absolute limit on a first release).

Regression: the rate ratio canary/stable above ``max_ratio`` on concurrent traffic (the
conditional-binomial e-process, restarted per segment). Promotion (:mod:`..claims`): every
step shows the loose step margin (``step_max_ratio`` / ``step_margin``) on its own traffic,
so a doubled rate that starts at any step stops the walk there; the last step also shows
the promote margin (``max_ratio_promote`` / ``margin``) on all the evidence since the
analysis began, where its weight changes cost nothing (the ratio test conditions on each
interval's split).
"""

from __future__ import annotations

import math

import numpy as np

from mlcicd.config import ErrorRateCheck
from mlcicd.delivery import sequential as seq
from mlcicd.delivery.checks.base import Claims, Context, MetricResult, conf, e_value, increments, pct
from mlcicd.delivery.claims import Margin, X, noninferior
from mlcicd.delivery.looks import ERR, REQ


def promote_margin(chk: ErrorRateCheck) -> Margin:
    """What the last step shows on all the evidence."""
    return Margin(chk.max_ratio_promote, chk.margin)


def step_margin(chk: ErrorRateCheck) -> Margin:
    """What every step shows on its own traffic: never stricter than the promote margin."""
    return Margin(max(chk.step_max_ratio, chk.max_ratio_promote), max(chk.step_margin, chk.margin), additive=False)


def check(ctx: Context, a_rb: float, m: Claims) -> MetricResult:
    chk, alpha, d, ev = ctx.policy.checks.error_rate, ctx.policy.alpha, ctx.d, m.ev
    ev.update(alpha_rollback=a_rb, alpha_promote=alpha, e_threshold=1 / a_rb, step=ctx.step + 1)
    if ctx.first_release:
        return _first_release(ctx, a_rb, m)
    if not len(d.joint):
        return m.result(None, "error rate: no concurrent canary and stable reads yet")
    jc, js = d.canary.cum[d.rc, :2], d.stable.cum[d.rs, :2]
    ic, is_ = increments(jc), increments(js)
    flags, log_e = m.ratio_above(ic[:, ERR], is_[:, ERR], ic[:, REQ], is_[:, REQ], chk.max_ratio, d.joint, a_rb)
    (nc, xc), (ns, xs) = jc[-1], js[-1]
    pc, ps = xc / max(nc, 1.0), xs / max(ns, 1.0)
    ratio = pc / ps if ps else math.inf if pc else 1.0
    ev.update(canary_requests=nc, canary_errors=xc, stable_requests=ns, stable_errors=xs, canary_rate=pc,
              stable_rate=ps, rate_ratio=ratio if math.isfinite(ratio) else None, max_ratio=chk.max_ratio,
              e_value=e_value(log_e), canary_weight=ctx.looks[-1].canary_weight)
    if flags[-1]:
        lcb, where = m.ratio_lower(ic[:, ERR], is_[:, ERR], ic[:, REQ], is_[:, REQ], d.joint, a_rb)
        ev["ratio_lower"] = lcb
        times = "" if math.isinf(ratio) else f"{X}{ratio:.1f}, "
        m.claim(flags, f"error rate: canary {pct(pc)} vs stable {pct(ps)} ({times}at least {X}{lcb:.3g}{where} at "
                       f"{conf(a_rb)} confidence, anytime-valid) after {nc:,.0f} canary requests")
    # Promotion: the step's own traffic within the step margin; on the last step also all of it within
    # the promote margin.
    own = ctx.step_rows(d.joint)
    step_n = float(ic[own, REQ].sum())
    claims = [(step_margin(chk), f"the {ctx.step_label()}'s {step_n:,.0f} canary requests", own)]
    if ctx.last_step:
        claims.append((promote_margin(chk), f"all {nc:,.0f} canary requests", np.ones(len(own), bool)))
    said = []
    for i, (margin, where, rows) in enumerate(claims):
        shown = noninferior(ic[rows, ERR], is_[rows, ERR], ic[rows, REQ], is_[rows, REQ], margin, alpha,
                            explain=ctx.final)
        ev["step_claim" if i == 0 else "promote_claim"] = {"on": where, "margin": margin.describe(),
                                                           "canary_rate": shown.canary_rate,
                                                           "stable_rate": shown.stable_rate, **shown.evidence()}
        text = f"on {where}: canary {pct(shown.canary_rate)} vs stable {pct(shown.stable_rate)}"
        bounds = shown.bounds_text()
        if not shown.shown:
            return m.result(None, f"error rate: canary {pct(pc)} vs stable {pct(ps)} after {nc:,.0f} canary requests; "
                                  f"neither a regression (e-value {ev['e_value']:.3g} of {1 / a_rb:.0f}) nor "
                                  f"{margin.describe()} shown {text}" + (f": {bounds}" if bounds else ""))
        said.append(f"{text}, {bounds} (allowed: {margin.describe()})")
    return m.result("error rate " + "; ".join(said), "")


def _first_release(ctx: Context, a_rb: float, m: Claims) -> MetricResult:
    chk, alpha, d, ev = ctx.policy.checks.error_rate, ctx.policy.alpha, ctx.d, m.ev
    n, x = d.canary.cum[:, REQ], d.canary.cum[:, ERR]
    if not len(n):
        return m.result(None, "error rate: no canary reads yet")
    flags, log_e = m.rate_above(x, n, chk.max, d.canary.index, a_rb)
    rate = x[-1] / max(n[-1], 1.0)
    up = float(seq.binomial_bound(x[-1], n[-1], alpha, upper=True))
    ev.update(canary_requests=n[-1], canary_errors=x[-1], canary_rate=rate, limit=chk.max, upper=up,
              e_value=e_value(log_e))
    if flags[-1]:
        lo = ev["lower"] = float(seq.binomial_bound(x[-1], n[-1], a_rb, upper=False))
        m.claim(flags, f"error rate: canary {pct(rate)} over the {pct(chk.max)} limit (at least {pct(lo)} "
                       f"at {conf(a_rb)} confidence, anytime-valid) after {n[-1]:,.0f} canary requests")
    ok = bool(up <= chk.max)
    return m.result(f"error rate: canary {pct(rate)}, at most {pct(up)} at {conf(alpha)} confidence, within "
                    f"the {pct(chk.max)} limit" if ok else None, f"error rate: canary {pct(rate)} of "
                    f"{n[-1]:,.0f} requests, at most {pct(up)} so far (limit {pct(chk.max)})")
