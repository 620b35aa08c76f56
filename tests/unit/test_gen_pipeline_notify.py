"""Rendered pipelines with `notify:`: each job that can send an event some target listens to gets
that target's secret (GitHub: mapped in the job's env:) or AWS credentials for SNS (GitHub: the
OIDC step and id-token: write; GitLab: an id_tokens entry), and no other job gets anything."""

import shutil

import pytest
import yaml
from test_ci_yaml_lint import _run, _tool
from test_gen_pipeline import EXAMPLE, SHA
from test_gen_pipeline_aws import ECS

from mlcicd.catalog import STAGE_IDS
from mlcicd.config import load_config
from mlcicd.config_notify import EVENTS
from mlcicd.gen import pipeline, pipeline_check
from mlcicd.gen.surfaces import job_name
from mlcicd.notify.events import event_of
from mlcicd.report import Check, StageResult, Status, Verdict

CREDENTIALS = pipeline.AWS_CREDENTIALS.split()[0]
# slack on rollback only, the webhook on every event, SNS on drift (in a region of its own).
NOTIFY = {
    "slack": {"webhook_url_env": "OPS_SLACK_URL", "on": ["rollback"]},
    "webhook": {"url": "https://ops.example.com/mlci", "secret_env": "OPS_HOOK_KEY"},
    "sns": {"topic_arn": "arn:aws:sns:us-east-2:123456789012:ml-alerts", "on": ["drift"]},
}
SLACK = {"rollback"}
WEBHOOK = {"validate-data", "gate", "monitor-canary", "promote", "rollback"}
SNS = {"validate-data"}


def _project(tmp_path, monkeypatch, notify, *, ecs=False):
    root = tmp_path / "repo"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".mlci", "mlruns", "*.db"))
    raw = yaml.safe_load((root / "mlci.yaml").read_text(encoding="utf-8"))
    raw["notify"] = notify
    if ecs:
        raw["deploy"] = {**raw.get("deploy", {}), **yaml.safe_load(ECS)["deploy"]}
        raw["deploy"].pop("local", None)
    (root / "mlci.yaml").write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    monkeypatch.chdir(root)
    return root


@pytest.fixture
def project(tmp_path, monkeypatch):
    return _project(tmp_path, monkeypatch, NOTIFY)


def _render(ci, root, ref):
    return pipeline.render(pipeline.options(ci, ref=ref), load_config(root / "mlci.yaml"))


def _github(root):
    doc = yaml.safe_load(_render("github", root, SHA))
    doc["on"] = doc.pop(True)
    return doc


def _gitlab(root):
    return yaml.safe_load(_render("gitlab", root, "1.2.0"))


def _credentials(job):
    return [s for s in job["steps"] if s.get("uses", "").startswith("aws-actions/configure-aws-credentials@")]


# --- which stage sends which event ---------------------------------------------------------------

def _result(stage, verdict, outputs=None, **figures):
    return StageResult(stage, verdict, "s", outputs=outputs or {}, figures=figures)


def test_event_stages_are_the_stages_event_of_says_send_each_event():
    assert set(pipeline.EVENT_STAGES) == set(EVENTS) and set(pipeline.EVENT_STAGES.values()) <= set(STAGE_IDS)
    sent = {"rollback": _result("rollback", Verdict.PASS, {"rolled-back-version": "3"}),
            "promote": _result("promote", Verdict.PASS),
            "inconclusive": _result("monitor-canary", Verdict.INCONCLUSIVE),
            "gate-failed": _result("gate", Verdict.FAIL),
            "drift": _result("validate-data", Verdict.PASS, {"drifted-features": "age"})}
    for event, result in sent.items():
        assert event_of(result) == event and result.stage == pipeline.EVENT_STAGES[event]
    # Any other stage, whatever its result, is no event: its job needs no target's secret.
    outputs = {"rolled-back-version": "3", "drifted-features": "age", "champion-version": "2"}
    for stage in set(STAGE_IDS) - set(pipeline.EVENT_STAGES.values()):
        for verdict in Verdict:
            assert event_of(_result(stage, verdict, outputs)) is None, (stage, verdict)
    converged = _result("promote", Verdict.PASS)
    converged.checks.append(Check("converged", Status.PASS, "nothing to do"))
    assert event_of(converged) is None  # a re-run that changed nothing tells nobody


# --- GitHub --------------------------------------------------------------------------------------

