"""What every check of the canary judge shares: its result, the judgement's context, and claims over looks."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from mlcicd.config import CanaryPolicy
from mlcicd.delivery import sequential as seq
from mlcicd.delivery.looks import REQ, History, Look, Segments, trailing

Outcome = Literal["continue", "promote", "rollback", "inconclusive"]


@dataclass(frozen=True)
class MetricResult:
    name: str
    outcome: Outcome
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    enforced: bool = True
    critical: bool = False


def pct(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{100 * x:.1f}%" if abs(x) >= 0.01 else f"{100 * x:.2f}%"


def conf(alpha: float) -> str:  # 0.03 -> "97%", 0.0125 -> "98.75%"
    return f"{100 * (1 - alpha):.2f}".rstrip("0").rstrip(".") + "%"


def ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{1000 * seconds:,.0f} ms"


def e_value(log_e: float) -> float:  # an e-value for the evidence, finite for JSON
    return float(np.exp(min(float(log_e), 700.0)))


@dataclass
class Context:
    """One judgement: the history, the policy, and where the walk stands."""

    looks: Sequence[Look]
    d: History
    policy: CanaryPolicy
    first_release: bool
    final: bool  # the analysis's (or the step's) time is up
    segments: Segments
    n_steps: int

    @property
    def n_looks(self) -> int:
        return len(self.looks)

    @property
    def step(self) -> int:
        return self.looks[-1].step

    @property
    def last_step(self) -> bool:
        """The promote claims are shown on the last step; earlier steps show their own, looser one."""
        return self.step >= self.n_steps - 1

    def step_rows(self, index: np.ndarray) -> np.ndarray:
        """Which rows of a reads ``index`` belong to the current step (its last look included)."""
        return np.asarray(self.d.steps[index] == self.step)

    def step_label(self) -> str:
        weight = self.looks[-1].canary_weight
        return "last step" if self.last_step and self.n_steps > 1 else f"step {self.step + 1} ({weight}%)"

    def step_requests(self) -> float:
        """Canary requests served in the current step so far (at the latest canary read)."""
        cum = self.d.canary.cum
        if not len(cum):
            return 0.0
        rows = self.step_rows(self.d.canary.index)
        first = int(np.argmax(rows)) if rows.any() else len(rows)
        before = cum[first - 1, REQ] if first > 0 else 0.0
        return float(cum[-1, REQ] - before) if rows.any() else 0.0


class Claims:
    """Collects one metric's regression claims over the trailing looks and its evidence."""

    def __init__(self, ctx: Context, name: str, enforced: bool, critical: bool) -> None:
        self.ctx, self.name, self.enforced, self.critical = ctx, name, enforced, critical
        self.span = 1 if critical else ctx.policy.failure_limit
        self.flags = [False] * self.span
        self.ev: dict[str, Any] = {}
        self.regression: str | None = None  # message of the first claim standing at this look

    def claim(self, flags: list[bool], message: str) -> None:
        self.flags = [a or b for a, b in zip(self.flags, flags, strict=True)]
        if flags[-1] and self.regression is None:
            self.regression = message

    def tail_rows(self, index: np.ndarray) -> np.ndarray:
        return np.arange(max(len(index) - self.span, 0), len(index))

    def flags_of(self, log_e: np.ndarray, index: np.ndarray, alpha: float) -> list[bool]:
        """Claim flags at the trailing looks from combined log e-values at the trailing rows of ``index``."""
        return trailing(log_e >= seq.log_threshold(alpha), index[-self.span:], self.ctx.n_looks, self.span)

    def rate_above(self, s: np.ndarray, n: np.ndarray, p0: float, index: np.ndarray, alpha: float,
                   min_n: float = 0.0) -> tuple[list[bool], float]:
        """Flags that a rate exceeds p0 (cumulative counts, restarted per segment), and the last log e-value."""
        rows = self.tail_rows(index)
        starts = self.ctx.segments.starts(index)
        first = np.array([row for row, _ in starts], dtype=int)
        s0 = np.where(first > 0, s[np.maximum(first - 1, 0)], 0.0)[:, None]
        n0 = np.where(first > 0, n[np.maximum(first - 1, 0)], 0.0)[:, None]
        ss, nn = s[rows][None, :] - s0, n[rows][None, :] - n0  # starts x rows
        per = np.where(nn >= min_n, seq.binomial_log_evalue(ss, nn, p0), -np.inf)
        log_e = self.ctx.segments.combine(per, starts, rows)
        return self.flags_of(log_e, index, alpha), float(log_e[-1])

    def ratio_above(self, x_c: np.ndarray, x_s: np.ndarray, n_c: np.ndarray, n_s: np.ndarray, rho0: float,
                    index: np.ndarray, alpha: float) -> tuple[list[bool], float]:
        """Flags that the rate ratio exceeds rho0 (per-interval counts, restarted per segment), last log e-value."""
        rows = self.tail_rows(index)
        log_e = self._ratio_combined(x_c, x_s, n_c, n_s, rho0, index, rows)
        return self.flags_of(log_e, index, alpha), float(log_e[-1])

    def _ratio_combined(self, x_c: np.ndarray, x_s: np.ndarray, n_c: np.ndarray, n_s: np.ndarray, rho0: float,
                        index: np.ndarray, rows: np.ndarray, cache: bool = True) -> np.ndarray:
        cum = seq.ratio_log_lr(x_c, x_s, n_c, n_s, rho0, cache=cache)
        starts = self.ctx.segments.starts(index)
        first = np.array([row for row, _ in starts], dtype=int)
        base = np.where((first > 0)[:, None], cum[np.maximum(first - 1, 0)], 0.0)  # starts x shifts
        per = seq.logsumexp(cum[rows][None, :, :] - base[:, None, :] + seq.DETECT.log_weights)
        return self.ctx.segments.combine(per, starts, rows)

    def ratio_lower(self, x_c: np.ndarray, x_s: np.ndarray, n_c: np.ndarray, n_s: np.ndarray, index: np.ndarray,
                    alpha: float) -> tuple[float, str]:
        """The ratio's lower bound from the same combined e-process that rejected, and which segment weighs most.

        Every segment's e-value falls as the null ratio grows, so their weighted sum does too:
        the bound is a bisection on log rho0 (0.0 when none is rejected). The segment is named
        in the message ("since step 4 began") when a restart, not the analysis start, carries it.
        """
        last = np.array([len(index) - 1])
        threshold = seq.log_threshold(alpha)

        def rejected(log_rho: float) -> bool:
            combined = self._ratio_combined(x_c, x_s, n_c, n_s, math.exp(log_rho), index, last, cache=False)
            return float(combined[-1]) >= threshold

        lo, hi = math.log(1e-3), math.log(1e4)
        if not rejected(lo):
            return 0.0, ""
        for _ in range(30):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if rejected(mid) else (lo, mid)
        return math.exp(lo), self._carrier(x_c, x_s, n_c, n_s, index)

    def _carrier(self, x_c: np.ndarray, x_s: np.ndarray, n_c: np.ndarray, n_s: np.ndarray,
                 index: np.ndarray) -> str:
        cum = seq.ratio_log_lr(x_c, x_s, n_c, n_s, 1.0)
        starts = self.ctx.segments.starts(index)
        scores = [lw + float(seq.logsumexp(cum[-1] - (cum[row - 1] if row > 0 else 0.0) + seq.DETECT.log_weights))
                  for row, lw in starts]
        row = starts[int(np.argmax(scores))][0]
        if row == 0:
            return ""
        look = int(index[row])
        lk = self.ctx.looks[look]
        return " in the last look" if lk.last_look else f" since step {lk.step + 1} began"

    def result(self, promote: str | None, waiting: str) -> MetricResult:
        outcome: Outcome = "inconclusive" if self.ctx.final else "continue"
        if self.regression and all(self.flags):
            outcome, waiting = "rollback", self.regression
        elif self.regression:
            shown = next((i for i, f in enumerate(reversed(self.flags)) if not f), self.span)
            waiting = f"{self.regression} (on {shown} of the {self.span} consecutive looks needed)"
        elif promote:
            outcome, waiting = "promote", promote
        return MetricResult(self.name, outcome, waiting, self.ev, self.enforced, self.critical)


def increments(cum: np.ndarray) -> np.ndarray:
    """Per-row increments of cumulative counts (the first row counts from zero)."""
    return np.asarray(np.diff(cum, axis=0, prepend=np.zeros((1, *cum.shape[1:]))))
