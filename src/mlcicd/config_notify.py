"""The ``notify`` section of ``mlci.yaml``: who is told when something happens.

Three kinds of target, each optional, each with its own ``on:`` list of events (default: all):

```yaml
notify:
  slack: {webhook_url_env: SLACK_WEBHOOK_URL, on: [rollback, inconclusive]}
  webhook: {url: "https://ops.example.com/mlci", secret_env: MLCI_WEBHOOK_SECRET}
  sns: {topic_arn: "arn:aws:sns:eu-west-1:123456789012:ml-alerts", region: eu-west-1}
```

Secrets never live in the file: the Slack URL (which is itself the credential) and the
HMAC key are named by the environment variable that holds them (a CI secret / masked
variable). :mod:`mlcicd.config` builds the section and calls :func:`check_notify`.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

# rollback: the rollback stage took a canary out (or restored the previous champion);
# promote: a new champion serves all traffic; inconclusive: monitor-canary could not decide;
# gate-failed: the gate rejected the candidate; drift: validate-data found drifted features.
Event = Literal["rollback", "promote", "inconclusive", "gate-failed", "drift"]
EVENTS: tuple[Event, ...] = typing.get_args(Event)

Fail = Callable[[str, str, str], None]
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TOPIC_ARN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$")


def _all_events() -> list[Event]:
    return list(EVENTS)


@dataclass
class SlackTarget:
    # The NAME of the variable holding the incoming-webhook URL (the URL is the secret).
    webhook_url_env: str = "SLACK_WEBHOOK_URL"
    on: list[Event] = field(default_factory=_all_events)


@dataclass
class WebhookTarget:
    url: str
    # The NAME of the variable holding the HMAC-SHA256 key; the body is signed with it.
    secret_env: str = "MLCI_WEBHOOK_SECRET"
    on: list[Event] = field(default_factory=_all_events)


@dataclass
class SnsTarget:
    topic_arn: str
    # Default: the region in the topic's ARN.
    region: str | None = None
    on: list[Event] = field(default_factory=_all_events)


@dataclass
class NotifyConfig:
    slack: SlackTarget | None = None
    webhook: WebhookTarget | None = None
    sns: SnsTarget | None = None
    # Tries per message (1 = no retry) and the timeout of each HTTP request, in seconds: a
    # notification must never hold a stage up for long.
    attempts: int = 3
    timeout: float = 5.0


def unquote_on(raw: Any) -> Any:
    """YAML 1.1 reads an unquoted ``on:`` key as the boolean true (GitHub workflows have the same
    trap): give the targets under ``notify`` their ``on`` key back before the section is built."""
    if not isinstance(raw, dict) or not isinstance(raw.get("notify"), dict):
        return raw
    notify = dict(raw["notify"])
    for name, target in notify.items():
        if isinstance(target, dict) and True in target:
            notify[name] = {("on" if k is True else k): v for k, v in target.items()}
    return {**raw, "notify": notify}


def check_notify(notify: NotifyConfig, fail: Fail) -> None:
    """Variable names, URLs, the topic ARN and the retry settings, before any stage runs."""
    key = "notify"
    if notify.slack is not None:
        _check_env_name(f"{key}.slack.webhook_url_env", notify.slack.webhook_url_env, "SLACK_WEBHOOK_URL", fail)
        _check_events(f"{key}.slack.on", notify.slack.on, fail)
    if notify.webhook is not None:
        hook = notify.webhook
        if not re.match(r"^https?://[^/\s]+", hook.url):
            fail(f"{key}.webhook.url", f"{hook.url!r} is not an http(s) URL",
                 "e.g. `url: https://ops.example.com/hooks/mlci`")
        _check_env_name(f"{key}.webhook.secret_env", hook.secret_env, "MLCI_WEBHOOK_SECRET", fail)
        _check_events(f"{key}.webhook.on", hook.on, fail)
    if notify.sns is not None:
        if not _TOPIC_ARN.match(notify.sns.topic_arn):
            fail(f"{key}.sns.topic_arn", f"{notify.sns.topic_arn!r} is not an SNS topic ARN",
                 "e.g. `topic_arn: arn:aws:sns:eu-west-1:123456789012:ml-alerts`")
        _check_events(f"{key}.sns.on", notify.sns.on, fail)
    if not 1 <= notify.attempts <= 10:
        fail(f"{key}.attempts", f"must be between 1 and 10, got {notify.attempts}", "e.g. `attempts: 3`")
    if not 0 < notify.timeout <= 60:
        fail(f"{key}.timeout", f"must be in (0, 60] seconds, got {notify.timeout}", "e.g. `timeout: 5`")


def _check_env_name(key: str, value: str, example: str, fail: Fail) -> None:
    if value.startswith(("http://", "https://")):
        fail(key, "holds a URL, but it must name the environment variable that holds it (the URL is a secret)",
             f"store the URL as a CI secret / masked variable named e.g. {example}, and write "
             f"`{key.rsplit('.', 1)[-1]}: {example}`")
    if not _ENV_NAME.match(value):
        fail(key, f"{value!r} is not an environment variable name", f"e.g. `{key.rsplit('.', 1)[-1]}: {example}`")


def _check_events(key: str, events: list[Event], fail: Fail) -> None:
    if not events:
        fail(key, "is empty, so this target would never be told anything",
             f"list events from {', '.join(EVENTS)}, or remove the target")
    if len(set(events)) != len(events):
        fail(key, f"lists an event twice: {events}", "list each event once")
