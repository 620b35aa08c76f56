"""Checks on a rendered user pipeline, run before it is printed or written.

Beyond the YAML parsing back, they check what the CI itself would reject or silently get
wrong: jobs that need unknown jobs, expressions reading outputs of a job not in ``needs``
(empty at run time, no error), ``${{ }}`` in shell text, GitLab component inputs the
component does not declare (GitLab rejects them) or values its options/regex refuse, and the
CI's JSON schema — for GitLab on the pipeline as it is after the includes are merged.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml

from mlcicd.catalog import STAGE_IDS
from mlcicd.errors import EXIT_UNEXPECTED, UsageError
from mlcicd.gen import component_inputs as component_inputs_check
from mlcicd.gen import render_util as ru
from mlcicd.gen.surfaces import GLOBAL_KEYWORDS, REPORT, any_component_context, component_inputs

try:  # the gen extra: the CI systems' JSON schemas, vendored by check-jsonschema
    import jsonschema
    from check_jsonschema.builtin_schemas import get_builtin_schema
except ImportError:  # pragma: no cover - the dev extra always has it
    jsonschema = None

# The jobs after the stages: the run's HTML report, then (on pull requests) the comment.
REPORT_JOBS = ("report", "comment")
NEEDS_OUTPUT = re.compile(r"needs\.([A-Za-z0-9_-]+)\.outputs\.([A-Za-z0-9_-]+)")
COMPONENT = re.compile(r"^\$CI_SERVER_FQDN/.+/([a-z-]+)@[^@\s]+$")
# Any use of the secrets context in an expression, and the one form a job's env: maps one in.
SECRET_REF = re.compile(r"\$\{\{[^}]*\bsecrets\b")
ENV_SECRET = re.compile(r"^\$\{\{ secrets\.([A-Za-z_][A-Za-z0-9_]*) \}\}$")


class PipelineCheckError(UsageError):
    """A rendered pipeline is wrong: a bug in ml-cicd's templates, never in the user's files."""

    exit_code = EXIT_UNEXPECTED


def _fail(ci: str, what: str) -> PipelineCheckError:
    return PipelineCheckError(what, where=f"rendered {ci} pipeline",
                              fix="this is a bug in src/mlcicd/gen/pipeline*.py or its templates; please report it")


def schema_errors(doc: Any, schema_name: str) -> list[str]:
    """Errors of ``doc`` against a check-jsonschema builtin schema (``vendor.github-workflows``...).

    check-jsonschema ships the vendored schemas; where it is not installed (a minimal install)
    the structural checks still run and the schema check is skipped.
    """
    if jsonschema is None:  # pragma: no cover
        return []
    validator_cls = jsonschema.validators.validator_for(schema := get_builtin_schema(schema_name))
    validator = validator_cls(schema)
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
            for e in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))]


def check_pipeline(ci: str, text: str) -> None:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise _fail(ci, f"not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise _fail(ci, "not a YAML mapping")
    if ci == "github":
        if True in doc:  # PyYAML reads the key `on` as YAML 1.1's boolean; GitHub reads YAML 1.2
            doc["on"] = doc.pop(True)
        _check_github(doc)
    else:
        _check_gitlab(doc)


def _check_github(doc: dict[str, Any]) -> None:
    jobs = doc.get("jobs") or {}
    if list(jobs) not in ([*STAGE_IDS, *REPORT_JOBS[:n]] for n in (1, 2)):
        raise _fail("github", f"jobs {list(jobs)} are not the stages in order, then {' and '.join(REPORT_JOBS)}")
    if any(SECRET_REF.search(text) for key, node in doc.items() if key != "jobs" for text in ru.strings(node)):
        raise _fail("github", "the workflow maps a secret for every job: only a job that needs one maps it")
    for job_id, job in jobs.items():
        permissions = job.get("permissions") or {}
        writes = {k for k, v in permissions.items() if v == "write"} - {"id-token"}
        if writes - ({"pull-requests"} if job_id == "comment" else set()):
            raise _fail("github", f"job {job_id} asks to write {sorted(writes)}: only the comment job writes, "
                        "and only to the pull request")
        if job_id in REPORT_JOBS and "id-token" in permissions:
            raise _fail("github", f"job {job_id} asks for an OIDC token: only stage jobs talk to a cloud")
        _check_github_secrets(job_id, job)
        needs = job.get("needs") or []
        unknown = set(needs) - set(jobs)
        if unknown:
            raise _fail("github", f"job {job_id} needs unknown job(s) {sorted(unknown)}")
        for value in ru.strings(job):
            for src, out in NEEDS_OUTPUT.findall(value):
                if src not in needs or out not in (jobs[src].get("outputs") or {}):
                    raise _fail("github", f"job {job_id} reads needs.{src}.outputs.{out}, which it cannot see")
        for step in job.get("steps") or []:
            if ru.GITHUB_EXPR in str(step.get("run", "")):
                raise _fail("github", f"job {job_id}: a run: step contains ${{{{ }}}}")
    errors = schema_errors(doc, "vendor.github-workflows")
    if errors:
        raise _fail("github", "schema vendor.github-workflows: " + "; ".join(errors[:5]))


def _check_github_secrets(job_id: str, job: dict[str, Any]) -> None:
    """A secret reaches a job only through its env:, as ${{ secrets.NAME }}: never in with: (an
    action's input) or shell text, never the whole secrets context."""
    if any(SECRET_REF.search(text) for key, node in job.items() if key != "env" for text in ru.strings(node)):
        raise _fail("github", f"job {job_id} reads a secret outside its env:")
    for name, value in (job.get("env") or {}).items():
        if SECRET_REF.search(str(value)) and not ENV_SECRET.match(str(value)):
            raise _fail("github", f"job {job_id} maps {name} from {value!r}: map one secret as ${{{{ secrets.NAME }}}}")


def _component_job(name: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """The job a component include produces, with ``given`` inputs, as GitLab interpolates it."""
    problems = component_inputs_check.input_problems(name, given)
    if problems:
        raise _fail("gitlab", f"component {name}: " + "; ".join(problems))
    values = {spec.name: given.get(spec.name, spec.default) for spec in component_inputs(name)}
    text = ru.environment().get_template("component.yml.j2").render(**any_component_context(name))
    _, job = yaml.safe_load_all(text)
    merged = ru.interpolate_inputs(job, values)
    assert isinstance(merged, dict)
    return merged


def _check_gitlab(doc: dict[str, Any]) -> None:
    includes = doc.get("include") or []
    stages_seen: list[str] = []
    merged: dict[str, Any] = {k: v for k, v in doc.items() if k in GLOBAL_KEYWORDS or k == "workflow"}
    for item in includes:
        match = COMPONENT.match(str(item.get("component", "")))
        if not match:
            raise _fail("gitlab", f"include {item!r} is not a component of the ml-cicd project")
        stages_seen.append(match.group(1))
        merged |= _component_job(match.group(1), item.get("inputs") or {})
    if stages_seen != [*STAGE_IDS, REPORT]:
        raise _fail("gitlab", f"components {stages_seen} are not the stages in order, then {REPORT}")
    del merged["include"]
    jobs = {name: job for name, job in doc.items() if name not in GLOBAL_KEYWORDS and name != "workflow"}
    for name, override in jobs.items():
        if name not in merged:
            raise _fail("gitlab", f"job {name} overrides no component job")
        needs = [n["job"] if isinstance(n, dict) else n for n in override.get("needs") or []]
        unknown = set(needs) - set(jobs)
        if unknown:
            raise _fail("gitlab", f"job {name} needs unknown job(s) {sorted(unknown)}")
        merged[name] = {**merged[name], **override}  # GitLab merges a same-name job key by key
    for name, job in merged.items():
        if isinstance(job, dict) and "stage" in job and job["stage"] not in doc.get("stages", []):
            raise _fail("gitlab", f"job {name} is in stage {job['stage']!r}, which `stages:` does not list")
        if isinstance(job, dict) and any(ru.GITLAB_INPUT in line for line in ru.script_texts({name: job})):
            raise _fail("gitlab", f"job {name}: a script line contains $[[ ]]")
    for what, tree in (("the file", doc), ("the merged pipeline", merged)):
        errors = schema_errors(tree, "vendor.gitlab-ci")
        if errors:
            raise _fail("gitlab", f"schema vendor.gitlab-ci on {what}: " + "; ".join(errors[:5]))
