"""The pipeline `mlci-gen render --ci gitlab` writes, run by gitlab-ci-local.

The consumer's `.gitlab-ci.yml` includes `$CI_SERVER_FQDN/org/ml-cicd/<stage>@1.0.0`:
gitlab-ci-local fetches those components from a bare git repository of this checkout
tagged 1.0.0 (a per-URL `insteadOf` points the project's address at it), exactly the files
a release tag would hold. Jobs run in the shell executor with a Python that has ml-cicd
installed from a wheel of the same checkout (the `package` input's job). Outputs reach
later jobs as dotenv reports; promote is a manual job; rollback runs on failure. The same
releases run again for `target: ecs` on AWS (moto), authenticated by the jobs' id token. The report
component's job collects every stage report into one HTML report; in a merge-request pipeline
(validate-data, train and gate only) it also comments on a GitLab-like API
(tests/support/fake_services.py). Artifacts land in gitlab-ci-local's store
(.gitlab-ci-local/artifacts/<job>/).
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from consumer import BAD_TRAINING, GOOD_TRAINING, Consumer, git
from ecs_project import EcsConsumer
from fake_services import fake_services
from runners import NODE_BIN, Images, clean_env, tool

from mlcicd.delivery.targets.processes import free_port

pytestmark = pytest.mark.e2e

HOST = "gitlab.example.com"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
JOB_RESULT = re.compile(r"^\s*(PASS|FAIL|WARN)\s+(\S+)\s*$")


@dataclass
class GitlabRun:
    code: int
    log: str
    results: dict[str, str] = field(default_factory=dict)  # job -> PASS / FAIL / WARN
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)  # job -> dotenv report

    reports: dict[str, str] = field(default_factory=dict)  # job -> its stage's Markdown report

    def tail(self, lines: int = 80) -> str:
        return "\n".join(self.log.splitlines()[-lines:])

    def why(self) -> str:
        """The reports of the jobs that failed, then the log's tail: what an assertion should show."""
        failed = [f"--- {job}\n{self.reports.get(job, '(no report)')}"
                  for job, result in self.results.items() if result == "FAIL"]
        return "\n".join([*failed, self.tail(40)])


@dataclass
class GitlabLocal:
    binary: str
    env: dict[str, str]
    variables: list[str]

    def run(self, consumer: Consumer, *jobs: str, variables: tuple[str, ...] = ()) -> GitlabRun:
        state = consumer.root / ".gitlab-ci-local"
        if not jobs:  # a new pipeline: no dotenv report of an earlier one may be mistaken for this one's
            shutil.rmtree(state / "artifacts", ignore_errors=True)
        argv = [self.binary, "--force-shell-executor", "--shell-isolation", "--no-artifacts-to-source",
                *(a for v in (*self.variables, *variables) for a in ("--variable", v)), *jobs]
        proc = subprocess.run(argv, cwd=consumer.root, env=self.env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=1800)
        log = ANSI.sub("", proc.stdout + proc.stderr)
        run = GitlabRun(proc.returncode, log)
        for line in log.splitlines():
            m = JOB_RESULT.match(line)
            if m:
                run.results[m.group(2)] = m.group(1)
        for job in run.results:
            stage = job.removeprefix("mlci-")
            markdown = state / "artifacts" / job / "mlci-report" / f"{stage}.md"
            if markdown.is_file():
                run.reports[job] = markdown.read_text()
            report = state / "artifacts" / job / "mlci-report" / f"{stage}.env"
            if report.is_file():
                prefix = "MLCI_" + stage.upper().replace("-", "_") + "_"
                pairs = (line.split("=", 1) for line in report.read_text().splitlines() if "=" in line)
                run.outputs[job] = {k.removeprefix(prefix).lower().replace("_", "-"): v for k, v in pairs}
        return run


@pytest.fixture(scope="module")
def components(suite, tmp_path_factory) -> Path:
    """A bare repository of the checkout with tag 1.0.0: what GitLab serves for `@1.0.0`."""
    work = tmp_path_factory.mktemp("components")
    src = work / "src"
    shutil.copytree(suite, src)
    git(src, "init", "-q", "-b", "main")
    git(src, "add", "-A")
    git(src, "commit", "-q", "-m", "ml-cicd 1.0.0")
    git(src, "tag", "1.0.0")
    subprocess.run(["git", "clone", "-q", "--bare", str(src), str(work / "ml-cicd.git")], check=True)
    return work / "ml-cicd.git"


