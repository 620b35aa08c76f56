"""notify: the config section, which results are events, signatures, Retry-After."""

from __future__ import annotations

import hashlib
import hmac

import pytest
import yaml

from mlcicd.config import parse_config
from mlcicd.config_notify import EVENTS
from mlcicd.errors import ConfigError
from mlcicd.httpretry import redact, retry_after
from mlcicd.notify.events import Message, event_of
from mlcicd.notify.sns import _subject, region_of
from mlcicd.notify.targets import sign
from mlcicd.report import Check, StageResult, Status, Verdict

BASE = "data: {label: y}\nmlflow: {model_name: m}\n"


def test_notify_section_with_unquoted_on_keys():
    cfg = parse_config(yaml.safe_load(BASE + """
notify:
  slack: {webhook_url_env: TEAM_SLACK, on: [rollback, inconclusive]}
  webhook:
    url: https://ops.example.com/mlci
    on: [gate-failed]
  sns: {topic_arn: "arn:aws:sns:eu-west-1:123456789012:ml-alerts"}
"""))
    assert cfg.notify.slack is not None and cfg.notify.slack.on == ["rollback", "inconclusive"]
    assert cfg.notify.webhook is not None and cfg.notify.webhook.on == ["gate-failed"]
    assert cfg.notify.webhook.secret_env == "MLCI_WEBHOOK_SECRET"
    assert cfg.notify.sns is not None and cfg.notify.sns.on == list(EVENTS)
    assert region_of(cfg.notify.sns) == "eu-west-1"


def test_no_notify_section_means_no_targets():
    cfg = parse_config(yaml.safe_load(BASE))
    assert cfg.notify.slack is None and cfg.notify.webhook is None and cfg.notify.sns is None


@pytest.mark.parametrize(
    ("section", "where", "fix"),
    [
        ("slack: {webhook_url_env: 'https://hooks.slack.com/services/T/B/x'}", "notify.slack.webhook_url_env",
         "webhook_url_env: SLACK_WEBHOOK_URL"),
        ("slack: {on: [rolback]}", "notify.slack.on[0]", "rollback"),
        ("slack: {on: []}", "notify.slack.on", "remove the target"),
        ("webhook: {url: ops.example.com}", "notify.webhook.url", "url: https://"),
        ("webhook: {secret: abc, url: 'https://x.example'}", "notify.webhook.secret", "secret_env"),
        ("sns: {topic_arn: ml-alerts}", "notify.sns.topic_arn", "arn:aws:sns:"),
        ("attempts: 0", "notify.attempts", "attempts: 3"),
        ("pagerduty: {key: x}", "notify.pagerduty", "known keys here"),
    ],
)
def test_bad_notify_config_names_key_and_fix(section, where, fix):
    with pytest.raises(ConfigError) as err:
        parse_config(yaml.safe_load(BASE + "notify:\n  " + section + "\n"), "proj/mlci.yaml")
    text = str(err.value)
    assert text.startswith(f"proj/mlci.yaml: {where}"), text
    assert "Fix:" in text and fix in text


def _result(stage: str, verdict: Verdict, outputs: dict[str, str] | None = None,
            checks: list[Check] | None = None, **figures: object) -> StageResult:
    return StageResult(stage, verdict, "s", checks=checks or [], outputs=outputs or {}, figures=dict(figures))


@pytest.mark.parametrize(
    ("result", "event"),
    [
        (_result("rollback", Verdict.PASS, {"rolled-back-version": "7"}), "rollback"),
        (_result("rollback", Verdict.PASS, {"rolled-back-version": ""},
                 [Check("converged", Status.PASS, "nothing")]), None),
        (_result("promote", Verdict.PASS, {"champion-version": "7"}), "promote"),
        (_result("promote", Verdict.PASS, {"champion-version": "7"}, [Check("converged", Status.PASS, "x")]), None),
        (_result("monitor-canary", Verdict.INCONCLUSIVE, {"decision": "hold"}), "inconclusive"),
        (_result("monitor-canary", Verdict.INCONCLUSIVE, {"decision": "hold"}, cancelled="SIGTERM"), None),
        (_result("monitor-canary", Verdict.FAIL, {"decision": "rollback"}), None),  # the rollback stage announces it
        (_result("gate", Verdict.FAIL), "gate-failed"),
        (_result("gate", Verdict.PASS), None),
        (_result("validate-data", Verdict.PASS, {"drifted-features": "age,income"}), "drift"),
        (_result("validate-data", Verdict.FAIL, {"drifted-features": ""}), None),
        (_result("train", Verdict.FAIL), None),
    ],
)
def test_event_of(result, event):
    assert event_of(result) == event


def test_message_title_and_payload():
    result = _result("promote", Verdict.PASS, {"champion-version": "7", "previous-champion-version": "6"})
    msg = Message.build("promote", result, model="credit", project=None, run_url="https://ci/run/1")
    assert msg.title == "credit: v7 promoted to champion, replacing v6"
    assert msg.payload()["run_url"] == "https://ci/run/1" and "Run: https://ci/run/1" in msg.text()


def test_signature_covers_timestamp_and_body():
    body = b'{"event":"rollback"}'
    expected = hmac.new(b"k", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign("k", "1700000000", body) == f"sha256={expected}"
    assert sign("k", "1700000001", body) != sign("k", "1700000000", body)


def test_retry_after_seconds_and_http_date():
    assert retry_after("3") == 3.0
    assert retry_after(None) is None and retry_after("soon") is None
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == pytest.approx(10.0)


def test_redact_and_sns_subject():
    assert redact("url: /services/T/B/x failed", ["/services/T/B/x"]) == "url: *** failed"
    assert _subject("café ✓ rolled back\nnext") == "caf? ? rolled back next"
    assert len(_subject("x" * 300)) == 99


def test_run_url_of_each_ci():
    from mlcicd.ci import detect

    github = {"GITHUB_ACTIONS": "true", "GITHUB_REPOSITORY": "o/r", "GITHUB_RUN_ID": "9",
              "GITHUB_SERVER_URL": "https://ghe.example"}
    assert detect(github).run_url() == "https://ghe.example/o/r/actions/runs/9"
    assert detect({"GITLAB_CI": "true", "CI_PIPELINE_URL": "https://gl/p/-/pipelines/3"}).run_url() == \
        "https://gl/p/-/pipelines/3"
    assert detect({}).run_url() is None
    assert detect({"MLCI_RUN_URL": "https://jenkins/job/1"}).run_url() == "https://jenkins/job/1"
