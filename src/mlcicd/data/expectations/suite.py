"""Great Expectations 1.x Expectation Suites as files: read, check and write them.

The file format is GE's own (``ExpectationSuite.to_json_dict()``)::

    {"name": "credit-risk", "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "age"}, "meta": {}}],
     "meta": {"great_expectations_version": "1.24.1"}}

so a suite written by ``mlci run validate-data --write-suite`` opens in GE, and a suite a
team already keeps runs here unchanged. Reading it needs only the standard library.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlcicd.errors import ConfigError

_TYPE = re.compile(r"^expect_[a-z0-9_]+$")
# Keys of an expectation that are about the suite, not the data.
_ENTRY_KEYS = {"type", "kwargs", "meta", "id", "notes", "description", "severity", "rendered_content"}


@dataclass(frozen=True)
class Expectation:
    """One expectation: GE's snake_case type name and its kwargs, as the file holds them."""

    type: str
    kwargs: dict[str, Any]
    index: int  # position in the suite, for messages ("expectations[3]")
    meta: dict[str, Any] = field(default_factory=dict)
    # GE 1.x: critical fails the stage; warning and info only warn.
    severity: str = "critical"

    @property
    def columns(self) -> list[str]:
        if isinstance(self.kwargs.get("column"), str):
            return [self.kwargs["column"]]
        listed = self.kwargs.get("column_list")
        return [c for c in listed if isinstance(c, str)] if isinstance(listed, list) else []

    @property
    def label(self) -> str:
        """``expect_column_values_to_not_be_null(age)``: the type and what it looks at."""
        return f"{self.type}({', '.join(self.columns)})"

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "kwargs": self.kwargs, "meta": self.meta, "severity": self.severity}


@dataclass(frozen=True)
class Suite:
    name: str
    expectations: tuple[Expectation, ...]
    meta: dict[str, Any] = field(default_factory=dict)

    def columns(self) -> list[str]:
        """Every column the suite looks at, in first-use order (the only ones worth reading)."""
        return list(dict.fromkeys(c for e in self.expectations for c in e.columns))

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "id": None, "expectations": [e.to_json() for e in self.expectations],
                "meta": self.meta, "notes": None}


def load_suite(path: Path, shown: str) -> Suite:
    """Parse and check a suite file; every problem is a ConfigError naming the file and the entry."""
    where = f"{shown} (data.expectations)"
    if not path.is_file():
        raise ConfigError("Expectation Suite file not found", where=where,
                          fix="point data.expectations at a GE suite JSON file, or write one from the reference "
                          "data with `mlci run validate-data --write-suite expectations.json`")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"is not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}", where=where,
                          fix="fix the JSON near that line (GE writes suites with ExpectationSuite.to_json_dict())"
                          ) from None
    except UnicodeDecodeError:
        raise ConfigError("is not a UTF-8 text file", where=where, fix="save the suite as UTF-8 JSON") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("expectations"), list):
        raise ConfigError("is not an Expectation Suite: expected an object with an `expectations` list",
                          where=where, fix='write {"name": "...", "expectations": [{"type": ..., "kwargs": {...}}]}')
    if "expectation_suite_name" in raw:
        raise ConfigError("is a Great Expectations 0.x suite (it has `expectation_suite_name`)", where=where,
                          fix="GE 1.x names the keys `name` and, per expectation, `type`: rename "
                          "expectation_suite_name -> name and expectation_type -> type")
    expectations = tuple(_entry(item, i, where) for i, item in enumerate(raw["expectations"]))
    meta = raw["meta"] if isinstance(raw.get("meta"), dict) else {}
    return Suite(str(raw.get("name") or path.stem), expectations, meta)


def _entry(item: Any, index: int, where: str) -> Expectation:
    key = f"{where}: expectations[{index}]"
    if not isinstance(item, dict):
        raise ConfigError(f"expected an object, got {json.dumps(item)[:80]}", where=key,
                          fix='write {"type": "expect_...", "kwargs": {...}}')
    if "expectation_type" in item and "type" not in item:
        raise ConfigError("uses the GE 0.x key `expectation_type`", where=key,
                          fix="GE 1.x calls it `type`: rename the key")
    kind = item.get("type")
    if not isinstance(kind, str) or not _TYPE.match(kind):
        raise ConfigError(f"`type` must be a GE expectation name such as expect_column_values_to_not_be_null, "
                          f"got {kind!r}", where=key, fix="use the snake_case name of a GE expectation class")
    kwargs = item.get("kwargs", {})
    if not isinstance(kwargs, dict):
        raise ConfigError(f"`kwargs` must be an object, got {json.dumps(kwargs)[:80]}", where=key,
                          fix='e.g. "kwargs": {"column": "age"}')
    unknown = [k for k in item if k not in _ENTRY_KEYS]
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r}", where=key,
                          fix=f"an expectation has {', '.join(sorted(_ENTRY_KEYS))}; arguments go under `kwargs`")
    severity = item.get("severity") or "critical"
    if severity not in ("critical", "warning", "info"):
        raise ConfigError(f"`severity` must be critical, warning or info, got {severity!r}", where=key,
                          fix='e.g. "severity": "warning" to only warn when the expectation is not met')
    meta = item["meta"] if isinstance(item.get("meta"), dict) else {}
    return Expectation(kind, dict(kwargs), index, meta, severity)


def write_suite(suite: Suite, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(suite.to_json(), indent=2, default=_plain) + "\n", encoding="utf-8")


def _plain(value: Any) -> Any:
    """numpy scalars in kwargs -> JSON numbers."""
    item = getattr(value, "item", None)
    if callable(item):
        return item()
    raise TypeError(f"cannot write {type(value).__name__} to a suite")
