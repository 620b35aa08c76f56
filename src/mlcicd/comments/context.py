"""Which pull / merge request to comment on, with which token: read from the CI's environment.

Everything missing is a UsageError (exit 2) naming the variable and how to set it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlcicd.comments.github import PERMISSIONS_FIX, GitHubThread
from mlcicd.comments.gitlab import TOKEN_ENV, TOKEN_FIX, GitLabThread
from mlcicd.comments.sync import Thread
from mlcicd.errors import UsageError
from mlcicd.httpretry import Policy

KEY_ENV = "MLCI_COMMENT_KEY"
GITHUB_TRIGGER_FIX = ("run `mlci comment` in a workflow triggered by pull requests, e.g. `on: pull_request`, and "
                      "guard the step with `if: github.event_name == 'pull_request'`")
GITLAB_TRIGGER_FIX = ("run the job in merge-request pipelines: `rules: [{if: $CI_PIPELINE_SOURCE == "
                      "\"merge_request_event\"}]` (CI_MERGE_REQUEST_IID exists only there)")


@dataclass
class PullRequest:
    """Where the comment goes, and what identifies this pipeline and run."""

    thread: Thread
    where: str  # "org/repo#12" / "group/project!7", for messages
    key: str  # the pipeline: one comment per key per pull request
    run: str
    run_url: str | None
    report_url: str | None


def github(env: Mapping[str, str], policy: Policy | None = None) -> PullRequest:
    token = env.get("GITHUB_TOKEN", "").strip()
    if not token:
        raise UsageError("GITHUB_TOKEN is not set", where="environment: GITHUB_TOKEN", fix=PERMISSIONS_FIX)
    repo = env.get("GITHUB_REPOSITORY", "")
    if "/" not in repo:
        raise UsageError("GITHUB_REPOSITORY is not set (owner/name)", where="environment: GITHUB_REPOSITORY",
                         fix="run inside GitHub Actions, which sets it, or export GITHUB_REPOSITORY=owner/name")
    number = _pull_number(env)
    api = env.get("GITHUB_API_URL") or "https://api.github.com"
    run = env.get("GITHUB_RUN_ID", "")
    server = env.get("GITHUB_SERVER_URL") or "https://github.com"
    run_url = env.get("MLCI_RUN_URL") or (f"{server}/{repo}/actions/runs/{run}" if run else None)
    return PullRequest(GitHubThread(api, repo, number, token, policy), f"{repo}#{number}",
                       env.get(KEY_ENV) or env.get("GITHUB_WORKFLOW") or "default", run or "0", run_url,
                       env.get("MLCI_REPORT_URL") or (f"{run_url}#artifacts" if run_url else None))


def _pull_number(env: Mapping[str, str]) -> int:
    path = env.get("GITHUB_EVENT_PATH", "")
    if not path or not Path(path).is_file():
        raise UsageError("no GitHub event to read the pull request from", where="environment: GITHUB_EVENT_PATH",
                         fix=GITHUB_TRIGGER_FIX)
    try:
        event: Any = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"the event file cannot be read: {exc}", where=f"GITHUB_EVENT_PATH ({path})",
                         fix=GITHUB_TRIGGER_FIX) from None
    pull = event.get("pull_request") if isinstance(event, dict) else None
    issue = event.get("issue") if isinstance(event, dict) else None
    if isinstance(pull, dict) and pull.get("number"):
        return int(pull["number"])
    if isinstance(issue, dict) and issue.get("pull_request") and issue.get("number"):
        return int(issue["number"])  # issue_comment on a pull request
    name = env.get("GITHUB_EVENT_NAME") or "this event"
    raise UsageError(f"{name} is not about a pull request, so there is nothing to comment on",
                     where=f"GITHUB_EVENT_PATH ({path})", fix=GITHUB_TRIGGER_FIX)


def gitlab(env: Mapping[str, str], policy: Policy | None = None) -> PullRequest:
    token = env.get(TOKEN_ENV, "").strip()
    if not token:
        raise UsageError(f"{TOKEN_ENV} is not set", where=f"environment: {TOKEN_ENV}", fix=TOKEN_FIX)
    iid = env.get("CI_MERGE_REQUEST_IID", "")
    if not iid.isdigit():
        raise UsageError("this pipeline is not a merge-request pipeline (CI_MERGE_REQUEST_IID is not set)",
                         where="environment: CI_MERGE_REQUEST_IID", fix=GITLAB_TRIGGER_FIX)
    api, project = env.get("CI_API_V4_URL", ""), env.get("CI_PROJECT_ID", "")
    if not api or not project:
        raise UsageError("CI_API_V4_URL or CI_PROJECT_ID is not set", where="environment: CI_API_V4_URL, "
                         "CI_PROJECT_ID", fix="run inside GitLab CI, which sets both")
    run_url = env.get("MLCI_RUN_URL") or env.get("CI_PIPELINE_URL") or None
    job_url = env.get("CI_JOB_URL")
    return PullRequest(GitLabThread(api, project, int(iid), token, policy),
                       f"{env.get('CI_PROJECT_PATH') or project}!{iid}", env.get(KEY_ENV) or "default",
                       env.get("CI_PIPELINE_ID") or "0", run_url,
                       env.get("MLCI_REPORT_URL") or (f"{job_url}/artifacts/browse" if job_url else None))


def detect(env: Mapping[str, str], ci: str | None = None, policy: Policy | None = None) -> PullRequest:
    """The pull request of this CI run; ``ci`` (github/gitlab) overrides detection."""
    name = ci or env.get("MLCI_CI") or ("github" if env.get("GITHUB_ACTIONS") == "true" else
                                        "gitlab" if env.get("GITLAB_CI") == "true" else "")
    if name == "github":
        return github(env, policy)
    if name == "gitlab":
        return gitlab(env, policy)
    raise UsageError("no pull request or merge request outside GitHub Actions and GitLab CI",
                     where="environment (GITHUB_ACTIONS / GITLAB_CI)",
                     fix="run `mlci comment` in a pull-request workflow or merge-request pipeline, or pass "
                     "--ci github|gitlab with that CI's variables set")
