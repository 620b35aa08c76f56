"""Faults on ``target: ecs``, each stage a fresh job (moto's server plus the rig's real data plane).

* deploy-canary killed between "service created" and "weights set": a re-run converges;
* canary tasks that never become healthy: rolled back with the reason, no traffic ever reaches them;
* CloudWatch unreadable in the middle of the bake: inconclusive, never a promotion;
* the listener changed by somebody else in the middle of the bake: reported, never overwritten.
"""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from ecs_project import IMAGE, EcsProject, ecs_project_fixture

from mlcicd.delivery.targets.alb import forward_weights

pytestmark = pytest.mark.integration
# One repository on moto, the rig's data plane and the MLflow server for the whole module: every
# test starts from a champion serving all traffic and no canary, which ``champion`` restores.
project = ecs_project_fixture(scope="module")


@pytest.fixture(scope="module")
def first_release(project: EcsProject) -> str:
    """A first release, promoted: v1 serves all traffic."""
    version = project.release("python train.py")
    # The first release's own judgement is test_ecs_stages' subject: here it is promoted by hand.
    for stage, inputs in (("deploy-canary", {"image": IMAGE}), ("promote", {})):
        run = project.run(stage, **inputs)
        assert run.code == 0, run.log
    return version


@pytest.fixture
def champion(project: EcsProject, first_release: str) -> Iterator[str]:
    """The champion alone serves all traffic (the config as created); after the test, a canary left is rolled back."""
    project.restore_config()
    aliases = project.registry().aliases()
    assert "canary" not in aliases and set(listener_weights(project).values()) <= {0, 100}, aliases
    yield aliases["champion"]
    project.restore_config()
    if "canary" in project.registry().aliases() or not set(listener_weights(project).values()) <= {0, 100}:
        rollback = project.run("rollback")  # a fresh job, as an operator would run it
        assert rollback.code == 0, rollback.log


def listener_weights(project: EcsProject) -> dict[str, int]:
    import boto3

    elb = boto3.client("elbv2", region_name="eu-west-1")
    actions = elb.describe_listeners(ListenerArns=[project.infra.listener_arn])["Listeners"][0]["DefaultActions"]
    return {arn.rsplit(":targetgroup/", 1)[1].split("/")[0]: w for arn, w in forward_weights(actions).items()}


def services(project: EcsProject) -> dict[str, dict[str, object]]:
    import boto3

    ecs = boto3.client("ecs", region_name="eu-west-1")
    names = [f"{project.infra.name}-{c}" for c in ("blue", "green")]
    found = ecs.describe_services(cluster=project.infra.cluster, services=names, include=["TAGS"])["services"]
    return {s["serviceName"]: {"desired": s["desiredCount"], **{t["key"]: t["value"] for t in s.get("tags", [])}}
            for s in found}


def test_a_deploy_killed_before_the_traffic_split_converges_on_a_rerun(project: EcsProject, champion: str) -> None:
    canary = project.release("python train.py --C 0.5")
    proc, _ = project.start("deploy-canary", image=IMAGE)
    deadline = time.monotonic() + 120
    while not any(s.get("mlci:slot") == "canary" for s in services(project).values()):
        assert proc.poll() is None and time.monotonic() < deadline, "the canary service never appeared"
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)  # the runner dies: the service exists, no traffic moved yet
    proc.wait()
    assert set(listener_weights(project).values()) <= {0, 100}, "traffic moved before the kill"
    rerun = project.run("deploy-canary", image=IMAGE)
    assert rerun.code == 0, rerun.log
    assert rerun.outputs["canary-version"] == canary
    weights = listener_weights(project)
    assert sorted(weights.values()) == [25, 75], weights  # the first step of examples/credit-risk
    assert project.registry().aliases()["canary"] == canary
    # Nothing was created twice: still exactly two services.
    assert len(services(project)) == 2


def test_a_canary_that_never_becomes_healthy_is_rolled_back_and_never_served(project: EcsProject,
                                                                            champion: str) -> None:
    canary = project.release("python train.py --C 0.5")
    before = listener_weights(project)
    project.configure(deploy={"ecs": {"environment": {"MLCI_RIG_CRASH": "1"}, "health_timeout": 20}})
    deploy = project.run("deploy-canary", image=IMAGE)
    assert deploy.code == 1, deploy.log
    assert "never became healthy and received no traffic" in deploy.report["summary"]
    assert "Essential container in task exited" in deploy.report["summary"]  # ECS's own stop reason
    assert listener_weights(project) == before
    colors = services(project)
    canary_service = next(s for s in colors.values() if s.get("mlci:model-version") == canary)
    assert canary_service["desired"] == 0 and canary_service["mlci:slot"] == "idle"
    registry = project.registry()
    assert "canary" not in registry.aliases() and "challenger" not in registry.aliases()
    assert "never became healthy" in registry.version(canary).tags["mlci.rollback.reason"]


class Relay:
    """A TCP relay in front of moto for one AWS service: closing it makes that service unreachable."""

    def __init__(self, upstream: str) -> None:
        host, port = upstream.split("://", 1)[1].rsplit(":", 1)
        self.upstream = (host, int(port))
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.open = True
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while self.open:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            if not self.open:
                client.close()
                return
            upstream = socket.create_connection(self.upstream)
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                s.close()

    def close(self) -> None:
        """Refuse new connections and cut the open ones (a client's keep-alive pool included)."""
        self.open = False
        self.server.close()
        for s in self.sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()


