"""Prediction mixes: Jensen-Shannon divergence and anytime-valid bounds on it.

Each side's label counts get one *joint* confidence sequence for its whole multinomial
(not one per label with the error budget split between them), at ``alpha / 2`` per side:

* two labels: the mix is one number, the first label's share, and its two-sided confidence
  sequence (:func:`.sequential.binomial_bounds`, a quarter of alpha per tail) is the joint
  region; the other label's interval is its mirror image.
* more labels: the likelihood-ratio ball of a Dirichlet(1/2, ..., 1/2) mixture
  (Krichevsky-Trofimov): the mixture's marginal likelihood over the true likelihood is a
  martingale, so by Ville's inequality, with probability >= 1 - alpha at every look,
  ``n * KL(p_hat || p) <= log(1/alpha) + regret`` (regret = max log-likelihood - log
  mixture, ~ (K - 1)/2 * log(n)). The ball's shadow on label k is exactly the binary
  interval {p_k : n * kl(p_hat_k || p_k) <= same radius} (grouping the other labels can
  only lower the divergence), so every label gets its interval from the full budget.

The divergence is a sum over labels of a term jointly convex in (p_k, q_k) and zero on the
diagonal, so over the box of intervals its maximum sits at a corner and its minimum at the
corner nearest the diagonal; dropping the simplex constraint only widens the bounds. The
label set is the one seen so far on either side.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from mlcicd.delivery import sequential as seq
from mlcicd.delivery.sequential import Array

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
# A label share is a middling probability measured on many predictions: the deviations worth resolving
# are small log-odds shifts, so the confidence sequence's prior sits there (median 0.05).
MIX_PRIOR = seq.Prior.lognormal(0.05, 1.2, lo=0.002, hi=12.0, size=48)


def lgamma(x: ArrayLike) -> Array:
    """log Gamma(x) for x > 0, vectorised: Stirling's series after shifting x up by 7 (error < 1e-12)."""
    x = np.asarray(x, dtype=float)
    z = x + 7.0
    shift = np.log(x * (x + 1) * (x + 2) * (x + 3) * (x + 4) * (x + 5) * (x + 6))
    z2 = z * z
    series = 1 / (12 * z) - 1 / (360 * z * z2) + 1 / (1260 * z * z2 * z2) - 1 / (1680 * z * z2 ** 3)
    return np.asarray((z - 0.5) * np.log(z) - z + _HALF_LOG_2PI + series - shift)


def _xlogy(x: Array, y: Array) -> Array:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(np.where(x > 0, x * np.log(np.where(y > 0, y, 1.0)), 0.0))


def multinomial_radius(counts: ArrayLike, alpha: ArrayLike) -> Array:
    """log(1/alpha) + the Dirichlet(1/2) mixture's regret, per row of label counts (..., K)."""
    x = np.asarray(counts, dtype=float)
    k = x.shape[-1]
    n = x.sum(axis=-1)
    log_mix = (lgamma(np.full(n.shape, k / 2)) - lgamma(n + k / 2)
               + (lgamma(x + 0.5) - math.lgamma(0.5)).sum(axis=-1))
    best = _xlogy(x, x / np.where(n > 0, n, 1.0)[..., None]).sum(axis=-1)
    return np.asarray(np.log(1.0 / np.asarray(alpha, dtype=float)) + best - log_mix)


def _kl(p: Array, q: Array) -> Array:
    """Binary Kullback-Leibler divergence kl(p || q), q in (0, 1)."""
    return np.asarray(_xlogy(p, p / q) + _xlogy(1 - p, (1 - p) / (1 - q)))


def _kl_edge(p: Array, c: Array, up: bool) -> Array:
    """The q on one side of p with kl(p || q) = c (0 or 1 when there is none); never inside the region.

    Pinsker (kl >= 2 (q - p)^2) puts the start outside the root; kl(p || .) is convex, so
    Newton steps from there approach the root monotonically without crossing it.
    """
    sign = 1.0 if up else -1.0
    q = np.clip(p + sign * np.sqrt(c / 2), 1e-15, 1 - 1e-15)
    for _ in range(30):
        f = _kl(p, q) - c
        slope = (q - p) / (q * (1 - q))
        with np.errstate(divide="ignore", invalid="ignore"):
            step = np.where((f > 0) & (slope != 0), f / slope, 0.0)
        q = np.clip(q - step, np.minimum(p, q) if up else 1e-15, np.maximum(p, q) if not up else 1 - 1e-15)
        if np.all(np.abs(step) < 1e-12):
            break
    edge = 1.0 if up else 0.0
    # kl(p || edge) is finite only where p sits on that edge; the region reaches it when c >= that value.
    reach = np.where(p == edge, True, _kl(p, np.full(p.shape, 1 - 1e-15 if up else 1e-15)) <= c)
    return np.asarray(np.where(reach, edge, q))


