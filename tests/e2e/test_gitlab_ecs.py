"""The pipeline `mlci-gen render --ci gitlab` writes for `target: ecs`, run by gitlab-ci-local.

A first release promoted by the manual job, a bad challenger rolled back on failure, and a
good challenger promoted over the champion, on AWS (moto). A file of its own so that it runs
next to the local-target pipelines (tests/e2e/test_gitlab_ci_local.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from consumer import BAD_TRAINING, GOOD_TRAINING
from ecs_project import ECS_USERS, EcsConsumer
from gitlab_runner import HOST

pytestmark = pytest.mark.e2e


# The same pipeline for `target: ecs` on AWS (moto, with the rig's data plane playing the ECS
# tasks, the ALB and CloudWatch's ALB metrics; see test_github_act_ecs). The jobs that talk to AWS
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
    with consumer.users(rate=ECS_USERS) as users:  # through the ALB
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
