"""The pipeline `mlci-gen render --ci github` writes for `target: ecs`, run by act as hosted runners run it.

Three pushes: a first release, a bad challenger rolled back, and a good one promoted over the
champion. Every job starts on a runner that shares nothing with the others but job outputs,
the MLflow tracking server and AWS. AWS is moto's server; the rig's data plane
(tests/support/alb_data_plane.py) plays what moto does not run: the ECS tasks (real model
servers), the ALB (a real nginx following the listener's weights) and CloudWatch's ALB metrics,
which judge the canary. Users send traffic through that ALB.
A file of its own so that it runs next to the local-target pipelines (tests/e2e/test_github_act.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from act_pipeline import WORKFLOW, act
from aws_rig import ACCOUNT, MotoServer
from consumer import BAD_TRAINING, GOOD_TRAINING
from ecs_project import ECS_USERS, EcsConsumer

from mlcicd.gen.pipeline import AWS_CREDENTIALS

pytestmark = pytest.mark.e2e


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
    with consumer.users(rate=ECS_USERS) as users:  # through the ALB
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
