"""mlci-gen render / check / init --ci: the user pipelines rendered from mlci.yaml.

Structure is asserted on the parsed YAML; the real linters (check-jsonschema, zizmor,
actionlint + shellcheck) run on the rendered files and must report nothing.
"""

import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from test_ci_yaml_lint import _run, _tool  # the shared linter helpers

from mlcicd.catalog import PULL_REQUEST_STAGES, STAGE_IDS
from mlcicd.cli import mlci_gen
from mlcicd.config import load_config
from mlcicd.gen import commands, pipeline, pipeline_check
from mlcicd.gen import render_util as ru
from mlcicd.version import BuildInfo, build_info

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples/credit-risk"
SHA = "0123456789abcdef0123456789abcdef01234567"
DEPLOYS = {"deploy-canary", "promote", "rollback"}
# The artifact actions, pinned by commit (zizmor's unpinned-uses), with the tag Dependabot reads.
UPLOAD = "actions/upload-artifact@ea165f8d65b6e75b540449e92b4886f43607fa02"
DOWNLOAD = "actions/download-artifact@d3f86a106a0bac45b974a628896c90dbdf5c8093"
NOT_PR = "${{ github.event_name != 'pull_request' }}"


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A copy of the example project as the cwd (render reads the config relative to it)."""
    shutil.copytree(EXAMPLE, tmp_path / "repo", ignore=shutil.ignore_patterns(".mlci", "mlruns", "*.db"))
    monkeypatch.chdir(tmp_path / "repo")
    return tmp_path / "repo"


def _render(ci, **kw):
    return pipeline.render(pipeline.options(ci, **kw), load_config(EXAMPLE / "mlci.yaml"))


def _github(**kw):
    doc = yaml.safe_load(_render("github", **kw))
    doc["on"] = doc.pop(True)
    return doc


# --- GitHub ------------------------------------------------------------------------------------

def test_github_jobs_chain_the_stages_and_pass_outputs_through_needs():
    jobs = _github(ref="v1")["jobs"]
    assert list(jobs) == [*STAGE_IDS, "report", "comment"]
    assert {j: v.get("needs", []) for j, v in jobs.items()} == {
        "validate-data": [], "train": ["validate-data"], "gate": ["train"], "build-image": ["gate"],
        "deploy-canary": ["gate", "build-image"], "monitor-canary": ["deploy-canary"],
        "promote": ["monitor-canary"], "rollback": ["monitor-canary"],
        # Not promote: a protected environment could keep the report waiting (its own job uploads its report).
        "report": [s for s in STAGE_IDS if s != "promote"], "comment": ["report"]}
    for job_id, job in jobs.items():
        assert job["runs-on"] == "ubuntu-latest"
        assert not any("run" in step for step in job["steps"])  # no shell text, so no ${{ }} in run:
        if job_id not in STAGE_IDS:
            continue
        checkout, stage, upload = job["steps"]
        assert checkout["uses"].startswith("actions/checkout@") and checkout["with"]["persist-credentials"] is False
        assert stage["uses"] == f"org/ml-cicd/actions/{job_id}@v1" and stage["id"] == "stage"
        assert stage["with"]["config"] == "mlci.yaml"
        # Every stage's reports go up, also when the stage failed.
        assert upload == {"uses": UPLOAD, "if": "${{ !cancelled() }}", "with": {
            "name": f"mlci-report-{job_id}", "path": "mlci-report", "if-no-files-found": "ignore",
            "overwrite": True}}  # a re-run job replaces its upload (v4 refuses a second one of a name)
    assert jobs["gate"]["steps"][1]["with"]["model-uri"] == "${{ needs.train.outputs.model-uri }}"
    assert jobs["train"]["outputs"]["model-uri"] == "${{ steps.stage.outputs.model-uri }}"
    deploy = jobs["deploy-canary"]["steps"][1]["with"]
    assert deploy["model-uri"] == "${{ needs.gate.outputs.model-uri }}"
    assert deploy["image"] == "${{ needs.build-image.outputs.image-ref }}"


def test_github_rollback_runs_only_when_the_canary_judgement_failed():
    jobs = _github()["jobs"]
    cond = jobs["rollback"]["if"]
    assert cond.startswith("${{ failure() && needs.monitor-canary.result == 'failure'")
    assert "needs.monitor-canary.outputs.decision != 'hold'" in cond
    assert jobs["rollback"]["steps"][1]["with"]["to"] == "stable"
    assert "if" not in jobs["promote"]  # implicit success(): only after a passing judgement


def test_github_permissions_concurrency_environment_and_triggers():
    doc = _github()
    assert doc["permissions"] == {"contents": "read"}
    assert doc["on"] == {"push": {"branches": ["main"]}, "pull_request": {"branches": ["main"]},
                         "workflow_dispatch": None}
    # A pull request's runs have their own group and may be cancelled; the release train never is.
    group = "${{ github.workflow }}-${{ github.event.pull_request.number || 'release' }}"
    assert doc["concurrency"] == {"group": group, "cancel-in-progress": "${{ github.event_name == 'pull_request' }}"}
    for job_id, job in doc["jobs"].items():
        if job_id in DEPLOYS:
            assert job["permissions"] == {"contents": "read", "id-token": "write"}
            assert job["concurrency"] == {"group": "mlci-deploy-production", "cancel-in-progress": False}
        elif job_id == "report":
            assert job["permissions"] == {"contents": "read"}
        elif job_id == "comment":  # the only job that may write, and only to the pull request
            assert job["permissions"] == {"pull-requests": "write"}
        else:
            assert "permissions" not in job and "concurrency" not in job
        assert job.get("environment") == ("production" if job_id == "promote" else None)


def test_github_pull_requests_run_the_checks_and_the_gate_without_registering():
    jobs = _github(ref=SHA)["jobs"]
    assert PULL_REQUEST_STAGES == ("validate-data", "train", "gate")
    # build-image is skipped on a pull request; the later stages are skipped through `needs`.
    assert jobs["build-image"]["if"] == NOT_PR
    assert all("if" not in jobs[s] for s in PULL_REQUEST_STAGES)
    assert "pull_request" not in str({k: jobs[k].get("if") for k in ("deploy-canary", "monitor-canary", "promote")})
    # A pull request never moves the challenger alias.
    assert jobs["gate"]["steps"][1]["with"]["register"] == NOT_PR


def test_github_report_job_collects_every_stage_report_and_the_comment_job_links_it():
    jobs = _github(ref=SHA)["jobs"]
    report, comment = jobs["report"], jobs["comment"]
    assert report["if"] == "${{ !cancelled() }}"  # a failed gate is what the report most needs to show
    assert report["outputs"] == {"report-url": "${{ steps.upload.outputs.artifact-url }}"}
    download, build, upload = report["steps"]
    collect = {"uses": DOWNLOAD, "with": {"pattern": "mlci-report-*", "merge-multiple": True, "path": "mlci-report"}}
    assert download == collect
    assert build == {"id": "report", "uses": f"org/ml-cicd/actions/report@{SHA}", "with": {"report-dir": "mlci-report"}}
    assert upload == {"id": "upload", "uses": UPLOAD,
                      "with": {"name": "mlci-pipeline-report", "path": "${{ steps.report.outputs.path }}",
                               "overwrite": True}}
    assert comment["if"] == "${{ !cancelled() && github.event_name == 'pull_request' }}"
    download, post = comment["steps"]
    assert download == collect
    assert post == {"uses": f"org/ml-cicd/actions/comment@{SHA}",
                    "with": {"report-dir": "mlci-report", "report-url": "${{ needs.report.outputs.report-url }}"}}
    text = _render("github", ref=SHA)  # pinned by commit, with the version Dependabot keeps current
    assert text.count(f"uses: {UPLOAD}  # v4.6.2\n") == len(STAGE_IDS) + 1
    assert text.count(f"uses: {DOWNLOAD}  # v4.3.0\n") == 2


def test_the_github_check_refuses_write_permissions_outside_the_comment_job():
    text = _render("github", ref=SHA)
    bad = text.replace("      contents: read  # nothing to write", "      pull-requests: write  # nothing to write")
    assert bad != text
    with pytest.raises(pipeline_check.PipelineCheckError, match="only the comment job writes"):
        pipeline_check.check_pipeline("github", bad)


def test_by_default_the_actions_are_pinned_to_the_installed_release_commit(project):
    info = build_info()
    text = _render("github")
    version = f"v{info.public_version}"
    for job_id in STAGE_IDS:
        assert f"uses: org/ml-cicd/actions/{job_id}@{info.commit}  # {version}\n" in text
    assert f"to the commit of ml-cicd {version}" in text and "WARNING: the stage actions" not in text
    # The header leaves --ref out: re-rendering (mlci-gen check) pins whichever release is installed.
    assert "mlci-gen render --ci github --source org/ml-cicd --config mlci.yaml > " in text
    assert pipeline.parse_header(text) == pipeline.options("github")


def test_a_default_pin_from_a_development_build_is_flagged(project, monkeypatch):
    monkeypatch.setattr(pipeline, "build_info", lambda: BuildInfo("1.2.4.dev3+g0123456", SHA))
    result = CliRunner().invoke(mlci_gen, ["render", "--ci", "github"])
    assert result.exit_code == 0 and f"@{SHA}  # v1.2.4.dev3" in result.output
    assert "warning: ml-cicd 1.2.4.dev3+g0123456 is a development build" in result.output
    monkeypatch.setattr(pipeline, "build_info", lambda: BuildInfo("1.2.3", SHA))
    result = CliRunner().invoke(mlci_gen, ["render", "--ci", "github"])
    assert f"@{SHA}  # v1.2.3" in result.output and "warning: ml-cicd" not in result.output
    assert "development build" not in CliRunner().invoke(mlci_gen, ["render", "--ci", "github", "--ref", "v1"]).output


def test_a_tag_ref_says_what_it_trades_away():
    text = _render("github", ref="v1")
    assert "uses: org/ml-cicd/actions/gate@v1\n" in text
    assert "WARNING: the stage actions use v1, a tag that can be moved" in text and "unpinned-uses" in text
    assert "WARNING: the stage actions" not in _render("github", ref=SHA)


def test_without_a_known_commit_the_default_render_fails_naming_ref(project, monkeypatch):
    monkeypatch.setattr(pipeline, "build_info", lambda: BuildInfo("1.2.3", None))
    result = CliRunner().invoke(mlci_gen, ["render", "--ci", "github"])
    assert result.exit_code == 2
    assert "does not know the commit" in result.output and "--ref" in result.output
    assert CliRunner().invoke(mlci_gen, ["render", "--ci", "github", "--ref", "v1"]).exit_code == 0
    assert CliRunner().invoke(mlci_gen, ["render", "--ci", "gitlab"]).exit_code == 0  # GitLab pins versions
    result = CliRunner().invoke(mlci_gen, ["init", "--dir", str(project), "--ci", "github", "--force"])
    assert result.exit_code == 2 and "--ref" in result.output
    result = CliRunner().invoke(mlci_gen, ["init", "--dir", str(project), "--ci", "github", "--force",
                                           "--ref", "v1"])
    assert result.exit_code == 0, result.output
    assert "@v1\n" in (project / pipeline.PIPELINE_PATHS["github"]).read_text(encoding="utf-8")


def test_header_records_the_command_and_sqlite_gets_a_warning(project):
    text = _render("github", ref="v2", source="acme/mlci")
    opts = pipeline.parse_header(text)
    assert opts == pipeline.RenderOptions("github", "v2", "acme/mlci", "mlci.yaml")
    assert "mlci-gen render --ci github --ref v2 --source acme/mlci --config mlci.yaml > " in text
    assert "WARNING: the config uses a local SQLite tracking store" in text
    cfg = load_config(EXAMPLE / "mlci.yaml")
    cfg.mlflow.tracking_uri = "https://mlflow.example.com"
    assert "tracking store" not in pipeline.render(pipeline.options("gitlab"), cfg)


# --- GitLab ------------------------------------------------------------------------------------

def _gitlab():
    return yaml.safe_load(_render("gitlab"))


def test_gitlab_includes_every_component_with_dotenv_wiring():
    doc = _gitlab()
    assert doc["stages"] == ["validate", "train", "gate", "build", "deploy", "monitor", "release", "report"]
    includes = {i["component"].rsplit("/", 1)[1]: i.get("inputs") for i in doc["include"]}
    assert list(includes) == [f"{s}@1" for s in (*STAGE_IDS, "report")]
    assert includes["gate@1"]["model-uri"] == "$MLCI_TRAIN_MODEL_URI"
    assert includes["deploy-canary@1"]["image"] == "$MLCI_BUILD_IMAGE_IMAGE_REF"
    assert includes["promote@1"]["rules"] == [MR_NEVER, {"when": "manual"}]
    assert includes["rollback@1"]["rules"] == [MR_NEVER, {"when": "on_failure"}]
    for stage in DEPLOYS:
        assert includes[f"{stage}@1"]["resource-group"] == "mlci-deploy-production"
        assert doc[f"mlci-{stage}"]["id_tokens"]["MLCI_ID_TOKEN"]["aud"]
    assert doc["mlci-rollback"]["needs"] == ["mlci-monitor-canary"]
    assert doc["mlci-deploy-canary"]["needs"] == ["mlci-gate", "mlci-build-image"]
    assert "allow_failure" not in doc["mlci-monitor-canary"]  # on_inconclusive: rollback (the default)


MR = '$CI_PIPELINE_SOURCE == "merge_request_event"'
MR_NEVER = {"if": MR, "when": "never"}


def test_gitlab_merge_requests_run_the_checks_and_the_gate_without_registering_then_report():
    doc = _gitlab()
    assert {"if": MR} in doc["workflow"]["rules"]
    includes = {i["component"].rsplit("/", 1)[1].split("@")[0]: i.get("inputs") or {} for i in doc["include"]}
    for stage in ("validate-data", "train"):
        assert "rules" not in includes[stage]  # the component's default: on_success, in every pipeline
    # rules:variables beat the job's variables: an MR's gate never moves the challenger alias.
    assert includes["gate"]["rules"] == [{"if": MR, "variables": {"MLCI_REGISTER": "false"}}, {"when": "on_success"}]
    for stage in ("build-image", "deploy-canary", "monitor-canary"):
        assert includes[stage]["rules"] == [MR_NEVER, {"when": "on_success"}]
    # The report job needs every stage job that may run, optionally (an MR has no deploy jobs), and
    # not the manual promote (it would wait for it forever).
    assert includes["report"] == {}
    assert doc["mlci-report"]["needs"] == [{"job": f"mlci-{s}", "optional": True} for s in STAGE_IDS if s != "promote"]


def test_gitlab_hold_lets_an_inconclusive_canary_pass_without_rollback():
    cfg = load_config(EXAMPLE / "mlci.yaml")
    cfg.deploy.canary.on_inconclusive = "hold"
    doc = yaml.safe_load(pipeline.render(pipeline.options("gitlab"), cfg))
    assert doc["mlci-monitor-canary"]["allow_failure"] == {"exit_codes": [3]}


def test_the_checks_catch_wiring_mistakes():
    text = _render("gitlab")
    with pytest.raises(pipeline_check.PipelineCheckError, match=r"unknown input 'no-such'"):
        pipeline_check.check_pipeline("gitlab", text.replace("      to: ", "      no-such: "))
    report = "  - component: $CI_SERVER_FQDN/org/ml-cicd/report@1\n"
    assert report in text  # the report component's inputs are checked against its spec too
    with pytest.raises(pipeline_check.PipelineCheckError, match=r"unknown input 'commment': did you mean 'comment'"):
        pipeline_check.check_pipeline("gitlab", text.replace(report, report + "    inputs: {commment: 'false'}\n"))
    pipeline_check.check_pipeline("gitlab", text.replace(report, report + "    inputs: {comment: 'false'}\n"))
    text = _render("github")
    with pytest.raises(pipeline_check.PipelineCheckError, match="cannot see"):
        pipeline_check.check_pipeline("github", text.replace("needs: [train]", "needs: [validate-data]"))


# --- real linters --------------------------------------------------------------------------------

def _write_both(root, **kw):
    (root / ".git").mkdir(exist_ok=True)  # actionlint finds the project by it
    (root / ".github/workflows").mkdir(parents=True, exist_ok=True)
    (root / ".github/workflows/ml-pipeline.yml").write_text(_render("github", **kw), encoding="utf-8")
    (root / ".gitlab-ci.yml").write_text(_render("gitlab"), encoding="utf-8")


def test_check_jsonschema_accepts_both(tmp_path):
    _write_both(tmp_path)
    for schema, path in (("vendor.github-workflows", ".github/workflows/ml-pipeline.yml"),
                         ("vendor.gitlab-ci", ".gitlab-ci.yml")):
        proc = _run([_tool("check-jsonschema"), "--builtin-schema", schema, str(tmp_path / path)])
        assert proc.returncode == 0, proc.stdout + proc.stderr


def _zizmor(root):
    return _run([_tool("zizmor"), "--offline", "--no-config", "--no-progress", "--persona", "auditor",
                 ".github/workflows/ml-pipeline.yml"], cwd=root)


def test_zizmor_reports_nothing_when_ml_cicd_is_pinned_to_a_commit(tmp_path):
    _write_both(tmp_path, ref=SHA)
    proc = _zizmor(tmp_path)
    assert proc.returncode == 0 and "No findings" in proc.stdout, proc.stdout + proc.stderr


def test_zizmor_reports_nothing_on_the_default_render(tmp_path):
    # No --ref: the actions are pinned to this installed release's commit.
    _write_both(tmp_path)
    proc = _zizmor(tmp_path)
    assert proc.returncode == 0 and "No findings" in proc.stdout, proc.stdout + proc.stderr


def test_zizmor_flags_only_the_tag_ref_of_ml_cicd(tmp_path):
    # An explicit `--ref v1` is a movable tag: the one finding left is the advice to pin it.
    _write_both(tmp_path, ref="v1")
    proc = _zizmor(tmp_path)
    flagged = [line for line in proc.stdout.splitlines() if "uses:" in line and "|" in line]
    assert flagged and all("org/ml-cicd/actions/" in line for line in flagged), proc.stdout
    assert "unpinned-uses" in proc.stdout and "16 high" not in proc.stdout


def test_actionlint_and_shellcheck_accept_the_workflow(tmp_path):
    # The org/ml-cicd actions are remote: actionlint cannot load their metadata (it never fetches)
    # but checks everything else: needs, expressions, job outputs, permissions, concurrency.
    _write_both(tmp_path, ref=SHA)
    proc = _run([_tool("actionlint"), "-no-color", "-oneline", "-shellcheck", _tool("shellcheck")], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- the commands ----------------------------------------------------------------------------------

def test_render_prints_and_writes(project):
    result = CliRunner().invoke(mlci_gen, ["render", "--ci", "gitlab", "--ref", "1.2.0"])
    assert result.exit_code == 0, result.output
    assert "$CI_SERVER_FQDN/org/ml-cicd/gate@1.2.0" in result.output
    result = CliRunner().invoke(mlci_gen, ["render", "--ci", "github", "--output", "wf.yml"])
    assert result.exit_code == 0, result.output
    assert (project / "wf.yml").read_text(encoding="utf-8").startswith(pipeline.GENERATED)
    result = CliRunner().invoke(mlci_gen, ["render", "--ci", "github", "--config", "missing.yaml"])
    assert result.exit_code == 2 and "config file not found" in result.output


def test_check_passes_when_clean_and_reports_drift(project):
    runner = CliRunner()
    assert runner.invoke(mlci_gen, ["render", "--ci", "github", "--output", pipeline.PIPELINE_PATHS["github"]]
                         ).exit_code == 0
    assert runner.invoke(mlci_gen, ["render", "--ci", "gitlab", "--ref", "2", "--output", ".gitlab-ci.yml"]
                         ).exit_code == 0
    result = runner.invoke(mlci_gen, ["check"])
    assert result.exit_code == 0, result.output
    assert ".gitlab-ci.yml: up to date" in result.output
    gl = project / ".gitlab-ci.yml"
    gl.write_text(gl.read_text(encoding="utf-8").replace('"when": "manual"', '"when": "always"'), encoding="utf-8")
    result = runner.invoke(mlci_gen, ["check"])
    assert result.exit_code == 1
    assert "drift: .gitlab-ci.yml" in result.output and '{"when": "manual"}]' in result.output
    (project / "mlci.yaml").write_text("version: 1\ndata: {}\n", encoding="utf-8")
    result = runner.invoke(mlci_gen, ["check"])
    assert result.exit_code == 2 and "mlci.yaml" in result.output


def test_check_accepts_hand_written_pipelines(project):
    (project / ".gitlab-ci.yml").write_text("job:\n  script: [true]\n", encoding="utf-8")
    result = CliRunner().invoke(mlci_gen, ["check"])
    assert result.exit_code == 0 and ".gitlab-ci.yml: not generated by mlci-gen render" in result.output


HAND_WRITTEN = """\
stages: [deploy]
include:
  - component: $CI_SERVER_FQDN/org/ml-cicd/deploy-canary@1.0.0
    inputs:
{inputs}
  - component: $CI_SERVER_FQDN/other/project/deploy-canary@1.0.0
    inputs: {{anything: goes}}
