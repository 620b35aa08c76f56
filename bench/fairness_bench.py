"""Fairness benchmark: every fairness figure of the gate on 1,000,000 predictions, against fairlearn.

For a binary, a multiclass (4 classes) and a regression model, with two sensitive columns
(3 and 5 groups, some values missing): per-group values of every gate metric, demographic
parity difference and ratio, equalized odds difference, per-group metric gaps, and the
bootstrap bounds of each (1,000 resamples), once with the fast engine (the gate's default)
and once with ``gate.fairness.engine: fairlearn`` (MetricFrame and fairlearn's disparity
functions; the bounds are the same bootstrap). Printed: both times, their ratio, and the
largest difference between the two engines' figures. Targets: the fast engine under 2 s
per model on 1M predictions, equal to fairlearn to 1e-9. Imports are not timed (the gate
has pandas and scikit-learn loaded by then; fairlearn's import is timed in its column).

Usage: .venv/bin/python bench/fairness_bench.py [--rows N] [--skip-fairlearn]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from mlcicd.evaluation import fairness


def data(task: str, n: int) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], np.ndarray | None]:
    rng = np.random.default_rng(1)
    gender = rng.choice(np.array(["f", "m", "x"], dtype=object), n, p=[0.5, 0.47, 0.03])
    gender[rng.random(n) < 0.01] = None
    region = rng.choice(np.array(["north", "south", "east", "west", "centre"], dtype=object), n)
    sensitive = {"gender": gender, "region": region}
    if task == "regression":
        y = rng.normal(150, 60, n)
        return y, y + rng.normal(0, 25, n) * np.where(gender == "m", 1.2, 1.0), sensitive, None
    k = 2 if task == "binary" else 4
    y = rng.integers(0, k, n)
    pred = np.where(rng.random(n) < np.where(gender == "f", 0.8, 0.7), y, rng.integers(0, k, n))
    score = np.clip(0.5 * (pred == 1) + 0.5 * rng.random(n), 0, 1) if task == "binary" else None
    return y, pred, sensitive, score


def largest_difference(a: fairness.FairnessResult, b: fairness.FairnessResult) -> float:
    worst = 0.0
    for x, y in zip(a.columns, b.columns, strict=True):
        pairs = [(x.by_group[m][g], y.by_group[m][g]) for m in x.by_group for g in x.by_group[m]]
        pairs += [(d.value, y.disparities[k].value) for k, d in x.disparities.items()]
        for u, v in pairs:
            if (u is None) != (v is None):
                return math.inf
            if u is not None and v is not None:
                worst = max(worst, abs(u - v))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--skip-fairlearn", action="store_true", help="time the fast engine only")
    args = parser.parse_args()
    print(f"{args.rows:,} predictions, 2 sensitive columns (3 and 5 groups), {args.resamples:,} bootstrap resamples\n")
    print(f"{'model':<11} {'fast s':>7} {'fairlearn s':>12} {'ratio':>7} {'max |diff|':>11}  figures")
    verdicts = []
    # The gate has pandas and scikit-learn loaded by the time it judges fairness: time the work, not the imports.
    fairness.assess("binary", np.array([0, 1]), np.array([1, 1]), {"g": ["a", "b"]}, score=np.array([0.2, 0.8]))
    for task in ("binary", "multiclass", "regression"):
        y, pred, sensitive, score = data(task, args.rows)
        started = time.perf_counter()
        fast = fairness.assess(task, y, pred, sensitive, positive=1, score=score, resamples=args.resamples)
        fast_s = time.perf_counter() - started
        figures = sum(len(c.by_group[m]) for c in fast.columns for m in c.by_group) + sum(
            len(c.disparities) for c in fast.columns)
        if args.skip_fairlearn:
            print(f"{task:<11} {fast_s:7.2f} {'-':>12} {'-':>7} {'-':>11}  {figures} (+ bounds; "
                  f"{fast.resamples} resamples)")
            verdicts.append((task, fast_s, None))
            continue
        from mlcicd.evaluation import fairness_fairlearn

        started = time.perf_counter()
        slow = fairness_fairlearn.assess(task, y, pred, sensitive, positive=1, score=score, resamples=args.resamples)
        slow_s = time.perf_counter() - started  # fairlearn's figures plus the same bootstrap bounds
        diff = largest_difference(fast, slow)
        print(f"{task:<11} {fast_s:7.2f} {slow_s:12.2f} {slow_s / fast_s:6.1f}x {diff:11.1e}  {figures} (+ bounds; "
              f"{fast.resamples} resamples)")
        verdicts.append((task, fast_s, diff))
    print()
    for task, seconds, diff in verdicts:
        same = "" if diff is None else f", {'equal to' if diff <= 1e-9 else 'DIFFERENT from'} fairlearn ({diff:.1e})"
        target = seconds < 2.0
        status = "PASS" if target and (diff is None or diff <= 1e-9) else "FAIL"
        print(f"{status} {task}: all fairness figures in {seconds:.2f} s (target < 2 s){same}")


if __name__ == "__main__":
    main()
