"""Champion vs challenger: change rules (MLflow's thresholds and tolerances) and paired non-inferiority.

Change rules require an improvement with MLflow's semantics (``mlflow.models.MetricThreshold``),
so a rule copied from an MLflow ``validate_evaluation_results`` setup means the same here:

* ``min_absolute_change``: candidate ≥ baseline + change (greater is better),
  candidate ≤ baseline - change otherwise;
* ``min_relative_change``: (candidate - baseline)/|baseline| ≥ change (greater is better),
  (baseline - candidate)/|baseline| ≥ change otherwise; with a zero baseline MLflow
  falls back to "strictly better" (by 1e-10) and so do we;

or allow a bounded regression (the origin's deployment gate: "accuracy may drop 0.01,
latency may grow 10%"):

* ``max_drop`` (greater is better): candidate ≥ baseline - max_drop;
* ``max_increase`` (lower is better): candidate ≤ baseline + max_increase;
* ``max_ratio`` (lower is better): candidate ≤ baseline x max_ratio;
* ``min_ratio`` (greater is better): candidate ≥ baseline x min_ratio;
* none set: no regression (candidate ≥ baseline, or ≤ when lower is better).

The non-inferiority test compares both models on the *same* rows. For a classifier the
per-row difference d = correct(candidate) - correct(champion) is -1, 0 or +1, so the
data are fully described by three counts: resampling rows with replacement is the same
as drawing those counts from a multinomial, and 10,000 bootstrap means cost one
``rng.multinomial`` call (milliseconds) instead of 10,000 index draws (seconds). A
regression model's per-row losses are continuous: their paired bootstrap draws the same
rows for both models (:mod:`mlcicd.evaluation.resample`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

# A fixed seed: the same data must always give the same verdict (a re-run of a CI job
# that flips from fail to pass by luck would make the gate meaningless).
SEED = 20_240_601
RELATIVE_ZERO_BASELINE_EPSILON = 1e-10  # MLflow's fallback for a zero baseline


@dataclass(frozen=True)
class ChangeOutcome:
    passed: bool
    # The value the candidate had to reach (the strictest of the configured rules).
    required: float
    reasons: tuple[str, ...]  # one line per rule that failed
    notes: tuple[str, ...] = ()  # one line per rule, passed or failed: what was allowed, what was seen


def change_check(
    candidate: float,
    baseline: float,
    *,
    greater_is_better: bool,
    min_absolute_change: float | None = None,
    min_relative_change: float | None = None,
    max_drop: float | None = None,
    max_increase: float | None = None,
    max_ratio: float | None = None,
    min_ratio: float | None = None,
) -> ChangeOutcome:
    """Does ``candidate`` meet the change rules against ``baseline``?"""
    sign = 1.0 if greater_is_better else -1.0
    better = "above" if greater_is_better else "below"
    need = "≥" if greater_is_better else "≤"

    def reaches(target: float) -> bool:
        return candidate >= target if greater_is_better else candidate <= target

    requirements: list[tuple[float, bool, str]] = []
    if min_absolute_change is not None:
        target = baseline + sign * min_absolute_change
        requirements.append((target, reaches(target), f"must be at least {min_absolute_change:g} {better} "
                             f"the champion's {baseline:.4g} (i.e. {target:.4g})"))
    if min_relative_change is not None:
        if baseline == 0:
            target = baseline + sign * RELATIVE_ZERO_BASELINE_EPSILON
            requirements.append((target, reaches(target), f"the champion's value is 0, so a relative change "
                                 f"cannot be measured: must be strictly {better} 0"))
        else:
            change = sign * (candidate - baseline) / abs(baseline)
            target = baseline + sign * min_relative_change * abs(baseline)
            requirements.append((target, change >= min_relative_change,
                                 f"must be at least {min_relative_change:.2%} {better} the champion's "
                                 f"{baseline:.4g} (i.e. {target:.4g}), is {change:+.2%}"))
    if max_drop is not None:
        target = baseline - max_drop
        requirements.append((target, reaches(target), f"dropped {max(baseline - candidate, 0.0):.4g} from the "
                             f"champion's {baseline:.4g}, allowed {max_drop:g} ({need} {target:.4g})"))
    if max_increase is not None:
        target = baseline + max_increase
        requirements.append((target, reaches(target), f"rose {max(candidate - baseline, 0.0):.4g} from the "
                             f"champion's {baseline:.4g}, allowed {max_increase:g} ({need} {target:.4g})"))
    for ratio in (max_ratio, min_ratio):
        if ratio is not None:
            target = baseline * ratio
            seen = f"x{candidate / baseline:.3g}" if baseline else "from 0"
            requirements.append((target, reaches(target), f"is {seen} the champion's {baseline:.4g}, allowed "
                                 f"x{ratio:g} ({need} {target:.4g})"))
    if not requirements:
        requirements.append((baseline, reaches(baseline), f"must not be worse than the champion's {baseline:.4g}"))
    strictest = max(r[0] for r in requirements) if greater_is_better else min(r[0] for r in requirements)
    reasons = tuple(text for _, ok, text in requirements if not ok)
    notes = tuple(text + ("" if ok else " — not met") for _, ok, text in requirements)
    return ChangeOutcome(not reasons, strictest, reasons, notes)


@dataclass(frozen=True)
class PairedComparison:
    """Candidate minus champion accuracy on the same rows, with its uncertainty."""

    n: int
    wins: int  # rows only the candidate gets right
    losses: int  # rows only the champion gets right
    difference: float  # candidate - champion accuracy
    lower: float  # one-sided bootstrap lower bound at ``confidence``
    upper: float  # one-sided bootstrap upper bound at ``confidence``
    normal_lower: float  # the same bound from the normal approximation (cross-check)
    normal_upper: float
    mcnemar_p: float  # exact two-sided McNemar p-value: is there any difference at all?
    confidence: float
    margin: float
    resamples: int

    @property
    def passed(self) -> bool:
        """Non-inferior: even the pessimistic bound is within the margin."""
        return self.lower > -self.margin


def paired_counts(candidate_correct: np.ndarray, champion_correct: np.ndarray) -> tuple[int, int, int]:
    """(losses, ties, wins): how often d = -1, 0, +1."""
    c = np.asarray(candidate_correct, dtype=bool)
    h = np.asarray(champion_correct, dtype=bool)
    if c.shape != h.shape:
        raise ValueError(f"both models must be scored on the same rows, got {c.shape} and {h.shape}")
    wins = int(np.count_nonzero(c & ~h))
    losses = int(np.count_nonzero(~c & h))
    return losses, len(c) - wins - losses, wins


def bootstrap_differences(
    losses: int, ties: int, wins: int, *, resamples: int, seed: int = SEED
) -> np.ndarray:
    """Bootstrap distribution of the mean paired difference, by multinomial draws on the counts."""
    n = losses + ties + wins
    if n == 0:
        raise ValueError("no rows to compare")
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n, [losses / n, ties / n, wins / n], size=resamples)
    return (draws[:, 2] - draws[:, 0]) / n


def non_inferiority(
    candidate_correct: np.ndarray,
    champion_correct: np.ndarray,
    *,
    margin: float,
    confidence: float = 0.95,
    resamples: int = 10_000,
    seed: int = SEED,
) -> PairedComparison:
    """Is the candidate's accuracy at most ``margin`` below the champion's, with ``confidence``?

    The bound is one-sided (the question is only "not worse by more than the margin"),
    i.e. the (1 - confidence) quantile of the bootstrap distribution.
    """
    losses, ties, wins = paired_counts(candidate_correct, champion_correct)
    n = losses + ties + wins
    diffs = bootstrap_differences(losses, ties, wins, resamples=resamples, seed=seed)
    lower, upper = np.quantile(diffs, [1.0 - confidence, confidence])
    difference = (wins - losses) / n
    # Normal approximation of the paired difference: Var(d) = (wins + losses)/n - mean².
    se = math.sqrt(max((wins + losses) / n - difference**2, 0.0) / n)
    z = NormalDist().inv_cdf(confidence)
    return PairedComparison(
        n=n, wins=wins, losses=losses, difference=difference,
        lower=float(lower), upper=float(upper),
        normal_lower=difference - z * se, normal_upper=difference + z * se,
        mcnemar_p=mcnemar_exact_p(wins, losses),
        confidence=confidence, margin=margin, resamples=resamples,
    )


def mcnemar_exact_p(wins: int, losses: int) -> float:
    """Two-sided exact McNemar test: the discordant rows split like a fair coin?

    P = min(1, 2·P(X ≤ min(wins, losses))) with X ~ Binomial(wins + losses, ½), summed in
    log space (log C(N, k) as a cumulative sum) so large N neither overflows nor needs scipy.
    """
    n = wins + losses
    if n == 0:
        return 1.0
    m = min(wins, losses)
    j = np.arange(1, m + 1, dtype=float)
    log_comb = np.concatenate([[0.0], np.cumsum(np.log((n - j + 1) / j))])
    log_pmf = log_comb - n * math.log(2.0)
    peak = float(log_pmf.max())
    tail = math.exp(peak) * float(np.exp(log_pmf - peak).sum())
    return min(1.0, 2.0 * tail)


@dataclass(frozen=True)
class LossComparison:
    """A regression model's loss against the champion's on the same rows, with a paired bootstrap bound.

    ``difference`` is the champion's metric minus the candidate's (positive: the candidate
    is better), so non-inferiority reads as for accuracy: the lower bound above -margin.
    """

    metric: str  # rmse or mae
    n: int
    candidate: float
    champion: float
    difference: float
    lower: float
    upper: float
    confidence: float
    margin: float
    resamples: int

    @property
    def passed(self) -> bool:
        return self.lower > -self.margin


def _loss_metric(metric: str, mean_loss: np.ndarray) -> np.ndarray:
    return np.sqrt(mean_loss) if metric == "rmse" else mean_loss


def loss_non_inferiority(
    metric: str,
    candidate_loss: np.ndarray,
    champion_loss: np.ndarray,
    *,
    margin: float,
    confidence: float = 0.95,
    resamples: int = 10_000,
    seed: int = SEED,
) -> LossComparison:
    """Is the candidate's rmse (squared losses) or mae (absolute losses) at most ``margin`` worse?

    Each resample draws the same rows for both models, so the bootstrap keeps the pairing;
    the one-sided bound is the (1 - confidence) quantile of the differences.
    """
    from mlcicd.evaluation.resample import group_sums

    c = np.asarray(candidate_loss, dtype=np.float64)
    h = np.asarray(champion_loss, dtype=np.float64)
    if c.shape != h.shape or c.ndim != 1 or len(c) == 0:
        raise ValueError(f"both models must be scored on the same rows, got {c.shape} and {h.shape}")
    n = len(c)
    _, sums = group_sums(np.column_stack([c, h]), np.zeros(n, dtype=np.int64), 1, resamples,
                         np.random.default_rng(seed))
    means = np.maximum(sums[:, 0, :] / n, 0.0)
    diffs = _loss_metric(metric, means[:, 1]) - _loss_metric(metric, means[:, 0])
    lower, upper = np.quantile(diffs, [1.0 - confidence, confidence])
    mine, theirs = float(_loss_metric(metric, np.array(c.mean()))), float(_loss_metric(metric, np.array(h.mean())))
    return LossComparison(metric, n, mine, theirs, theirs - mine, float(lower), float(upper), confidence, margin,
                          resamples)
