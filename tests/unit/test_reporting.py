"""The HTML report: finding the verdict files, the plot data taken from them, and the page."""

import json
import os
import re
from pathlib import Path

import pytest
import report_docs
from click.testing import CliRunner

from mlcicd.cli import mlci
from mlcicd.errors import UsageError
from mlcicd.report import StageResult, Verdict, write_report
from mlcicd.reporting import build, collect, extract
from mlcicd.reporting.page import render


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("mlci-report")
    report_docs.write_pipeline(directory)
    return directory


def _doc(directory: Path, stage: str) -> dict:
    return json.loads((directory / f"{stage}.json").read_text())


# -- collect ---------------------------------------------------------------------------------------------------------


def test_latest_verdict_of_each_stage_across_artifact_directories(tmp_path):
    """Hosted runners: one artifact directory per job; a re-run job's file is newer and wins."""
    first, second = tmp_path / "validate", tmp_path / "gate-rerun"
    write_report(StageResult("gate", Verdict.FAIL, "old gate"), first)
    write_report(StageResult("validate-data", Verdict.PASS, "data ok"), first)
    write_report(StageResult("gate", Verdict.PASS, "new gate"), second)
    old = json.loads((first / "gate.json").read_text())
    (first / "gate.json").write_text(json.dumps({**old, "written_at": "2020-01-01T00:00:00.000+00:00"}))
    os.utime(second / "gate.json", (1_000_000, 1_000_000))  # downloaded artifacts: file times say nothing
    (second / "notes.json").write_text('{"not": "a stage"}')  # other JSON is not a verdict
    docs = collect([second, first])
    assert [d.stage for d in docs] == ["validate-data", "gate"]  # pipeline order, not file order
    assert docs[1].data["summary"] == "new gate" and docs[1].path == second / "gate.json"


def test_files_without_written_at_are_ordered_by_their_modification_time(tmp_path):
    for directory, summary in (("a", "old"), ("b", "new")):
        write_report(StageResult("gate", Verdict.PASS, summary), tmp_path / directory)
        data = json.loads((tmp_path / directory / "gate.json").read_text())
        del data["written_at"]
        (tmp_path / directory / "gate.json").write_text(json.dumps(data))
    os.utime(tmp_path / "b" / "gate.json", (2_000_000, 2_000_000))
    os.utime(tmp_path / "a" / "gate.json", (1_000_000, 1_000_000))
    assert collect([tmp_path / "b", tmp_path / "a"])[0].data["summary"] == "new"


def test_no_verdict_is_a_usage_error_naming_dir(tmp_path):
    with pytest.raises(UsageError) as err:
        collect([tmp_path])
    assert err.value.where == f"--dir {tmp_path}" and "mlci run" in (err.value.fix or "")
    with pytest.raises(UsageError, match="not a directory"):
        collect([tmp_path / "missing"])


def test_a_damaged_stage_file_names_itself(tmp_path):
    (tmp_path / "gate.json").write_text("{trunc")
    with pytest.raises(UsageError) as err:
        collect([tmp_path])
    assert err.value.where == str(tmp_path / "gate.json")


# -- extract ---------------------------------------------------------------------------------------------------------


def test_histograms_are_shares_of_the_drifted_features(pipeline):
    hists = extract.histograms(_doc(pipeline, "validate-data")["figures"])
    drifted = _doc(pipeline, "validate-data")["outputs"]["drifted-features"].split(",")
    assert sorted(h.feature for h in hists) == sorted(drifted)
    assert [h.effect for h in hists] == sorted((h.effect for h in hists), reverse=True)
    for h in hists:
        assert sum(h.reference) == pytest.approx(1) and sum(h.current) == pytest.approx(1)
        assert h.caption.startswith(("KS", "χ²")) and "p = " in h.caption
        if h.kind == "numeric":
            assert len(h.edges) == len(h.reference) + 1
        else:
            assert len(h.categories) == len(h.reference)


def test_curves_fairness_and_timeline_from_the_stage_files(pipeline):
    gate = _doc(pipeline, "gate")["figures"]
    c = extract.curves(gate)
    assert c is not None and c.kind == "roc_pr" and set(c.models) == {"candidate", "champion"}
    assert c.note == "positive class 1"
    bars = extract.fairness(gate)
    assert [b.column for b in bars] == ["gender"] and bars[0].groups == ["female", "male", "nonbinary"]
    assert bars[0].metrics == ["selection_rate", "recall", "fpr"]
    for m in bars[0].metrics:
        for low, value, high in zip(bars[0].lower[m], bars[0].values[m], bars[0].upper[m], strict=True):
            assert low is not None and high is not None and low <= value <= high
    t = extract.timeline(_doc(pipeline, "monitor-canary"))
    assert t is not None and t.decision == "rollback" and t.decisions[-1] == "rollback"
    assert t.weight == [10, 10, 10, 25, 25, 25] and t.versions == {"canary": "2", "stable": "1"}
    assert set(t.latency) == {"canary", "stable"} and list(t.latency["canary"]) == ["p50", "p90"]
    assert t.canary_error_rate[0] == 0 and t.canary_error_rate[-1] > 0.01  # it started failing at the fourth look
    assert t.latency["canary"]["p50"][-1] > 2 * t.latency["stable"]["p50"][-1]


