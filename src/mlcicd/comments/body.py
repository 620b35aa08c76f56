"""The pipeline comment as data: built from report dirs, rendered to Markdown, parsed back, merged.

Stages of one pipeline run in different jobs, often on different machines, so no job sees
every report. Each job therefore merges what it has into what the comment already holds:
the comment carries its own state in hidden markers, one block per stage::

    <!-- mlci-pipeline:<key> -->                      first line: finds the comment
    <!-- mlci-run:{"run": "...", "run_url": "..."} -->
    ...table of every stage's verdict...
    <!-- mlci-stage:gate {"verdict": "pass", ...} -->
    <details>...the stage's own Markdown report...</details>
    <!-- /mlci-stage:gate -->

``key`` names the pipeline (the workflow on GitHub), so every run of it on a pull request
updates the same comment; a newer run replaces an older run's stages, an older run's late
job changes nothing.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlcicd.catalog import STAGES

PIPELINE_MARKER = "<!-- mlci-pipeline:{key} -->"
_RUN = re.compile(r"^<!-- mlci-run:(?P<meta>\{[^\n]*?\}) -->$", re.M)
_STAGE = re.compile(r"<!-- mlci-stage:(?P<stage>[a-z0-9-]+) (?P<meta>\{[^\n]*?\}) -->\n(?P<body>.*?)\n"
                    r"<!-- /mlci-stage:(?P=stage) -->", re.S)
_DETAILS = re.compile(r"\A<details><summary>[^\n]*</summary>\n\n(?P<inner>.*)\n\n</details>\Z", re.S)
# GitHub rejects comments over 65,536 characters: the eight stages' details share what is left.
DETAILS_LIMIT = 6000
_ORDER = {s.id: i for i, s in enumerate(STAGES)}
_ICON = {"pass": "✅", "fail": "❌", "inconclusive": "❔"}


def clean_key(key: str) -> str:
    """A key safe inside an HTML comment: a workflow named "ML pipeline" becomes ``ML-pipeline``."""
    return re.sub(r"[^A-Za-z0-9._/-]+", "-", key).strip("-") or "default"


def marker(key: str) -> str:
    return PIPELINE_MARKER.format(key=clean_key(key))


def is_ours(body: str, key: str) -> bool:
    # The marker must open the body: a comment quoting ours elsewhere is not ours.
    return body.lstrip().startswith(marker(key))


def _meta(data: dict[str, Any]) -> str:
    # No ">" may appear inside an HTML comment's JSON ("-->" would end it); \u003e reads back the same.
    return json.dumps(data, ensure_ascii=True, sort_keys=True).replace("<", "\\u003c").replace(">", "\\u003e")


@dataclass
class StageEntry:
    stage: str
    verdict: str
    summary: str
    run: str
    run_url: str | None = None
    report_url: str | None = None
    details: str = ""

    def meta(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "summary": self.summary, "run": self.run, "run_url": self.run_url,
                "report_url": self.report_url}


@dataclass
class PipelineComment:
    key: str
    run: str
    run_url: str | None = None
    stages: dict[str, StageEntry] = field(default_factory=dict)

    def covers(self, other: PipelineComment) -> bool:
        """Whether this comment already says everything ``other`` says (or a newer run replaced it)."""
        if newer(self.run, other.run):
            return True
        return self.run == other.run and all(
            self.stages.get(s) is not None and self.stages[s].meta() == e.meta() for s, e in other.stages.items())


def newer(a: str, b: str) -> bool:
    """Run ``a`` started after run ``b``: run ids count up on GitHub and GitLab."""
    return a.isdigit() and b.isdigit() and int(a) > int(b)


def merge(existing: PipelineComment | None, ours: PipelineComment) -> PipelineComment:
    """What the comment says once ``ours`` is added: same run, stages combine (ours win); a newer
    run starts afresh; an older run (a late job) leaves it as it is."""
    if existing is None:
        return ours
    if existing.run == ours.run:
        return PipelineComment(ours.key, ours.run, ours.run_url or existing.run_url, {**existing.stages,
                                                                                     **ours.stages})
    if newer(existing.run, ours.run):
        return existing
    return ours


def from_reports(dirs: list[Path], key: str, run: str, run_url: str | None,
                 report_url: str | None) -> PipelineComment:
    """The stage reports (``<stage>.json`` and ``.md``) found in ``dirs``; a later dir wins."""
    stages: dict[str, StageEntry] = {}
    for directory in dirs:
        for path in sorted(directory.glob("*.json")):
            stage = path.stem
            if stage not in _ORDER:
                continue
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if not isinstance(data, dict) or "verdict" not in data:
                continue
            md = path.with_suffix(".md")
            details = md.read_text() if md.is_file() else ""
            stages[stage] = StageEntry(stage, str(data["verdict"]), str(data.get("summary", "")), run, run_url,
                                       report_url, details)
    return PipelineComment(clean_key(key), run, run_url, stages)


def parse(body: str, key: str) -> PipelineComment | None:
    if not is_ours(body, key):
        return None
    found = _RUN.search(body)
    head = _load(found["meta"]) if found else {}
    stages = {}
    for m in _STAGE.finditer(body):
        meta = _load(m["meta"])
        if not meta:
            continue  # a block somebody edited by hand: the next report of that stage rewrites it
        inner = _DETAILS.match(m["body"])
        stages[m["stage"]] = StageEntry(m["stage"], str(meta.get("verdict", "")), str(meta.get("summary", "")),
                                        str(meta.get("run", "")), meta.get("run_url"), meta.get("report_url"),
                                        inner["inner"] if inner else m["body"])
    return PipelineComment(clean_key(key), str(head.get("run", "")), head.get("run_url"), stages)


def _load(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _cell(text: str, limit: int = 160) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    if len(line) > limit:
        line = line[: limit - 1] + "…"
    return line.replace("|", "\\|")


def _details(text: str) -> str:
    text = text.replace("<!-- /mlci-stage", "&lt;!-- /mlci-stage").strip()
    if len(text) > DETAILS_LIMIT:
        text = text[:DETAILS_LIMIT] + "\n\n… (truncated: the full report is in the run's artifacts)"
    return text


def render(comment: PipelineComment) -> str:
    entries = sorted(comment.stages.values(), key=lambda e: _ORDER.get(e.stage, 99))
    verdicts = {e.verdict for e in entries}
    overall = next((v for v in ("fail", "inconclusive", "pass") if v in verdicts), "pass")
    run = f"[run {comment.run}]({comment.run_url})" if comment.run_url else f"run {comment.run}"
    lines = [
        marker(comment.key),
        f"<!-- mlci-run:{_meta({'run': comment.run, 'run_url': comment.run_url})} -->",
        f"### {_ICON.get(overall, '')} ml-cicd `{clean_key(comment.key)}` · {run}",
        "",
        "| | stage | verdict | summary | report |",
        "|---|---|---|---|---|",
    ]
    for e in entries:
        link = f"[report]({e.report_url})" if e.report_url else ""
        lines.append(f"| {_ICON.get(e.verdict, '')} | `{e.stage}` | {e.verdict} | {_cell(e.summary)} | {link} |")
    lines += ["", "_Updated in place by `mlci comment` as stages finish._", ""]
    for e in entries:
        lines += [
            f"<!-- mlci-stage:{e.stage} {_meta(e.meta())} -->",
            f"<details><summary>{_ICON.get(e.verdict, '')} {e.stage}: {e.verdict}</summary>",
            "",
            _details(e.details),
            "",
            "</details>",
            f"<!-- /mlci-stage:{e.stage} -->",
        ]
    return "\n".join(lines) + "\n"
