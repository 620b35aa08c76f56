"""Pull-request comments through GitHub's REST API (issue comments: a PR is an issue).

``GITHUB_TOKEN`` needs ``pull-requests: write`` in the job that comments. On a pull request
from a fork GitHub hands out a read-only token whatever the workflow asks for; the 403 then
says so.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from mlcicd.comments import CommentApiError
from mlcicd.comments.rest import call_json
from mlcicd.comments.sync import Note
from mlcicd.errors import MlciError, UsageError
from mlcicd.httpretry import HttpError, Policy

PERMISSIONS_FIX = ("map the job's token into the step and let the job write pull-request comments:\n"
                   "    permissions:\n      contents: read\n      pull-requests: write\n"
                   "    steps:\n      - run: mlci comment --dir mlci-report\n"
                   "        env:\n          GITHUB_TOKEN: ${{ github.token }}\n"
                   "On pull requests from forks the token is read-only: comment from a `workflow_run` "
                   "workflow instead")

_NEXT = re.compile(r'<([^>]+)>;\s*rel="next"')


class GitHubThread:
    def __init__(self, api: str, repo: str, number: int, token: str, policy: Policy | None = None) -> None:
        self.base = f"{api.rstrip('/')}/repos/{repo}/issues"
        self.number, self.token = number, token
        self.policy = policy or Policy()

    def _call(self, method: str, url: str, payload: Any = None) -> tuple[Any, Mapping[str, str]]:
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/vnd.github+json",
                   "X-GitHub-Api-Version": "2022-11-28", "User-Agent": "ml-cicd"}
        return call_json(method, url, payload, headers=headers, token=self.token, policy=self.policy,
                         explain=_explain)

    def list(self) -> list[Note]:
        notes: list[Note] = []
        url: str | None = f"{self.base}/{self.number}/comments?per_page=100"
        while url:
            got, headers = self._call("GET", url)
            notes += [_note(c) for c in got or []]
            # GitHub pages with a Link header; the last page has no rel="next".
            link = {k.lower(): v for k, v in headers.items()}.get("link", "")
            found = _NEXT.search(link)
            url = found[1] if found else None
        return sorted(notes, key=lambda n: n.id)

    def create(self, body: str) -> Note:
        return _note(self._call("POST", f"{self.base}/{self.number}/comments", {"body": body})[0])

    def update(self, note_id: int, body: str) -> Note:
        return _note(self._call("PATCH", f"{self.base}/comments/{note_id}", {"body": body})[0])

    def delete(self, note_id: int) -> None:
        self._call("DELETE", f"{self.base}/comments/{note_id}")


def _note(data: Mapping[str, Any]) -> Note:
    return Note(int(data["id"]), str(data.get("body") or ""), data.get("html_url"))


def _explain(exc: HttpError, url: str) -> MlciError:
    if exc.status == 401:
        return UsageError(f"GitHub rejected GITHUB_TOKEN (401): {exc.body[:200]}", where="GITHUB_TOKEN",
                          fix=PERMISSIONS_FIX)
    if exc.status == 403:
        return UsageError(f"GitHub refused to write the comment (403): {exc.body[:200]}",
                          where="GITHUB_TOKEN permissions", fix=PERMISSIONS_FIX)
    if exc.status == 404:
        return UsageError(f"GitHub has no such pull request, or the token cannot see it (404): {url}",
                          where="GITHUB_REPOSITORY / GITHUB_EVENT_PATH", fix=PERMISSIONS_FIX)
    return CommentApiError(f"GitHub API: {exc}; re-running this step is safe (the comment is updated in place)")
