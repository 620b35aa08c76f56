"""One HTTP request with the retry policy every outbound call of ml-cicd shares.

Notifications and pull-request comments talk to services that throttle (429 with
``Retry-After``) and hiccup (502/503). A CI job must neither give up at the first blip nor
hang for minutes, so: a few attempts, exponential backoff with jitter, ``Retry-After``
honoured up to a cap, short connect/read timeouts.

Error texts never carry a secret: the caller lists the strings to hide (a Slack webhook URL
is itself the credential, and requests puts URLs into its exception messages).
requests is imported on first use: a stage that sends nothing does not pay for it.
"""

from __future__ import annotations

import email.utils
import json
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# Longest wait a Retry-After may ask for before we stop trying: a stage must stay fast.
MAX_RETRY_AFTER = 30.0


@dataclass
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes
    attempts: int = 1

    def json(self) -> Any:
        return json.loads(self.body.decode() or "null")

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")


@dataclass
class HttpError(Exception):
    """The request failed for good: ``status`` is None when no answer came at all."""

    what: str
    status: int | None = None
    body: str = ""
    attempts: int = 1
    headers: Mapping[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.what


@dataclass
class Policy:
    attempts: int = 3
    timeout: float = 5.0
    # First backoff in seconds; doubled per attempt, with up to 50% jitter added.
    backoff: float = 0.5
    sleep: Callable[[float], None] = time.sleep


def redact(text: str, secrets: Sequence[str]) -> str:
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def request(method: str, url: str, *, body: bytes | None = None, headers: Mapping[str, str] | None = None,
            policy: Policy | None = None, secrets: Sequence[str] = ()) -> Response:
    """Send, retrying connection errors, timeouts, 429 and 5xx; HttpError when it never succeeds.

    A 4xx other than 429 is not retried: the same request would fail the same way.
    """
    import requests

    policy = policy or Policy()
    # requests names the path alone in some messages ("Max retries exceeded with url: /services/...").
    parts = urlsplit(url)
    hidden = [url, *secrets, parts.path + (f"?{parts.query}" if parts.query else "")]
    if len(parts.path) > 1:
        hidden.append(parts.path)
    last: HttpError | None = None
    for attempt in range(1, policy.attempts + 1):
        wait = policy.backoff * 2 ** (attempt - 1) * (1 + random.random() / 2)
        try:
            answer = requests.request(method, url, data=body, headers=dict(headers or {}),
                                      timeout=(min(3.05, policy.timeout), policy.timeout),
                                      # A GET may follow a moved API; a signed POST is never re-sent elsewhere.
                                      allow_redirects=method == "GET")
        except requests.RequestException as exc:
            last = HttpError(f"{type(exc).__name__}: {redact(str(exc), hidden)}", attempts=attempt)
        else:
            got = dict(answer.headers)
            if answer.status_code < 400:
                return Response(answer.status_code, got, answer.content, attempt)
            text = redact(answer.text[:500], hidden)
            last = HttpError(f"HTTP {answer.status_code}: {text}".strip(), answer.status_code, text, attempt, got)
            if answer.status_code not in RETRY_STATUSES:
                raise last
            asked = retry_after(answer.headers.get("Retry-After"))
            if asked is not None:
                if asked > MAX_RETRY_AFTER:
                    last.what += f" (asked to retry after {asked:.0f} s: more than a stage may wait)"
                    raise last
                wait = asked
        if attempt < policy.attempts:
            policy.sleep(wait)
    assert last is not None
    last.what += f" (after {policy.attempts} attempt{'s' if policy.attempts != 1 else ''})"
    raise last