def test_github_maps_each_secret_exactly_into_the_jobs_that_can_send_to_its_target(project):
    doc = _github(project)
    for job_id, job in doc["jobs"].items():
        want = {}
        if job_id in SLACK:
            want["OPS_SLACK_URL"] = "${{ secrets.OPS_SLACK_URL }}"
        if job_id in WEBHOOK:
            want["OPS_HOOK_KEY"] = "${{ secrets.OPS_HOOK_KEY }}"
        assert job.get("env", {}) == want, job_id
        for key, node in job.items():  # nowhere else: not in with:, not in a step's env or run
            if key != "env":
                assert "secrets" not in yaml.safe_dump(node), (job_id, key)
    assert "secrets" not in yaml.safe_dump({k: v for k, v in doc.items() if k != "jobs"})
    # The slack and the webhook secret, in that order (deterministic output).
    assert list(doc["jobs"]["rollback"]["env"]) == ["OPS_SLACK_URL", "OPS_HOOK_KEY"]


def test_github_gives_aws_credentials_only_to_the_jobs_that_publish_to_sns(project):
    doc = _github(project)
    for job_id, job in doc["jobs"].items():
        creds = _credentials(job)
        if job_id in SNS:
            assert job["permissions"] == {"contents": "read", "id-token": "write"}
            (step,) = creds
            assert step["uses"] == CREDENTIALS
            assert step["with"] == {"role-to-assume": "${{ vars.AWS_ROLE_ARN }}", "aws-region": "us-east-2"}
            # Credentials only for a notification: a run without them (a fork's pull request) still passes.
            assert step["continue-on-error"] is True
            assert job["steps"].index(step) < next(i for i, s in enumerate(job["steps"]) if s.get("id") == "stage")
        else:
            assert not creds, job_id
            # The local target's deploy jobs keep their OIDC token for the target; no other job has one.
            assert "id-token" not in job.get("permissions", {}) or job_id in {"deploy-canary", "promote", "rollback"}


def test_github_sns_region_override_and_every_event(tmp_path, monkeypatch):
    notify = {"sns": {"topic_arn": "arn:aws:sns:us-east-2:123456789012:ml-alerts", "region": "eu-north-1"}}
    doc = _github(_project(tmp_path, monkeypatch, notify))
    for job_id, job in doc["jobs"].items():
        creds = _credentials(job)
        if job_id in WEBHOOK:  # every stage that sends an event
            assert [s["with"]["aws-region"] for s in creds] == ["eu-north-1"], job_id
            assert job["permissions"]["id-token"] == "write"
        else:
            assert not creds, job_id
        assert "env" not in job  # SNS needs no secret


def test_github_jobs_that_already_talk_to_aws_publish_with_the_same_credentials(tmp_path, monkeypatch):
    notify = {"sns": {"topic_arn": "arn:aws:sns:us-east-2:123456789012:ml-alerts", "on": ["rollback", "drift"]}}
    doc = _github(_project(tmp_path, monkeypatch, notify, ecs=True))
    jobs = doc["jobs"]
    # rollback already assumes the role for ECS: one credentials step, in the target's region.
    (step,) = _credentials(jobs["rollback"])
    assert step["with"]["aws-region"] == "eu-central-1" and "continue-on-error" not in step  # ECS needs them
    assert [s["with"]["aws-region"] for s in _credentials(jobs["validate-data"])] == ["us-east-2"]
    assert not _credentials(jobs["gate"]) and not _credentials(jobs["train"])


def test_github_without_notify_is_unchanged(tmp_path, monkeypatch):
    plain = _project(tmp_path / "a", monkeypatch, {})
    text = _render("github", plain, SHA)
    assert "secrets." not in text and "sns:Publish" not in text
    assert "aws-actions/configure-aws-credentials" not in text  # the local target talks to no cloud
    gitlab = _render("gitlab", plain, "1.2.0")
    assert "AWS_ID_TOKEN" not in gitlab and "sns:Publish" not in gitlab


def test_the_rendering_is_deterministic(project):
    assert _render("github", project, SHA) == _render("github", project, SHA)
    assert _render("gitlab", project, "1.2.0") == _render("gitlab", project, "1.2.0")


