"""The AWS paths no stage test reaches, against moto's server (no ECS tasks, no data plane).

* ``CloudWatchSource.check()``, which deploy-canary calls before any traffic moves: a denied
  call, a region other than the load balancer's, a namespace or dimensions that hold none of
  the stable's predictions are exit 2 naming the key; what cannot be checked yet (a first
  release, a stable without requests, traffic too recent for CloudWatch to list) is a note.
  The ALB's metrics are put into moto's CloudWatch directly, as the ALB would publish them.
  A denied call comes from a tiny CloudWatch stand-in on 127.0.0.1 answering AccessDenied the
  way CloudWatch's CBOR protocol does (moto's IAM enforcement is process-wide).
* ``AlbRouter`` on a listener rule (``deploy.ecs.listener_rule_arn``): the weighted forward
  action lands in the rule, authenticate-* actions are kept, the listener's default action is
  untouched and re-applying changes nothing; and the ``ecs`` target adopts the target groups
  named in ``deploy.ecs.target_groups`` instead of creating its own.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aws_rig import ACCOUNT, REGION, AwsInfra, MotoServer, clients

from mlcicd.aws import AwsUnavailable
from mlcicd.delivery.metrics.cloudwatch import ALB_NAMESPACE, CloudWatchConfig, CloudWatchSource
from mlcicd.delivery.targets.alb import LAST_TAG, AlbRouter, canonical, forward_weights
from mlcicd.delivery.targets.base import Backend, BackendUnhealthy, Release, RouterConflict, Slot, TargetState
from mlcicd.delivery.targets.ecs import EcsTarget
from mlcicd.delivery.targets.ecs_config import EcsConfig
from mlcicd.errors import EXIT_USAGE, UsageError

pytestmark = pytest.mark.integration
MODEL = "churn"
WHERE = "mlci.yaml: deploy.canary.sources.cloudwatch"


# -- CloudWatchSource.check() ---------------------------------------------------------------------
def _backend(slot: Slot = "stable", version: str = "3", region: str = REGION) -> Backend:
    """A backend labelled as the ecs target labels it, for a target group and ALB of its own."""
    tag = uuid.uuid4().hex[:16]
    tg_arn = f"arn:aws:elasticloadbalancing:{region}:{ACCOUNT}:targetgroup/mlci-{tag[:8]}/{tag}"
    return Backend(slot, Release(MODEL, version, f"models:/{MODEL}/{version}"), f"ecs://c/s#{tag}", True,
                   {"target_group_arn": tg_arn, "TargetGroup": tg_arn.split(":", 5)[5],
                    "LoadBalancer": f"app/alb-{tag[:8]}/{tag[::-1]}"})


def _alb_served(backend: Backend, minutes_ago: float, requests: int = 40) -> None:
    """What the ALB publishes for ``requests`` answered ``minutes_ago`` by the backend's target group."""
    (cw,) = clients("cloudwatch")
    dims = [{"Name": "TargetGroup", "Value": backend.labels["TargetGroup"]},
            {"Name": "LoadBalancer", "Value": backend.labels["LoadBalancer"]}]
    stamp = datetime.fromtimestamp(time.time() - 60 * minutes_ago, UTC)
    cw.put_metric_data(Namespace=ALB_NAMESPACE, MetricData=[
        {"MetricName": "RequestCount", "Dimensions": dims, "Timestamp": stamp, "Value": requests, "Unit": "Count"},
        {"MetricName": "TargetResponseTime", "Dimensions": dims, "Timestamp": stamp, "Unit": "Seconds",
         "Values": [0.02, 0.05], "Counts": [requests - 1, 1]}])


def _predicted(namespace: str, version: str, minutes_ago: float = 25) -> None:
    """What CloudWatch Logs extracts from the model server's EMF lines."""
    (cw,) = clients("cloudwatch")
    stamp = datetime.fromtimestamp(time.time() - 60 * minutes_ago, UTC)
    cw.put_metric_data(Namespace=namespace, MetricData=[
        {"MetricName": "Predictions", "Timestamp": stamp, "Value": 20, "Unit": "Count",
         "Dimensions": [{"Name": "ModelName", "Value": MODEL}, {"Name": "ModelVersion", "Value": version},
                        {"Name": "Label", "Value": label}]} for label in ("0", "1")])


def _namespace() -> str:
    return f"mlci-test/{uuid.uuid4().hex[:10]}"  # one moto serves every test: nothing shared


def _source(namespace: str, **cfg: Any) -> CloudWatchSource:
    return CloudWatchSource(CloudWatchConfig(namespace=namespace, **cfg), where=WHERE)


