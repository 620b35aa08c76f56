"""The result of one expectation, in GE's own shape, whichever engine produced it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from mlcicd.data.expectations.suite import Expectation

Engine = Literal["mlci", "great_expectations"]
# GE's SUMMARY result format lists at most this many unexpected values.
PARTIAL_UNEXPECTED = 20


@dataclass
class Outcome:
    expectation: Expectation
    success: bool
    # GE's ``ExpectationValidationResult.result``: ``observed_value`` for aggregates;
    # element_count, unexpected_count, unexpected_percent, partial_unexpected_list... for row checks.
    result: dict[str, Any]
    engine: Engine
    error: str = ""  # the exception GE (or the check) raised, when it could not be evaluated

    @property
    def observed(self) -> Any:
        """What the report shows as "observed": the aggregate value, or the share of unexpected rows."""
        if "observed_value" in self.result:
            return self.result["observed_value"]
        if "unexpected_count" in self.result:
            return {k: self.result.get(k) for k in ("unexpected_count", "element_count", "unexpected_percent")}
        return None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": self.expectation.type, "kwargs": plain(self.expectation.kwargs),
                                "success": self.success, "observed": plain(self.observed), "engine": self.engine}
        if self.error:
            data["error"] = self.error
        return data


def plain(value: Any) -> Any:
    """JSON-ready: numpy scalars to Python, NaN to None, containers recursively."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    item = getattr(value, "item", None)
    if callable(item) and not isinstance(value, str | bytes):
        try:
            value = item()
        except (TypeError, ValueError):
            return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else str(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