def test_the_github_check_refuses_secrets_outside_a_jobs_env(project):
    text = _render("github", project, SHA)
    pipeline_check.check_pipeline("github", text)
    bad = {
        # into an action's input
        "validate-data reads a secret outside its env": text.replace(
            '          config: "mlci.yaml"\n', '          config: "${{ secrets.OPS_HOOK_KEY }}"\n', 1),
        # the whole secrets context
        "map one secret as": text.replace('"${{ secrets.OPS_HOOK_KEY }}"', '"${{ toJSON(secrets) }}"', 1),
        # for every job
        "a secret for every job": text.replace(
            "permissions:\n", "env:\n  K: ${{ secrets.OPS_HOOK_KEY }}\npermissions:\n", 1),
        # an OIDC token for the report job
        "job report asks for an OIDC token": text.replace(
            "contents: read  # nothing to write", "id-token: write\n      contents: read  # nothing", 1),
    }
    for message, broken in bad.items():
        assert broken != text
        with pytest.raises(pipeline_check.PipelineCheckError, match=message):
            pipeline_check.check_pipeline("github", broken)


def test_zizmor_actionlint_and_the_schema_accept_the_notify_workflow(project):
    path = pipeline.PIPELINE_PATHS["github"]
    opts = pipeline.options("github", ref=SHA, output=path)
    pipeline.write_pipeline(opts, _render("github", project, SHA), force=True, root=project)
    proc = _run([_tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", path], cwd=project)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = _run([_tool("zizmor"), "--offline", "--no-config", "--no-progress", "--persona", "auditor", path],
                cwd=project)
    assert proc.returncode == 0 and "No findings" in proc.stdout, proc.stdout + proc.stderr
    _run(["git", "init", "-q", "."], cwd=project)  # actionlint looks for the repository root
    proc = _run([_tool("actionlint"), "-no-color", "-oneline", "-shellcheck", _tool("shellcheck")], cwd=project)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- GitLab --------------------------------------------------------------------------------------

def _gl_job(doc, stage):
    return doc[job_name(stage)]


def test_gitlab_gives_an_sts_id_token_only_to_the_jobs_that_publish_to_sns(project):
    doc = _gitlab(project)
    for stage in STAGE_IDS:
        tokens = _gl_job(doc, stage).get("id_tokens", {})
        assert ("AWS_ID_TOKEN" in tokens) == (stage in SNS), stage
        if stage in SNS:
            assert tokens["AWS_ID_TOKEN"] == {"aud": "sts.amazonaws.com"}
    # CI/CD variables reach every job by themselves: no secret is named in the file.
    assert "OPS_SLACK_URL" not in yaml.safe_dump(doc) and "OPS_HOOK_KEY" not in yaml.safe_dump(doc)


def test_gitlab_a_deploy_job_keeps_its_target_token_beside_the_sns_one(tmp_path, monkeypatch):
    notify = {"sns": {"topic_arn": "arn:aws:sns:us-east-2:123456789012:ml-alerts", "on": ["rollback"]}}
    doc = _gitlab(_project(tmp_path, monkeypatch, notify))
    assert _gl_job(doc, "rollback")["id_tokens"] == {"AWS_ID_TOKEN": {"aud": "sts.amazonaws.com"},
                                                     "MLCI_ID_TOKEN": {"aud": "$CI_SERVER_URL"}}
    assert _gl_job(doc, "promote")["id_tokens"] == {"MLCI_ID_TOKEN": {"aud": "$CI_SERVER_URL"}}
    assert "id_tokens" not in _gl_job(doc, "validate-data")


def test_gitlab_an_ecs_job_has_one_aws_token(tmp_path, monkeypatch):
    notify = {"sns": {"topic_arn": "arn:aws:sns:us-east-2:123456789012:ml-alerts", "on": ["rollback", "drift"]}}
    doc = _gitlab(_project(tmp_path, monkeypatch, notify, ecs=True))
    assert _gl_job(doc, "rollback")["id_tokens"] == {"AWS_ID_TOKEN": {"aud": "sts.amazonaws.com"}}
    assert _gl_job(doc, "validate-data")["id_tokens"] == {"AWS_ID_TOKEN": {"aud": "sts.amazonaws.com"}}
    assert "id_tokens" not in _gl_job(doc, "gate")


def test_check_jsonschema_accepts_the_notify_gitlab_pipeline(project):
    path = pipeline.PIPELINE_PATHS["gitlab"]
    (project / path).write_text(_render("gitlab", project, "1.2.0"), encoding="utf-8")
    proc = _run([_tool("check-jsonschema"), "--builtin-schema", "vendor.gitlab-ci", path], cwd=project)
    assert proc.returncode == 0, proc.stdout + proc.stderr
