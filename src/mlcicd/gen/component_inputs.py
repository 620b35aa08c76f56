"""Check the inputs a pipeline passes to ml-cicd's GitLab components, as GitLab would.

GitLab rejects a pipeline whose ``include: component:`` passes an input the component's
``spec:inputs`` does not declare, omits a mandatory one, or gives a value its ``options``,
``regex`` or ``type`` refuse. Local runners such as gitlab-ci-local do not, so a typo like
``canary-wieght`` passes every local test and fails on the real server. ``mlci-gen check``
and ``mlci-gen render`` run these checks against the surfaces the component files are
generated from (:mod:`mlcicd.gen.surfaces`).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any

import yaml

from mlcicd.gen.surfaces import GitLabInput, component_names, declared_inputs

# `include: component:` addresses: <fqdn>/<project path>/<component>@<version>.
_ADDRESS = re.compile(r"^(?P<host>[^/\s]+)/(?P<project>\S+)/(?P<name>[a-z0-9-]+)@(?P<ref>[^@\s]+)$")


def ml_cicd_component(address: str, source: str) -> str | None:
    """The component name when ``address`` is one of ``source``'s components, else None."""
    m = _ADDRESS.match(address.strip())
    if m is None or m["project"].strip("/") != source.strip("/"):
        return None
    return m["name"] if m["name"] in component_names() else None


def _type_problem(spec: GitLabInput, value: Any) -> str | None:
    if spec.type == "array":
        return None if isinstance(value, list) else f"expects an array, got {value!r}"
    if spec.type == "boolean":
        return None if isinstance(value, bool) else f"expects true or false, got {value!r}"
    if spec.type == "number":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return None if ok else f"expects a number, got {value!r}"
    if not isinstance(value, str):
        return f"expects a string, got {value!r} (quote it)"
    if spec.options and value not in spec.options:
        shown = ", ".join(repr(o) for o in spec.options if o != "")
        return f"is {value!r}, not one of the options {shown}"
    if spec.regex and not re.fullmatch(spec.regex, value):
        return f"is {value!r}, which does not match {spec.regex}"
    return None


def input_problems(component: str, given: Mapping[str, Any]) -> list[str]:
    """Every reason GitLab would refuse these inputs for ``component`` (empty: accepted)."""
    declared = declared_inputs(component)
    problems = []
    for name in sorted(set(given) - set(declared)):
        close = difflib.get_close_matches(name, list(declared), n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"it takes: {', '.join(declared)}"
        problems.append(f"unknown input {name!r}: {hint}")
    for name, spec in declared.items():
        if name not in given:
            if spec.default is None:
                problems.append(f"mandatory input {name!r} is missing")
            continue
        problem = _type_problem(spec, given[name])
        if problem:
            problems.append(f"input {name!r} {problem}")
    return problems


def pipeline_problems(doc: Any, source: str) -> list[str]:
    """Problems of every ``include: component:`` of ``source`` in a parsed ``.gitlab-ci.yml``."""
    if not isinstance(doc, dict):
        return []
    includes = doc.get("include") or []
    if isinstance(includes, dict | str):
        includes = [includes]
    problems = []
    for i, item in enumerate(includes):
        address = item.get("component") if isinstance(item, dict) else None
        if not isinstance(address, str):
            continue
        component = ml_cicd_component(address, source)
        if component is None:
            continue
        given = item.get("inputs") or {}
        if not isinstance(given, dict):
            problems.append(f"include[{i}] ({address}): `inputs:` must be a mapping")
            continue
        problems += [f"include[{i}] ({address}): {p}" for p in input_problems(component, given)]
        problems += [f"include[{i}] ({address}): {p}" for p in _whole_pipeline_ref(component, address, given)]
    return problems


# An exact release or a commit: a pin, unlike a partial version (1, 1.2) or ~latest, which follow.
_EXACT_REF = re.compile(r"^(\d+\.\d+\.\d+\S*|[0-9a-f]{40})$")


def _whole_pipeline_ref(component: str, address: str, given: Mapping[str, Any]) -> list[str]:
    """``full-pipeline`` includes the stage components at its ``ref`` input, whose default follows
    the major version: GitLab cannot default an input to the including ref (component context is
    not interpolated in ``default:``). Pinned at an exact version, its stages must be pinned alike,
    or the pipeline silently runs a newer ml-cicd than the one reviewed."""
    if component != "full-pipeline":
        return []
    pinned = address.strip().rsplit("@", 1)[1]
    if not _EXACT_REF.match(pinned) or str(given.get("ref", "")) == pinned:
        return []
    ref = given.get("ref")
    runs = f"at ref {ref!r}" if ref is not None else "at the default ref '1' (the latest 1.x.y)"
    return [f"pinned at {pinned}, but it includes the stage components {runs}, so the stages run another "
            f"ml-cicd: add `ref: \"{pinned}\"` to its inputs (and keep both in step when you upgrade)"]


def file_problems(rel: str, text: str, source: str) -> list[str]:
    """What GitLab would reject in a pipeline file we did not generate: its ml-cicd component inputs."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return [f"{rel} is not valid YAML: {exc}"]
    return [f"{rel}: {p}" for p in pipeline_problems(doc, source)]
