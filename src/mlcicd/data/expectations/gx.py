"""Run expectations through Great Expectations itself (the types the fast evaluator leaves).

Imported only when a suite holds such an expectation: ``import great_expectations`` costs
about 6 s. GE validates the pandas view of the same Arrow table the fast evaluator reads,
so both engines judge identical data. The context is ephemeral (nothing is written to
disk) and analytics and progress bars are off.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from mlcicd.data.expectations.outcome import Outcome
from mlcicd.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

    from mlcicd.data.expectations.suite import Expectation


def available() -> bool:
    import importlib.util

    return importlib.util.find_spec("great_expectations") is not None


def evaluate(frame: pd.DataFrame, expectations: list[Expectation], *, where: str) -> list[Outcome]:
    """One GE validation of ``expectations`` on ``frame``; outcomes in the same order."""
    if not expectations:
        return []
    if not available():
        raise ConfigError(
            f"{len(expectations)} expectation(s) need Great Expectations, which is not installed "
            f"(e.g. {expectations[0].type})",
            where=where,
            fix="install it with the data extra: pip install 'ml-cicd[data]' (or pip install great-expectations)",
        )
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.core.expectation_validation_result import ExpectationValidationResult
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = (context.data_sources.add_pandas("mlci").add_dataframe_asset(name="data")
             .add_batch_definition_whole_dataframe("all").get_batch(batch_parameters={"dataframe": frame}))
    # A suite is a set: identical expectations are sent once and share their result.
    unique = {_key(e): e for e in reversed(expectations)}
    suite = gx.ExpectationSuite(name="mlci")
    for expectation in unique.values():
        try:
            suite.add_expectation(_configuration(expectation).to_domain_obj())
        except Exception as exc:  # GE rejects unknown types and malformed kwargs with many exception types
            raise ConfigError(f"Great Expectations rejects this expectation: {_first_line(exc)}",
                              where=f"{where}: expectations[{expectation.index}] ({expectation.type})",
                              fix="check the type name and kwargs against the GE 1.x expectation gallery") from None
    results: list[ExpectationValidationResult] = batch.validate(suite, result_format="SUMMARY").results
    by_index = {(r.expectation_config.meta or {}).get("mlci_index") if r.expectation_config else None: r
                for r in results}
    return [_outcome(e, by_index[unique[_key(e)].index]) for e in expectations]


def _key(expectation: Expectation) -> str:
    return json.dumps([expectation.type, expectation.kwargs], sort_keys=True, default=str)


def _configuration(expectation: Expectation) -> Any:
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    # The suite index travels in meta so each result maps back to its expectation.
    return ExpectationConfiguration(type=expectation.type, kwargs=dict(expectation.kwargs),
                                    meta={**expectation.meta, "mlci_index": expectation.index})


def _outcome(expectation: Expectation, result: Any) -> Outcome:
    info = result.exception_info or {}
    # Either one record, or one per metric that failed to resolve (a missing column, a wrong type).
    records = [info] if "raised_exception" in info else [v for v in info.values() if isinstance(v, dict)]
    raised = [r for r in records if r.get("raised_exception")]
    error = _first_line(raised[0].get("exception_message") or "GE raised an exception") if raised else ""
    return Outcome(expectation, bool(result.success), dict(result.result or {}), "great_expectations", error)


def _first_line(exc: Any) -> str:
    """GE's message in one line (pydantic spreads one error over several)."""
    return " ".join(" ".join(str(exc).split()).split(" (type=")[:1])[:300]
