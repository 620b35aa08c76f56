"""AWS for the tests: moto in server mode, plus the infrastructure a user already has.

moto (``ThreadedMotoServer`` on 127.0.0.1) answers ECS, ELBv2, CloudWatch, ECR and STS over
HTTP, so the code under test talks to it through boto3 exactly as it would talk to AWS
(``AWS_ENDPOINT_URL``). Gaps of moto 5.2 are filled here, in the stand-in and never in the
code under test (:func:`teach_moto`):

* CloudWatch's extended statistics: moto computes only Sum/Average/Minimum/Maximum/
  SampleCount and answers 500 for ``p99`` or ``PR(:0.05)``. :func:`teach_moto_statistics`
  adds percentiles and percentile ranks computed from the raw values, as CloudWatch does
  for metrics published with values (ALB's TargetResponseTime is one).
* ``RunTask`` with awsvpc networking fails on a missing ``private_dns_name`` of moto's network
  interfaces, and moto advances a task's status on every ``DescribeTasks``: tasks get a DNS
  name and stay RUNNING until they are stopped, as on ECS.
* moto runs no containers and routes no traffic: :mod:`alb_data_plane` plays ECS's
  scheduler, the ALB and CloudWatch's metric publishing with real processes and nginx.

:class:`AwsInfra` creates what a user of the ``ecs`` target has before the first deploy:
a VPC with two subnets and a security group, an ALB with a listener (answering 503 until a
model is deployed), optionally a listener rule and a test listener, and an ECS cluster.
"""

from __future__ import annotations

import itertools
import math
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

REGION = "eu-west-1"
ACCOUNT = "123456789012"
_PERCENTILE = re.compile(r"^p(\d+(?:\.\d+)?)$")
_RANK = re.compile(r"^PR\(([^:]*):([^)]*)\)$")
_names = itertools.count(1)
_lock = threading.Lock()


def teach_moto() -> None:
    """Fill the gaps listed in the module docstring (idempotent)."""
    from moto.cloudwatch import models
    from moto.ec2.models.elastic_network_interfaces import NetworkInterface
    from moto.moto_api import state_manager

    if getattr(models.Statistics, "_mlci_extended", False):
        return
    NetworkInterface.private_dns_name = property(  # type: ignore[attr-defined]
        lambda self: "ip-" + str(self.private_ip_address).replace(".", "-") + f".{REGION}.compute.internal")
    state_manager.set_transition(model_name="ecs::task", transition={"progression": "manual", "times": 10**9})
    original = models.Statistics.get_statistics_for_type

    def get_statistics_for_type(self: Any, stat: str) -> Any:
        values = sorted(self.metric_single_values_list)
        if (m := _PERCENTILE.match(stat)) is not None:
            if not values:
                return None
            rank = max(1, math.ceil(float(m[1]) / 100 * len(values)))  # nearest rank
            return values[rank - 1]
        if (m := _RANK.match(stat)) is not None:
            if not values:
                return None
            lo = float(m[1]) if m[1] else -math.inf
            hi = float(m[2]) if m[2] else math.inf
            # CloudWatch: the lower bound is exclusive, the upper inclusive.
            return 100.0 * sum(1 for v in values if lo < v <= hi) / len(values)
        return original(self, stat)

    models.Statistics.get_statistics_for_type = get_statistics_for_type
    models.Statistics._mlci_extended = True


@dataclass
class MotoServer:
    url: str
    server: Any

    def env(self) -> dict[str, str]:
        """What a process (a stage, a CI job) needs to talk to this server with boto3."""
        return {"AWS_ENDPOINT_URL": self.url, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true"}

    def stop(self) -> None:
        self.server.stop()


@contextmanager
def moto_server() -> Iterator[MotoServer]:
    """One moto server for a whole test session; the environment points boto3 at it meanwhile."""
    import logging

    from moto.server import ThreadedMotoServer

    teach_moto()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    moto = MotoServer(f"http://{host}:{port}", server)
    saved = {k: os.environ.get(k) for k in moto.env()}
    os.environ.update(moto.env())
    try:
        yield moto
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        moto.stop()


def clients(*services: str) -> list[Any]:
    import boto3

    return [boto3.client(s, region_name=REGION) for s in services]


@dataclass(frozen=True)
class AwsInfra:
    """What exists before the first deploy. Names are unique per instance (one moto serves all tests)."""

    name: str
    vpc: str
    subnets: tuple[str, ...]
    security_group: str
    load_balancer_arn: str
    listener_arn: str
    test_listener_arn: str
    rule_arn: str | None
    cluster: str

    @classmethod
    def create(cls, prefix: str = "mlci", *, with_rule: bool = False) -> AwsInfra:
        with _lock:
            name = f"{prefix}{next(_names)}"
        ec2, elb, ecs = clients("ec2", "elbv2", "ecs")
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnets = tuple(ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"{REGION}{z}")
                        ["Subnet"]["SubnetId"] for i, z in ((1, "a"), (2, "b")))
        sg = ec2.create_security_group(GroupName=f"{name}-tasks", Description="model servers", VpcId=vpc)["GroupId"]
        lb = elb.create_load_balancer(Name=f"{name}-alb", Subnets=list(subnets), SecurityGroups=[sg],
                                      Scheme="internal", Type="application")["LoadBalancers"][0]["LoadBalancerArn"]
        nothing = [{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "503", "ContentType":
                                                                      "text/plain", "MessageBody": "nothing yet"}}]
        listener = elb.create_listener(LoadBalancerArn=lb, Protocol="HTTP", Port=80,
                                       DefaultActions=nothing)["Listeners"][0]["ListenerArn"]
        test = elb.create_listener(LoadBalancerArn=lb, Protocol="HTTP", Port=8443,
                                   DefaultActions=nothing)["Listeners"][0]["ListenerArn"]
        rule = None
        if with_rule:
            rule = elb.create_rule(ListenerArn=listener, Priority=10, Actions=nothing, Conditions=[
                {"Field": "path-pattern", "Values": ["/*"]}])["Rules"][0]["RuleArn"]
        ecs.create_cluster(clusterName=f"{name}-cluster")
        return cls(name, vpc, subnets, sg, lb, listener, test, rule, f"{name}-cluster")

    def ecs_config(self, **overrides: Any) -> dict[str, Any]:
        """The ``deploy.ecs`` section of mlci.yaml for this infrastructure."""
        cfg: dict[str, Any] = {
            "region": REGION, "cluster": self.cluster, "service_name": self.name,
            "subnets": list(self.subnets), "security_groups": [self.security_group],
            "execution_role_arn": f"arn:aws:iam::{ACCOUNT}:role/ecsTaskExecutionRole",
            "test_listener_arn": self.test_listener_arn, "health_timeout": 60, "cpu": 512, "memory": 1024,
        }
        if self.rule_arn:
            cfg["listener_rule_arn"] = self.rule_arn
        else:
            cfg["listener_arn"] = self.listener_arn
        cfg.update(overrides)
        return cfg


def moto_fixture() -> Any:
    """The session-wide ``moto`` pytest fixture (import it into a conftest)."""
    import pytest

    @pytest.fixture(scope="session")
    def moto() -> Iterator[MotoServer]:
        pytest.importorskip("moto.server", reason="moto[server] is in the dev extra")
        with moto_server() as server:
            yield server

    return moto
