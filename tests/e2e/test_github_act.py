"""The pipeline `mlci-gen render --ci github` writes, run by act, with this checkout as ml-cicd.

A throwaway consumer repository holds the example project and the rendered workflow, which
uses `org/ml-cicd/actions/<stage>@v1`; act resolves that to the exported checkout through
`--local-repository`, so the composite actions, their install script and the stages run for
real on the host (`-P ubuntu-latest=-self-hosted`). Users send traffic through nginx the
whole time. Two pushes: a first release, then a bad challenger (rolled back by the rollback
job that the failed canary judgement triggers). A pull request runs the checks and the gate
only and keeps one comment up to date on a GitHub-like API (tests/support/fake_services.py).
Every job uploads its stage report to act's artifact server (through offline stand-ins of
actions/upload-artifact and download-artifact, tests/support/act_artifacts.py); the report job
collects them into one HTML report. Then three pushes for `target: ecs` on AWS
(moto), as hosted runners run them: a first release, a bad challenger rolled back, and a good
one promoted over the champion (the same workflow wiring a local good challenger would take).
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from act_artifacts import stand_ins, stored
from aws_rig import ACCOUNT, MotoServer
from consumer import BAD_TRAINING, GOOD_TRAINING, REPO, Consumer, git
from ecs_project import EcsConsumer
from fake_services import fake_services
from runners import ActRun, Images, clean_env, tool

from mlcicd.delivery.targets.processes import free_port
from mlcicd.gen.pipeline import AWS_CREDENTIALS, CHECKOUT, DOWNLOAD_ARTIFACT, UPLOAD_ARTIFACT

pytestmark = pytest.mark.e2e

WORKFLOW = ".github/workflows/ml-pipeline.yml"
RUNS = itertools.count(1)


def act(consumer: Consumer, suite: Path, images: Images, home: Path, workflow: str = WORKFLOW,
        extra: tuple[str, ...] = (), event: str = "push") -> ActRun:
    # Every run gets an artifact store of its own: act numbers every run 1, so a shared store
    # would hand a run the artifacts of the one before.
    artifacts = home / "artifacts" / f"run-{next(RUNS)}"
    artifacts.mkdir(parents=True)
    argv = [tool("act", REPO / ".venv" / "bin"), event, "-W", workflow, "--json",
            "-P", "ubuntu-latest=-self-hosted", "--no-cache-server",
            "--artifact-server-path", str(artifacts), "--artifact-server-addr", "127.0.0.1",
            "--artifact-server-port", str(free_port()),
            *stand_ins(home / "artifact-actions", UPLOAD_ARTIFACT.split()[0], DOWNLOAD_ARTIFACT.split()[0]),
            "--local-repository", f"org/ml-cicd@v1={suite}",
            "--env", f"MLCI_BUILDAH_ROOT={images.storage}", *extra]
    # act keeps its work and the runner tool cache (where the actions keep their venv) under
    # $HOME/.cache/act: a private HOME keeps test runs apart; the pip cache stays shared.
    env = clean_env(HOME=str(home), PIP_CACHE_DIR=str(Path.home() / ".cache" / "pip"))
    proc = subprocess.run(argv, cwd=consumer.root, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=1800)
    return ActRun.parse(proc.returncode, proc.stdout, proc.stderr, artifacts)


@pytest.fixture(scope="module")
def consumer(tmp_path_factory, mlflow, images) -> Consumer:
    root = tmp_path_factory.mktemp("gh-consumer") / "repo"
    project = Consumer.create(root, model_name="credit-risk-gh", port=free_port(), tracking_uri=mlflow.url,
                              registry=images.registry, base_image=images.base,
                              state_dir=root.parent / "deploy-state")
    project.render("github", "v1", WORKFLOW)
    return project


@pytest.fixture(scope="module")
def runner_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("act-home")


@pytest.fixture(scope="module", autouse=True)
def stop_deployment(consumer):
    yield
    consumer.stop_deployment()


def test_github_pipeline_releases_and_rolls_back(consumer, suite, images, runner_home):
    registry = consumer.registry()
    with consumer.users() as users:
        # 1. First release: no champion yet, so the canary takes all traffic and is judged on
        #    absolute limits, then promoted.
        consumer.set_training(GOOD_TRAINING.format(c=1.0))
        consumer.commit("first model")
        first = act(consumer, suite, images, runner_home)
        assert first.code == 0, first.tail()
        assert first.results["promote"] == "success" and "rollback" not in first.results
        assert first.outputs["gate"]["model-version"] == "1"
        assert first.outputs["monitor-canary"]["decision"] == "promote"
        assert first.outputs["promote"]["champion-version"] == "1"
        assert first.outputs["build-image"]["digest"].startswith("sha256:")
        assert registry.aliases() == {"champion": "1"}
        assert consumer.answering_versions() == {"1": 40}
        # Every job uploaded its stage report; the report job collected them into one HTML report.
        uploaded = stored(first.artifacts)
        assert {f"mlci-report-{s}" for s in ("validate-data", "gate", "monitor-canary", "promote")} <= set(uploaded)
        assert first.results["report"] == "success" and "mlci-pipeline-report" in uploaded
        assert "comment" not in first.results  # a push has no pull request to comment on

        # 2. A bad challenger: passes the offline gate, fails on live traffic; the failed
        #    judgement triggers the rollback job, and the champion keeps all traffic.
        consumer.set_training(BAD_TRAINING)
        consumer.commit("drop the imputer")
        bad = act(consumer, suite, images, runner_home)
        assert bad.code != 0  # monitor-canary failed: the workflow run is red
        assert bad.results["monitor-canary"] == "failure" and bad.results["rollback"] == "success"
        assert "promote" not in bad.results
        assert bad.outputs["monitor-canary"]["decision"] == "rollback"
        assert bad.outputs["deploy-canary"]["stable-version"] == "1"  # next to the champion, judged against it
        assert bad.outputs["rollback"]["rolled-back-version"] == "2"
        assert bad.outputs["rollback"]["champion-version"] == "1"
        assert registry.aliases() == {"champion": "1"}
        reason = registry.version("2").tags["mlci.rollback.reason"]
        assert reason == "canary failed monitoring (decision: rollback)"  # the job output arrived
        assert consumer.answering_versions() == {"1": 40}
    traffic = users.stats.as_dict()
    # Users saw the bad canary's 5xx only while it was being judged; nginx itself never failed.
    assert traffic["codes"].get("200", 0) > 0
    assert set(traffic["versions"]) == {"1", "2"}


PULL_REQUEST_STAGES = ("validate-data", "train", "gate")


def _versions(registry) -> int:
    """How many versions the registry holds of the consumer's model."""
    return len(registry.client.search_model_versions(f"name='{registry.model_name}'"))


