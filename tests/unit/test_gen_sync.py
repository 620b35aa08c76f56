"""mlci-gen sync: the committed actions, components and README tables are what the catalogue renders."""

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from mlcicd.catalog import STAGES, TOOLS, all_inputs, env_var
from mlcicd.ci.base import dotenv_name
from mlcicd.cli import mlci_gen
from mlcicd.gen import commands, repo_files, surfaces
from mlcicd.gen import render_util as ru

REPO = Path(__file__).resolve().parents[2]
IDS = [s.id for s in STAGES]


def _load(path):
    return yaml.safe_load((REPO / path).read_text(encoding="utf-8"))


def _component(stage_id):
    docs = list(yaml.safe_load_all((REPO / f"templates/{stage_id}.yml").read_text(encoding="utf-8")))
    assert len(docs) == 2
    return docs[0]["spec"]["inputs"], docs[1]


def _fake_repo(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "ml-cicd"\n')
    return tmp_path


def _run(root, check):
    lines: list[str] = []
    code = commands.sync(root, check=check, echo=lines.append)
    return code, "\n".join(lines)


# --- drift ---------------------------------------------------------------------------------------

def test_committed_files_match_the_catalogue():
    result = CliRunner().invoke(mlci_gen, ["sync", "--check", "--root", str(REPO)])
    assert result.exit_code == 0, f"run `mlci-gen sync` and commit:\n{result.output}"


def test_check_reports_every_edited_missing_and_stale_file(tmp_path):
    root = _fake_repo(tmp_path)
    assert _run(root, check=False)[0] == 0
    assert _run(root, check=True)[0] == 0
    gate = root / "actions/gate/action.yml"
    gate.write_text(gate.read_text(encoding="utf-8").replace("required: false", "required: true", 1), encoding="utf-8")
    (root / "templates/train.yml").unlink()
    stale = root / "actions/old-stage/action.yml"
    stale.parent.mkdir()
    stale.write_text(surfaces.HEADER + "\nname: old\n", encoding="utf-8")
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    code, out = _run(root, check=True)
    assert code == 1
    assert "drift: actions/gate/action.yml" in out and "+    required: false" in out
    assert "drift: templates/train.yml (missing)" in out
    assert "drift: actions/old-stage/action.yml" in out
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before, "--check wrote"
    assert _run(root, check=False)[0] == 0
    assert not stale.exists()
    assert _run(root, check=True)[0] == 0


def test_a_catalogue_change_is_drift(tmp_path, monkeypatch):
    root = _fake_repo(tmp_path)
    assert _run(root, check=False)[0] == 0
    changed = tuple(dataclasses.replace(s, summary="A new summary.") if s.id == "gate" else s for s in STAGES)
    monkeypatch.setattr(repo_files, "STAGES", changed)
    code, out = _run(root, check=True)
    assert code == 1
    assert "drift: actions/gate/action.yml" in out and "drift: templates/gate.yml" in out
    assert "drift: actions/train/action.yml" not in out


def test_readme_region_is_replaced_and_the_rest_kept(tmp_path):
    root = _fake_repo(tmp_path)
    readme = f"# x\nbefore\n{repo_files.README_START}\nOLD TABLE\n{repo_files.README_END}\nafter\n"
    (root / "README.md").write_text(readme, encoding="utf-8")
    assert _run(root, check=False)[0] == 0
    text = (root / "README.md").read_text(encoding="utf-8")
    assert text.startswith("# x\nbefore\n") and text.endswith(f"{repo_files.README_END}\nafter\n")
    assert "OLD TABLE" not in text and "### `rollback`" in text


def test_refuses_a_foreign_root_and_a_readme_without_markers(tmp_path):
    assert _run(tmp_path, check=False)[0] == 2
    assert not (tmp_path / "action.yml").exists()
    root = _fake_repo(tmp_path)
    (root / "README.md").write_text("# no markers\n")
    code, out = _run(root, check=False)
    assert code == 2 and repo_files.README_START in out


def test_rendering_is_deterministic():
    assert repo_files.render_all("a\n" + repo_files.README_START + repo_files.README_END) == repo_files.render_all(
        "a\n" + repo_files.README_START + repo_files.README_END)


# --- GitHub actions ------------------------------------------------------------------------------

@pytest.mark.parametrize("stage", STAGES, ids=IDS)
def test_action_inputs_outputs_and_env_follow_the_catalogue(stage):
    action = _load(f"actions/{stage.id}/action.yml")
    assert action["description"] == stage.summary
    assert list(action["inputs"]) == [i.name for i in all_inputs(stage)]
    for item in all_inputs(stage):
        spec = action["inputs"][item.name]
        assert spec["required"] is False
        assert spec.get("default") == surfaces.literal_default(item)
        assert spec["description"].startswith("Required. ") == item.required
    assert action["outputs"] == {
        o.name: {"description": o.description, "value": f"${{{{ steps.run.outputs.{o.name} }}}}"}
        for o in stage.outputs}
    install, run = action["runs"]["steps"]
    assert install["env"] == {"MLCI_EXTRA": stage.extra}
    assert install["run"] == '"$GITHUB_ACTION_PATH/../../scripts/install-action.sh"'
    assert run["id"] == "run" and run["run"].endswith(f'/mlci-stage" {stage.id}')
    expected = {env_var(i.name): f"${{{{ inputs.{i.name} }}}}" for i in all_inputs(stage)}
    assert {k: v for k, v in run["env"].items() if k not in ("MLCI_CI", "MLCI_VENV")} == expected
    assert run["env"]["MLCI_CI"] == "github"


def test_root_action_dispatches_every_stage():
    action = _load("action.yml")
    names = list(dict.fromkeys(i.name for s in STAGES for i in all_inputs(s)))
    assert list(action["inputs"]) == ["stage", *names]
    assert all(s.id in action["inputs"]["stage"]["description"] for s in STAGES)
    assert set(action["outputs"]) == {o.name for s in STAGES for o in s.outputs}
    assert set(action["branding"]) == {"icon", "color"}
    install, run = action["runs"]["steps"]
    pairs = dict(p.split("=") for p in install["env"]["MLCI_EXTRAS"].split())
    assert pairs == {s.id: s.extra for s in STAGES}
    assert run["env"]["MLCI_STAGE"] == "${{ inputs.stage }}"
    assert run["run"] == '"$MLCI_VENV/bin/python" "$GITHUB_ACTION_PATH/scripts/mlci-stage"'


def test_the_scripts_the_actions_call_exist_and_run():
    for name in ("install-action.sh", "mlci-stage"):
        assert os.access(REPO / "scripts" / name, os.X_OK), name
    proc = subprocess.run([sys.executable, str(REPO / "scripts/mlci-stage")], capture_output=True, text=True,
                          env={k: v for k, v in os.environ.items() if k != "MLCI_STAGE"})
    assert proc.returncode == 2 and "no stage given" in proc.stderr


# --- GitLab components ---------------------------------------------------------------------------

@pytest.mark.parametrize("stage", STAGES, ids=IDS)
def test_component_spec_covers_the_catalogue_with_checked_types(stage):
    spec, job_doc = _component(stage.id)
    assert set(spec) >= {i.name for i in all_inputs(stage)} | set(surfaces.JOB_INPUTS)
    for item in all_inputs(stage):
        entry = spec[item.name]
        # GitLab makes an input without a default mandatory: only the catalogue's required ones.
        assert ("default" in entry) != item.required, item.name
        # Every catalogue input is a GitLab string (see surfaces.NUMBER_RE), validated by options or regex.
        assert entry.get("type", "string") == "string"
        assert entry.get("default") == (None if item.required else surfaces.literal_default(item) or "")
        if item.type in ("boolean", "choice"):
            expected = ("true", "false") if item.type == "boolean" else item.options
            assert [o for o in entry["options"] if o] == list(expected)
        if item.type in ("integer", "number"):
            assert re.fullmatch(entry["regex"], "10") and re.fullmatch(entry["regex"], "")
            assert not re.fullmatch(entry["regex"], "ten")
            assert bool(re.fullmatch(entry["regex"], "2.5")) == (item.type == "number")
    assert spec["rules"]["type"] == "array" and isinstance(spec["rules"]["default"], list)
    # Empty: the job installs this component's own version (test_components_install_their_own_version...).
    assert spec["package"]["default"] == ""
    assert ("[" + stage.extra + "]") in spec["package"]["description"] or stage.extra == "core"
    (job_name, job), = job_doc.items()
    assert job_name == "$[[ inputs.as ]]"
    variables = {env_var(i.name): f"$[[ inputs.{i.name} ]]" for i in all_inputs(stage)}
    own = {"MLCI_EXTRA_SPEC": "" if stage.extra == "core" else f"[{stage.extra}]",
           "MLCI_COMPONENT_VERSION": "$[[ component.version ]]", "MLCI_COMPONENT_SHA": "$[[ component.sha ]]",
           "MLCI_COMPONENT_SOURCE": "$[[ inputs.source ]]"}
    assert job["variables"] == {"MLCI_CI": "gitlab", "MLCI_PACKAGE": "$[[ inputs.package ]]", **own, **variables,
                                **dict(stage.os_env)}
    for package in stage.os_packages:  # installed only when the job image lacks it
        assert any(line.startswith(f"command -v {package} >/dev/null || ") for line in job["script"])
    assert job["script"][-1] == f"mlci run {stage.id}"
    reports = job["artifacts"]["reports"]
    assert reports["dotenv"] == f"$[[ inputs.report-dir ]]/{stage.id}.env"
    assert reports["junit"] == f"$[[ inputs.report-dir ]]/{stage.id}.junit.xml"
    assert job["artifacts"]["when"] == "always"
    # A link in the merge request: letters, digits, -, _ and spaces; a literal path ending in /.
    assert job["artifacts"]["expose_as"] == f"mlci {stage.id} report"
    assert re.fullmatch(r"\w[-\w ]*", job["artifacts"]["expose_as"])
    assert job["artifacts"]["paths"] == ["$[[ inputs.report-dir ]]/"]
    deploys = stage.deploys
    assert ("resource_group" in job) == deploys and ("environment" in job) == deploys


# --- the tools: report and comment ---------------------------------------------------------------

@pytest.mark.parametrize("tool", TOOLS, ids=[t.id for t in TOOLS])
def test_tool_actions_run_mlci_with_the_inputs_as_variables(tool):
    action = _load(f"actions/{tool.id}/action.yml")
    assert list(action["inputs"]) == [i.name for i in tool.inputs]
    assert list(action.get("outputs") or {}) == [o.name for o in tool.outputs]
    install, run = action["runs"]["steps"]
    assert install["env"] == {"MLCI_EXTRA": tool.extra}
    assert install["run"] == '"$GITHUB_ACTION_PATH/../../scripts/install-action.sh"'
    assert run["run"] == f'"$MLCI_VENV/bin/mlci" {tool.id}'
    expected = {env_var(i.name): f"${{{{ inputs.{i.name} }}}}" for i in tool.inputs}
    own = {"MLCI_CI": "github", "MLCI_VENV": "${{ steps.install.outputs.venv }}"}
    if tool.id == "comment":  # the job's token, in the step's env: never an input
        own["GITHUB_TOKEN"] = "${{ github.token }}"
    assert run["env"] == own | expected


def test_the_cli_reads_the_tool_inputs_from_their_variables(tmp_path, monkeypatch):
    from mlcicd.cli import mlci

    (tmp_path / "in").mkdir()
    monkeypatch.setenv("MLCI_REPORT_DIR", str(tmp_path / "in"))
    monkeypatch.setenv("MLCI_OUTPUT", str(tmp_path / "out.html"))
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    monkeypatch.setenv("MLCI_CI", "local")
    result = CliRunner().invoke(mlci, ["report"])
    assert result.exit_code == 2 and str(tmp_path / "in") in result.output  # no stage reports there
    monkeypatch.setenv("MLCI_CI", "github")
    monkeypatch.setenv("MLCI_KEY", "nightly")
    monkeypatch.setenv("MLCI_REPORT_URL", "https://example.com/r")
    captured = {}
    monkeypatch.setattr("mlcicd.comments.command.comment",
                        lambda dirs, env, **kw: captured.update(dirs=dirs, **kw) or 0)
    result = CliRunner().invoke(mlci, ["comment"])
    assert result.exit_code == 0, result.output
    assert captured["dirs"] == [str(tmp_path / "in")]
    assert captured["key"] == "nightly" and captured["report_url"] == "https://example.com/r"


def test_report_writes_its_path_as_a_github_step_output(tmp_path, monkeypatch):
    import json as _json

    from mlcicd.cli import mlci

    reports = tmp_path / "mlci-report"
    reports.mkdir()
    (reports / "train.json").write_text(_json.dumps({"stage": "train", "verdict": "pass", "checks": [],
                                                     "figures": {}, "outputs": {}, "evidence": {}}))
    output = tmp_path / "github_output"
    output.touch()
    for key, value in {"MLCI_CI": "github", "GITHUB_OUTPUT": str(output), "MLCI_REPORT_DIR": str(reports)}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("MLCI_OUTPUT", raising=False)
    result = CliRunner().invoke(mlci, ["report"])
    assert result.exit_code == 0, result.output
    assert output.read_text() == f"path={reports / 'report.html'}\n"
    assert (reports / "report.html").is_file()


def test_report_component_builds_the_report_and_comments_only_in_merge_requests():
    spec, job_doc = _component("report")
    assert list(spec) == ["report-dir", "comment", "as", "stage", "job-image", "package", "source", "rules"]
    assert spec["stage"]["default"] == "report" and spec["as"]["default"] == "mlci-report"
    assert spec["rules"]["default"] == [{"when": "always"}] and spec["comment"]["options"] == ["true", "false"]
    (name, job), = job_doc.items()
    assert name == "$[[ inputs.as ]]"
    assert job["variables"]["MLCI_EXTRA_SPEC"] == "[report]"
    assert job["variables"]["MLCI_REPORT_DIR"] == "$[[ inputs.report-dir ]]"
    assert job["variables"]["MLCI_COMMENT"] == "$[[ inputs.comment ]]"
    assert job["script"][-2] == "mlci report"
    comment = job["script"][-1]
    assert '"$CI_PIPELINE_SOURCE" = "merge_request_event"' in comment and '"$MLCI_COMMENT" = "true"' in comment
    assert '--report-url "$CI_JOB_URL/artifacts/file/$MLCI_REPORT_DIR/report.html"' in comment
    assert not any(ru.GITLAB_INPUT in line for line in job["script"])
    # expose_as wants literal paths: the input is interpolated at include time; no variable, no glob.
    assert job["artifacts"] == {"when": "always", "expose_as": "ML pipeline report",
                                "paths": ["$[[ inputs.report-dir ]]/report.html"]}


def _comment_gate(script, **env):
    proc = subprocess.run(["bash", "-c", script.replace("mlci comment", "echo COMMENT")],
                          env={"PATH": "/usr/bin:/bin", **env}, capture_output=True, text=True, check=True)
    return proc.stdout


def test_the_report_job_comments_in_merge_request_pipelines_unless_told_not_to():
    _, job_doc = _component("report")
    (job,) = job_doc.values()
    line = job["script"][-1]
    mr = {"CI_PIPELINE_SOURCE": "merge_request_event", "MLCI_COMMENT": "true", "MLCI_REPORT_DIR": "mlci-report",
          "CI_JOB_URL": "https://gitlab.example.com/g/p/-/jobs/9"}
    assert _comment_gate(line, **mr) == \
        "COMMENT --report-url https://gitlab.example.com/g/p/-/jobs/9/artifacts/file/mlci-report/report.html\n"
    assert _comment_gate(line, **(mr | {"MLCI_COMMENT": "false"})) == ""
    assert _comment_gate(line, **(mr | {"CI_PIPELINE_SOURCE": "push"})) == ""


# --- no template injection, anywhere ---------------------------------------------------------------

def _all_actions():
    return ["action.yml", *(f"actions/{s}/action.yml" for s in (*IDS, *(t.id for t in TOOLS)))]


@pytest.mark.parametrize("path", _all_actions())
def test_no_expression_inside_run(path):
    action = _load(path)
    runs = list(ru.run_texts(action))
    assert runs and not any(ru.GITHUB_EXPR in text for text in runs)
    assert all(step.get("shell") == "bash" for step in action["runs"]["steps"])


@pytest.mark.parametrize("stage_id", IDS)
def test_no_input_inside_script(stage_id):
    _, job = _component(stage_id)
    lines = list(ru.script_texts(job))
    assert lines and not any(ru.GITLAB_INPUT in line for line in lines)


def test_readme_tables_list_every_input_and_output():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    region = text[text.index(repo_files.README_START):text.index(repo_files.README_END)]
    for stage in STAGES:
        assert f"### `{stage.id}`" in region
        assert all(f"`{i.env_var}`" in region for i in all_inputs(stage))
        assert all(f"`{dotenv_name(stage.id, o.name)}`" in region for o in stage.outputs)


# --- a component at @1.2.3 runs ml-cicd 1.2.3 ---------------------------------------------------

def _install_line(job):
    return next(line for line in job["script"] if "MLCI_COMPONENT_VERSION" in line)


def _chosen_package(job, **env):
    import subprocess

    script = _install_line(job) + '\nprintf "%s" "$MLCI_PACKAGE"'
    base = {k: v for k, v in job["variables"].items() if k in ("MLCI_EXTRA_SPEC", "MLCI_COMPONENT_SOURCE")}
    proc = subprocess.run(["bash", "-c", script], env={"PATH": "/usr/bin:/bin", **base, **env},
                          capture_output=True, text=True, check=True)
    return proc.stdout


def test_components_install_their_own_version_or_their_commit():
    import yaml

    from mlcicd.catalog import STAGES
    from mlcicd.gen import render_util as ru

    sha = "0123456789abcdef0123456789abcdef01234567"
    for stage in STAGES:
        header, job_doc = yaml.safe_load_all((REPO / "templates" / f"{stage.id}.yml").read_text(encoding="utf-8"))
        assert header["spec"]["component"] == ["version", "sha"]
        # GitLab does not interpolate component.* inside an input's default; never in script either.
        assert not any("component." in str(spec.get("default", "")) for spec in header["spec"]["inputs"].values())
        (job,) = job_doc.values()
        assert not any(ru.GITLAB_INPUT in line for line in ru.script_texts(job_doc))
        assert job["variables"]["MLCI_COMPONENT_VERSION"] == "$[[ component.version ]]"
        assert job["variables"]["MLCI_COMPONENT_SHA"] == "$[[ component.sha ]]"
        assert header["spec"]["inputs"]["package"]["default"] == ""
        extra = "" if stage.extra == "core" else f"[{stage.extra}]"
        job["variables"]["MLCI_COMPONENT_SOURCE"] = "org/ml-cicd"
        job["variables"]["MLCI_EXTRA_SPEC"] = extra
        # Released (@1.2.3): that version from the index.
        assert _chosen_package(job, MLCI_COMPONENT_VERSION="1.2.3", MLCI_COMPONENT_SHA=sha) == \
            f"ml-cicd{extra}==1.2.3"
        # A commit or a branch: no version (GitLab gives null; gitlab-ci-local leaves the expression).
        archive = f"ml-cicd{extra} @ https://gitlab.example.com/org/ml-cicd/-/archive/{sha}/ml-cicd-{sha}.tar.gz"
        for unreleased in ("", "$[[ component.version ]]"):
            assert _chosen_package(job, MLCI_COMPONENT_VERSION=unreleased, MLCI_COMPONENT_SHA=sha,
                                   CI_SERVER_URL="https://gitlab.example.com") == archive
        # The package input (or an MLCI_PACKAGE variable, as the e2e tests set) always wins.
        assert _chosen_package(job, MLCI_PACKAGE="/w/ml_cicd-1.0-py3-none-any.whl[all]",
                               MLCI_COMPONENT_VERSION="1.2.3") == "/w/ml_cicd-1.0-py3-none-any.whl[all]"
