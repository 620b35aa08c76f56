"""Custom checks, Flagger style: a query's value must stay within [min, max] on every look."""

from __future__ import annotations

from collections.abc import Sequence

from mlcicd.config import CanaryPolicy, CustomCheck
from mlcicd.delivery.checks.base import MetricResult, Outcome
from mlcicd.delivery.looks import Look


def streak(items: Sequence[object | None]) -> int:
    """How many of the latest items are None (consecutive failed reads)."""
    for i in range(len(items)):  # from the end: a streak is short, the history long
        if items[len(items) - 1 - i] is not None:
            return i
    return len(items)


def check(chk: CustomCheck, looks: Sequence[Look], policy: CanaryPolicy, final: bool) -> MetricResult:
    values = [lk.custom.get(chk.name) for lk in looks]
    read = [v for v in values if v is not None]
    missing = streak(values)
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