def _pull_request_event(path: Path, consumer: Consumer) -> Path:
    head = git(consumer.root, "rev-parse", "HEAD")
    path.write_text(json.dumps({"action": "synchronize", "number": 7, "pull_request": {
        "number": 7, "head": {"ref": "better-model", "sha": head}, "base": {"ref": "main"}}}))
    return path


def test_a_pull_request_runs_the_checks_and_the_gate_and_keeps_one_comment(consumer, suite, images, runner_home,
                                                                           tmp_path):
    """`act pull_request`: validate-data, train and gate only; the gate does not register; the stage
    reports and the HTML report reach the artifact store; one comment, updated by the next run."""
    registry = consumer.registry()
    consumer.set_training(GOOD_TRAINING.format(c=0.7))
    consumer.commit("try C=0.7")
    aliases, versions = registry.aliases(), _versions(registry)
    with fake_services() as api:  # GitHub's REST API for the comment, on 127.0.0.1
        extra = ("-e", str(_pull_request_event(tmp_path / "event.json", consumer)),
                 "--env", f"GITHUB_API_URL={api.url}", "-s", f"GITHUB_TOKEN={api.token}")
        run = act(consumer, suite, images, runner_home, extra=extra, event="pull_request")
        assert run.code == 0, run.tail()
        assert {job: run.results.get(job) for job in (*PULL_REQUEST_STAGES, "report", "comment")} == dict.fromkeys(
            (*PULL_REQUEST_STAGES, "report", "comment"), "success"), run.tail()
        # build-image was skipped (its `if:`), and everything after it through `needs`.
        assert not {"build-image", "deploy-canary", "monitor-canary", "promote", "rollback"} & {
            job for job, result in run.results.items() if result != "skipped"}, run.results
        assert run.outputs["gate"]["verdict"] == "pass" and not run.outputs["gate"].get("model-version")
        assert registry.aliases() == aliases and _versions(registry) == versions  # challenger never moved

        uploaded = stored(run.artifacts)
        assert set(uploaded) == {*(f"mlci-report-{s}" for s in PULL_REQUEST_STAGES), "mlci-pipeline-report"}
        with zipfile.ZipFile(uploaded["mlci-report-gate"]) as archive:
            assert {"gate.json", "gate.md", "gate.junit.xml"} <= set(archive.namelist())
        with zipfile.ZipFile(uploaded["mlci-pipeline-report"]) as archive:
            assert archive.namelist() == ["report.html"]
            html = archive.read("report.html").decode()
        assert "<svg" in html and all(stage in html for stage in PULL_REQUEST_STAGES)

        report_url = run.outputs["report"]["artifact-url"]  # the upload step's output, the report job's report-url
        assert re.fullmatch(r"https://github\.com/.+/actions/runs/\d+/artifacts/\d+", report_url), report_url
        (comment,) = api.thread("gh:7")
        first = comment["body"]  # the server updates this record in place
        assert [r.method for r in api.to("/repos/", "POST")] == ["POST"]
        assert all(stage in first for stage in PULL_REQUEST_STAGES)
        assert report_url in first and "/actions/runs/1" in first and "build-image" not in first

        # A new push to the pull request, a new run (act numbers every run 1: this one says 2): the
        # same comment is updated in place with this run's results and link, never a second one.
        consumer.set_training(GOOD_TRAINING.format(c=0.6))
        consumer.commit("try C=0.6")
        again = act(consumer, suite, images, runner_home, event="pull_request",
                    extra=("-e", str(_pull_request_event(tmp_path / "event.json", consumer)), *extra[2:],
                           "--env", "GITHUB_RUN_ID=2"))
        assert again.code == 0, again.tail()
        assert [c["id"] for c in api.thread("gh:7")] == [comment["id"]]
        assert len(api.to("/repos/", "POST")) == 1 and len(api.to("/repos/", "PATCH")) == 1
        updated = api.thread("gh:7")[0]["body"]
        assert again.outputs["report"]["artifact-url"] in updated and "/actions/runs/1" not in updated
        assert registry.aliases() == aliases


