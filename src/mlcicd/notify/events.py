"""Which event a stage result is, and the message every target renders from it.

A pure function of the result: the runner calls it once per stage run, so each event
leads to exactly one message per target. A re-run that changed nothing (rollback or
promote that found the work already done) is no event: nobody needs to hear it twice.
monitor-canary's own rollback decision is not an event either: the rollback stage that
acts on it is, so a rolled-back canary is announced once, when traffic has moved.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

from mlcicd.report import StageResult, Verdict


def event_of(result: StageResult) -> str | None:
    """The notify event this result is (see :data:`mlcicd.config_notify.EVENTS`), or None."""
    converged = any(c.name == "converged" for c in result.checks)  # a re-run with nothing to do
    if result.stage == "rollback" and result.verdict is Verdict.PASS and not converged \
            and result.outputs.get("rolled-back-version"):
        return "rollback"
    if result.stage == "promote" and result.verdict is Verdict.PASS and not converged:
        return "promote"
    if result.stage == "monitor-canary" and result.verdict is Verdict.INCONCLUSIVE \
            and not result.figures.get("cancelled"):
        # Cancelled by CI: whoever cancelled knows, and the runner's grace period is too short to send.
        return "inconclusive"
    if result.stage == "gate" and result.verdict is Verdict.FAIL:
        return "gate-failed"
    if result.stage == "validate-data" and result.outputs.get("drifted-features"):
        return "drift"
    return None


def _title(event: str, result: StageResult, model: str) -> str:
    out = result.outputs
    if event == "rollback":
        return f"{model}: v{out.get('rolled-back-version')} rolled back, v{out.get('champion-version') or '?'} serves"
    if event == "promote":
        previous = out.get("previous-champion-version")
        return f"{model}: v{out.get('champion-version')} promoted to champion" + (
            f", replacing v{previous}" if previous else "")
    if event == "inconclusive":
        return f"{model}: canary analysis inconclusive (decision: {out.get('decision') or 'hold'})"
    if event == "gate-failed":
        return f"{model}: the gate rejected the candidate"
    return f"{model}: data drift in {out.get('drifted-features')}"


@dataclass
class Message:
    """One event, as every target sends it (Slack text, signed JSON, SNS)."""

    event: str
    stage: str
    verdict: str
    title: str
    summary: str
    model: str
    project: str | None = None
    run_url: str | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    at: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    # The same across retries, so a receiver can drop a repeat it already handled.
    delivery: str = field(default_factory=lambda: uuid.uuid4().hex)

    @classmethod
    def build(cls, event: str, result: StageResult, *, model: str, project: str | None,
              run_url: str | None) -> Message:
        return cls(event, result.stage, result.verdict.value, _title(event, result, model), result.summary, model,
                   project, run_url, dict(result.outputs))

    def payload(self) -> dict[str, Any]:
        return {"event": self.event, "stage": self.stage, "verdict": self.verdict, "title": self.title,
                "summary": self.summary, "model": self.model, "project": self.project, "run_url": self.run_url,
                "outputs": self.outputs, "at": self.at, "delivery": self.delivery}

    def text(self, limit: int = 3000) -> str:
        """Plain text for people (Slack, e-mail subscribers of a topic)."""
        summary = self.summary if len(self.summary) <= limit else self.summary[: limit - 1] + "…"
        lines = [self.title, "", summary]
        if self.run_url:
            lines += ["", f"Run: {self.run_url}"]
        return "\n".join(lines)