@pytest.fixture(scope="module")
def job_python(suite, tmp_path_factory) -> tuple[Path, Path]:
    """The jobs' Python: a venv with ml-cicd installed from a wheel of the checkout; (bin dir, wheel)."""
    work = tmp_path_factory.mktemp("job-python")
    python = Path(sys.base_prefix) / "bin" / "python3"
    subprocess.run([str(python), "-m", "venv", str(work / "venv")], check=True)
    pip = [str(work / "venv" / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "-w", str(work / "wheels"), str(suite)], check=True,
                   capture_output=True)
    wheel = next((work / "wheels").glob("ml_cicd-*.whl"))
    subprocess.run([*pip, "install", f"{wheel}[all]"], check=True, capture_output=True)
    return work / "venv" / "bin", wheel


@pytest.fixture(scope="module")
def gitlab_local(components, job_python, images: Images) -> GitlabLocal:
    binary = tool("gitlab-ci-local", NODE_BIN)
    bin_dir, wheel = job_python
    env = clean_env()
    env["PATH"] = f"{bin_dir}:{NODE_BIN}:{env['PATH']}"  # gitlab-ci-local needs the Node 22 next to it
    # The components read $[[ component.sha ]]: gitlab-ci-local resolves it with `git ls-remote` on
    # https://<host>:443/<project>.git, a third spelling of the same project.
    urls = [f"https://{HOST}/org/ml-cicd.git", f"git@{HOST}:org/ml-cicd.git", f"https://{HOST}:443/org/ml-cicd.git"]
    env["GIT_CONFIG_COUNT"] = str(len(urls))
    for i, url in enumerate(urls):
        env[f"GIT_CONFIG_KEY_{i}"] = f"url.{components.as_uri()}.insteadOf"
        env[f"GIT_CONFIG_VALUE_{i}"] = url
    # The `package` input installs ml-cicd in each job; here, from the checkout's wheel.
    return GitlabLocal(binary, env, [f"MLCI_PACKAGE={wheel}[all]", f"MLCI_BUILDAH_ROOT={images.storage}"])


@pytest.fixture(scope="module")
def consumer(tmp_path_factory, mlflow, images) -> Consumer:
    root = tmp_path_factory.mktemp("gl-consumer") / "repo"
    project = Consumer.create(root, model_name="credit-risk-gl", port=free_port(), tracking_uri=mlflow.url,
                              registry=images.registry, base_image=images.base,
                              state_dir=root.parent / "deploy-state", remote=f"https://{HOST}/group/consumer.git")
    (root / ".gitignore").write_text(".gitlab-ci-local/\nmlci-report/\n")
    project.render("gitlab", "1.0.0", ".gitlab-ci.yml")
    return project


@pytest.fixture(scope="module", autouse=True)
def stop_deployment(consumer):
    yield
    consumer.stop_deployment()


def test_gitlab_pipeline_releases_with_manual_promote_and_rolls_back(consumer, gitlab_local):
    registry = consumer.registry()
    with consumer.users() as users:
        # 1. First release: the pipeline stops before the manual promote job.
        consumer.set_training(GOOD_TRAINING.format(c=1.0))
        consumer.commit("first model")
        first = gitlab_local.run(consumer)
        assert first.code == 0, first.tail()
        # Not mlci-report: it needs rollback, which runs on failure only. GitLab marks an on_failure job
        # that does not fire `skipped` and runs what needs it; gitlab-ci-local waits for it forever
        # (its scheduler starts a job once everything it needs has finished). The bad run below has it.
        assert first.results == {job: "PASS" for job in (
            "mlci-validate-data", "mlci-train", "mlci-gate", "mlci-build-image", "mlci-deploy-canary",
            "mlci-monitor-canary")}, first.tail()
        artifacts = consumer.root / ".gitlab-ci-local" / "artifacts"
        assert (artifacts / "mlci-gate" / "mlci-report" / "gate.junit.xml").is_file()  # each job's reports
        assert first.outputs["mlci-gate"]["model-version"] == "1"
        assert first.outputs["mlci-build-image"]["digest"].startswith("sha256:")
        assert first.outputs["mlci-monitor-canary"]["decision"] == "promote"
        assert "champion" not in registry.aliases()  # nobody approved the promotion yet

        # Someone runs the manual job: it reads the earlier jobs' dotenv reports.
        promote = gitlab_local.run(consumer, "mlci-promote")
        assert promote.code == 0, promote.tail()
        assert promote.outputs["mlci-promote"]["champion-version"] == "1"
        assert registry.aliases() == {"champion": "1"}
        assert consumer.answering_versions() == {"1": 40}

        # 2. A bad challenger: the canary judgement fails, rollback runs on_failure.
        consumer.set_training(BAD_TRAINING)
        consumer.commit("drop the imputer")
        bad = gitlab_local.run(consumer)
        assert bad.code != 0
        assert bad.results["mlci-monitor-canary"] == "FAIL" and bad.results["mlci-rollback"] == "PASS", bad.tail()
        assert "mlci-promote" not in bad.results
        assert bad.outputs["mlci-rollback"]["rolled-back-version"] == "2"
        assert bad.outputs["mlci-rollback"]["champion-version"] == "1"
        # The report job ran after rollback, on every stage's report, rollback's included.
        assert bad.results["mlci-report"] == "PASS", bad.tail()
        html = (consumer.root / ".gitlab-ci-local" / "artifacts" / "mlci-report" / "mlci-report" / "report.html"
                ).read_text()
        assert "<svg" in html and "rollback" in html and "monitor-canary" in html
        assert registry.aliases() == {"champion": "1"}
        reason = registry.version("2").tags["mlci.rollback.reason"]
        assert reason == "canary failed monitoring (decision: rollback)"  # the dotenv variable arrived
        assert consumer.answering_versions() == {"1": 40}
    assert set(users.stats.as_dict()["versions"]) == {"1", "2"}