# Inside a reusable workflow act fetches actions/checkout for real (its local shortcut only covers
# a checkout without `ref:`), and there is no network here: a stand-in copies the caller's tree.
CHECKOUT_STAND_IN = """\
name: checkout (offline stand-in for the e2e tests)
inputs:
  ref: {required: false}
  persist-credentials: {required: false}
runs:
  using: composite
  steps:
    - shell: bash
      run: cp -a "$MLCI_E2E_CHECKOUT_FROM"/. "$GITHUB_WORKSPACE"/
"""

CALLER = """\
name: release
on: push
jobs:
  ml:
    uses: org/ml-cicd/.github/workflows/ml-pipeline.yml@v1
    permissions: {contents: read, id-token: write}
    with: {config: mlci.yaml}
"""


def test_the_reusable_workflow_runs_the_whole_pipeline_for_a_caller(tmp_path, mlflow, images, suite, runner_home):
    """`uses: org/ml-cicd/.github/workflows/ml-pipeline.yml@v1` from another repository: a first release."""
    root = tmp_path / "caller"
    project = Consumer.create(root, model_name="credit-risk-reusable", port=free_port(), tracking_uri=mlflow.url,
                              registry=images.registry, base_image=images.base, state_dir=tmp_path / "deploy-state")
    (root / ".github" / "workflows").mkdir(parents=True)
    (root / ".github" / "workflows" / "release.yml").write_text(CALLER)
    project.commit("call ml-cicd's pipeline")
    try:
        with project.users():
            stand_in = tmp_path / "checkout"
            stand_in.mkdir()
            (stand_in / "action.yml").write_text(CHECKOUT_STAND_IN)
            checkout = CHECKOUT.split()[0]
            run = act(project, suite, images, runner_home, workflow=".github/workflows/release.yml",
                      extra=("--local-repository", f"{checkout}={stand_in}",
                             "--env", f"MLCI_E2E_CHECKOUT_FROM={root}"))
            assert run.code == 0, run.tail()
            assert run.outputs["promote"]["champion-version"] == "1"
            assert project.registry().aliases() == {"champion": "1"}
            assert project.answering_versions() == {"1": 40}
    finally:
        project.stop_deployment()


