"""This repository's generated files: the actions, the GitLab components, the whole-pipeline
workflow and component, and the README's stage tables (what ``mlci-gen sync`` writes).

Everything is rendered from :mod:`mlcicd.catalog` through :mod:`mlcicd.gen.surfaces` with
the jinja templates beside this module, parsed back and checked before anything is written.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from pathlib import Path
from typing import Any

import yaml

from mlcicd.catalog import STAGES, TOOLS, Input, all_inputs
from mlcicd.ci.base import dotenv_name
from mlcicd.gen import full_pipeline
from mlcicd.gen import render_util as ru
from mlcicd.gen.surfaces import (
    DEPLOY_INPUTS,
    GLOBAL_KEYWORDS,
    HEADER,
    JOB_INPUTS,
    REPORT,
    GitLabInput,
    SyncError,
    action_context,
    component_context,
    extra_spec,
    gitlab_inputs,
    report_component_context,
    report_inputs,
    root_context,
    tool_action_context,
)

README_START, README_END = "<!-- mlci-gen:inputs:start -->", "<!-- mlci-gen:inputs:end -->"


def readme_context() -> dict[str, Any]:
    def default_md(item: Input) -> str:
        if item.required:
            return "**required**"
        if item.config_key:
            return f"mlci.yaml `{item.config_key}`" + (f", else `{item.default}`" if item.default else "")
        return f"`{item.default}`" if item.default is not None else ""

    stages = [{"id": s.id, "summary": s.summary, "extra_spec": extra_spec(s),
               "inputs": [{"name": i.name, "description": i.description, "env": i.env_var,
                           "default_md": default_md(i)} for i in all_inputs(s)],
               "outputs": [{"name": o.name, "description": o.description, "dotenv": dotenv_name(s.id, o.name)}
                           for o in s.outputs]} for s in STAGES]
    job = ", ".join(f"`{n}`" for n in JOB_INPUTS)
    deploys = ", ".join(s.id for s in STAGES if s.deploys)
    dep = " and ".join(f"`{n}`" for n in DEPLOY_INPUTS)
    job_inputs = (f"{job} (job name, pipeline stage, image, pip requirement overriding the component's own version, "
                  f"ml-cicd's project path, rules);\n{deploys} also take {dep}")
    return {"header": f"<!-- {HEADER[2:]} -->", "stages": stages, "job_inputs": job_inputs}


# --- checks on the rendered text ---------------------------------------------------------------

def _fail(path: str, what: str) -> SyncError:
    return SyncError(what, where=path, fix="fix src/mlcicd/catalog.py or the templates in src/mlcicd/gen/templates")


def check_action(path: str, text: str, input_names: list[str], output_names: list[str]) -> None:
    doc = yaml.safe_load(text)
    if not isinstance(doc, dict) or doc.get("runs", {}).get("using") != "composite":
        raise _fail(path, "not a composite action")
    if list(doc.get("inputs") or {}) != input_names or list(doc.get("outputs") or {}) != output_names:
        raise _fail(path, "inputs/outputs differ from the catalogue")
    for step in doc["runs"]["steps"]:
        if step.get("shell") != "bash" or ru.GITHUB_EXPR in str(step.get("run", "")):
            raise _fail(path, f"step {step.get('id')!r}: run steps use bash and never contain ${{{{ }}}}")
    used = {m.group(1) for s in ru.strings(doc) for m in ru.GITHUB_INPUT_EXPR.finditer(s)}
    if not used <= set(input_names):
        raise _fail(path, f"expressions use undeclared inputs {sorted(used - set(input_names))}")


def check_component(path: str, text: str, expected: list[GitLabInput]) -> None:
    docs = list(yaml.safe_load_all(text))
    if len(docs) != 2 or not isinstance(docs[0], dict) or list(docs[0]) != ["spec"] or not isinstance(docs[1], dict):
        raise _fail(path, "a component is two YAML documents: spec, then the job")
    spec = docs[0]["spec"]["inputs"]
    if list(spec) != [i.name for i in expected]:
        raise _fail(path, "spec inputs differ from the catalogue")
    if set(docs[1]) & GLOBAL_KEYWORDS or len(docs[1]) != 1:
        raise _fail(path, "a component defines exactly one job and no global keywords")
    if any(ru.GITLAB_INPUT in line for line in ru.script_texts(docs[1])):
        raise _fail(path, "script lines never contain $[[ ]]")
    for item in expected:
        value = spec[item.name].get("default")
        if value != item.default or ("default" in spec[item.name]) != (item.default is not None):
            raise _fail(path, f"input {item.name!r}: default {value!r} differs from the catalogue")
        if value is not None and ((item.options and value not in item.options) or (
                item.regex and not re.fullmatch(item.regex, value))):
            raise _fail(path, f"input {item.name!r}: default {value!r} is not valid")
    try:
        ru.interpolate_inputs(docs[1], {k: v.get("default") for k, v in spec.items()})
    except KeyError as exc:
        raise _fail(path, f"the job uses undeclared input {exc}") from None


# --- rendering ---------------------------------------------------------------------------------

def render_all(readme: str | None = None) -> dict[str, str]:
    """Every generated file, relative path -> text, checked. ``readme`` is the current README."""
    env = ru.environment()
    action, component = env.get_template("action.yml.j2"), env.get_template("component.yml.j2")
    files: dict[str, str] = {}
    root = root_context(STAGES)
    files["action.yml"] = action.render(**root)
    check_action("action.yml", files["action.yml"], [i["name"] for i in root["inputs"]],
                 [o["name"] for o in root["outputs"]])
    for stage in STAGES:
        path = f"actions/{stage.id}/action.yml"
        files[path] = action.render(**action_context(stage))
        check_action(path, files[path], [i.name for i in all_inputs(stage)], [o.name for o in stage.outputs])
        path = f"templates/{stage.id}.yml"
        files[path] = component.render(**component_context(stage))
        check_component(path, files[path], gitlab_inputs(stage))
    for tool in TOOLS:
        path = f"actions/{tool.id}/action.yml"
        files[path] = action.render(**tool_action_context(tool))
        check_action(path, files[path], [i.name for i in tool.inputs], [o.name for o in tool.outputs])
    path = f"templates/{REPORT}.yml"
    files[path] = component.render(**report_component_context())
    check_component(path, files[path], report_inputs())
    files |= full_pipeline.render_all(HEADER)
    if readme is not None:
        files["README.md"] = splice_readme(readme, env.get_template("readme-stages.md.j2").render(**readme_context()))
    return files


def splice_readme(readme: str, table: str) -> str:
    start, end = readme.find(README_START), readme.find(README_END)
    if start < 0 or end < start:
        raise SyncError("README.md has no generated-table markers", where="README.md",
                        fix=f"add a line {README_START} and a line {README_END} where the tables go")
    return readme[: start + len(README_START)] + "\n" + table.strip("\n") + "\n" + readme[end:]


def is_repo(root: Path) -> bool:
    try:
        return tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]["name"] == "ml-cicd"
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return False


def stale(root: Path, rendered: dict[str, str]) -> list[str]:
    found = [*root.glob("actions/*/action.yml"), *root.glob("templates/*.yml")]
    return sorted(rel for p in found if (rel := p.relative_to(root).as_posix()) not in rendered
                  and p.read_text(encoding="utf-8").startswith(HEADER))


def diff(path: str, old: str, new: str, limit: int = 40) -> list[str]:
    lines = list(difflib.unified_diff(old.splitlines(), new.splitlines(), f"{path} (committed)",
                                      f"{path} (from the catalogue)", lineterm=""))
    return lines[:limit] + ([f"... {len(lines) - limit} more diff lines"] if len(lines) > limit else [])
