"""The pipeline `mlci-gen render --ci gitlab` writes, run by gitlab-ci-local.

The consumer's `.gitlab-ci.yml` includes `$CI_SERVER_FQDN/org/ml-cicd/<stage>@1.0.0`:
gitlab-ci-local fetches those components from a bare git repository of this checkout
tagged 1.0.0 (a per-URL `insteadOf` points the project's address at it), exactly the files
a release tag would hold. Jobs run in the shell executor with a Python that has ml-cicd
installed from a wheel of the same checkout (the `package` input's job). Outputs reach
later jobs as dotenv reports; promote is a manual job; rollback runs on failure. The same
releases run again for `target: ecs` in tests/e2e/test_gitlab_ecs.py. The report
component's job collects every stage report into one HTML report; in a merge-request pipeline
(validate-data, train and gate only) it also comments on a GitLab-like API
(tests/support/fake_services.py). Artifacts land in gitlab-ci-local's store
(.gitlab-ci-local/artifacts/<job>/).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from consumer import BAD_TRAINING, GOOD_TRAINING, Consumer
from fake_services import fake_services
from gitlab_runner import ANSI, HOST

from mlcicd.delivery.targets.processes import free_port

pytestmark = pytest.mark.e2e

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
        merge_request = ("CI_PIPELINE_SOURCE=merge_request_event", "CI_MERGE_REQUEST_IID=7",
                         f"CI_API_V4_URL={api.url}/api/v4", "CI_PROJECT_ID=42", f"MLCI_GITLAB_TOKEN={api.token}")
        run = gitlab_local.run(consumer, variables=merge_request)
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
        # The report job again (a retried job, or the next pipeline's): the same note, updated in place.
        rerun = f"MLCI_RUN_URL=https://{HOST}/group/consumer/-/pipelines/9002"
        again = gitlab_local.run(consumer, "mlci-report", variables=(*merge_request, rerun))
        assert again.results == {"mlci-report": "PASS"}, again.tail()
        (updated,) = api.thread("gl:7")
        assert updated["id"] == note["id"] and "pipelines/9002" in updated["body"], updated["body"][-400:]
        assert [r.method for r in api.to("/api/v4/") if r.method != "GET"] == ["POST", "PUT"]


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
