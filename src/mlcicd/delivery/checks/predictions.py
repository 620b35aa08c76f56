"""The prediction-mix check: the canary's live label mix against the stable's (healthy and still wrong).

Jensen-Shannon divergence of the two mixes (:mod:`..mixes`): regression when its lower bound
exceeds ``max_divergence`` (pooled over the whole analysis, on ``failure_limit`` consecutive
looks unless critical), promote when its upper bound does not. A mix does not depend on load,
so both use all the evidence since the analysis began; only the last step needs the promote claim.
"""

from __future__ import annotations

import numpy as np

from mlcicd.delivery import mixes
from mlcicd.delivery.checks.base import Claims, Context, MetricResult, conf, pct
from mlcicd.delivery.looks import PRED, trailing


def _mix(counts: np.ndarray, labels: tuple[str, ...]) -> str:
    top = sorted(zip(labels, counts.tolist(), strict=True), key=lambda kv: -kv[1])[:4]
    return ", ".join(f"{k}: {pct(v / counts.sum())}" for k, v in top)


def check(ctx: Context, a_rb: float, m: Claims) -> MetricResult:
    chk, alpha, d, ev = ctx.policy.checks.predictions, ctx.policy.alpha, ctx.d, m.ev
    pc, ps = d.canary.cum[d.rc, PRED:], d.stable.cum[d.rs, PRED:]
    if not len(d.joint) or not d.labels:
        return m.result(None, "prediction mix: no predictions from both sides yet")
    used = (pc[-1] + ps[-1]) > 0
    labels = tuple(k for k, u in zip(d.labels, used, strict=True) if u)
    pc, ps = pc[:, used], ps[:, used]
    nc, ns = pc.sum(axis=1), ps.sum(axis=1)
    ev.update(canary_predictions=nc[-1], stable_predictions=ns[-1], max_divergence=chk.max_divergence,
              canary_mix=dict(zip(labels, pc[-1].tolist(), strict=True)), alpha_rollback=a_rb,
              stable_mix=dict(zip(labels, ps[-1].tolist(), strict=True)), alpha_promote=alpha)
    if min(nc[-1], ns[-1]) < chk.min_predictions:
        return m.result(None, f"prediction mix: {nc[-1]:,.0f} canary and {ns[-1]:,.0f} stable predictions, "
                              f"{chk.min_predictions} needed on each side")
    est = ev["divergence"] = mixes.js_divergence(pc[-1], ps[-1])
    if est > chk.max_divergence:  # the estimate lies between the bounds: only a regression is possible
        rows = sorted({max(int(np.searchsorted(d.joint, lk, side="right")) - 1, 0)
                       for lk in range(max(ctx.n_looks - m.span, 0), ctx.n_looks)})
        lows = mixes.js_bounds(pc[rows], ps[rows], a_rb)[1]
        shown = (lows > chk.max_divergence) & (np.minimum(nc[rows], ns[rows]) >= chk.min_predictions)
        low = ev["divergence_lower"] = float(lows[-1])
        m.claim(trailing(shown, d.joint[rows], ctx.n_looks, m.span),
                f"prediction mix: Jensen-Shannon divergence {est:.3f} between canary ({_mix(pc[-1], labels)}) and "
                f"stable ({_mix(ps[-1], labels)}), at least {low:.3f} > {chk.max_divergence:g} allowed at "
                f"{conf(a_rb)} confidence (anytime-valid) after {nc[-1]:,.0f} canary predictions")
        return m.result(None, f"prediction mix: divergence {est:.3f}, at least {low:.3f} ({chk.max_divergence:g} "
                              f"allowed) after {nc[-1]:,.0f} canary predictions")
    if not ctx.last_step:
        return m.result(f"prediction mix: divergence {est:.3f}, no regression shown (its bound is shown on the "
                        "last step)", "")
    up = ev["divergence_upper"] = float(mixes.js_bounds(pc[-1], ps[-1], alpha)[2])
    return m.result(f"prediction mix: divergence {est:.3f}, at most {up:.3f} ≤ {chk.max_divergence:g} at "
                    f"{conf(alpha)} confidence" if up <= chk.max_divergence else None,
                    f"prediction mix: divergence {est:.3f}, at most {up:.3f} so far ({chk.max_divergence:g} allowed) "
                    f"after {nc[-1]:,.0f} canary predictions")