def test_stages_without_figures_give_no_plot_data():
    assert extract.histograms({}) == [] and extract.curves({}) is None and extract.fairness({}) == []
    assert extract.timeline({"evidence": {"timeline": []}}) is None
    assert extract.curves({"curves": {"kind": "roc_pr", "candidate": {"roc": None, "pr": None}}}) is None


# -- the page --------------------------------------------------------------------------------------------------------


def test_page_holds_every_plot_inline_and_nothing_from_the_network(pipeline):
    html = render(collect([pipeline]), sources=[str(pipeline)])
    plots = re.findall(r'<figure class="plot" data-plot="([\w-]+)"><svg', html)
    assert plots == ["drift", "roc-pr", "fairness", "timeline"]
    assert 'class="error"' not in html
    # Self-contained: no script, no fetched stylesheet, font or image.
    assert "<script" not in html and "<link" not in html and "@import" not in html
    assert not re.search(r'(src|href)="(https?:)?//', html)
    # Every SVG's ids are its own: clip paths of one plot never apply to another.
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(ids) == len(set(ids))
    for ref in set(re.findall(r"url\(#([^)]+)\)", html)):
        assert ref in ids
    # Text taken from the JSON is escaped, never markup.
    assert "&lt;b&gt;estimated&lt;/b&gt;" in html and "<b>estimated" not in html
    # Stage sections in pipeline order with their verdicts; the overall verdict is the worst.
    assert re.findall(r'<section id="([\w-]+)">', html) == ["validate-data", "train", "gate", "monitor-canary"]
    assert 'ml-cicd pipeline report <span class="badge fail">fail</span>' in html


def test_svg_text_stays_text_and_the_page_stays_small(pipeline):
    html = render(collect([pipeline]), sources=[str(pipeline)])
    assert "<text" in html and "selection rate" in html  # svg.fonttype none: labels are text, not glyph paths
    assert len(html) < 400_000


def test_a_plot_that_cannot_be_drawn_does_not_lose_the_report(tmp_path):
    bad = report_docs.monitor_canary()
    bad.evidence["timeline"][0]["canary_latency_ms"] = {"p50": "fast"}
    write_report(bad, tmp_path)
    html = render(collect([tmp_path]), sources=[str(tmp_path)])
    assert "The timeline plot could not be drawn" in html and "<section id=\"monitor-canary\">" in html


@pytest.mark.filterwarnings("error")
def test_a_first_release_timeline_has_no_stable_and_may_lack_latency(tmp_path):
    """A first release is judged alone; a metric source without histograms gives no latency."""
    entries = [{"t": 2.0 * i, "step": 1, "weight": 100, "decision": "continue" if i < 3 else "promote",
                "canary_requests": 50.0 * i, "canary_errors": 0.0, "stable_requests": None, "stable_errors": None}
               for i in range(1, 4)]
    write_report(StageResult("monitor-canary", Verdict.PASS, "promoted", outputs={"decision": "promote"},
                             evidence={"timeline": entries}), tmp_path)
    t = extract.timeline(_doc(tmp_path, "monitor-canary"))
    assert t is not None and t.latency == {} and t.stable_error_rate == [None, None, None]
    html = render(collect([tmp_path]), sources=[str(tmp_path)])
    assert 'data-plot="timeline"><svg' in html and 'class="error"' not in html


# -- the command -----------------------------------------------------------------------------------------------------


def test_mlci_report_writes_the_page_and_prints_its_path(pipeline, tmp_path):
    out = tmp_path / "site" / "report.html"
    result = CliRunner().invoke(mlci, ["report", "--dir", str(pipeline), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(out) and out.read_text().startswith("<!DOCTYPE html>")


def test_mlci_report_defaults_to_mlci_report_dir(pipeline, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mlci-report").symlink_to(pipeline)
    result = CliRunner().invoke(mlci, ["report"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "mlci-report/report.html"


def test_mlci_report_without_verdicts_exits_2_naming_dir(tmp_path):
    result = CliRunner().invoke(mlci, ["report", "--dir", str(tmp_path)])
    assert result.exit_code == 2
    assert f"--dir {tmp_path}" in result.output and "no stage verdict" in result.output


def test_unwritable_out_is_exit_2_naming_out(pipeline, tmp_path):
    (tmp_path / "file").write_text("")
    result = CliRunner().invoke(mlci, ["report", "--dir", str(pipeline), "--out", str(tmp_path / "file" / "r.html")])
    assert result.exit_code == 2 and f"--out {tmp_path / 'file' / 'r.html'}" in result.output


def test_build_times_itself(pipeline, tmp_path):
    path, docs, seconds = build([pipeline], tmp_path / "r.html")
    assert path.is_file() and len(docs) == 4 and seconds > 0
