"""An ALB listener (or one listener rule) as the router: its weighted forward action splits traffic.

ml-cicd owns the terminal action of the listener's default actions, or of one rule's actions;
``authenticate-*`` actions in front of it are kept. Every weight change is recorded on the
listener/rule itself as tags, so a later job on another machine can tell a split it set from one
somebody else set: ``mlci:weights-pending`` is written before the change and ``mlci:weights``
after it, so a crash between the calls never reads as a foreign change (the live split is one
of the two). A live split that is neither is *drift*: reported, and never blindly overwritten.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlcicd.aws import translated
from mlcicd.delivery.targets.base import RouterConflict

LAST_TAG = "mlci:weights"
PENDING_TAG = "mlci:weights-pending"


def canonical(weights: Mapping[str, int]) -> str:
    """A split as text that ignores scale and zero entries: 90/10 and 180/20 read the same."""
    total = sum(w for w in weights.values() if w > 0)
    if total <= 0:
        return "none"
    parts = sorted(f"{_short(arn)}={round(1000 * w / total)}" for arn, w in weights.items() if w > 0)
    return ",".join(parts)


def _short(tg_arn: str) -> str:
    """``...:targetgroup/name/id`` -> ``name/id`` (tag values are limited to 256 characters)."""
    return tg_arn.rsplit(":targetgroup/", 1)[-1]


@dataclass(frozen=True)
class RouterView:
    weights: dict[str, int]  # target group ARN -> weight, as the live forward action has them
    listener_arn: str
    load_balancer_arn: str
    port: int
    protocol: str
    drift: str | None = None  # why the live split is not one ml-cicd set, or None
    actions: list[dict[str, Any]] = field(default_factory=list)

    def percent(self, tg_arn: str | None) -> int:
        total = sum(self.weights.values())
        if tg_arn is None or total <= 0:
            return 0
        return round(100 * self.weights.get(tg_arn, 0) / total)


class AlbRouter:
    def __init__(self, elb: Any, arn: str, *, where: str) -> None:
        self.elb = elb
        self.arn = arn
        self.is_rule = ":listener-rule/" in arn
        self.where = where

    # -- reading ----------------------------------------------------------------------------
    def read(self) -> RouterView:
        with translated("elasticloadbalancing:DescribeListeners", self.where):
            if self.is_rule:
                rule = self.elb.describe_rules(RuleArns=[self.arn])["Rules"][0]
                actions = rule["Actions"]
                listener_arn = self.arn.replace(":listener-rule/", ":listener/").rsplit("/", 1)[0]
            else:
                actions, listener_arn = None, self.arn
            listener = self.elb.describe_listeners(ListenerArns=[listener_arn])["Listeners"][0]
            if actions is None:
                actions = listener["DefaultActions"]
            tags = self._tags()
        weights = forward_weights(actions)
        live = canonical(weights)
        recorded = {tags.get(LAST_TAG), tags.get(PENDING_TAG)} - {None}
        drift = None
        if recorded and live not in recorded:
            drift = (f"the forward action of {self.arn} reads {_describe(weights)}, but ml-cicd last set "
                     f"{tags.get(LAST_TAG, 'nothing')}")
        return RouterView(weights, listener_arn, listener["LoadBalancerArn"], int(listener["Port"]),
                          str(listener["Protocol"]), drift, actions)

    def _tags(self) -> dict[str, str]:
        found = self.elb.describe_tags(ResourceArns=[self.arn])["TagDescriptions"]
        return {t["Key"]: t["Value"] for d in found for t in d.get("Tags", [])}

    # -- writing ----------------------------------------------------------------------------
    def set_weights(self, weights: Mapping[str, int], *, view: RouterView | None = None,
                    override_drift: bool = False) -> None:
        """Make the forward action carry ``weights`` (target group ARN -> weight). Idempotent."""
        view = view or self.read()
        if view.drift and not override_drift:
            raise RouterConflict(f"{view.drift}. Not overwriting a split somebody else set: decide what should "
                                 "serve, then run the rollback stage (it only ever takes the canary out) or "
                                 f"restore the split ml-cicd set and re-run. Router: {self.arn}")
        wanted = {arn: int(w) for arn, w in weights.items()}
        text = canonical(wanted)
        if canonical(view.weights) == text and not view.drift:
            self._tag({LAST_TAG: text})
            return
        self._tag({PENDING_TAG: text})
        kept = [a for a in view.actions if str(a.get("Type", "")).startswith("authenticate")]
        order = max((int(a.get("Order", 0)) for a in kept), default=0) + 1
        forward: dict[str, Any] = {"Type": "forward", "Order": order,
                                   "ForwardConfig": {"TargetGroups": [{"TargetGroupArn": arn, "Weight": w}
                                                                      for arn, w in sorted(wanted.items())],
                                                     "TargetGroupStickinessConfig": {"Enabled": False}}}
        if text == "none":  # nothing to serve: answer 503 rather than forwarding nowhere
            forward = {"Type": "fixed-response", "Order": order, "FixedResponseConfig": {
                "StatusCode": "503", "ContentType": "text/plain", "MessageBody": "no model deployed (ml-cicd)"}}
        with translated("elasticloadbalancing:ModifyListener" if not self.is_rule
                        else "elasticloadbalancing:ModifyRule", self.where):
            if self.is_rule:
                self.elb.modify_rule(RuleArn=self.arn, Actions=[*kept, forward])
            else:
                self.elb.modify_listener(ListenerArn=self.arn, DefaultActions=[*kept, forward])
        self._tag({LAST_TAG: text})

    def _tag(self, tags: dict[str, str]) -> None:
        with translated("elasticloadbalancing:AddTags", self.where):
            self.elb.add_tags(ResourceArns=[self.arn], Tags=[{"Key": k, "Value": v} for k, v in tags.items()])


def forward_weights(actions: list[dict[str, Any]]) -> dict[str, int]:
    """Target group ARN -> weight of the terminal forward action ({} for fixed-response/redirect)."""
    for action in sorted(actions, key=lambda a: int(a.get("Order", 0))):
        if action.get("Type") != "forward":
            continue
        groups = (action.get("ForwardConfig") or {}).get("TargetGroups")
        if groups:
            return {g["TargetGroupArn"]: int(g.get("Weight", 1)) for g in groups}
        if action.get("TargetGroupArn"):
            return {action["TargetGroupArn"]: 1}
    return {}


def _describe(weights: Mapping[str, int]) -> str:
    total = sum(weights.values())
    if total <= 0:
        return "no forward"
    return ", ".join(f"{_short(arn).split('/')[0]} {100 * w / total:.0f}%" for arn, w in sorted(weights.items()))
