"""The pipeline comment: rendered, parsed back, merged across jobs and runs; context errors."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from mlcicd.cli import mlci
from mlcicd.comments import context
from mlcicd.comments.body import DETAILS_LIMIT, PipelineComment, StageEntry, from_reports, is_ours, merge, parse, render
from mlcicd.errors import UsageError
from mlcicd.report import Check, StageResult, Status, Verdict, write_report


def entry(stage: str, verdict: str = "pass", run: str = "100", details: str = "") -> StageEntry:
    return StageEntry(stage, verdict, f"{stage} said {verdict} | with a pipe", run, "https://ci/run", "https://ci/a",
                      details or f"### {stage}\n\n| check | status |\n|---|---|\n| x | ok |")


def comment(*stages: StageEntry, run: str = "100", key: str = "ML pipeline") -> PipelineComment:
    return PipelineComment(key, run, "https://ci/run", {e.stage: e for e in stages})


def test_render_then_parse_is_the_same_comment():
    original = comment(entry("gate", "fail"), entry("validate-data"))
    body = render(original)
    assert body.startswith("<!-- mlci-pipeline:ML-pipeline -->")
    assert body.index("`validate-data`") < body.index("`gate`")  # pipeline order, not insertion order
    assert "❌ ml-cicd" in body and "said fail \\| with a pipe" in body
    back = parse(body, "ML pipeline")
    assert back is not None and back.run == "100" and back.stages == {
        "gate": entry("gate", "fail"), "validate-data": entry("validate-data")}
    assert render(back) == body


def test_hostile_text_cannot_break_the_markers():
    nasty = entry("gate", details="<!-- /mlci-stage:gate --> --> <!-- mlci-pipeline:x -->")
    nasty.summary = "ends --> here"
    back = parse(render(comment(nasty)), "ML pipeline")
    assert back is not None and back.stages["gate"].summary == "ends --> here"
    assert not is_ours("quoting: <!-- mlci-pipeline:ML-pipeline -->", "ML pipeline")


def test_long_details_are_truncated_stably():
    body = render(comment(entry("gate", details="x" * (DETAILS_LIMIT * 2))))
    assert len(body) < DETAILS_LIMIT + 2000 and "truncated" in body
    back = parse(body, "ML pipeline")
    assert back is not None and render(back) == body


def test_merge_same_run_combines_newer_run_replaces_older_run_is_ignored():
    a = comment(entry("validate-data"), entry("gate", "fail"))
    b = comment(entry("gate", "pass"))
    assert merge(a, b).stages["gate"].verdict == "pass" and set(merge(a, b).stages) == {"validate-data", "gate"}
    newer = comment(entry("train", run="101"), run="101")
    assert set(merge(a, newer).stages) == {"train"}
    assert merge(newer, a) is newer
    assert merge(newer, a).covers(a)  # a late job of an older run has nothing to add


def test_from_reports_reads_stage_json_and_markdown(tmp_path):
    write_report(StageResult("gate", Verdict.FAIL, "accuracy too low", checks=[Check("accuracy", Status.FAIL, "0.6")]),
                 tmp_path / "a")
    write_report(StageResult("train", Verdict.PASS, "trained"), tmp_path / "b")
    (tmp_path / "b" / "notes.json").write_text(json.dumps({"verdict": "x"}))  # not a stage report
    got = from_reports([tmp_path / "a", tmp_path / "b"], "k", "7", None, None)
    assert set(got.stages) == {"gate", "train"}
    assert got.stages["gate"].verdict == "fail" and "mlci-report:gate" in got.stages["gate"].details


def test_github_context_errors_name_the_variable_and_the_fix(tmp_path):
    with pytest.raises(UsageError) as err:
        context.detect({"GITHUB_ACTIONS": "true"})
    assert "GITHUB_TOKEN" in str(err.value) and "pull-requests: write" in str(err.value)
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"ref": "refs/heads/main"}))
    env = {"GITHUB_ACTIONS": "true", "GITHUB_TOKEN": "t", "GITHUB_REPOSITORY": "o/r", "GITHUB_EVENT_PATH": str(event),
           "GITHUB_EVENT_NAME": "push"}
    with pytest.raises(UsageError, match="push is not about a pull request"):
        context.detect(env)
    event.write_text(json.dumps({"pull_request": {"number": 12}}))
    pr = context.detect({**env, "GITHUB_RUN_ID": "555", "GITHUB_WORKFLOW": "ML pipeline"})
    assert (pr.where, pr.key, pr.run) == ("o/r#12", "ML pipeline", "555")
    assert pr.run_url == "https://github.com/o/r/actions/runs/555" and pr.report_url.endswith("#artifacts")


def test_gitlab_context_errors_name_the_variable_and_the_fix():
    with pytest.raises(UsageError) as err:
        context.detect({"GITLAB_CI": "true"})
    assert "MLCI_GITLAB_TOKEN" in str(err.value) and "CI_JOB_TOKEN cannot post notes" in str(err.value)
    with pytest.raises(UsageError, match="not a merge-request pipeline"):
        context.detect({"GITLAB_CI": "true", "MLCI_GITLAB_TOKEN": "t"})
    with pytest.raises(UsageError, match="outside GitHub Actions and GitLab CI"):
        context.detect({})


def test_cli_comment_exits_2_with_the_fix(tmp_path, monkeypatch):
    write_report(StageResult("gate", Verdict.PASS, "ok"), tmp_path / "mlci-report")
    for var in ("GITHUB_TOKEN", "GITHUB_ACTIONS", "GITLAB_CI", "MLCI_CI"):
        monkeypatch.delenv(var, raising=False)
    result = CliRunner().invoke(mlci, ["comment", "--dir", str(tmp_path / "mlci-report"), "--ci", "github"])
    assert result.exit_code == 2
    assert "GITHUB_TOKEN is not set" in result.output and "pull-requests: write" in result.output
    result = CliRunner().invoke(mlci, ["comment", "--dir", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "no report directory" in result.output


def test_a_hand_edited_block_is_skipped_not_fatal():
    body = render(comment(entry("gate"), entry("train")))
    broken = body.replace('"verdict": "pass"', '"verdict": pass', 1)
    back = parse(broken, "ML pipeline")
    assert back is not None and len(back.stages) == 1