def _state(stable: Backend | None, canary: Backend | None = None) -> TargetState:
    return TargetState("http://alb", stable, canary, 0)


def test_a_stable_whose_predictions_are_in_the_namespace_passes_with_a_note(moto: MotoServer) -> None:
    ns, stable, canary = _namespace(), _backend(), _backend("canary", "4")
    _alb_served(stable, minutes_ago=25)
    _predicted(ns, "3")
    notes = _source(ns).check(_state(stable, canary))
    assert len(notes) == 1 and notes[0].startswith("stable: 40 requests in the last 60 min, p99 50 ms"), notes


@pytest.mark.parametrize("minutes_ago", [25, 180], ids=["in-the-window", "before-the-window"])
def test_a_wrong_namespace_is_exit_2_naming_the_key(moto: MotoServer, minutes_ago: float) -> None:
    """The stable served (its RequestCount exists in AWS/ApplicationELB) but ``namespace`` holds nothing."""
    stable = _backend()
    _alb_served(stable, minutes_ago=minutes_ago)
    _predicted(_namespace(), "3")  # where the server really writes
    with pytest.raises(UsageError) as caught:
        _source(_namespace()).check(_state(stable))
    err = caught.value
    assert err.exit_code == EXIT_USAGE
    assert err.where == f"{WHERE}.namespace"
    assert "holds no Predictions metric at all" in err.what and "MLCI_EMF_NAMESPACE" in (err.fix or "")


def test_predictions_under_other_dimensions_are_exit_2_naming_what_was_found(moto: MotoServer) -> None:
    ns, stable = _namespace(), _backend(version="3")
    _alb_served(stable, minutes_ago=25)
    _predicted(ns, "2")  # a server labelled with another version (e.g. an override in deploy.ecs.environment)
    with pytest.raises(UsageError) as caught:
        _source(ns).check(_state(stable))
    err = caught.value
    assert err.where == f"{WHERE}.namespace"
    assert f"ModelName={MODEL}, ModelVersion=2" in err.what and "ModelVersion=3" in err.what
    assert "deploy.ecs.environment" in (err.fix or "")


def test_what_cannot_be_checked_yet_is_a_note_never_an_error(moto: MotoServer) -> None:
    ns = _namespace()
    # A first release: no stable at all.
    (note,) = _source(ns).check(_state(None))
    assert "first release" in note and "nothing to check" in note
    # A stable that has served no request yet (its metrics do not exist).
    quiet = _backend()
    (note,) = _source(ns).check(_state(quiet))
    assert "no requests yet" in note and "cannot be checked" in note
    # A stable that began serving a minute ago: CloudWatch may not list its predictions for 15 minutes.
    fresh = _backend()
    _alb_served(fresh, minutes_ago=1)
    (note,) = _source(ns).check(_state(fresh))
    assert note.startswith("stable: 40 requests") and "checked once it has served for 18 min" in note


def test_a_region_other_than_the_load_balancers_is_exit_2_naming_the_key(moto: MotoServer) -> None:
    stable = _backend(region="eu-central-1")
    with pytest.raises(UsageError) as caught:
        _source(_namespace(), region=REGION).check(_state(stable))
    assert caught.value.where == f"{WHERE}.region"
    assert "set `region: eu-central-1`" in (caught.value.fix or "")


def _cbor(value: Any) -> bytes:
    """The little CBOR a CloudWatch answer needs (maps, arrays, text)."""
    def head(major: int, n: int) -> bytes:
        if n < 24:
            return bytes([major << 5 | n])
        return bytes([major << 5 | 24, n]) if n < 256 else bytes([major << 5 | 25]) + n.to_bytes(2, "big")

    if isinstance(value, str):
        raw = value.encode()
        return head(3, len(raw)) + raw
    if isinstance(value, list):
        return head(4, len(value)) + b"".join(_cbor(v) for v in value)
    return head(5, len(value)) + b"".join(_cbor(k) + _cbor(v) for k, v in value.items())


