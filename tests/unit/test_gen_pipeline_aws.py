"""Rendered pipelines for a target on AWS: OIDC credentials (never stored keys) in the jobs that
talk to AWS, and `mlci-gen check`'s warnings for a config that cannot work on separate runners."""

import shutil

import pytest
import yaml
from click.testing import CliRunner
from test_ci_yaml_lint import _run, _tool
from test_gen_pipeline import EXAMPLE, SHA

from mlcicd.cli import mlci_gen
from mlcicd.config import load_config
from mlcicd.gen import pipeline

ECS = """
deploy:
  target: ecs
  ecs:
    region: eu-central-1
    cluster: ml
    service_name: credit-risk
    subnets: [subnet-1]
    security_groups: [sg-1]
    listener_arn: arn:aws:elasticloadbalancing:eu-central-1:123456789012:listener/app/ml/1/2
    execution_role_arn: arn:aws:iam::123456789012:role/ecsTaskExecutionRole
"""
ECR = "\nimage:\n  registry: 123456789012.dkr.ecr.eu-west-1.amazonaws.com\n  repository: credit-risk\n"
# The jobs that drive or read the target (monitor-canary reads the services and CloudWatch).
DEPLOYS = {"deploy-canary", "monitor-canary", "promote", "rollback"}


@pytest.fixture
def ecs_project(tmp_path, monkeypatch):
    root = tmp_path / "repo"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".mlci", "mlruns", "*.db"))
    raw = yaml.safe_load((root / "mlci.yaml").read_text(encoding="utf-8"))
    raw["mlflow"]["tracking_uri"] = "https://mlflow.example.com"
    raw.pop("image", None)
    raw["deploy"] = {**raw.get("deploy", {}), **yaml.safe_load(ECS)["deploy"]}
    raw["deploy"].pop("local", None)
    raw.update(yaml.safe_load(ECR))
    (root / "mlci.yaml").write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    monkeypatch.chdir(root)
    return root


def _render(ci, root, **kw):
    return pipeline.render(pipeline.options(ci, **kw), load_config(root / "mlci.yaml"))


def test_github_jobs_that_talk_to_aws_assume_a_role_by_oidc(ecs_project):
    doc = yaml.safe_load(_render("github", ecs_project, ref=SHA))
    for job_id, job in doc["jobs"].items():
        creds = [s for s in job["steps"] if s.get("uses", "").startswith("aws-actions/configure-aws-credentials@")]
        if job_id in DEPLOYS or job_id == "build-image":  # build-image pushes to ECR
            assert job["permissions"]["id-token"] == "write", job_id
            (step,) = creds
            assert step["uses"].split("@")[1] == pipeline.AWS_CREDENTIALS.split("@")[1].split()[0]
            assert len(step["uses"].split("@")[1]) == 40  # pinned by commit
            assert step["with"]["role-to-assume"] == "${{ vars.AWS_ROLE_ARN }}"
            region = "eu-west-1" if job_id == "build-image" else "eu-central-1"
            assert step["with"]["aws-region"] == region
            # The credentials step comes before the stage that needs them.
            assert job["steps"].index(step) < next(i for i, s in enumerate(job["steps"]) if s.get("id") == "stage")
        else:  # the report and comment jobs ask for their own permissions (never id-token)
            assert not creds and "id-token" not in job.get("permissions", {}), job_id
    text = _render("github", ecs_project, ref=SHA)
    assert "AWS_ACCESS_KEY_ID" not in text and "secrets." not in text


def test_gitlab_jobs_that_talk_to_aws_get_an_sts_audience_id_token(ecs_project):
    doc = yaml.safe_load(_render("gitlab", ecs_project, ref="1.2.0"))
    for stage in [*DEPLOYS, "build-image"]:
        job = doc[f"mlci-{stage}"] if f"mlci-{stage}" in doc else doc[stage]
        assert job["id_tokens"] == {"AWS_ID_TOKEN": {"aud": "sts.amazonaws.com"}}, stage
    gate = doc["mlci-gate"] if "mlci-gate" in doc else doc["gate"]
    assert "id_tokens" not in gate


def test_the_linters_accept_the_aws_pipelines(ecs_project):
    for ci, rel in pipeline.PIPELINE_PATHS.items():
        opts = pipeline.options(ci, ref=SHA if ci == "github" else "1.2.0", output=rel)
        pipeline.write_pipeline(opts, _render(ci, ecs_project, ref=opts.ref), force=True, root=ecs_project)
    for schema, rel in (("vendor.github-workflows", pipeline.PIPELINE_PATHS["github"]),
                        ("vendor.gitlab-ci", pipeline.PIPELINE_PATHS["gitlab"])):
        proc = _run([_tool("check-jsonschema"), "--builtin-schema", schema, rel], cwd=ecs_project)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = _run([_tool("zizmor"), "--offline", "--no-config", "--no-progress", "--persona", "auditor",
                 pipeline.PIPELINE_PATHS["github"]], cwd=ecs_project)
    assert proc.returncode == 0 and "No findings" in proc.stdout, proc.stdout + proc.stderr
    _run(["git", "init", "-q", "."], cwd=ecs_project)  # actionlint looks for the repository root
    proc = _run([_tool("actionlint"), "-no-color", "-oneline", "-shellcheck", _tool("shellcheck")], cwd=ecs_project)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_check_warns_when_separate_runners_meet_a_local_target_or_a_file_store(tmp_path, monkeypatch):
    root = tmp_path / "repo"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".mlci", "mlruns", "*.db"))
    monkeypatch.chdir(root)
    runner = CliRunner()
    result = runner.invoke(mlci_gen, ["check"])
    assert result.exit_code == 0 and "warning: deploy.target" not in result.output  # no pipeline: a laptop is fine
    assert "is a file on one runner" not in result.output
    result = runner.invoke(mlci_gen, ["render", "--ci", "github", "--output", pipeline.PIPELINE_PATHS["github"]])
    assert result.exit_code == 0
    assert "warning: deploy.target is `local`" in result.output and "mlflow.tracking_uri" in result.output
    result = runner.invoke(mlci_gen, ["check"])
    assert result.exit_code == 0, result.output
    assert "warning: deploy.target is `local`" in result.output and "deploy.target: ecs" in result.output
    assert "is a file on one runner" in result.output and "tracking server" in result.output
    workflow = (root / pipeline.PIPELINE_PATHS["github"]).read_text(encoding="utf-8")
    assert "# WARNING: deploy.target is local" in workflow


def test_no_warning_for_a_remote_target_and_a_tracking_server(ecs_project):
    runner = CliRunner()
    result = runner.invoke(mlci_gen, ["render", "--ci", "gitlab", "--output", ".gitlab-ci.yml"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(mlci_gen, ["check"])
    assert result.exit_code == 0, result.output
    assert "warning: deploy.target" not in result.output and "one runner" not in result.output, result.output
    assert "WARNING" not in (ecs_project / ".gitlab-ci.yml").read_text(encoding="utf-8")
