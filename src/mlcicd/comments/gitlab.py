"""Merge-request comments through GitLab's notes API.

The token comes from a masked CI/CD variable (``MLCI_GITLAB_TOKEN``): a project access token
with the ``api`` scope and at least the Reporter role. ``CI_JOB_TOKEN`` cannot be used: GitLab
accepts the job token only on a fixed allowlist of endpoints (packages, the container
registry, releases, job artifacts, pipeline triggers and a few reads), and the notes API is
not on it, so GitLab answers 401/404 however the project's job-token settings are set.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from mlcicd.comments import CommentApiError
from mlcicd.comments.rest import call_json
from mlcicd.comments.sync import Note
from mlcicd.errors import MlciError, UsageError
from mlcicd.httpretry import HttpError, Policy

TOKEN_ENV = "MLCI_GITLAB_TOKEN"
TOKEN_FIX = (f"create a project access token (Settings > Access tokens: role Reporter, scope `api`) and store it "
             f"as a masked CI/CD variable named {TOKEN_ENV} (not protected, or merge-request pipelines of "
             "unprotected branches do not get it). CI_JOB_TOKEN cannot post notes")


class GitLabThread:
    def __init__(self, api: str, project: str, iid: int, token: str, policy: Policy | None = None) -> None:
        self.base = f"{api.rstrip('/')}/projects/{quote(project, safe='')}/merge_requests/{iid}/notes"
        self.token = token
        self.policy = policy or Policy()

    def _call(self, method: str, url: str, payload: Any = None) -> tuple[Any, Mapping[str, str]]:
        headers = {"PRIVATE-TOKEN": self.token, "User-Agent": "ml-cicd"}
        return call_json(method, url, payload, headers=headers, token=self.token, policy=self.policy,
                         explain=_explain)

    def list(self) -> list[Note]:
        notes: list[Note] = []
        page = "1"
        while page:
            got, headers = self._call("GET", f"{self.base}?sort=asc&order_by=created_at&per_page=100&page={page}")
            # System notes ("added 1 commit") are not comments anyone wrote.
            notes += [_note(n) for n in got or [] if not n.get("system")]
            page = {k.lower(): v for k, v in headers.items()}.get("x-next-page", "")
        return sorted(notes, key=lambda n: n.id)

    def create(self, body: str) -> Note:
        return _note(self._call("POST", self.base, {"body": body})[0])

    def update(self, note_id: int, body: str) -> Note:
        return _note(self._call("PUT", f"{self.base}/{note_id}", {"body": body})[0])

    def delete(self, note_id: int) -> None:
        self._call("DELETE", f"{self.base}/{note_id}")


def _note(data: Mapping[str, Any]) -> Note:
    return Note(int(data["id"]), str(data.get("body") or ""))


def _explain(exc: HttpError, url: str) -> MlciError:
    if exc.status in (401, 403):
        return UsageError(f"GitLab refused the token ({exc.status}): {exc.body[:200]}", where=TOKEN_ENV,
                          fix=TOKEN_FIX)
    if exc.status == 404:
        return UsageError(f"GitLab has no such merge request, or the token cannot see it (404): {url}",
                          where="CI_PROJECT_ID / CI_MERGE_REQUEST_IID", fix=TOKEN_FIX)
    return CommentApiError(f"GitLab API: {exc}; re-running this job is safe (the comment is updated in place)")