MERGE_REQUEST_STAGES = ("validate-data", "train", "gate")


def test_a_merge_request_runs_the_checks_and_the_gate_reports_and_comments(consumer, gitlab_local):
    """A merge-request pipeline: validate-data, train and gate (which does not register), then the
    report job, whose HTML report lands in the artifact store and whose comment in the MR's notes."""
    registry = consumer.registry()
    consumer.set_training(GOOD_TRAINING.format(c=0.7))
    consumer.commit("try C=0.7")
    aliases = registry.aliases()
    versions = len(registry.client.search_model_versions(f"name='{registry.model_name}'"))
    with fake_services() as api:  # GitLab's notes API on 127.0.0.1
        run = gitlab_local.run(consumer, variables=(
            "CI_PIPELINE_SOURCE=merge_request_event", "CI_MERGE_REQUEST_IID=7", f"CI_API_V4_URL={api.url}/api/v4",
            "CI_PROJECT_ID=42", f"MLCI_GITLAB_TOKEN={api.token}"))
        assert run.code == 0, run.tail()
        assert run.results == {f"mlci-{job}": "PASS" for job in (*MERGE_REQUEST_STAGES, "report")}, run.tail()
        assert run.outputs["mlci-gate"]["verdict"] == "pass" and not run.outputs["mlci-gate"].get("model-version")
        assert registry.aliases() == aliases  # the MR's gate never moves the challenger alias
        assert len(registry.client.search_model_versions(f"name='{registry.model_name}'")) == versions
        artifacts = consumer.root / ".gitlab-ci-local" / "artifacts"
        for stage in MERGE_REQUEST_STAGES:
            assert (artifacts / f"mlci-{stage}" / "mlci-report" / f"{stage}.json").is_file(), stage
        html = (artifacts / "mlci-report" / "mlci-report" / "report.html").read_text()
        assert "<svg" in html and all(stage in html for stage in MERGE_REQUEST_STAGES)
        (note,) = api.thread("gl:7")
        assert [r.method for r in api.to("/api/v4/", "POST")] == ["POST"]
        assert all(stage in note["body"] for stage in MERGE_REQUEST_STAGES) and "build-image" not in note["body"]
        assert "/artifacts/file/mlci-report/report.html" in note["body"]


def test_gitlab_ci_local_runs_a_mistyped_input_that_mlci_gen_check_rejects(consumer, gitlab_local, tmp_path):
    """gitlab-ci-local does not enforce a component's spec (GitLab does): `mlci-gen check` does."""
    typo = consumer.root / ".gitlab-ci.yml"
    original = typo.read_text()
    try:
        typo.write_text("stages: [deploy]\ninclude:\n"
                        "  - component: $CI_SERVER_FQDN/org/ml-cicd/deploy-canary@1.0.0\n"
                        "    inputs:\n      canary-wieght: '10'\n")
        listing = subprocess.run([gitlab_local.binary, "--list"], cwd=consumer.root, env=gitlab_local.env,
                                 capture_output=True, text=True, timeout=120)
        assert listing.returncode == 0 and "mlci-deploy-canary" in ANSI.sub("", listing.stdout)
        mlci_gen = Path(sys.executable).with_name("mlci-gen")
        check = subprocess.run([str(mlci_gen), "check"], cwd=consumer.root, capture_output=True, text=True)
        assert check.returncode == 2, check.stdout + check.stderr
        assert "unknown input 'canary-wieght': did you mean 'canary-weight'?" in check.stdout
    finally:
        typo.write_text(original)