def multinomial_intervals(counts: ArrayLike, alpha: ArrayLike) -> tuple[Array, Array]:
    """Per-label lower and upper bounds of the joint anytime-valid confidence region at ``alpha``."""
    x = np.asarray(counts, dtype=float)
    n = x.sum(axis=-1, keepdims=True)
    a = np.broadcast_to(np.asarray(alpha, dtype=float), x.shape[:-1])
    if x.shape[-1] == 2:  # one free share: its two-sided confidence sequence is the joint region
        lo, up = seq.binomial_bounds(x[..., 0], n[..., 0], a / 2, prior=MIX_PRIOR)
        return np.stack([lo, 1 - up], axis=-1), np.stack([up, 1 - lo], axis=-1)
    p = np.where(n > 0, x / np.where(n > 0, n, 1.0), 0.5)
    r = np.broadcast_to((multinomial_radius(x, a) / np.maximum(n[..., 0], 1e-300))[..., None], x.shape)
    empty = n <= 0
    return np.where(empty, 0.0, _kl_edge(p, r, up=False)), np.where(empty, 1.0, _kl_edge(p, r, up=True))


def _js_terms(a: Array, b: Array) -> Array:
    """Per-label contribution to the Jensen-Shannon divergence (bits); 0 log 0 = 0."""
    m = 0.5 * (a + b)
    with np.errstate(divide="ignore", invalid="ignore"):
        ta = np.where(a > 0, a * np.log2(np.where(a > 0, a, 1.0) / np.where(m > 0, m, 1.0)), 0.0)
        tb = np.where(b > 0, b * np.log2(np.where(b > 0, b, 1.0) / np.where(m > 0, m, 1.0)), 0.0)
    return np.asarray(0.5 * (ta + tb))


def js_divergence(p: ArrayLike, q: ArrayLike) -> float:
    """Jensen-Shannon divergence in bits (0: identical, 1: disjoint) of two count or probability vectors."""
    pa, qa = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
    if pa.sum() <= 0 or qa.sum() <= 0:
        return float("nan")
    return float(_js_terms(pa / pa.sum(), qa / qa.sum()).sum())


def js_bounds(counts_c: ArrayLike, counts_s: ArrayLike, alpha: ArrayLike) -> tuple[Array, Array, Array]:
    """Estimate, lower and upper bound of JSD(canary, stable) holding with probability 1 - alpha at all times.

    Inputs are label counts (..., K), cumulative; ``alpha`` broadcasts against the leading
    dimensions and is split evenly between the two sides' joint regions.
    """
    c = np.asarray(counts_c, dtype=float)
    s = np.asarray(counts_s, dtype=float)
    both = np.stack(np.broadcast_arrays(c, s))
    lo, hi = multinomial_intervals(both, np.broadcast_to(np.asarray(alpha, dtype=float) / 2, both.shape[:-1]))
    (lc, ls), (uc, us) = lo, hi
    totals = both.sum(axis=-1, keepdims=True)
    share = np.where(totals > 0, both / np.where(totals > 0, totals, 1.0), 0.0)
    estimate = _js_terms(share[0], share[1]).sum(axis=-1)
    corners = np.stack([_js_terms(lc, ls), _js_terms(lc, us), _js_terms(uc, ls), _js_terms(uc, us)])
    upper = np.minimum(corners.max(axis=0).sum(axis=-1), 1.0)
    nearest = np.where(lc > us, _js_terms(lc, us), np.where(uc < ls, _js_terms(uc, ls), 0.0))
    return np.asarray(estimate), np.asarray(nearest.sum(axis=-1)), np.asarray(upper)
