"""``deploy.ecs``: the ECS target's own configuration, validated by the plugin itself.

Two ECS services, ``<service_name>-blue`` and ``<service_name>-green``, each in its own target
group, take turns as the stable and the canary slot; an ALB listener (or one listener rule)
splits traffic between the two target groups with a weighted forward action. Everything that
already exists is adopted (``target_groups``, services of those names); what is missing is created.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from mlcicd.plugins import SettingsError

COLORS = ("blue", "green")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,25}$")  # "<name>-green" must fit a 32-character TG name
_ARN = {
    "listener_arn": re.compile(r"^arn:aws[\w-]*:elasticloadbalancing:[\w-]+:\d{12}:listener/app/"),
    "listener_rule_arn": re.compile(r"^arn:aws[\w-]*:elasticloadbalancing:[\w-]+:\d{12}:listener-rule/app/"),
    "test_listener_arn": re.compile(r"^arn:aws[\w-]*:elasticloadbalancing:[\w-]+:\d{12}:listener/app/"),
}
_TG_ARN = re.compile(r"^arn:aws[\w-]*:elasticloadbalancing:[\w-]+:\d{12}:targetgroup/")
# Fargate's valid sizes: cpu units -> (lowest, highest, step) memory in MiB (256 CPU units also takes 512).
_FARGATE_MEMORY = {256: (1024, 2048, 1024), 512: (1024, 4096, 1024), 1024: (2048, 8192, 1024),
                   2048: (4096, 16384, 1024), 4096: (8192, 30720, 1024), 8192: (16384, 61440, 4096),
                   16384: (32768, 122880, 8192)}


def fargate_memory_ok(cpu: int, memory: int) -> bool:
    low, high, step = _FARGATE_MEMORY[cpu]
    return (cpu == 256 and memory == 512) or (low <= memory <= high and (memory - low) % step == 0)


@dataclass
class EcsConfig:
    cluster: str
    # The two services are <service_name>-blue and <service_name>-green (at most 26 characters).
    service_name: str
    subnets: list[str]
    security_groups: list[str]
    region: str | None = None
    # The router: a listener whose default action, or one listener rule whose action, we own.
    listener_arn: str | None = None
    listener_rule_arn: str | None = None
    # Blue-green smoke checks reach the new version through a second listener (port) we own.
    test_listener_arn: str | None = None
    # What smoke checks use; defaults to http(s)://<ALB DNS name>:<test listener port>.
    test_endpoint: str | None = None
    # What callers use; defaults to http(s)://<ALB DNS name>:<listener port>.
    endpoint: str | None = None
    # Adopt existing target groups instead of creating <service_name>-blue / -green.
    target_groups: dict[str, str] = field(default_factory=dict)
    launch_type: Literal["FARGATE", "EC2"] = "FARGATE"
    assign_public_ip: bool = False
    task_role_arn: str | None = None
    # Fargate needs it to pull from ECR and to ship logs.
    execution_role_arn: str | None = None
    cpu: int = 1024
    memory: int = 2048
    container_port: int = 8080
    health_check_path: str = "/ready"
    desired_count: int = 1
    # Seconds a new version may take to run and pass the load balancer's health checks.
    health_timeout: float = 600.0
    # Seconds between ECS/ELB reads while waiting for a new version.
    poll_interval: float = 5.0
    # CloudWatch Logs group of the model server's stdout (its EMF prediction metrics ride on it).
    log_group: str | None = None
    environment: dict[str, str] = field(default_factory=dict)
    # Model-server worker processes per task (empty: one per vCPU of the task).
    workers: int | None = None

    def check(self) -> None:
        def fail(key: str, what: str, fix: str) -> None:
            raise SettingsError(key, what, fix)

        if not _NAME.match(self.service_name):
            fail("service_name", f"{self.service_name!r} must be 1-26 letters, digits or hyphens (the target group "
                 f"{self.service_name}-green must fit AWS's 32 characters)", "e.g. `service_name: credit-risk`")
        if (self.listener_arn is None) == (self.listener_rule_arn is None):
            fail("listener_arn", "give exactly one of listener_arn and listener_rule_arn",
                 "use `listener_arn: arn:aws:elasticloadbalancing:…:listener/app/…` to own the listener's "
                 "default action, or `listener_rule_arn: …:listener-rule/app/…` to own one rule")
        for key, pattern in _ARN.items():
            value = getattr(self, key)
            if value is not None and not pattern.match(value):
                kind = "listener-rule" if key == "listener_rule_arn" else "listener"
                fail(key, f"{value!r} is not an Application Load Balancer {kind} ARN",
                     f"copy it from `aws elbv2 describe-{'rules' if kind == 'listener-rule' else 'listeners'}`")
        for color, arn in self.target_groups.items():
            if color not in COLORS:
                fail(f"target_groups.{color}", f"unknown slot colour {color!r}", "use the keys `blue` and `green`")
            if not _TG_ARN.match(arn):
                fail(f"target_groups.{color}", f"{arn!r} is not a target group ARN",
                     "copy it from `aws elbv2 describe-target-groups`")
        if not self.subnets:
            fail("subnets", "at least one subnet is needed (awsvpc networking)", "e.g. `subnets: [subnet-0abc…]`")
        if not self.security_groups:
            fail("security_groups", "at least one security group is needed (awsvpc networking)",
                 "e.g. `security_groups: [sg-0abc…]` allowing the load balancer to reach the container port")
        if not 1 <= self.container_port <= 65535:
            fail("container_port", f"must be 1..65535, got {self.container_port}", "e.g. `container_port: 8080`")
        if self.desired_count < 1:
            fail("desired_count", f"must be at least 1, got {self.desired_count}", "e.g. `desired_count: 2`")
        if self.health_timeout <= 0:
            fail("health_timeout", f"must be positive, got {self.health_timeout}", "e.g. `health_timeout: 600`")
        if not self.health_check_path.startswith("/"):
            fail("health_check_path", f"must start with /, got {self.health_check_path!r}",
                 "e.g. `health_check_path: /ready`")
        if self.workers is not None and self.workers < 1:
            fail("workers", f"must be at least 1, got {self.workers}", "remove it to use one per vCPU")
        if self.launch_type == "FARGATE":
            span = _FARGATE_MEMORY.get(self.cpu)
            if span is None:
                fail("cpu", f"{self.cpu} is not a Fargate CPU size",
                     f"use one of {', '.join(map(str, _FARGATE_MEMORY))} (1024 = 1 vCPU)")
            elif not fargate_memory_ok(self.cpu, self.memory):
                low = 512 if self.cpu == 256 else span[0]
                fail("memory", f"{self.memory} MiB does not fit {self.cpu} CPU units on Fargate",
                     f"use {low}..{span[1]} MiB in steps of {span[2]}, e.g. `memory: {span[0]}`, or change cpu")
            if self.execution_role_arn is None:
                fail("execution_role_arn", "Fargate tasks need an execution role to pull the image and ship logs",
                     "e.g. `execution_role_arn: arn:aws:iam::123456789012:role/ecsTaskExecutionRole`")

    def service(self, color: str) -> str:
        return f"{self.service_name}-{color}"

    @property
    def task_family(self) -> str:
        return f"{self.service_name}-model"

    @property
    def router_arn(self) -> str:
        arn = self.listener_rule_arn or self.listener_arn
        assert arn is not None  # check() guarantees one of them
        return arn
