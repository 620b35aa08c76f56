"""The pipeline `mlci-gen render --ci github` writes, run by act, with this checkout as ml-cicd.

A throwaway consumer repository holds the example project and the rendered workflow, which
uses `org/ml-cicd/actions/<stage>@v1`; act resolves that to the exported checkout through
`--local-repository`, so the composite actions, their install script and the stages run for
real on the host (`-P ubuntu-latest=-self-hosted`). Users send traffic through nginx the
whole time. Two pushes: a first release, then a bad challenger (rolled back by the rollback
job that the failed canary judgement triggers). A pull request runs the checks and the gate
only and keeps one comment up to date on a GitHub-like API (tests/support/fake_services.py).
The config has `notify:` (Slack on rollbacks, a signed webhook on promotes and rollbacks) whose secrets
the workflow maps into the jobs that send; the release and the rollback each reach the local
receivers exactly once. Every job uploads its stage report to act's artifact server (through offline stand-ins of
actions/upload-artifact and download-artifact, tests/support/act_artifacts.py); the report job
collects them into one HTML report. The same workflow for `target: ecs` on AWS runs in
tests/e2e/test_github_act_ecs.py.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from act_artifacts import stored
from act_pipeline import WORKFLOW, act
from consumer import BAD_TRAINING, GOOD_TRAINING, Consumer, git
from fake_services import FakeServices, fake_services

from mlcicd.delivery.targets.processes import free_port
from mlcicd.gen.pipeline import AWS_CREDENTIALS, CHECKOUT
from mlcicd.notify.targets import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

pytestmark = pytest.mark.e2e


# The notify targets' secrets, as repository secrets (`act -s`); the rendered workflow maps them
# into the jobs that can send an event (mlci.yaml notify:).
SLACK_PATH = "/slack/T000/B000/e2e-token"
WEBHOOK_SECRET = "whsec-e2e"


@pytest.fixture(scope="module")
def hooks() -> Iterator[FakeServices]:
    """A Slack-compatible receiver and a JSON webhook receiver on 127.0.0.1 (records every request)."""
    with fake_services() as svc:
        yield svc


@pytest.fixture(scope="module")
def consumer(tmp_path_factory, mlflow, images, hooks) -> Consumer:
    root = tmp_path_factory.mktemp("gh-consumer") / "repo"
    project = Consumer.create(root, model_name="credit-risk-gh", port=free_port(), tracking_uri=mlflow.url,
                              registry=images.registry, base_image=images.base,
                              state_dir=root.parent / "deploy-state")
    cfg = yaml.safe_load((root / "mlci.yaml").read_text())
    cfg["notify"] = {"slack": {"webhook_url_env": "TEAM_SLACK_WEBHOOK", "on": ["rollback"]},
                     "webhook": {"url": f"{hooks.url}/hook", "secret_env": "MLCI_WEBHOOK_SECRET",
                                 "on": ["promote", "rollback"]}}
    (root / "mlci.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    project.render("github", "v1", WORKFLOW)
    return project


def _notify_secrets(hooks: FakeServices) -> tuple[str, ...]:
    return ("-s", f"TEAM_SLACK_WEBHOOK={hooks.url}{SLACK_PATH}", "-s", f"MLCI_WEBHOOK_SECRET={WEBHOOK_SECRET}")


def _webhook_events(hooks: FakeServices) -> list[dict[str, Any]]:
    """The webhook's deliveries, each checked against its HMAC-SHA256 signature."""
    events = []
    for request in hooks.to("/hook"):
        headers = {k.lower(): v for k, v in request.headers.items()}
        timestamp = headers[TIMESTAMP_HEADER.lower()]
        assert headers[SIGNATURE_HEADER.lower()] == sign(WEBHOOK_SECRET, timestamp, request.body)
        events.append(request.json())
    return events


@pytest.fixture(scope="module", autouse=True)
def stop_deployment(consumer):
    yield
    consumer.stop_deployment()


def test_github_pipeline_releases_and_rolls_back(consumer, suite, images, runner_home, hooks):
    registry = consumer.registry()
    with consumer.users() as users:
        # 1. First release: no champion yet, so the canary takes all traffic and is judged on
        #    absolute limits, then promoted.
        consumer.set_training(GOOD_TRAINING.format(c=1.0))
        consumer.commit("first model")
        first = act(consumer, suite, images, runner_home, extra=_notify_secrets(hooks))
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
        promoted = [(e["event"], e["outputs"].get("champion-version")) for e in _webhook_events(hooks)]
        assert promoted == [("promote", "1")], promoted
        assert not hooks.to("/slack/")  # Slack listens to rollbacks only
        bad = act(consumer, suite, images, runner_home, extra=_notify_secrets(hooks))
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
        # The rollback reached each configured target exactly once (the failed judgement itself
        # sends nothing: the rollback stage tells), through the secrets the workflow mapped.
        events = [(e["event"], e["stage"], e["outputs"].get("rolled-back-version")) for e in _webhook_events(hooks)]
        assert events[1:] == [("rollback", "rollback", "2")], events
        slack = hooks.to("/slack/")
        assert [r.path for r in slack] == [SLACK_PATH], slack
        assert slack[0].json()["text"].startswith("credit-risk-gh: v2 rolled back, v1 serves"), slack[0].json()
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

# The whole pipeline's AWS credentials step runs only with the repository variable AWS_ROLE_ARN,
# which this caller (target: local) does not set: a stand-in that fails if it ever runs.
AWS_CREDENTIALS_NEVER = """\
name: configure-aws-credentials (must not run without AWS_ROLE_ARN)
inputs:
  role-to-assume: {required: false}
  aws-region: {required: false}
runs:
  using: composite
  steps:
    - shell: bash
      run: echo "::error::configure-aws-credentials ran without AWS_ROLE_ARN" && exit 1
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
            aws = tmp_path / "configure-aws-credentials"
            aws.mkdir()
            (aws / "action.yml").write_text(AWS_CREDENTIALS_NEVER)
            run = act(project, suite, images, runner_home, workflow=".github/workflows/release.yml",
                      extra=("--local-repository", f"{checkout}={stand_in}",
                             "--local-repository", f"{AWS_CREDENTIALS.split()[0]}={aws}",
                             "--env", f"MLCI_E2E_CHECKOUT_FROM={root}"))
            assert run.code == 0, run.tail()
            assert "ran without AWS_ROLE_ARN" not in run.log
            assert run.outputs["promote"]["champion-version"] == "1"
            assert project.registry().aliases() == {"champion": "1"}
            assert project.answering_versions() == {"1": 40}
    finally:
        project.stop_deployment()
