"""The generated CI YAML passes the real linters: check-jsonschema, zizmor, actionlint, shellcheck.

The tools come with the `dev` extra; a missing tool fails these tests (it never skips them).
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from mlcicd.catalog import STAGES, TOOLS, all_inputs
from mlcicd.gen import render_util as ru
from mlcicd.gen.render_util import GITHUB_EXPR, GITLAB_INPUT

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ACTIONS = [REPO / "action.yml", *(REPO / "actions" / s.id / "action.yml" for s in (*STAGES, *TOOLS))]
COMPONENTS = [REPO / "templates" / f"{s.id}.yml" for s in STAGES] + [REPO / "templates" / "report.yml"]
PATH = os.pathsep.join([str(BIN), os.environ.get("PATH", "")])


def _tool(name):
    path = shutil.which(name, path=PATH)
    assert path, f"{name} is not installed: pip install -e '.[dev]'"
    return path


def _run(args, cwd=REPO):
    return subprocess.run(args, cwd=cwd, capture_output=True, encoding="utf-8", errors="replace",
                          env={**os.environ, "PATH": PATH})


def test_actions_match_the_github_actions_schema():
    proc = _run([_tool("check-jsonschema"), "--builtin-schema", "vendor.github-actions", *map(str, ACTIONS)])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _gitlab_schema(paths):
    return _run([_tool("check-jsonschema"), "--builtin-schema", "vendor.gitlab-ci", *map(str, paths)])


def test_both_documents_of_every_component_match_the_gitlab_ci_schema(tmp_path):
    # The header document ({spec: {inputs: ...}}) validates on its own: the schema declares `spec`
    # as a top-level key with the input rules (types, typed defaults, options, regex).
    # The job document is validated as GitLab sees it when the component is included with no
    # inputs: every $[[ inputs.x ]] replaced by its default, keeping the type of a whole-value
    # block (`rules:` becomes an array). The raw text is not a valid job: `rules` would be a string.
    files = []
    for path in COMPONENTS:
        header, job = yaml.safe_load_all(path.read_text(encoding="utf-8"))
        # A mandatory input (no default) gets a sample value, as the include would have to pass one.
        defaults = {name: spec.get("default", "x") for name, spec in header["spec"]["inputs"].items()}
        for kind, doc in (("spec", header), ("job", ru.interpolate_inputs(job, defaults))):
            files.append(tmp_path / f"{path.stem}.{kind}.json")
            files[-1].write_text(json.dumps(doc))
    proc = _gitlab_schema(files)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # Control: the schema really checks both halves.
    bad = [tmp_path / "bad-spec.json", tmp_path / "bad-job.json"]
    bad[0].write_text(json.dumps({"spec": {"inputs": {"x": {"type": "integer", "default": 1}}}}))
    bad[1].write_text(json.dumps({"job": {"script": ["true"], "rules": "$[[ inputs.rules ]]"}}))
    proc = _gitlab_schema(bad)
    assert proc.returncode == 1 and "bad-spec.json" in proc.stdout and "bad-job.json" in proc.stdout


def test_zizmor_reports_nothing():
    # --no-config: the result must not depend on a config file; --persona auditor: the strictest set.
    proc = _run([_tool("zizmor"), "--offline", "--no-config", "--no-progress", "--strict-collection",
                 "--persona", "auditor", "action.yml", "actions"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "No findings" in proc.stdout


def _consumer_workflow(extra_with=None):
    """A workflow that uses every action with every input and reads every output."""
    steps = []
    reads = {}
    for stage in STAGES:
        sid = stage.id.replace("-", "_")
        steps.append({"id": sid, "uses": f"./actions/{stage.id}",
                      "with": {i.name: "x" for i in all_inputs(stage)} | (extra_with or {})})
        reads |= {f"{sid}_{o.name}".upper().replace("-", "_"): f"${{{{ steps.{sid}.outputs.{o.name} }}}}"
                  for o in stage.outputs}
    for tool in TOOLS:
        tid = tool.id
        steps.append({"id": tid, "uses": f"./actions/{tid}", "with": {i.name: "x" for i in tool.inputs}})
        reads |= {f"{tid}_{o.name}".upper(): f"${{{{ steps.{tid}.outputs.{o.name} }}}}" for o in tool.outputs}
    root = {"stage": "gate"} | {i.name: "x" for s in STAGES for i in all_inputs(s)}
    steps.append({"id": "root", "uses": "./", "with": root})
    reads |= {"ROOT_" + o.name.upper().replace("-", "_"): f"${{{{ steps.root.outputs.{o.name} }}}}"
              for s in STAGES for o in s.outputs}
    steps.append({"name": "read outputs", "env": reads, "run": 'env | grep -c "^[A-Z_]*=" || true'})
    return {"name": "consumer", "on": "push", "permissions": {},
            "jobs": {"use": {"runs-on": "ubuntu-latest", "steps": steps}}}


def _actionlint(tmp_path, workflow):
    # actionlint lints workflows, not action.yml: lint a consumer workflow in a scratch project
    # holding copies of the actions, so it checks every `with:` key against the action's inputs,
    # every steps.<id>.outputs.<name> against its outputs, and the workflow's own run: with shellcheck.
    shutil.copy(REPO / "action.yml", tmp_path / "action.yml")
    shutil.copytree(REPO / "actions", tmp_path / "actions", dirs_exist_ok=True)
    (tmp_path / ".git").mkdir(exist_ok=True)  # actionlint finds the project (and local actions) by it
    (tmp_path / ".github/workflows").mkdir(parents=True, exist_ok=True)
    (tmp_path / ".github/workflows/consumer.yml").write_text(yaml.safe_dump(workflow, sort_keys=False))
    return _run([_tool("actionlint"), "-no-color", "-oneline", "-shellcheck", _tool("shellcheck")], cwd=tmp_path)


def test_actionlint_accepts_a_workflow_using_every_action(tmp_path):
    proc = _actionlint(tmp_path, _consumer_workflow())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # Control: the local actions' metadata really was loaded.
    proc = _actionlint(tmp_path, _consumer_workflow({"no-such-input": "x"}))
    assert proc.returncode == 1 and 'input "no-such-input" is not defined' in proc.stdout


def test_shellcheck_passes_on_every_run_step_and_script(tmp_path):
    files = [REPO / "scripts/install-action.sh"]
    for n, path in enumerate(ACTIONS):
        for m, text in enumerate(ru.run_texts(yaml.safe_load(path.read_text(encoding="utf-8")))):
            files.append(tmp_path / f"run-{n}-{m}.sh")
            files[-1].write_text("#!/usr/bin/env bash\n" + text + "\n")
    proc = _run([_tool("shellcheck"), "--severity=style", *map(str, files)])
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- this repository's own CI: .github/workflows, .gitlab-ci.yml and .gitlab/ci -------------------

WORKFLOWS = sorted((REPO / ".github/workflows").glob("*.yml"))
GITLAB_CI = [REPO / ".gitlab-ci.yml", *sorted((REPO / ".gitlab/ci").glob("*.yml"))]
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}  # v\d+(\.\d+)*$")


def test_own_workflows_and_gitlab_ci_match_their_schemas():
    assert {p.name for p in WORKFLOWS} >= {"ci.yml", "release.yml", "ml-pipeline.yml"}
    for schema, paths in (("vendor.github-workflows", WORKFLOWS), ("vendor.gitlab-ci", GITLAB_CI),
                          ("vendor.dependabot", [REPO / ".github/dependabot.yml"])):
        proc = _run([_tool("check-jsonschema"), "--builtin-schema", schema, *map(str, paths)])
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_zizmor_reports_nothing_on_own_workflows():
    proc = _run([_tool("zizmor"), "--offline", "--no-config", "--no-progress", "--strict-collection",
                 "--persona", "auditor", ".github/workflows"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "No findings" in proc.stdout


def test_actionlint_and_shellcheck_accept_own_workflows():
    proc = _run([_tool("actionlint"), "-no-color", "-oneline", "-shellcheck", _tool("shellcheck"),
                 *map(str, WORKFLOWS)])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _raw_uses(path):
    return [line.split("uses:", 1)[1].strip() for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip().removeprefix("- ").startswith("uses:")]


def test_own_workflows_pin_every_action_by_sha_and_grant_least_privilege():
    for path in (REPO / ".github/workflows/ci.yml", REPO / ".github/workflows/release.yml"):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert doc["permissions"] == {}, path.name  # every job asks for what it needs
        for name, job in doc["jobs"].items():
            assert "permissions" in job, f"{path.name}: {name}"
            assert job["permissions"].get("id-token") != "write" or (path.name, name) in {
                ("release.yml", "pypi"), ("release.yml", "provenance")}
            for step in job["steps"]:
                assert GITHUB_EXPR not in step.get("run", ""), f"{path.name}: {name}: map it through env:"
                if str(step.get("uses", "")).startswith("actions/checkout@"):
                    assert step["with"]["persist-credentials"] is False
        for uses in _raw_uses(path):
            assert PINNED.match(uses), f"{path.name}: {uses} is not pinned by SHA with a # vX comment"
    release = yaml.safe_load((REPO / ".github/workflows/release.yml").read_text(encoding="utf-8"))
    assert release["jobs"]["pypi"]["environment"]["name"] == "pypi"
    assert release["jobs"]["pypi"]["permissions"] == {"id-token": "write"}
    # The attestations' signing identity lives in a job that builds nothing and pushes nothing.
    provenance = release["jobs"]["provenance"]
    assert provenance["permissions"] == {"id-token": "write", "attestations": "write"}
    assert not any("checkout" in str(step.get("uses", "")) for step in provenance["steps"])
    attested = [step["with"] for step in provenance["steps"] if "attest-build-provenance" in str(step.get("uses", ""))]
    assert attested == [{"subject-path": "dist/ml_cicd-*"},
                        {"subject-name": "${{ steps.image.outputs.name }}",
                         "subject-digest": "${{ steps.image.outputs.digest }}"}]
    assert "provenance" in release["jobs"]["github-release"]["needs"]
    # Unset, the publish action's repository-url falls back to PyPI: only a repository variable redirects it.
    publish = next(step for step in release["jobs"]["pypi"]["steps"] if "pypi-publish" in step.get("uses", ""))
    assert publish["with"] == {"repository-url": "${{ vars.PYPI_REPOSITORY_URL }}"}


def test_gitlab_pipeline_includes_every_component_from_this_commit_with_declared_inputs():
    from mlcicd.gen.surfaces import declared_inputs

    root = yaml.safe_load((REPO / ".gitlab-ci.yml").read_text(encoding="utf-8"))
    assert {i["local"] for i in root["include"]} == {str(p.relative_to(REPO)) for p in GITLAB_CI[1:]}
    includes = yaml.safe_load((REPO / ".gitlab/ci/components.yml").read_text(encoding="utf-8"))["include"]
    assert [i["component"] for i in includes] == [
        f"$CI_SERVER_FQDN/$CI_PROJECT_PATH/{s.id}@$CI_COMMIT_SHA" for s in STAGES]
    for stage, include in zip(STAGES, includes, strict=True):
        assert set(include["inputs"]) <= set(declared_inputs(stage.id)), stage.id
        # At a commit the component installs ml-cicd from `source`: this project (or the fork), never
        # the input's placeholder default.
        assert include["inputs"]["source"] == "$CI_PROJECT_PATH", stage.id
    # Each job in a pipeline stage of its own, in the stages' order: a later job inherits the dotenv
    # outputs of the earlier ones (gate's model-uri is train's output).
    order = [root["stages"].index(include["inputs"]["stage"]) for include in includes]
    assert order == sorted(set(order)), order
    assert root["stages"][-1] == "release"
    for path in GITLAB_CI:
        for line in ru.script_texts(yaml.safe_load(path.read_text(encoding="utf-8")) or {}):
            assert GITLAB_INPUT not in line, path
    jobs = yaml.safe_load((REPO / ".gitlab/ci/release.yml").read_text(encoding="utf-8"))
    assert jobs["release"]["release"]["tag_name"] == "$CI_COMMIT_TAG"
    # The release job's image is pinned: an exact version tag and/or a digest, never a moving tag.
    assert re.fullmatch(r"[\w./-]+(:v?\d+\.\d+\.\d+)?(@sha256:[0-9a-f]{64})?", jobs["release"]["image"])
    assert re.search(r":v?\d+\.\d+\.\d+|@sha256:", jobs["release"]["image"])