class _DenyingCloudWatch(BaseHTTPRequestHandler):
    """CloudWatch for a role that lacks the ``denied`` actions (the others find nothing).

    Answers in the protocol boto3 asks in: JSON 1.0 (``X-Amz-Target``) or smithy RPC v2 CBOR
    (the operation in the path), with CloudWatch's query-compatible error code header.
    """

    denied: frozenset[str] = frozenset()
    empty: dict[str, dict[str, Any]] = {"GetMetricData": {"MetricDataResults": [], "Messages": []},
                                        "ListMetrics": {"Metrics": []}}

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        cbor = "cbor" in self.headers.get("Content-Type", "")
        action = self.path.rsplit("/", 1)[-1] if cbor else self.headers.get("X-Amz-Target", "").rsplit(".", 1)[-1]
        body: dict[str, Any]
        if action in self.denied:
            status, body = 400, {"__type": "com.amazon.coral.service#AccessDeniedException",
                                 "message": f"User: arn:aws:sts::{ACCOUNT}:assumed-role/ci/job is not authorized to "
                                            f"perform: cloudwatch:{action} because no identity-based policy allows "
                                            "the action"}
        else:
            status, body = 200, self.empty.get(action, {})
        data = _cbor(body) if cbor else json.dumps(body).encode()
        self.send_response(status)
        if cbor:
            self.send_header("Content-Type", "application/cbor")
            self.send_header("smithy-protocol", "rpc-v2-cbor")
        else:
            self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        if status == 400:
            self.send_header("x-amzn-query-error", "AccessDenied;Sender")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def denying_cloudwatch(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[type[_DenyingCloudWatch]]:
    handler = type("Handler", (_DenyingCloudWatch,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDWATCH", f"http://127.0.0.1:{server.server_port}")
    try:
        yield handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.mark.parametrize(("denied", "stable"), [("GetMetricData", True), ("ListMetrics", True),
                                                ("ListMetrics", False)],
                         ids=["GetMetricData", "ListMetrics-stable-without-requests", "ListMetrics-first-release"])
def test_a_denied_call_is_exit_2_naming_the_permission(denying_cloudwatch: type[_DenyingCloudWatch], denied: str,
                                                       stable: bool) -> None:
    denying_cloudwatch.denied = frozenset({denied})
    with pytest.raises(UsageError) as caught:
        _source(_namespace()).check(_state(_backend() if stable else None))
    err = caught.value
    assert err.exit_code == EXIT_USAGE and err.where == WHERE
    assert f"CloudWatch denied {denied}" in err.what and "AccessDenied" in err.what
    assert f"allow `cloudwatch:{denied}`" in (err.fix or "")


def test_cloudwatch_unreachable_is_a_safe_rerun_not_a_config_error(moto: MotoServer,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDWATCH", f"http://127.0.0.1:{port}")
    with pytest.raises(AwsUnavailable, match="re-running is safe"):
        _source(_namespace(), read_timeout=2).check(_state(_backend()))


# -- AlbRouter on a listener rule -------------------------------------------------------------------
class _Counting:
    """The ELBv2 client, counting the calls that change something."""

    def __init__(self, elb: Any) -> None:
        self.elb = elb
        self.writes: list[str] = []

    def __getattr__(self, name: str) -> Any:
        if name.startswith(("modify_", "create_", "delete_")):
            self.writes.append(name)
        return getattr(self.elb, name)


def _target_groups(infra: AwsInfra, *colors: str) -> dict[str, str]:
    (elb,) = clients("elbv2")
    return {c: elb.create_target_group(Name=f"{infra.name}-own-{c}", Protocol="HTTP", Port=8080, VpcId=infra.vpc,
                                       TargetType="ip", HealthCheckPath="/ready")["TargetGroups"][0]["TargetGroupArn"]
            for c in colors}


def test_the_router_drives_a_listener_rule_and_keeps_authentication(moto: MotoServer) -> None:
    infra = AwsInfra.create("rule", with_rule=True)
    assert infra.rule_arn is not None
    (elb,) = clients("elbv2")
    tgs = _target_groups(infra, "blue", "green")
    blue, green = tgs["blue"], tgs["green"]
    auth = {"Type": "authenticate-oidc", "Order": 1, "AuthenticateOidcConfig": {
        "Issuer": "https://idp.example.com", "AuthorizationEndpoint": "https://idp.example.com/authorize",
        "TokenEndpoint": "https://idp.example.com/token", "UserInfoEndpoint": "https://idp.example.com/userinfo",
        "ClientId": "mlci", "ClientSecret": "secret"}}
    nothing = elb.describe_rules(RuleArns=[infra.rule_arn])["Rules"][0]["Actions"]
    elb.modify_rule(RuleArn=infra.rule_arn, Actions=[auth, {**nothing[0], "Order": 2}])
    default_before = elb.describe_listeners(ListenerArns=[infra.listener_arn])["Listeners"][0]["DefaultActions"]

    def rule() -> list[dict[str, Any]]:
        return sorted(elb.describe_rules(RuleArns=[infra.rule_arn])["Rules"][0]["Actions"], key=lambda a: a["Order"])

    def forward(actions: list[dict[str, Any]]) -> dict[str, int]:
        (fwd,) = [a for a in actions if a["Type"] == "forward"]
        return {g["TargetGroupArn"]: g["Weight"] for g in fwd["ForwardConfig"]["TargetGroups"]}

    counting = _Counting(elb)
    router = AlbRouter(counting, infra.rule_arn, where="mlci.yaml: deploy.ecs.listener_rule_arn")
    assert router.is_rule
    view = router.read()
    assert (view.weights, view.drift, view.listener_arn) == ({}, None, infra.listener_arn)
    assert (view.load_balancer_arn, view.port, view.protocol) == (infra.load_balancer_arn, 80, "HTTP")

    steps = [({blue: 90, green: 10}, 10), ({blue: 50, green: 50}, 50), ({blue: 0, green: 100}, 100)]
    for weights, green_percent in steps:
        router.set_weights(weights)
        actions = rule()
        assert [a["Type"] for a in actions] == ["authenticate-oidc", "forward"], actions
        assert actions[0]["AuthenticateOidcConfig"]["Issuer"] == "https://idp.example.com"
        assert forward(actions) == weights
        view = router.read()
        assert view.weights == weights and view.drift is None and view.percent(green) == green_percent
        tags = {t["Key"]: t["Value"] for t in elb.describe_tags(ResourceArns=[infra.rule_arn])["TagDescriptions"][0]
                ["Tags"]}
        assert tags[LAST_TAG] == canonical(weights)
        # Re-applying the split changes nothing.
        before, writes = rule(), len(counting.writes)
        router.set_weights(weights)
        router.set_weights({arn: 2 * w for arn, w in weights.items()})  # the same split, scaled
        assert rule() == before and counting.writes[writes:] == []
        # The listener's own default action is never touched by the rule's router.
        listener = elb.describe_listeners(ListenerArns=[infra.listener_arn])["Listeners"][0]
        assert listener["DefaultActions"] == default_before
    assert counting.writes == ["modify_rule"] * len(steps)

    # Somebody else edits the rule: reported, never overwritten, until traffic is taken off (override).
    elb.modify_rule(RuleArn=infra.rule_arn, Actions=[auth, {"Type": "forward", "Order": 2, "ForwardConfig": {
        "TargetGroups": [{"TargetGroupArn": blue, "Weight": 1}]}}])
    assert router.read().drift is not None
    with pytest.raises(RouterConflict):
        router.set_weights({blue: 0, green: 100})
    assert forward_weights(rule()) == {blue: 1}
    # Nothing to serve: the rule answers 503 itself, authentication still in front.
    router.set_weights({}, override_drift=True)
    actions = rule()
    assert [a["Type"] for a in actions] == ["authenticate-oidc", "fixed-response"]
    assert actions[1]["FixedResponseConfig"]["StatusCode"] == "503" and router.read().drift is None


def test_the_ecs_target_adopts_the_target_groups_it_is_given(moto: MotoServer) -> None:
    """A first deploy with ``deploy.ecs.target_groups`` creates a service in the given group, and no group."""
    infra = AwsInfra.create("adopt", with_rule=True)
    (elb, ecs) = clients("elbv2", "ecs")
    tgs = _target_groups(infra, "blue", "green")

    def groups() -> set[str]:
        pages = elb.get_paginator("describe_target_groups").paginate()
        return {g["TargetGroupArn"] for page in pages for g in page["TargetGroups"]}

    before = groups()
    ticks = itertools.count(step=1000)  # every look at the clock is past the health deadline
    cfg = EcsConfig(**infra.ecs_config(target_groups=tgs, health_timeout=1, poll_interval=0.1))
    target = EcsTarget(cfg, clock=lambda: float(next(ticks)), sleep=lambda _: None)
    release = Release(MODEL, "1", f"models:/{MODEL}/1", None, "registry.example/mlci/churn@sha256:" + "a" * 64)
    # moto runs no tasks, so the service never becomes healthy: the deploy stops before traffic moves.
    with pytest.raises(BackendUnhealthy, match="Traffic was not moved"):
        target.ensure_backend("stable", release)
    assert groups() == before, "a target group was created although deploy.ecs.target_groups names them"
    (svc,) = ecs.describe_services(cluster=infra.cluster, services=[f"{infra.name}-blue"])["services"]
    assert [lb["targetGroupArn"] for lb in svc["loadBalancers"]] == [tgs["blue"]]
    assert forward_weights(elb.describe_rules(RuleArns=[infra.rule_arn])["Rules"][0]["Actions"]) == {}
    # A re-run adopts the same groups again and creates no second service or group.
    with pytest.raises(BackendUnhealthy):
        EcsTarget(cfg, clock=lambda: float(next(ticks)), sleep=lambda _: None).ensure_backend("stable", release)
    assert groups() == before
    assert len(ecs.list_services(cluster=infra.cluster)["serviceArns"]) == 1
