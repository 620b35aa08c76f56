"""CI adapters write where each CI reads: GitHub files and commands, GitLab dotenv, local."""

import io

import pytest

from mlcicd.ci import detect
from mlcicd.ci.github import GitHubAdapter
from mlcicd.ci.gitlab import GitLabAdapter
from mlcicd.ci.local import LocalAdapter
from mlcicd.errors import UsageError


@pytest.mark.parametrize(
    ("env", "expected"),
    [({"GITHUB_ACTIONS": "true"}, "github"), ({"GITLAB_CI": "true"}, "gitlab"), ({}, "local"),
     ({"GITHUB_ACTIONS": "true", "MLCI_CI": "local"}, "local")],
)
def test_detect(env, expected):
    assert detect(env).name == expected


def test_detect_rejects_unknown():
    with pytest.raises(UsageError, match="github, gitlab, local"):
        detect({"MLCI_CI": "jenkins"})


def test_github_outputs_summary_annotations(tmp_path):
    out, summary = tmp_path / "out", tmp_path / "summary"
    stream = io.StringIO()
    gh = GitHubAdapter({"GITHUB_OUTPUT": str(out), "GITHUB_STEP_SUMMARY": str(summary)}, stream)
    gh.set_outputs("gate", {"model-version": "3", "notes": "line1\nline2"}, tmp_path)
    text = out.read_text()
    assert "model-version=3\n" in text
    delim = text.split("notes<<", 1)[1].split("\n", 1)[0]
    assert f"notes<<{delim}\nline1\nline2\n{delim}\n" in text
    gh.summary("gate", "### report")
    assert summary.read_text() == "### report\n"
    gh.annotate("error", "bad: 50%\nnext", title="gate: accuracy")
    gh.mask("s3cr3t")
    log = stream.getvalue()
    assert "::error title=gate%3A accuracy::bad: 50%25%0Anext" in log
    assert "::add-mask::s3cr3t" in log


def test_gitlab_dotenv_report(tmp_path):
    stream = io.StringIO()
    gl = GitLabAdapter({}, stream)
    gl.set_outputs("train", {"run-id": "abc", "model-uri": "runs:/abc/model"}, tmp_path)
    assert (tmp_path / "train.env").read_text() == "MLCI_TRAIN_RUN_ID=abc\nMLCI_TRAIN_MODEL_URI=runs:/abc/model\n"
    gl.summary("train", "report body")
    log = stream.getvalue()
    assert "section_start:" in log and "section_end:" in log and "report body" in log


def test_local_prints_and_writes_dotenv(tmp_path):
    stream = io.StringIO()
    LocalAdapter({}, stream).set_outputs("promote", {"champion-version": "4"}, tmp_path)
    assert "output champion-version=4" in stream.getvalue()
    assert (tmp_path / "promote.env").read_text() == "MLCI_PROMOTE_CHAMPION_VERSION=4\n"