# --- target: ecs -------------------------------------------------------------------------------
# The same workflow for `target: ecs`: hosted runners. Every job starts on a runner that shares
# nothing with the others but job outputs, the MLflow tracking server and AWS. AWS is moto's
# server; the rig's data plane (tests/support/alb_data_plane.py) plays what moto does not run:
# the ECS tasks (real model servers), the ALB (a real nginx following the listener's weights)
# and CloudWatch's ALB metrics, which judge the canary. Users send traffic through that ALB.
#
# The jobs that talk to AWS get credentials from aws-actions/configure-aws-credentials by OIDC.
# act has no OIDC token service and there is no network here, so act maps that action to a
# stand-in that does what the real one does, against moto's STS: AssumeRoleWithWebIdentity for
# the role in `vars.AWS_ROLE_ARN`, then the session's keys exported to the job.
ROLE = f"arn:aws:iam::{ACCOUNT}:role/mlci-deploy"

# What aws-actions/configure-aws-credentials does with `role-to-assume` on a GitHub runner,
# against moto's STS (the query API over HTTP, as the action's SDK sends it).
AWS_CREDENTIALS_STAND_IN = """\
name: configure-aws-credentials (offline stand-in for the e2e tests)
inputs:
  role-to-assume: {required: true}
  aws-region: {required: true}
runs:
  using: composite
  steps:
    - shell: bash
      env:
        ROLE: ${{ inputs.role-to-assume }}
        REGION: ${{ inputs.aws-region }}
      run: |
        set -euo pipefail
        test -n "$ROLE" || { echo "::error::role-to-assume is empty (vars.AWS_ROLE_ARN unset?)"; exit 1; }
        answer=$(curl -sf -X POST "$MLCI_E2E_AWS_ENDPOINT" \\
          --data-urlencode Action=AssumeRoleWithWebIdentity --data-urlencode Version=2011-06-15 \\
          --data-urlencode "RoleArn=$ROLE" --data-urlencode RoleSessionName=github-actions \\
          --data-urlencode WebIdentityToken=e2e-oidc-token)
        field() { printf '%s' "$answer" | sed -n "s:.*<$1>\\([^<]*\\)</$1>.*:\\1:p" | head -1; }
        {
          echo "AWS_ACCESS_KEY_ID=$(field AccessKeyId)"
          echo "AWS_SECRET_ACCESS_KEY=$(field SecretAccessKey)"
          echo "AWS_SESSION_TOKEN=$(field SessionToken)"
          echo "AWS_REGION=$REGION"
          echo "AWS_DEFAULT_REGION=$REGION"
          echo "AWS_ENDPOINT_URL=$MLCI_E2E_AWS_ENDPOINT"
        } >> "$GITHUB_ENV"
        echo "$GITHUB_JOB $ROLE" >> "$MLCI_E2E_DIR/assumed-roles"
"""


