"""`mlci comment` against GitHub's and GitLab's comment APIs as served on 127.0.0.1 by fake_services."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from fake_services import FakeServices, fake_services

from mlcicd.comments.body import parse
from mlcicd.comments.command import comment
from mlcicd.httpretry import Policy
from mlcicd.report import Check, StageResult, Status, Verdict, write_report

pytestmark = pytest.mark.integration

TOKEN = "tok-secret"


def fast() -> Policy:
    return Policy(attempts=3, timeout=3.0, backoff=0.01, sleep=lambda s: None)


def reports(root: Path, name: str, *results: StageResult) -> Path:
    for result in results:
        write_report(result, root / name)
    return root / name


def github_env(svc: FakeServices, tmp_path: Path, run: str = "900") -> dict[str, str]:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": 12}}))
    return {"GITHUB_ACTIONS": "true", "GITHUB_TOKEN": TOKEN, "GITHUB_REPOSITORY": "org/model",
            "GITHUB_EVENT_PATH": str(event), "GITHUB_API_URL": svc.url, "GITHUB_RUN_ID": run,
            "GITHUB_WORKFLOW": "ML pipeline", "GITHUB_SERVER_URL": "https://github.example"}


def gitlab_env(svc: FakeServices, run: str = "77") -> dict[str, str]:
    return {"GITLAB_CI": "true", "MLCI_GITLAB_TOKEN": TOKEN, "CI_API_V4_URL": f"{svc.url}/api/v4",
            "CI_PROJECT_ID": "42", "CI_MERGE_REQUEST_IID": "5", "CI_PIPELINE_ID": run,
            "CI_PIPELINE_URL": f"https://gitlab.example/p/-/pipelines/{run}"}


def post(dirs: list[Path], env: dict[str, str], out: list[str] | None = None, settle: float = 0.05) -> int:
    sink = out if out is not None else []
    return comment([str(d) for d in dirs], env, settle=settle, policy=fast(), echo=sink.append, err=sink.append)


GATE_FAIL = StageResult("gate", Verdict.FAIL, "accuracy 0.71 < 0.8", checks=[Check("accuracy", Status.FAIL, "low")])
GATE_PASS = StageResult("gate", Verdict.PASS, "all gate checks passed")
DATA = StageResult("validate-data", Verdict.PASS, "All data checks passed")
TRAIN = StageResult("train", Verdict.PASS, "trained runs:/abc/model")


def test_github_comment_is_created_once_then_updated_in_place(tmp_path):
    with fake_services() as svc:
        env = github_env(svc, tmp_path)
        # Somebody else's comments are left alone, and more than a page of them is read.
        svc.page_size = 2
        for i in range(3):
            svc.comments[i + 1] = {"id": i + 1, "thread": "gh:12", "body": f"LGTM {i}"}
        out: list[str] = []
        assert post([reports(tmp_path, "a", DATA, GATE_FAIL)], env, out) == 0
        assert post([reports(tmp_path, "b", GATE_PASS)], env, out) == 0
        ours = [c for c in svc.thread("gh:12") if c["body"].startswith("<!-- mlci-pipeline:")]
        assert len(svc.to("/repos/org/model/issues/12/comments", "POST")) == 1
        assert len(svc.to("/repos/org/model/issues/comments/", "PATCH")) == 1
        assert len(svc.thread("gh:12")) == 4
    assert len(ours) == 1
    state = parse(ours[0]["body"], "ML pipeline")
    assert state is not None and {s: e.verdict for s, e in state.stages.items()} == {
        "validate-data": "pass", "gate": "pass"}
    assert "[run 900](https://github.example/org/model/actions/runs/900)" in ours[0]["body"]
    assert "(https://github.example/org/model/actions/runs/900#artifacts)" in ours[0]["body"]
    assert out[0].startswith("comment created on org/model#12") and out[1].startswith("comment updated")


def test_a_new_run_replaces_the_stages_of_the_last_one(tmp_path):
    with fake_services() as svc:
        post([reports(tmp_path, "a", DATA, GATE_FAIL)], github_env(svc, tmp_path, run="900"))
        post([reports(tmp_path, "b", TRAIN)], github_env(svc, tmp_path, run="901"))
        post([reports(tmp_path, "c", GATE_PASS)], github_env(svc, tmp_path, run="900"))  # a late job of run 900
        (only,) = svc.thread("gh:12")
    state = parse(only["body"], "ML pipeline")
    assert state is not None and state.run == "901" and list(state.stages) == ["train"]


@pytest.mark.parametrize("reporters", [2, 4])
def test_concurrent_reporters_leave_one_comment_with_every_stage(tmp_path, reporters):
    stages = [DATA, TRAIN, GATE_FAIL, StageResult("build-image", Verdict.PASS, "built")][:reporters]
    with fake_services(delay=0.02) as svc:
        env = github_env(svc, tmp_path)
        dirs = [reports(tmp_path, f"job{i}", s) for i, s in enumerate(stages)]
        barrier = threading.Barrier(reporters)
        codes: list[int] = []

        def job(directory: Path) -> None:
            barrier.wait()
            codes.append(post([directory], env, settle=0.3))

        threads = [threading.Thread(target=job, args=(d,)) for d in dirs]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        created = len(svc.to("/repos/org/model/issues/12/comments", "POST"))
        final = svc.thread("gh:12")
    assert codes == [0] * reporters
    assert len(final) == 1, [c["id"] for c in final]
    state = parse(final[0]["body"], "ML pipeline")
    assert state is not None and set(state.stages) == {s.stage for s in stages}
    assert created >= 1  # each racer may have created one; all but the oldest were merged and removed


def test_gitlab_note_is_created_once_then_updated(tmp_path):
    with fake_services() as svc:
        env = gitlab_env(svc)
        assert post([reports(tmp_path, "a", DATA)], env) == 0
        assert post([reports(tmp_path, "b", GATE_FAIL)], env) == 0
        notes = svc.thread("gl:5")
        assert len(svc.to("/api/v4/projects/42/merge_requests/5/notes", "POST")) == 1
        assert len(svc.to("/api/v4/projects/42/merge_requests/5/notes/", "PUT")) == 1
        assert svc.to("/api/v4/")[0].headers["PRIVATE-TOKEN"] == TOKEN
    assert len(notes) == 1
    state = parse(notes[0]["body"], "default")
    assert state is not None and set(state.stages) == {"validate-data", "gate"}
    assert "https://gitlab.example/p/-/pipelines/77" in notes[0]["body"]


def test_gitlab_concurrent_reporters_leave_one_note(tmp_path):
    with fake_services(delay=0.02) as svc:
        env = gitlab_env(svc)
        dirs = [reports(tmp_path, "a", DATA), reports(tmp_path, "b", GATE_PASS)]
        barrier = threading.Barrier(2)

        def job(directory: Path) -> None:
            barrier.wait()
            post([directory], env, settle=0.3)

        threads = [threading.Thread(target=job, args=(d,)) for d in dirs]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        notes = svc.thread("gl:5")
    assert len(notes) == 1
    state = parse(notes[0]["body"], "default")
    assert state is not None and set(state.stages) == {"validate-data", "gate"}


def test_api_blips_are_retried_and_a_bad_token_is_exit_2(tmp_path):
    with fake_services() as svc:
        env = github_env(svc, tmp_path)
        svc.script("/repos/org/model/issues/12/comments", [(429, {"Retry-After": "0"}), (502, {})])
        assert post([reports(tmp_path, "a", DATA)], env) == 0
        assert len(svc.thread("gh:12")) == 1
        out: list[str] = []
        assert post([tmp_path / "a"], {**env, "GITHUB_TOKEN": "wrong"}, out) == 2
        assert "401" in out[-1] and "pull-requests: write" in out[-1] and "wrong" not in out[-1]
        out.clear()
        assert post([tmp_path / "a"], {**gitlab_env(svc), "MLCI_GITLAB_TOKEN": "nope"}, out) == 2
        assert "MLCI_GITLAB_TOKEN" in out[-1] and "CI_JOB_TOKEN cannot post notes" in out[-1]


def test_an_api_that_keeps_failing_is_exit_4(tmp_path):
    with fake_services() as svc:
        env = github_env(svc, tmp_path)
        svc.script("/repos/org/model/issues/12/comments", [(503, {})] * 3)
        out: list[str] = []
        assert post([reports(tmp_path, "a", DATA)], env, out) == 4
    assert "HTTP 503" in out[-1] and "re-running this step is safe" in out[-1]
