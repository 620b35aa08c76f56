"""The one verdict schema every stage writes, and its renderings.

Each stage returns a :class:`StageResult`; the CLI writes it as
``<report-dir>/<stage>.json``, as Markdown (step summary / job log / PR comment)
and as JUnit XML, so the same facts appear everywhere.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import Enum, StrEnum
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from mlcicd.errors import EXIT_FAIL, EXIT_INCONCLUSIVE, EXIT_PASS
from mlcicd.version import build_info

SCHEMA_VERSION = 1
MARKER = "<!-- mlci-report:{stage} -->"


class Verdict(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"

    @property
    def exit_code(self) -> int:
        return {Verdict.PASS: EXIT_PASS, Verdict.FAIL: EXIT_FAIL, Verdict.INCONCLUSIVE: EXIT_INCONCLUSIVE}[self]


class Status(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    WARN = "warn"
    SKIP = "skip"


@dataclass
class Check:
    """One named check with the figures that decided it."""

    name: str
    status: Status
    message: str
    observed: Any = None
    expected: Any = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.status is Status.FAIL


@dataclass
class StageResult:
    stage: str
    verdict: Verdict
    summary: str
    checks: list[Check] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    evidence: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_checks(
        cls, stage: str, checks: list[Check], *, passed: str, failed: str, **kw: Any
    ) -> StageResult:
        """Verdict FAIL if any check failed, else PASS; the summary names the failures."""
        failures = [c for c in checks if c.failed]
        if failures:
            names = ", ".join(c.name for c in failures)
            return cls(stage, Verdict.FAIL, f"{failed}: {names}", checks=checks, **kw)
        return cls(stage, Verdict.PASS, passed, checks=checks, **kw)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["schema"] = SCHEMA_VERSION
        # Which ml-cicd judged: a verdict is evidence, and the rules that made it change between releases.
        info = build_info()
        data["mlcicd"] = {"version": info.version, "commit": info.commit}
        data["verdict"] = self.verdict.value
        for check in data["checks"]:
            check["status"] = check["status"].value
        return _json_safe(data)


def _json_safe(value: Any) -> Any:
    """NaN/inf are not JSON; numpy scalars are not serialisable."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


_ICON = {Status.PASS: "✅", Status.FAIL: "❌", Status.WARN: "⚠️", Status.SKIP: "⏭️"}
_VERDICT_ICON = {Verdict.PASS: "✅", Verdict.FAIL: "❌", Verdict.INCONCLUSIVE: "❔"}


def to_markdown(result: StageResult) -> str:
    lines = [
        MARKER.format(stage=result.stage),
        f"### {_VERDICT_ICON[result.verdict]} `{result.stage}`: {result.verdict.value}",
        "",
        result.summary,
        "",
    ]
    if result.checks:
        lines += ["| check | status | observed | expected | message |", "|---|---|---|---|---|"]
        for c in result.checks:
            msg = c.message.replace("|", "\\|").replace("\n", " ")
            lines.append(
                f"| {c.name} | {_ICON[c.status]} {c.status.value} | {_fmt(c.observed)} | "
                f"{_fmt(c.expected)} | {msg} |"
            )
        lines.append("")
    if result.outputs:
        lines += ["| output | value |", "|---|---|"]
        lines += [f"| `{k}` | `{v}` |" for k, v in result.outputs.items()]
        lines.append("")
    return "\n".join(lines)


def to_junit(result: StageResult) -> str:
    checks = result.checks or [Check(result.stage, Status.PASS, result.summary)]
    failures = sum(c.status is Status.FAIL for c in checks)
    skipped = sum(c.status is Status.SKIP for c in checks)
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<testsuite name="mlci.{escape(result.stage)}" tests="{len(checks)}" '
        f'failures="{failures}" skipped="{skipped}" errors="0">',
    ]
    for c in checks:
        out.append(f'  <testcase classname="mlci.{escape(result.stage)}" name="{escape(c.name)}">')
        if c.status is Status.FAIL:
            out.append(f'    <failure message="{escape(c.message, {chr(34): "&quot;"})}"/>')
        elif c.status is Status.SKIP:
            out.append(f'    <skipped message="{escape(c.message, {chr(34): "&quot;"})}"/>')
        out.append("  </testcase>")
    out.append("</testsuite>")
    return "\n".join(out) + "\n"


def write_report(result: StageResult, report_dir: Path) -> dict[str, Path]:
    """Write JSON, Markdown and JUnit renderings; return their paths."""
    report_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": report_dir / f"{result.stage}.json",
        "markdown": report_dir / f"{result.stage}.md",
        "junit": report_dir / f"{result.stage}.junit.xml",
    }
    # When it was written: `mlci report` keeps the newest verdict of a stage found in several artifact
    # directories, and a downloaded artifact's file times are those of the download.
    data = {**result.to_dict(), "written_at": datetime.now(UTC).isoformat(timespec="milliseconds")}
    paths["json"].write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    paths["markdown"].write_text(to_markdown(result))
    paths["junit"].write_text(to_junit(result))
    return paths


def read_report(report_dir: Path, stage: str) -> dict[str, Any] | None:
    path = report_dir / f"{stage}.json"
    if not path.is_file():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data
