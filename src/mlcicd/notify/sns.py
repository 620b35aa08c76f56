"""An SNS topic as a notification target (boto3, imported only when a message goes out).

Credentials come from boto3's chain as everywhere else in ml-cicd (OIDC on CI, see
:mod:`mlcicd.aws`); the job's role needs ``sns:Publish`` on the topic. The message has one
form per protocol: people subscribed by e-mail/SMS read the text, queues, Lambdas and HTTPS
endpoints get the JSON document the signed webhook sends. The event is also a message
attribute, so a subscription can filter on it (``{"event": ["rollback"]}``).
"""

from __future__ import annotations

import json

from mlcicd.config_notify import SnsTarget
from mlcicd.errors import MlciError
from mlcicd.httpretry import Policy
from mlcicd.notify.events import Message
from mlcicd.notify.targets import NotDelivered


def _subject(title: str) -> str:
    # SNS subjects: ASCII, no line breaks, under 100 characters.
    text = title.encode("ascii", "replace").decode().replace("\n", " ").replace("\r", " ").strip()
    return text[:99] or "ml-cicd"


def region_of(target: SnsTarget) -> str | None:
    parts = target.topic_arn.split(":")
    return target.region or (parts[3] if len(parts) > 3 and parts[3] else None)


class SnsSender:
    name = "sns"

    def __init__(self, target: SnsTarget, policy: Policy) -> None:
        self.target, self.policy = target, policy

    def send(self, message: Message) -> int:
        from mlcicd import aws

        try:
            client = aws.client("sns", region_of(self.target), attempts=self.policy.attempts,
                                read_timeout=self.policy.timeout, region_key="notify.sns.region")
            document = json.dumps(message.payload())
            with aws.translated("sns:Publish", "mlci.yaml: notify.sns.topic_arn"):
                client.publish(
                    TopicArn=self.target.topic_arn, Subject=_subject(message.title), MessageStructure="json",
                    Message=json.dumps({"default": message.text(), "sqs": document, "lambda": document,
                                        "http": document, "https": document}),
                    MessageAttributes={"event": {"DataType": "String", "StringValue": message.event},
                                       "stage": {"DataType": "String", "StringValue": message.stage}},
                )
        except MlciError as exc:
            raise NotDelivered(str(exc).replace("\n", " "), self.policy.attempts) from None
        except Exception as exc:  # botocore's errors: AWS said no, or could not be reached
            raise NotDelivered(f"{type(exc).__name__}: {exc}", self.policy.attempts) from None
        return 1
