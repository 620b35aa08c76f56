"""The deploy stages on ``target: ecs``, every stage a fresh job in a fresh directory.

AWS is moto's server; the rig (tests/support) runs the tasks as real model servers, plays the
ALB with a real nginx and publishes the ALB's and the servers' metrics into moto's
CloudWatch, which the ``cloudwatch`` metric source reads. Users send traffic through the ALB
the whole time. No stage sees a file another wrote: they share the MLflow tracking server
and AWS, as jobs on hosted runners do.
"""

from __future__ import annotations

import pytest
from ecs_project import IMAGE, EcsProject, ecs_project_fixture

from mlcicd.delivery.traffic import probe_versions, read_rows

pytestmark = pytest.mark.integration
project = ecs_project_fixture()  # a repository on moto, the rig's data plane and the MLflow server
BAD_TRAINING = "python train.py --variant no-imputer"


def answering(project: EcsProject, n: int = 30) -> set[str]:
    rows = read_rows(project.repo / "data" / "eval.csv", drop=("default",), limit=n)
    project.plane.step()  # the rig follows moto every 0.3 s, later under load: catch it up first
    answers = probe_versions(project.plane.endpoint, rows, timeout=5)
    assert answers.codes == {200: n}, answers
    return set(answers.versions)


def test_release_cycle_on_ecs_with_every_stage_in_a_fresh_directory(project: EcsProject) -> None:
    registry = project.registry()
    with project.users():
        v1 = project.release("python train.py")
        deploy = project.run("deploy-canary", image=IMAGE)
        assert deploy.code == 0, deploy.log
        assert deploy.outputs["endpoint"] == project.plane.endpoint and deploy.outputs["stable-version"] == ""
        monitor = project.run("monitor-canary")
        assert monitor.code == 0 and monitor.outputs["decision"] == "promote", monitor.log
        promote = project.run("promote")
        assert promote.code == 0, promote.log
        assert registry.aliases() == {"champion": v1} and answering(project) == {v1}

        # A good challenger walks the steps on CloudWatch's numbers and is promoted.
        v2 = project.release("python train.py --C 0.5")
        deploy = project.run("deploy-canary", image=IMAGE)
        assert deploy.code == 0 and deploy.outputs["stable-version"] == v1, deploy.log
        assert any(c["name"] == "metrics" for c in deploy.report["checks"]), deploy.report["checks"]
        monitor = project.run("monitor-canary")
        assert monitor.code == 0 and monitor.outputs["decision"] == "promote", monitor.log
        promote = project.run("promote")
        assert promote.code == 0 and promote.outputs["previous-champion-version"] == v1, promote.log
        assert registry.aliases() == {"champion": v2, "previous-champion": v1} and answering(project) == {v2}

        # A bad challenger (no imputer: 5xx on the one request in ten without an income) is rolled back.
        v3 = project.release(BAD_TRAINING)
        deploy = project.run("deploy-canary", image=IMAGE)
        assert deploy.code == 0, deploy.log
        monitor = project.run("monitor-canary")
        assert monitor.code == 1 and monitor.outputs["decision"] == "rollback", monitor.log
        assert answering(project) == {v2}, "the monitor takes the canary out of traffic at once"
        # promote's job never saw the monitor's report: the decision reaches it through the registry.
        refused = project.run("promote")
        assert refused.code == 2 and "decided rollback" in refused.log, refused.log
        rollback = project.run("rollback")
        assert rollback.code == 0, rollback.log
        reason = registry.version(v3).tags["mlci.rollback.reason"]
        assert reason.startswith("canary analysis (rollback): error rate"), reason
        assert registry.aliases() == {"champion": v2, "previous-champion": v1}

        # Undo the last promotion: the standby service of v1 comes back.
        back = project.run("rollback", to="previous-champion", reason="latency complaints")
        assert back.code == 0, back.log
        assert registry.aliases() == {"champion": v1} and answering(project) == {v1}
    status = project.run("promote")
    assert status.code == 0 and "already champion" in status.report["summary"]
