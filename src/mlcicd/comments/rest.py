"""One JSON call to a comment API: what the GitHub and GitLab threads share.

Retries and secret redaction come from :mod:`mlcicd.httpretry`; each API explains its own
errors (``explain``), since a 403 means a different fix on each.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from mlcicd.errors import MlciError
from mlcicd.httpretry import HttpError, Policy, request


def call_json(method: str, url: str, payload: Any, *, headers: Mapping[str, str], token: str, policy: Policy,
              explain: Callable[[HttpError, str], MlciError]) -> tuple[Any, Mapping[str, str]]:
    """The decoded JSON answer (None when empty) and the response headers."""
    sent = dict(headers)
    body = None
    if payload is not None:
        body = json.dumps(payload).encode()
        sent["Content-Type"] = "application/json"
    try:
        answer = request(method, url, body=body, headers=sent, policy=policy, secrets=[token])
    except HttpError as exc:
        if method == "DELETE" and exc.status == 404:
            return None, {}  # another reporter removed the duplicate first
        raise explain(exc, url) from None
    return (answer.json() if answer.body else None), answer.headers
