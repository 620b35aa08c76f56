"""Run a whole suite on one dataset and turn the outcomes into report checks.

The fast evaluator answers what it can; the rest goes to Great Expectations in one
validation of the same data, so the suite always runs whole and in its own order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlcicd.data.expectations import fast, gx
from mlcicd.data.expectations.outcome import Outcome, plain
from mlcicd.data.text import count, examples, names
from mlcicd.report import Check, Status

if TYPE_CHECKING:
    import pyarrow as pa

    from mlcicd.data.expectations.suite import Suite


def validate(table: pa.Table, suite: Suite, *, where: str) -> list[Outcome]:
    """Outcomes in suite order; ``where`` (the suite file) names the place GE errors point at."""
    expectations = list(suite.expectations)
    answered = fast.evaluate(table, expectations)
    rest = [e for e, o in zip(expectations, answered, strict=True) if o is None]
    if not rest:
        return [o for o in answered if o is not None]
    from mlcicd.data.load import to_frame

    by_ge = iter(gx.evaluate(to_frame(table), rest, where=where))
    return [o if o is not None else next(by_ge) for o in answered]


def to_checks(outcomes: list[Outcome], shown: str) -> list[Check]:
    """One check per unmet expectation (WARN for severity warning/info); the met ones folded into one."""
    checks = []
    met = [o for o in outcomes if o.success]
    if met:
        checks.append(Check(
            "expectations", Status.PASS,
            f"{len(met)} of {len(outcomes)} expectations of {shown} met "
            f"({sum(o.engine == 'mlci' for o in met)} by the fast evaluator, "
            f"{sum(o.engine == 'great_expectations' for o in met)} by Great Expectations)",
            observed=len(met), expected=len(outcomes),
            details={o.expectation.label: plain(o.observed) for o in met},
        ))
    for outcome in outcomes:
        if outcome.success:
            continue
        e = outcome.expectation
        checks.append(Check(
            f"expectations[{e.index}]:{e.label}",
            Status.FAIL if e.severity == "critical" else Status.WARN,
            f"{e.type} {_subject(e.columns)}: {describe(outcome)}. Fix: correct the data upstream, or edit "
            f"expectations[{e.index}] in {shown} if the expectation is out of date.",
            observed=plain(outcome.observed), expected=_expected(e.kwargs),
            details={"type": e.type, "kwargs": plain(e.kwargs), "result": plain(outcome.result),
                     "engine": outcome.engine, **({"error": outcome.error} if outcome.error else {})},
        ))
    return checks


def _subject(columns: list[str]) -> str:
    if not columns:
        return "on the table"
    return f"on {'column' if len(columns) == 1 else 'columns'} {names([repr(c) for c in columns])}"


def describe(outcome: Outcome) -> str:
    """What was seen, in one clause."""
    if outcome.error:
        return f"could not be evaluated: {outcome.error}"
    result = outcome.result
    if "unexpected_count" in result:
        unexpected, total = int(result.get("unexpected_count") or 0), int(result.get("element_count") or 0)
        percent = result.get("unexpected_percent")
        share = f" ({percent:.3g}% of non-missing)" if isinstance(percent, int | float) else ""
        values = [v for v in result.get("partial_unexpected_list") or [] if v is not None]
        sample = f", e.g. {examples(values)}" if values else ""
        return f"{count(unexpected)} of {count(total)} rows unexpected{share}{sample}"
    if "observed_value" in result:
        return f"observed {_short(plain(result['observed_value']))}"
    return "not met"


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 160 else text[:157] + "..."


def _expected(kwargs: dict[str, Any]) -> str:
    shown = {k: v for k, v in kwargs.items() if k not in ("column", "column_list", "result_format", "meta")}
    return _short(plain(shown)) if shown else ""


def figures(outcomes: list[Outcome]) -> list[dict[str, Any]]:
    """Every expectation with GE's name, its kwargs, the observed value and who evaluated it."""
    return [o.to_dict() for o in outcomes]