"""


@pytest.mark.parametrize(("inputs", "message"), [
    ("      canary-wieght: '10'", "unknown input 'canary-wieght': did you mean 'canary-weight'?"),
    ("      canary-weight: 'ten'", "input 'canary-weight' is 'ten', which does not match"),
    ("      canary-weight: 10", "input 'canary-weight' expects a string, got 10 (quote it)"),
    ("      rules: manual", "input 'rules' expects an array, got 'manual'"),
])
def test_check_rejects_inputs_a_component_does_not_accept(project, inputs, message):
    """GitLab refuses these at pipeline creation; gitlab-ci-local runs them. The check names the fix."""
    (project / ".gitlab-ci.yml").write_text(HAND_WRITTEN.format(inputs=inputs), encoding="utf-8")
    result = CliRunner().invoke(mlci_gen, ["check"])
    assert result.exit_code == 2, result.output
    assert f"error: .gitlab-ci.yml: include[0] ($CI_SERVER_FQDN/org/ml-cicd/deploy-canary@1.0.0): {message}" \
        in result.output
    assert "include[1]" not in result.output  # another project's component is not ours to judge


def test_check_accepts_valid_component_inputs(project):
    (project / ".gitlab-ci.yml").write_text(HAND_WRITTEN.format(inputs="      canary-weight: '10'"),
                                            encoding="utf-8")
    result = CliRunner().invoke(mlci_gen, ["check"])
    assert result.exit_code == 0, result.output


WHOLE_PIPELINE = """\
include:
  - component: $CI_SERVER_FQDN/org/ml-cicd/full-pipeline@{pin}
{inputs}
"""


@pytest.mark.parametrize(("pin", "inputs", "runs"), [
    ("1.4.2", "", "at the default ref '1' (the latest 1.x.y)"),
    ("1.4.2", "    inputs: {ref: '1.4'}", "at ref '1.4'"),
    ("0123456789abcdef0123456789abcdef01234567", "", "at the default ref '1'"),
])
def test_check_refuses_a_pinned_whole_pipeline_whose_stages_follow_another_ref(project, pin, inputs, runs):
    """full-pipeline@1.4.2 alone runs the newest 1.x.y stages: the pin the user reviewed would not hold."""
    (project / ".gitlab-ci.yml").write_text(WHOLE_PIPELINE.format(pin=pin, inputs=inputs), encoding="utf-8")
    result = CliRunner().invoke(mlci_gen, ["check"])
    assert result.exit_code == 2, result.output
    assert f"full-pipeline@{pin}): pinned at {pin}, but it includes the stage components {runs}" in result.output
    assert f'add `ref: "{pin}"` to its inputs' in result.output


@pytest.mark.parametrize(("pin", "inputs"), [("1.4.2", "    inputs: {ref: '1.4.2'}"), ("1", ""), ("1.4", "")])
def test_check_accepts_a_whole_pipeline_pinned_alike_or_following_a_major(project, pin, inputs):
    (project / ".gitlab-ci.yml").write_text(WHOLE_PIPELINE.format(pin=pin, inputs=inputs), encoding="utf-8")
    result = CliRunner().invoke(mlci_gen, ["check"])
    assert result.exit_code == 0, result.output


def test_init_writes_config_and_both_pipelines_and_refuses_to_overwrite(tmp_path):
    shutil.copytree(EXAMPLE / "data", tmp_path / "data")
    runner = CliRunner()
    result = runner.invoke(mlci_gen, ["init", "--dir", str(tmp_path), "--ci", "github,gitlab"])
    assert result.exit_code == 0, result.output
    for rel in ("mlci.yaml", *pipeline.PIPELINE_PATHS.values()):
        assert (tmp_path / rel).is_file(), rel
    assert commands.check("mlci.yaml", echo=lambda _: None, root=tmp_path) == 0
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    result = runner.invoke(mlci_gen, ["init", "--dir", str(tmp_path), "--ci", "gitlab"])
    assert result.exit_code == 2 and "--force" in result.output
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    result = runner.invoke(mlci_gen, ["init", "--dir", str(tmp_path), "--ci", "gitlab", "--force"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(mlci_gen, ["init", "--dir", str(tmp_path), "--ci", "jenkins", "--force"])
    assert result.exit_code == 2 and "jenkins" in result.output


# --- this repo's whole-pipeline entry points (rendered by mlci-gen sync) --------------------------

def test_reusable_workflow_is_the_render_with_workflow_call_inputs(tmp_path):
    doc = yaml.safe_load((REPO / ".github/workflows/ml-pipeline.yml").read_text(encoding="utf-8"))
    on = doc.pop(True)
    assert set(on["workflow_call"]["inputs"]) == {"config", "ref"}
    assert on["workflow_call"]["outputs"]["report-url"]["value"] == "${{ jobs.report.outputs.report-url }}"
    # Never the caller's github.workflow; a pull request's runs get their own group.
    assert doc["concurrency"]["group"] == "mlci-pipeline-${{ github.event.pull_request.number || 'release' }}"
    # A called workflow's job may not ask for more than the caller grants, whatever its `if:`: the
    # comment job (pull-requests: write) is the caller's, as the header shows.
    assert list(doc["jobs"]) == [*STAGE_IDS, "report"]
    assert "pull-requests: write" not in yaml.safe_dump(doc)
    aws_jobs = {"build-image", "deploy-canary", "monitor-canary", "promote", "rollback"}
    for job_id in STAGE_IDS:
        job = doc["jobs"][job_id]
        stage = next(step for step in job["steps"] if step.get("id") == "stage")
        # `./actions/x` would resolve in the caller's checkout: the published address is used.
        assert stage["uses"] == f"org/ml-cicd/actions/{job_id}@v1"
        assert stage["with"]["config"] == "${{ inputs.config }}"
        assert job["steps"][0]["with"]["ref"] == "${{ inputs.ref }}"
        # It cannot read the caller's mlci.yaml: the jobs that may talk to AWS (ecs, ECR) assume
        # the role of the repository variable AWS_ROLE_ARN when it is set, and no other job does.
        aws = [step for step in job["steps"] if "configure-aws-credentials" in str(step.get("uses", ""))]
        if job_id in aws_jobs:
            assert [(a["if"], a["with"]) for a in aws] == [("${{ vars.AWS_ROLE_ARN != '' }}", {
                "role-to-assume": "${{ vars.AWS_ROLE_ARN }}", "aws-region": "${{ vars.AWS_REGION }}"})], job_id
            assert job["permissions"]["id-token"] == "write", job_id
        else:
            assert not aws and "id-token" not in job.get("permissions", {}), job_id
    assert doc["jobs"]["report"]["steps"][1]["uses"] == "org/ml-cicd/actions/report@v1"
    root = tmp_path
    (root / ".git").mkdir()
    shutil.copytree(REPO / ".github", root / ".github")
    proc = _zizmor(root)
    assert proc.returncode == 0 and "No findings" in proc.stdout, proc.stdout + proc.stderr
    proc = _run([_tool("actionlint"), "-no-color", "-oneline", "-shellcheck", _tool("shellcheck")], cwd=root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = _run([_tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows",
                 str(root / ".github/workflows/ml-pipeline.yml")])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_full_pipeline_component_includes_every_stage(tmp_path):
    spec, body = yaml.safe_load_all((REPO / "templates/full-pipeline.yml").read_text(encoding="utf-8"))
    # Without the includer's config, the jobs that may talk to AWS get a token for STS (used only
    # with the CI/CD variable AWS_ROLE_ARN); no other job gets one.
    tokens = {job: set(body[job].get("id_tokens", {})) for job in body if job.startswith("mlci-")}
    assert {job for job, names in tokens.items() if "AWS_ID_TOKEN" in names} == {
        f"mlci-{s}" for s in ("build-image", "deploy-canary", "monitor-canary", "promote", "rollback")}
    assert all(body[job]["id_tokens"]["AWS_ID_TOKEN"] == {"aud": "sts.amazonaws.com"}
               for job, names in tokens.items() if "AWS_ID_TOKEN" in names)
    assert list(spec["spec"]["inputs"]) == ["config", "source", "ref"]
    components = [i["component"] for i in body["include"]]
    assert components == [f"$CI_SERVER_FQDN/$[[ inputs.source ]]/{s}@$[[ inputs.ref ]]" for s in (*STAGE_IDS, "report")]
    assert "workflow" not in body  # when the pipeline runs is the includer's decision
    # Both halves match the schema; the body as GitLab sees it with the default inputs.
    defaults = {k: v["default"] for k, v in spec["spec"]["inputs"].items()}
    files = [tmp_path / "spec.yml", tmp_path / "body.yml"]
    files[0].write_text(yaml.safe_dump(spec))
    files[1].write_text(yaml.safe_dump(ru.interpolate_inputs(body, defaults)))
    proc = _run([_tool("check-jsonschema"), "--builtin-schema", "vendor.gitlab-ci", *map(str, files)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
