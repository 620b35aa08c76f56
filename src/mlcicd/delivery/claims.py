"""Non-inferiority of the canary's error rate: shown, with the bound that shows it.

Two shapes of margin, both a ratio for ordinary error rates and an absolute floor that
makes the claim decidable near zero, where no number of requests shows a ratio:

* promote (``additive``): ``p_c <= ratio * p_s + floor``, e.g. x1.5 + 0.1 points: 1.6% next
  to 1%, 0.25% next to 0.1%, 0.1% next to 0%.
* per step (not additive): ``p_c <= max(ratio * p_s, p_s + floor)``, e.g. x2 or +0.5 points,
  whichever is larger: a doubled rate never passes a step, yet near zero a step decides fast.

Each margin bounds the canary's excess ``D = p_c - m(p_s)`` by two routes and the claim is
shown when either bound is within the floor (``<= 0`` for the ratio of the max-shape); the
message reports those same bounds, so decision and message never disagree. The budget
``alpha`` is split in advance: half for the ratio test, a quarter for the canary's upper
bound, a quarter for the stable's two bounds (an eighth each).

* ratio: the conditional-binomial e-process of :mod:`.sequential` against H0: p_c/p_s >=
  rho, with downward shifts whose prior (fixed by the margin) is centred near a canary
  exactly as good as the stable. Given each interval's events the stable's rate cancels, so
  traffic splits that change and incidents that hit both versions alike cost nothing.
  Inverted it gives an upper bound ``rho_up`` on the ratio. Max-shape: shown when
  ``rho_up <= ratio``. Additive: with the stable's upper bound ``u_s``,
  ``D <= (rho_up - ratio) * u_s``, shown exactly when H0 is rejected at ``rho = ratio +
  floor / u_s`` (the e-value grows with rho, so the two statements agree).
* bounds: confidence sequences for both rates; ``D <= u_c - ratio * l_s`` (additive) or
  ``p_c - p_s <= u_c - l_s`` (max-shape): what decides at (near) zero rates.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from mlcicd.delivery import sequential as seq


@dataclass(frozen=True)
class Margin:
    ratio: float  # relative part (1.0: none)
    floor: float  # absolute part
    additive: bool = True  # ratio * p_s + floor; else max(ratio * p_s, p_s + floor)

    def allowed(self, stable_rate: float) -> float:
        """The canary rate this margin allows next to a stable rate."""
        if self.additive:
            return self.ratio * stable_rate + self.floor
        return max(self.ratio * stable_rate, stable_rate + self.floor)

    def short(self) -> str:
        """E.g. "≤ x1.5 + 0.1 pt", "≤ max(x2, +0.5 pt)" (with the multiplication sign)."""
        if not self.additive:
            return f"≤ max({X}{self.ratio:g}, +{100 * self.floor:.2g} pt)"
        return f"≤ {X}{self.ratio:g} + {100 * self.floor:.2g} pt"

    def describe(self) -> str:
        if not self.additive:
            return f"{X}{self.ratio:g} the stable's rate or +{100 * self.floor:.2g} points, whichever is larger"
        rel = f"{X}{self.ratio:g} the stable's rate" if self.ratio != 1 else "the stable's rate"
        return f"{rel} + {100 * self.floor:.2g} points"


X = "\u00d7"  # the multiplication sign

# Shares of a claim's error budget: ratio test, canary upper bound, stable bounds (both sides).
SPLIT = (0.5, 0.25, 0.25)


@dataclass
class Shown:
    """The outcome of one non-inferiority claim and the figures behind it."""

    margin: Margin
    alpha: float
    canary_rate: float = math.nan
    stable_rate: float = math.nan
    ratio_shown: bool = False
    bounds_shown: bool = False
    ratio_upper: float | None = None  # anytime-valid upper bound of p_c / p_s (computed when asked for)
    canary_upper: float | None = None
    stable_lower: float | None = None
    stable_upper: float | None = None

    @property
    def shown(self) -> bool:
        return self.ratio_shown or self.bounds_shown

    @property
    def excess_upper(self) -> float | None:
        """Upper bound on the excess over the margin's base the figures give, in the floor's units.

        Additive: on D = p_c - ratio * p_s, the tighter of both routes. Max-shape: on p_c - p_s
        from the two rates' bounds (the ratio route is reported as the ratio itself).
        """
        found = []
        base = self.margin.ratio if self.margin.additive else 1.0
        if self.canary_upper is not None and self.stable_lower is not None:
            found.append(self.canary_upper - base * self.stable_lower)
        if self.margin.additive and self.ratio_upper is not None and self.stable_upper is not None \
                and math.isfinite(self.ratio_upper):
            found.append(max(self.ratio_upper - self.margin.ratio, 0.0) * self.stable_upper)
        return min(found) if found else None

    def bounds_text(self) -> str:
        """What the bounds say, e.g. "at most +0.08 points over x1.5 the stable's rate at 95% confidence"."""
        d = self.excess_upper
        ratio = self.ratio_upper if self.ratio_upper is not None and math.isfinite(self.ratio_upper) else None
        parts = []
        if d is not None:
            base = f"{X}{self.margin.ratio:g} the stable's rate" if self.margin.additive and self.margin.ratio != 1 \
                else "the stable's rate"
            parts.append(f"at most {100 * d:+.2f} points over {base} ({100 * self.margin.floor:.2g} allowed)")
        if ratio is not None:
            parts.append(f"ratio at most {X}{ratio:.3g}" + ("" if self.margin.additive
                                                           else f" ({X}{self.margin.ratio:g} allowed)"))
        return f"{', '.join(parts)} at {_conf(self.alpha)} confidence" if parts else ""

    def evidence(self) -> dict[str, float | bool | None]:
        ratio = self.ratio_upper if self.ratio_upper is not None and math.isfinite(self.ratio_upper) else None
        return {"shown": self.shown, "ratio": self.margin.ratio, "floor": self.margin.floor,
                "ratio_shown": self.ratio_shown, "bounds_shown": self.bounds_shown, "ratio_upper": ratio,
                "canary_upper": self.canary_upper, "stable_lower": self.stable_lower,
                "stable_upper": self.stable_upper, "excess_upper": self.excess_upper}


def _conf(alpha: float) -> str:
    return f"{100 * (1 - alpha):.2f}".rstrip("0").rstrip(".") + "%"


@functools.lru_cache(maxsize=64)
def ratio_prior(margin: Margin) -> seq.Prior:
    """Downward shifts centred near a canary exactly as good as the stable (log(ratio) below the null).

    Fixed by the margin alone, never by the data: every null ratio is then tested with the
    same prior, the e-value is monotone in the null, and its inversion is a valid bound.
    The floor moves the null the test is asked about a little above ``ratio``, hence the
    wide spread.
    """
    return seq.Prior.lognormal(max(math.log(margin.ratio), 0.3), 0.8)


def noninferior(x_c: np.ndarray, x_s: np.ndarray, n_c: np.ndarray, n_s: np.ndarray, margin: Margin,
                alpha: float, *, explain: bool = False) -> Shown:
    """Is ``p_c <= margin.ratio * p_s + margin.floor`` shown on these per-interval counts (events, requests)?

    ``explain`` also computes the ratio's tightest confidence bound for the message (a
    bisection, skipped on the many looks where nobody reads it). Without it, a ratio part
    that decided reports the null it rejected, itself a valid upper bound on the ratio.
    """
    xc, xs, nc, ns = (float(np.sum(v)) for v in (x_c, x_s, n_c, n_s))
    out = Shown(margin, alpha)
    if nc <= 0 or ns <= 0:
        return out
    out.canary_rate, out.stable_rate = xc / nc, xs / ns
    a_ratio, a_canary, a_stable = (alpha * share for share in SPLIT)
    base = margin.ratio if margin.additive else 1.0
    rho = margin.ratio
    if margin.additive:  # the ratio that keeps D within the floor at the stable's highest plausible rate
        out.stable_upper = float(seq.binomial_bound(xs, ns, a_stable / 2, upper=True))
        rho += margin.floor / out.stable_upper if out.stable_upper > 0 else math.inf
    if math.isfinite(rho) and len(np.atleast_1d(x_c)):
        prior = ratio_prior(margin)
        log_e = seq.ratio_log_evalue(x_c, x_s, n_c, n_s, rho, prior=prior, down=True, tail=1)[-1]
        out.ratio_shown = bool(log_e >= seq.log_threshold(a_ratio))
        if explain:
            out.ratio_upper = seq.ratio_bound(x_c, x_s, n_c, n_s, a_ratio, upper=True, prior=prior,
                                              start=rho if out.ratio_shown else None)
        elif out.ratio_shown:
            out.ratio_upper = rho
    # The rates' own bounds: needed unless the ratio already decided, and able to decide only if the
    # estimates themselves are within the floor (each bound lies beyond its estimate).
    if explain or (not out.ratio_shown and out.canary_rate - base * out.stable_rate <= margin.floor):
        up_c, lo_s = (float(v) for v in seq.binomial_bound([xc, xs], [nc, ns], [a_canary, a_stable / 2],
                                                           upper=[True, False]))
        out.canary_upper, out.stable_lower = up_c, lo_s
        out.bounds_shown = up_c - base * lo_s <= margin.floor
    return out
