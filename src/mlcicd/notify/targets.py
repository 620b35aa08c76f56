"""The HTTP notification targets: a Slack-compatible incoming webhook and a signed JSON webhook.

Each ``send`` raises :class:`NotDelivered` (with a message free of secrets) or returns the
number of attempts it took. The secret of each comes from an environment variable named in
mlci.yaml, never from a stage input, and is never part of a message.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping

from mlcicd import __version__
from mlcicd.config_notify import SlackTarget, WebhookTarget
from mlcicd.httpretry import HttpError, Policy, request
from mlcicd.notify.events import Message

SIGNATURE_HEADER = "X-Mlci-Signature"
TIMESTAMP_HEADER = "X-Mlci-Timestamp"


class NotDelivered(Exception):
    """The target did not take the message; ``attempts`` were made."""

    def __init__(self, what: str, attempts: int = 0) -> None:
        super().__init__(what)
        self.attempts = attempts


def _secret(env: Mapping[str, str], name: str, key: str, what: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise NotDelivered(f"{name} is not set (mlci.yaml: {key} names it): store {what} as a CI secret / "
                           f"masked variable and map it into this job's environment as {name}")
    return value


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 over ``<timestamp>.<body>``. The timestamp is signed too, so
    a captured request cannot be replayed later with a fresh timestamp header."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class SlackSender:
    name = "slack"

    def __init__(self, target: SlackTarget, env: Mapping[str, str], policy: Policy) -> None:
        self.target, self.env, self.policy = target, env, policy

    def send(self, message: Message) -> int:
        url = _secret(self.env, self.target.webhook_url_env, "notify.slack.webhook_url_env", "the webhook URL")
        text = message.text()
        # `text` is what every Slack-compatible receiver (Mattermost, Rocket.Chat) shows; Slack
        # renders the block instead and uses `text` for the notification itself.
        link = f"\n<{message.run_url}|Open the run>" if message.run_url else ""
        payload = {"text": text, "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{message.title}*\n{message.summary[:2500]}"
                                         + link}}]}
        try:
            answer = request("POST", url, body=json.dumps(payload).encode(),
                             headers={"Content-Type": "application/json", "User-Agent": f"ml-cicd/{__version__}"},
                             policy=self.policy)
        except HttpError as exc:
            raise NotDelivered(str(exc), exc.attempts) from None
        return answer.attempts


class WebhookSender:
    name = "webhook"

    def __init__(self, target: WebhookTarget, env: Mapping[str, str], policy: Policy) -> None:
        self.target, self.env, self.policy = target, env, policy

    def send(self, message: Message) -> int:
        import time

        secret = _secret(self.env, self.target.secret_env, "notify.webhook.secret_env", "the HMAC key")
        # The exact bytes signed are the bytes sent: the receiver verifies over its raw body.
        body = json.dumps(message.payload(), separators=(",", ":"), sort_keys=True).encode()
        timestamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", "User-Agent": f"ml-cicd/{__version__}",
                   "X-Mlci-Event": message.event, "X-Mlci-Delivery": message.delivery,
                   TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: sign(secret, timestamp, body)}
        try:
            answer = request("POST", self.target.url, body=body, headers=headers, policy=self.policy,
                             secrets=[secret])
        except HttpError as exc:
            raise NotDelivered(str(exc), exc.attempts) from None
        return answer.attempts
