"""Notifications: tell people about rollbacks, promotions, inconclusive canaries, failed gates
and drift (``notify:`` in mlci.yaml, :mod:`mlcicd.config_notify`).

The runner calls :func:`notify_result` once a stage's result is known and before it is
published. A notification that cannot be delivered never changes the verdict: it becomes a
``notify:<target>`` check with status warn (annotated like every warning), an entry in the
result's ``figures["notifications"]`` and a log line naming the target and the error.
requests and boto3 are imported only when there is something to send.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from mlcicd.ci.base import CIAdapter
from mlcicd.config_notify import NotifyConfig
from mlcicd.httpretry import Policy
from mlcicd.notify.events import Message, event_of
from mlcicd.notify.targets import NotDelivered, SlackSender, WebhookSender
from mlcicd.report import Check, StageResult, Status

__all__ = ["Message", "event_of", "notify_result"]


class Sender(Protocol):
    name: str

    def send(self, message: Message) -> int: ...


def senders(notify: NotifyConfig, event: str, env: Mapping[str, str], policy: Policy | None = None) -> list[Sender]:
    """The configured targets that want ``event``, in a fixed order (slack, webhook, sns)."""
    policy = policy or Policy(attempts=notify.attempts, timeout=notify.timeout)
    found: list[Sender] = []
    if notify.slack is not None and event in notify.slack.on:
        found.append(SlackSender(notify.slack, env, policy))
    if notify.webhook is not None and event in notify.webhook.on:
        found.append(WebhookSender(notify.webhook, env, policy))
    if notify.sns is not None and event in notify.sns.on:
        from mlcicd.notify.sns import SnsSender

        found.append(SnsSender(notify.sns, policy))
    return found


def notify_result(result: StageResult, notify: NotifyConfig, ci: CIAdapter, env: Mapping[str, str], *,
                  model: str, project: str | None = None, policy: Policy | None = None) -> None:
    """Send the result's event (if any) to every target that wants it; record what happened."""
    event = event_of(result)
    if event is None:
        return
    try:
        targets = senders(notify, event, env, policy)
    except Exception as exc:  # a broken install must not fail a stage that did its work
        targets = []
        _record(result, ci, "notify", event, False, 0, f"{type(exc).__name__}: {exc}")
    if not targets:
        return
    message = Message.build(event, result, model=model, project=project, run_url=ci.run_url())
    for sender in targets:
        try:
            attempts = sender.send(message)
        except NotDelivered as exc:
            _record(result, ci, sender.name, event, False, exc.attempts, str(exc))
        except Exception as exc:  # a bug in a sender is still only a missed notification
            _record(result, ci, sender.name, event, False, 0, f"{type(exc).__name__}: {exc}")
        else:
            _record(result, ci, sender.name, event, True, attempts, None)


def _record(result: StageResult, ci: CIAdapter, target: str, event: str, delivered: bool, attempts: int,
            error: str | None) -> None:
    result.figures.setdefault("notifications", []).append(
        {"target": target, "event": event, "delivered": delivered, "attempts": attempts, "error": error})
    if delivered:
        ci.log(f"notify {target}: sent {event} ({attempts} attempt{'s' if attempts != 1 else ''})")
        return
    ci.log(f"notify {target}: {event} NOT delivered: {error}")
    result.checks.append(Check(f"notify:{target}", Status.WARN,
                               f"the {event} notification to {target} was not delivered: {error}. The stage's "
                               "verdict stands; check the target's settings under notify in mlci.yaml.",
                               observed=attempts))