@pytest.fixture(scope="module")
def ecs_consumer(tmp_path_factory, moto: MotoServer, mlflow, images) -> Iterator[EcsConsumer]:
    consumer = EcsConsumer.create_on(tmp_path_factory.mktemp("gh-ecs"), model_name="credit-risk-gh-ecs",
                                     tracking_uri=mlflow.url, images=images)
    consumer.render("github", "v1", WORKFLOW)
    try:
        yield consumer
    finally:
        consumer.stop_deployment()


def test_ecs_pipeline_on_fresh_runners_releases_rolls_back_and_promotes(ecs_consumer, moto, suite, images,
                                                                        runner_home, tmp_path_factory):
    consumer = ecs_consumer
    e2e_dir = tmp_path_factory.mktemp("gh-ecs-runs")
    stand_in = e2e_dir / "configure-aws-credentials"
    stand_in.mkdir()
    (stand_in / "action.yml").write_text(AWS_CREDENTIALS_STAND_IN)
    extra = ("--local-repository", f"{AWS_CREDENTIALS.split()[0]}={stand_in}", "--var", f"AWS_ROLE_ARN={ROLE}",
             "--env", f"MLCI_E2E_AWS_ENDPOINT={moto.url}", "--env", f"MLCI_E2E_DIR={e2e_dir}")
    registry = consumer.registry()
    with consumer.users(rate=40) as users:  # through the ALB
        # 1. First release: the canary service takes all traffic, is judged on absolute limits, promoted.
        consumer.set_training(GOOD_TRAINING.format(c=1.0))
        consumer.commit("first model")
        first = act(consumer, suite, images, runner_home, extra=extra)
        assert first.code == 0, first.tail()
        assert first.results["promote"] == "success" and "rollback" not in first.results
        assert first.outputs["monitor-canary"]["decision"] == "promote"
        assert first.outputs["build-image"]["image-ref"].split("@")[1].startswith("sha256:")
        assert registry.aliases() == {"champion": "1"}
        assert consumer.weights() == [100]
        assert consumer.answering_versions() == {"1": 40}

        # 2. A bad challenger: passes the offline gate, fails on live traffic; the rollback job takes it out.
        consumer.set_training(BAD_TRAINING)
        consumer.commit("drop the imputer")
        bad = act(consumer, suite, images, runner_home, extra=extra)
        assert bad.code != 0
        assert bad.results["monitor-canary"] == "failure" and bad.results["rollback"] == "success", bad.tail()
        assert "promote" not in bad.results
        assert bad.outputs["rollback"]["rolled-back-version"] == "2"
        assert registry.aliases() == {"champion": "1"}
        assert consumer.weights() in ([0, 100], [100])
        assert consumer.answering_versions() == {"1": 40}

        # 3. A good challenger, judged against the champion from CloudWatch, promoted.
        consumer.set_training(GOOD_TRAINING.format(c=0.5))
        consumer.commit("retrain with C=0.5")
        good = act(consumer, suite, images, runner_home, extra=extra)
        assert good.code == 0, good.tail()
        assert good.outputs["deploy-canary"]["stable-version"] == "1"
        assert good.outputs["deploy-canary"]["canary-version"] == "3"
        assert good.outputs["monitor-canary"]["decision"] == "promote"
        assert registry.aliases() == {"champion": "3", "previous-champion": "1"}
        assert consumer.answering_versions() == {"3": 40}
    traffic = users.stats.as_dict()
    assert set(traffic["versions"]) == {"1", "2", "3"}  # users met every version, through the ALB
    # Every job that talked to AWS assumed the role by OIDC (the stand-in's record), and only those.
    assumed = (e2e_dir / "assumed-roles").read_text().split("\n")
    jobs = {line.split()[0] for line in assumed if line}
    assert {line.split()[1] for line in assumed if line} == {ROLE}
    assert jobs == {"deploy-canary", "monitor-canary", "promote", "rollback"}, jobs
