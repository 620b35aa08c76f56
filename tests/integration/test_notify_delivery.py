"""Notifications against real HTTP endpoints on 127.0.0.1 (Slack and a signed webhook) and SNS on moto."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import time

import pytest
from fake_services import fake_services

from mlcicd.ci.local import LocalAdapter
from mlcicd.config_notify import NotifyConfig, SlackTarget, SnsTarget, WebhookTarget
from mlcicd.httpretry import Policy
from mlcicd.notify import notify_result
from mlcicd.report import Check, StageResult, Status, Verdict

pytestmark = pytest.mark.integration

SLACK_URL_PATH = "/slack/T000/B000/very-secret-token"
SECRET = "whsec-abc123"


def rolled_back() -> StageResult:
    return StageResult("rollback", Verdict.PASS, "rolled back canary v7: canary analysis (rollback): errors up",
                       checks=[Check("traffic", Status.PASS, "100% on stable v6")],
                       outputs={"champion-version": "6", "rolled-back-version": "7"})


def fast(attempts: int = 3) -> Policy:
    return Policy(attempts=attempts, timeout=2.0, backoff=0.01, sleep=lambda seconds: None)


def send(result: StageResult, notify: NotifyConfig, env: dict[str, str], policy: Policy | None = None) -> str:
    log = io.StringIO()
    notify_result(result, notify, LocalAdapter({}, log), env, model="credit-risk", policy=policy or fast())
    return log.getvalue()


def verify(secret: str, headers: dict[str, str], body: bytes, tolerance: float = 300) -> bool:
    """The receiver's side, as the README documents it."""
    timestamp = headers["X-Mlci-Timestamp"]
    if abs(time.time() - int(timestamp)) > tolerance:
        return False
    expected = "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, headers["X-Mlci-Signature"])


def test_signed_webhook_verifies_and_a_changed_body_does_not():
    with fake_services() as svc:
        notify = NotifyConfig(webhook=WebhookTarget(url=f"{svc.url}/hook"))
        send(rolled_back(), notify, {"MLCI_WEBHOOK_SECRET": SECRET})
        (req,) = svc.to("/hook")
    assert verify(SECRET, req.headers, req.body)
    assert not verify(SECRET, req.headers, req.body.replace(b"v7", b"v8"))
    assert not verify("other-secret", req.headers, req.body)
    payload = req.json()
    assert payload["event"] == "rollback" and payload["model"] == "credit-risk"
    assert payload["outputs"]["rolled-back-version"] == "7"
    assert req.headers["X-Mlci-Event"] == "rollback" and req.headers["X-Mlci-Delivery"] == payload["delivery"]


def test_slack_retries_429_with_retry_after_then_500_then_delivers():
    with fake_services() as svc:
        svc.script(SLACK_URL_PATH, [(429, {"Retry-After": "0"}), (500, {})])
        env = {"SLACK_WEBHOOK_URL": f"{svc.url}{SLACK_URL_PATH}"}
        result = rolled_back()
        waits: list[float] = []
        log = send(result, NotifyConfig(slack=SlackTarget()), env, Policy(attempts=3, backoff=0.01, sleep=waits.append))
        sent = svc.to("/slack/")
    # Retry-After: 0 is obeyed as given; after the 500 the backoff (0.02 s, up to 50% jitter) applies.
    assert waits[0] == 0.0 and 0.02 <= waits[1] <= 0.03
    assert len(sent) == 3
    assert json.loads(sent[-1].body)["text"].startswith("credit-risk: v7 rolled back")
    assert result.figures["notifications"] == [
        {"target": "slack", "event": "rollback", "delivered": True, "attempts": 3, "error": None}]
    assert "notify slack: sent rollback (3 attempts)" in log
    assert all(c.status is Status.PASS for c in result.checks)


def test_a_failing_target_is_reported_never_fails_and_never_leaks_the_secret_url():
    with fake_services() as svc:
        svc.script(SLACK_URL_PATH, [(500, {})] * 5)
        env = {"SLACK_WEBHOOK_URL": f"{svc.url}{SLACK_URL_PATH}", "MLCI_WEBHOOK_SECRET": SECRET}
        notify = NotifyConfig(slack=SlackTarget(), webhook=WebhookTarget(url=f"{svc.url}/hook"))
        result = rolled_back()
        log = send(result, notify, env)
        assert len(svc.to("/slack/")) == 3 and len(svc.to("/hook")) == 1
    assert result.verdict is Verdict.PASS
    (warn,) = [c for c in result.checks if c.status is Status.WARN]
    assert warn.name == "notify:slack" and "HTTP 500" in warn.message and "after 3 attempts" in warn.message
    delivered = {n["target"]: n["delivered"] for n in result.figures["notifications"]}
    assert delivered == {"slack": False, "webhook": True}
    assert "notify slack: rollback NOT delivered" in log
    everything = log + json.dumps(result.to_dict())
    assert "very-secret-token" not in everything and SECRET not in everything


