"""The ALB router's pure parts: reading a forward action, and telling our split from a foreign one."""

from __future__ import annotations

from mlcicd.delivery.targets.alb import canonical, forward_weights

TG_A = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/m-blue/1111"
TG_B = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/m-green/2222"


def test_forward_weights_reads_weighted_simple_and_non_forward_actions() -> None:
    weighted = [{"Type": "authenticate-oidc", "Order": 1},
                {"Type": "forward", "Order": 2, "ForwardConfig": {"TargetGroups": [
                    {"TargetGroupArn": TG_A, "Weight": 90}, {"TargetGroupArn": TG_B, "Weight": 10}]}}]
    assert forward_weights(weighted) == {TG_A: 90, TG_B: 10}
    assert forward_weights([{"Type": "forward", "TargetGroupArn": TG_A}]) == {TG_A: 1}
    assert forward_weights([{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "503"}}]) == {}


def test_canonical_ignores_scale_and_zero_entries() -> None:
    assert canonical({TG_A: 90, TG_B: 10}) == canonical({TG_A: 180, TG_B: 20})
    assert canonical({TG_A: 100, TG_B: 0}) == canonical({TG_A: 1})
    assert canonical({TG_A: 90, TG_B: 10}) != canonical({TG_A: 50, TG_B: 50})
    assert canonical({}) == canonical({TG_A: 0}) == "none"
    # Tag values are limited to 256 characters: the text names target groups by name/id only.
    assert len(canonical({TG_A: 1, TG_B: 1})) < 256 and "arn:" not in canonical({TG_A: 1})
