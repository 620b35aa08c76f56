"""deploy.ecs validation: every error names the key and says what to write."""

from __future__ import annotations

from typing import Any

import pytest

from mlcicd.delivery.targets.ecs_config import EcsConfig
from mlcicd.plugins import SettingsError

LISTENER = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener/app/alb/50dc6c495c0c9188/f2f7dc8efc522ab2"
RULE = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener-rule/app/alb/50dc6c495c0c9188/f2f7dc8e/9683b2d0"


def make(**over: Any) -> EcsConfig:
    base: dict[str, Any] = {"cluster": "ml", "service_name": "credit-risk", "subnets": ["subnet-1"],
                            "security_groups": ["sg-1"], "listener_arn": LISTENER,
                            "execution_role_arn": "arn:aws:iam::123456789012:role/ecsTaskExecutionRole"}
    base.update(over)
    return EcsConfig(**base)


def test_a_valid_config_passes_and_names_its_services() -> None:
    cfg = make()
    cfg.check()
    assert (cfg.service("blue"), cfg.service("green"), cfg.router_arn) == ("credit-risk-blue", "credit-risk-green",
                                                                          LISTENER)
    make(listener_arn=None, listener_rule_arn=RULE).check()


@pytest.mark.parametrize(("over", "key", "hint"), [
    ({"listener_rule_arn": RULE}, "listener_arn", "exactly one"),
    ({"listener_arn": None}, "listener_arn", "exactly one"),
    ({"listener_arn": "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/x/1"}, "listener_arn",
     "describe-listeners"),
    ({"service_name": "a-very-long-service-name-that-does-not-fit"}, "service_name", "32 characters"),
    ({"subnets": []}, "subnets", "subnet-"),
    ({"security_groups": []}, "security_groups", "sg-"),
    ({"cpu": 300}, "cpu", "1024 = 1 vCPU"),
    ({"cpu": 256, "memory": 4096}, "memory", "512..2048"),
    ({"cpu": 1024, "memory": 3000}, "memory", "steps of 1024"),
    ({"cpu": 8192, "memory": 17408}, "memory", "steps of 4096"),
    ({"execution_role_arn": None}, "execution_role_arn", "ecsTaskExecutionRole"),
    ({"desired_count": 0}, "desired_count", "desired_count: 2"),
    ({"target_groups": {"red": "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/x/1"}},
     "target_groups.red", "blue"),
    ({"health_check_path": "ready"}, "health_check_path", "/ready"),
])
def test_errors_name_the_key_and_the_fix(over: dict[str, Any], key: str, hint: str) -> None:
    with pytest.raises(SettingsError) as info:
        make(**over).check()
    assert info.value.key == key
    assert hint in info.value.what + info.value.fix


def test_ec2_launch_type_skips_fargate_sizing() -> None:
    make(launch_type="EC2", cpu=300, memory=100, execution_role_arn=None).check()