def test_an_unreachable_target_and_a_missing_secret_are_warnings():
    with fake_services() as svc:
        dead = svc.url  # nothing listens here once the server stops
    notify = NotifyConfig(slack=SlackTarget(), webhook=WebhookTarget(url=f"{dead}/hook"))
    result = rolled_back()
    log = send(result, notify, {"SLACK_WEBHOOK_URL": f"{dead}{SLACK_URL_PATH}"}, fast(attempts=2))
    warnings = {c.name: c.message for c in result.checks if c.status is Status.WARN}
    assert "ConnectionError" in warnings["notify:slack"] and "after 2 attempts" in warnings["notify:slack"]
    assert "MLCI_WEBHOOK_SECRET is not set" in warnings["notify:webhook"]
    assert "very-secret-token" not in log + json.dumps(result.to_dict())


def test_a_rollback_through_the_runner_sends_exactly_one_message_per_target(tmp_path, monkeypatch, moto):
    from mlcicd import runner

    topic, queue, sqs = _topic_with_queue("runner")
    with fake_services() as svc:
        (tmp_path / "mlci.yaml").write_text(
            "data: {label: y}\nmlflow: {model_name: credit-risk}\nnotify:\n"
            "  slack: {webhook_url_env: TEAM_SLACK, on: [rollback, inconclusive]}\n"
            f"  webhook:\n    url: {svc.url}/hook\n    on: [rollback]\n"
            f"  sns: {{topic_arn: '{topic}'}}\n")
        # The stage itself is not under test here: it answers as a completed rollback does.
        monkeypatch.setattr(runner, "load_stage", lambda stage_id: (_stage(stage_id), lambda ctx: rolled_back()))
        env = {"TEAM_SLACK": f"{svc.url}{SLACK_URL_PATH}", "MLCI_WEBHOOK_SECRET": SECRET}
        log = io.StringIO()
        code, result = runner.execute("rollback", {"config": str(tmp_path / "mlci.yaml"),
                                                   "report-dir": str(tmp_path / "report")},
                                      env=env, ci=LocalAdapter(env, log))
        # A stage that is no event (a passing gate) sends nothing.
        monkeypatch.setattr(runner, "load_stage", lambda stage_id: (
            _stage(stage_id), lambda ctx: StageResult("gate", Verdict.PASS, "fine")))
        runner.execute("gate", {"config": str(tmp_path / "mlci.yaml"), "report-dir": str(tmp_path / "report")},
                       env=env, ci=LocalAdapter(env, io.StringIO()))
        assert len(svc.to("/slack/")) == 1 and len(svc.to("/hook")) == 1
        assert len(svc.requests) == 2
    got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    assert len(got) == 1, log.getvalue()
    assert code == 0 and result is not None
    saved = json.loads((tmp_path / "report" / "rollback.json").read_text())
    assert [(n["target"], n["delivered"]) for n in saved["figures"]["notifications"]] == [
        ("slack", True), ("webhook", True), ("sns", True)]


def _topic_with_queue(name: str):
    import boto3

    sns = boto3.client("sns", region_name="eu-west-1")
    sqs = boto3.client("sqs", region_name="eu-west-1")
    topic = sns.create_topic(Name=f"mlci-{name}")["TopicArn"]
    queue = sqs.create_queue(QueueName=f"mlci-{name}-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    return topic, queue, sqs


def _stage(stage_id: str):
    from mlcicd.catalog import get_stage

    return get_stage(stage_id)


def test_sns_publishes_a_message_a_subscribed_queue_receives(moto):
    topic, queue, sqs = _topic_with_queue("alerts")

    result = rolled_back()
    log = send(result, NotifyConfig(sns=SnsTarget(topic_arn=topic)), {})
    assert "notify sns: sent rollback" in log, log
    got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1)["Messages"]
    assert len(got) == 1
    envelope = json.loads(got[0]["Body"])
    assert envelope["Subject"].startswith("credit-risk: v7 rolled back")
    assert envelope["MessageAttributes"]["event"]["Value"] == "rollback"
    document = json.loads(envelope["Message"])  # the queue gets the JSON form, people the text
    assert document["event"] == "rollback" and document["outputs"]["rolled-back-version"] == "7"


def test_sns_denied_or_missing_topic_is_a_warning(moto):
    result = rolled_back()
    send(result, NotifyConfig(sns=SnsTarget(topic_arn="arn:aws:sns:eu-west-1:123456789012:nope")), {})
    (warn,) = [c for c in result.checks if c.status is Status.WARN]
    assert warn.name == "notify:sns" and result.verdict is Verdict.PASS