def test_cloudwatch_unreadable_mid_bake_ends_inconclusive(project: EcsProject, champion: str) -> None:
    project.release("python train.py --C 0.5")
    relay = Relay(project.moto.url)
    env = {"AWS_ENDPOINT_URL_CLOUDWATCH": relay.url}
    assert project.run("deploy-canary", image=IMAGE, env=env).code == 0
    project.configure(deploy={"canary": {"duration": 90, "max_measurement_errors": 3}})
    with project.users():
        proc, workdir = project.start("monitor-canary", env=env)
        time.sleep(20)  # a few looks read fine
        relay.close()
        log, _ = proc.communicate(timeout=300)
    from ecs_project import read_report

    report = read_report(workdir, "monitor-canary")
    assert proc.returncode == 3, log
    assert report["verdict"] == "inconclusive", report["summary"]
    assert "unreadable" in report["summary"], report["summary"]
    assert re.search(r"CloudWatch (GetMetricData|ListMetrics) failed", log), log  # what the monitor said
    assert report["outputs"]["decision"] != "promote"


def test_a_listener_changed_by_somebody_else_mid_bake_is_reported_and_never_overwritten(
        project: EcsProject, champion: str) -> None:
    import boto3

    canary = project.release("python train.py --C 0.5")
    assert project.run("deploy-canary", image=IMAGE).code == 0
    project.configure(deploy={"canary": {"duration": 120}})
    elb = boto3.client("elbv2", region_name="eu-west-1")
    with project.users():
        proc, workdir = project.start("monitor-canary")
        time.sleep(15)  # a few looks at the first step
        # An operator sends half the traffic to the canary by hand, in the console.
        listener = elb.describe_listeners(ListenerArns=[project.infra.listener_arn])["Listeners"][0]
        groups = list(forward_weights(listener["DefaultActions"]))
        elb.modify_listener(ListenerArn=project.infra.listener_arn, DefaultActions=[{
            "Type": "forward", "ForwardConfig": {"TargetGroups": [
                {"TargetGroupArn": arn, "Weight": 50} for arn in groups]}}])
        log, _ = proc.communicate(timeout=300)
    from ecs_project import read_report

    report = read_report(workdir, "monitor-canary")
    assert proc.returncode == 3, log
    assert report["verdict"] == "inconclusive" and report["outputs"]["decision"] == "hold", report["summary"]
    assert "somebody else changed the router's split" in report["summary"], report["summary"]
    assert sorted(listener_weights(project).values()) == [50, 50]  # the operator's split stands
    promote = project.run("promote")
    assert promote.code != 0 and project.registry().aliases()["champion"] == champion, promote.log
    # The rollback stage may take the canary out (weight 0 is always safe), and says what it overrode.
    rollback = project.run("rollback")
    assert rollback.code == 0, rollback.log
    assert {w for w in listener_weights(project).values()} <= {0, 100}
    assert project.registry().aliases().get("canary") != canary


def test_blue_green_smoke_checks_reach_the_new_service_through_the_test_listener(project: EcsProject,
                                                                                champion: str) -> None:
    """Blue-green on ECS: smoke checks through the test listener, then the listener switches at once."""
    row = {"age": 66, "income": 37091.81, "debt_ratio": 0.0819, "credit_lines": 4, "late_payments": 1,
           "employment": "unemployed", "region": "south", "gender": "female"}
    new = project.release("python train.py --C 0.5")
    project.configure(deploy={"strategy": "blue-green", "blue_green": {"keep_seconds": 20, "smoke": [
        {"name": "wrong on purpose", "request": {"dataframe_records": [row]}, "expect": [7]}]}})
    before = listener_weights(project)
    failed = project.run("deploy-canary", image=IMAGE)
    assert failed.code == 1 and "failed its smoke checks" in failed.report["summary"], failed.log
    assert "predicted" in failed.report["summary"] and "expected [7]" in failed.report["summary"]
    assert listener_weights(project) == before  # users never reached it
    # The window is the bake: judged alone, p99 within its limit takes a few hundred requests (the bake
    # plan asks ~60 s at this rig's traffic; 20 s ended inconclusive on a loaded machine).
    project.configure(deploy={"blue_green": {"keep_seconds": 60, "smoke": [
        {"name": "answers", "request": {"dataframe_records": [row]}, "expect_status": 200}]}})
    assert project.registry().aliases().get("challenger") is None
    project.registry().set_alias("challenger", new)
    with project.users():
        deploy = project.run("deploy-canary", image=IMAGE)
        assert deploy.code == 0, deploy.log
        assert sorted(listener_weights(project).values()) == [0, 100]  # all at once
        colors = services(project)
        assert {s["mlci:slot"]: s["desired"] for s in colors.values()} == {"stable": 1, "canary": 1}  # old warm
        monitor = project.run("monitor-canary")
        assert monitor.code == 0 and monitor.outputs["decision"] == "promote", monitor.log
        assert project.run("promote").code == 0
    assert project.registry().aliases()["champion"] == new
