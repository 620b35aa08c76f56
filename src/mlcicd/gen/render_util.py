"""Small helpers shared by the renderers and their checks: jinja, YAML quoting, CI YAML walkers.

Nothing here knows about stages; :mod:`mlcicd.gen.surfaces` turns the catalogue into contexts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

import jinja2

GITHUB_EXPR = "${{"
GITLAB_INPUT = "$[["
# `$[[ inputs.name ]]`, optionally with `| function` parts (which we never emit).
GITLAB_BLOCK = re.compile(r"\$\[\[\s*inputs\.([A-Za-z0-9_-]+)\s*(?:\|[^\]]*)?\]\]")
GITHUB_INPUT_EXPR = re.compile(r"\$\{\{\s*inputs\.([A-Za-z0-9_-]+)\s*\}\}")


def yaml_quote(value: object) -> str:
    """A YAML double-quoted scalar (a JSON string is one), so no value can change the structure."""
    return json.dumps(str(value), ensure_ascii=False)


def yaml_single_quote(value: object) -> str:
    """A YAML single-quoted scalar: nothing is special inside but the quote itself."""
    return "'" + str(value).replace("'", "''") + "'"


def markdown_cell(text: object) -> str:
    """Text safe inside a Markdown table cell (no pipes, no line breaks, no HTML tags)."""
    return str(text).replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;").replace("\n", " ")


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("mlcicd.gen", "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["yq"] = yaml_quote
    env.filters["sq"] = yaml_single_quote
    env.filters["md"] = markdown_cell
    return env


def run_texts(action: Mapping[str, Any]) -> Iterator[str]:
    """Every ``run:`` text of a composite action."""
    for step in (action.get("runs") or {}).get("steps") or []:
        if isinstance(step, Mapping) and "run" in step:
            yield str(step["run"])


def script_texts(config: Mapping[str, Any]) -> Iterator[str]:
    """Every ``script``/``before_script``/``after_script`` line of every job in a GitLab document."""
    for job in config.values():
        if not isinstance(job, Mapping):
            continue
        for key in ("before_script", "script", "after_script"):
            lines = job.get(key) or []
            for line in [lines] if isinstance(lines, str) else lines:
                yield str(line)


def interpolate_inputs(node: Any, values: Mapping[str, Any]) -> Any:
    """Replace ``$[[ inputs.x ]]`` the way GitLab does: a whole-value block keeps the input's
    type (an array stays an array), a block inside a longer string is replaced by its text.
    Unknown names raise KeyError, as GitLab rejects them."""
    if isinstance(node, str):
        whole = GITLAB_BLOCK.fullmatch(node.strip())
        if whole:
            return values[whole.group(1)]
        return GITLAB_BLOCK.sub(lambda m: str(values[m.group(1)]), node)
    if isinstance(node, Mapping):
        return {interpolate_inputs(k, values): interpolate_inputs(v, values) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate_inputs(item, values) for item in node]
    return node


def strings(node: Any) -> Iterator[str]:
    """Every string (keys and values) in a parsed YAML tree."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, Mapping):
        for key, value in node.items():
            yield from strings(key)
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)