def test_the_full_pipeline_component_runs_every_stage(tmp_path, mlflow, images, gitlab_local):
    """`component: .../full-pipeline@1.0.0`: one include that brings all eight stage components."""
    root = tmp_path / "repo"
    project = Consumer.create(root, model_name="credit-risk-full", port=free_port(), tracking_uri=mlflow.url,
                              registry=images.registry, base_image=images.base, state_dir=tmp_path / "deploy-state",
                              remote=f"https://{HOST}/group/full.git")
    (root / ".gitignore").write_text(".gitlab-ci-local/\nmlci-report/\n")
    (root / ".gitlab-ci.yml").write_text(
        "include:\n"
        "  - component: $CI_SERVER_FQDN/org/ml-cicd/full-pipeline@1.0.0\n"
        "    inputs: {ref: 1.0.0}\n")
    project.commit("use the whole pipeline")
    try:
        with project.users():
            run = gitlab_local.run(project)
            assert run.code == 0, run.tail()
            assert run.results["mlci-monitor-canary"] == "PASS" and "mlci-promote" not in run.results
            assert run.outputs["mlci-gate"]["model-version"] == "1"
            promote = gitlab_local.run(project, "mlci-promote")
            assert promote.code == 0, promote.tail()
            assert project.registry().aliases() == {"champion": "1"}
            assert project.answering_versions() == {"1": 40}
    finally:
        project.stop_deployment()


# --- target: ecs -------------------------------------------------------------------------------
# The same pipeline for `target: ecs` on AWS (moto, with the rig's data plane playing the ECS
# tasks, the ALB and CloudWatch's ALB metrics; see test_github_act). The jobs that talk to AWS
# carry `id_tokens: AWS_ID_TOKEN` (audience sts.amazonaws.com) and ml-cicd assumes the CI/CD
# variable AWS_ROLE_ARN with that token (AssumeRoleWithWebIdentity against moto's STS). GitLab
# mints the token; gitlab-ci-local has no OIDC provider, so the test hands the jobs one as a
# variable of the same name. The runner's own environment holds no AWS credentials at all.
ROLE = "arn:aws:iam::123456789012:role/mlci-deploy"


@pytest.fixture(scope="module")
def ecs_consumer(tmp_path_factory, moto, mlflow, images) -> Iterator[EcsConsumer]:
    consumer = EcsConsumer.create_on(tmp_path_factory.mktemp("gl-ecs"), model_name="credit-risk-gl-ecs",
                                     tracking_uri=mlflow.url, images=images,
                                     remote=f"https://{HOST}/group/consumer-ecs.git")
    (consumer.root / ".gitignore").write_text(".gitlab-ci-local/\nmlci-report/\n")
    consumer.render("gitlab", "1.0.0", ".gitlab-ci.yml")
    try:
        yield consumer
    finally:
        consumer.stop_deployment()


def test_ecs_pipeline_releases_with_manual_promote_rolls_back_and_promotes(ecs_consumer, moto, gitlab_local):
    consumer = ecs_consumer
    runner = dataclasses.replace(gitlab_local, variables=[
        *gitlab_local.variables, f"AWS_ROLE_ARN={ROLE}", "AWS_ID_TOKEN=e2e-oidc-token",
        f"AWS_ENDPOINT_URL={moto.url}"])
    assert not any(k.startswith("AWS_") for k in runner.env)  # nothing but the id token gives a job AWS
    registry = consumer.registry()
    with consumer.users(rate=40) as users:  # through the ALB
        # 1. First release: judged on absolute limits, then promoted by someone running the manual job.
        consumer.set_training(GOOD_TRAINING.format(c=1.0))
        consumer.commit("first model")
        first = runner.run(consumer)
        assert first.code == 0, first.why()
        assert first.outputs["mlci-monitor-canary"]["decision"] == "promote"
        assert "champion" not in registry.aliases()
        promote = runner.run(consumer, "mlci-promote")
        assert promote.code == 0, promote.why()
        assert registry.aliases() == {"champion": "1"}
        assert consumer.weights() == [100]
        assert consumer.answering_versions() == {"1": 40}

        # 2. A bad challenger: the canary judgement fails from CloudWatch's figures, rollback runs on_failure.
        consumer.set_training(BAD_TRAINING)
        consumer.commit("drop the imputer")
        bad = runner.run(consumer)
        assert bad.code != 0
        assert bad.results["mlci-monitor-canary"] == "FAIL" and bad.results["mlci-rollback"] == "PASS", bad.why()
        assert bad.outputs["mlci-rollback"]["rolled-back-version"] == "2"
        assert registry.aliases() == {"champion": "1"}
        assert consumer.answering_versions() == {"1": 40}

        # 3. A good challenger, judged against the champion, promoted by hand.
        consumer.set_training(GOOD_TRAINING.format(c=0.5))
        consumer.commit("retrain with C=0.5")
        good = runner.run(consumer)
        assert good.code == 0, good.why()
        assert good.outputs["mlci-deploy-canary"]["stable-version"] == "1"
        assert good.outputs["mlci-monitor-canary"]["decision"] == "promote"
        assert runner.run(consumer, "mlci-promote").code == 0
        assert registry.aliases() == {"champion": "3", "previous-champion": "1"}
        assert consumer.answering_versions() == {"3": 40}
    assert set(users.stats.as_dict()["versions"]) == {"1", "2", "3"}
