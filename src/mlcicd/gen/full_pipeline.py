"""This repo's two whole-pipeline entry points, rendered by ``mlci-gen sync``:

* ``templates/full-pipeline.yml``: a GitLab component that includes every stage component,
  wired exactly as ``mlci-gen render --ci gitlab`` wires them;
* ``.github/workflows/ml-pipeline.yml``: a reusable workflow (``workflow_call``) with the jobs
  of ``mlci-gen render --ci github``.

Both reach the stages by their published address (``org/ml-cicd/actions/<stage>@v1``,
``$CI_SERVER_FQDN/<source>/<stage>@<ref>``), never by a relative path: a reusable workflow
called from another repository resolves ``./actions/x`` in the *caller's* checkout, and a
component's ``local:`` include reads the includer's project. GitHub's ``uses:`` cannot be an
expression, so the workflow's version is fixed here at sync time (``PUBLISHED``); the GitLab
component takes ``source``/``ref`` inputs whose defaults are the same constants.
"""

from __future__ import annotations

import yaml

from mlcicd.gen import pipeline, pipeline_check
from mlcicd.gen import render_util as ru
from mlcicd.gen.surfaces import DEFAULT_REF, DEFAULT_SOURCE, FULL_PIPELINE, FULL_PIPELINE_INPUTS

COMPONENT_PATH = f"templates/{FULL_PIPELINE}.yml"
WORKFLOW_PATH = pipeline.PIPELINE_PATHS["github"]
PUBLISHED = {"github": pipeline.RenderOptions("github", DEFAULT_REF["github"], DEFAULT_SOURCE, "${{ inputs.config }}"),
             "gitlab": pipeline.RenderOptions("gitlab", DEFAULT_REF["gitlab"], DEFAULT_SOURCE, "$[[ inputs.config ]]")}


def render_component(header: str) -> str:
    opts = PUBLISHED["gitlab"]
    gl = pipeline.RenderOptions("gitlab", "$[[ inputs.ref ]]", "$[[ inputs.source ]]", opts.config)
    spec = {"spec": {"inputs": {name: {"description": text, "default": default}
                                for name, text, default in FULL_PIPELINE_INPUTS}}}
    body = ru.environment().get_template("pipeline-gitlab.yml.j2").render(
        **pipeline.gitlab_context(None, gl, component=True, head=[]))
    text = (f"{header}\n# The whole pipeline in one include; list its stages under `stages:` if you declare any.\n"
            + yaml.safe_dump(spec, sort_keys=False, allow_unicode=True, width=200) + "---\n" + body)
    # Check the pipeline as GitLab sees it when the component is included with its defaults.
    first, second = yaml.safe_load_all(text)
    defaults = {name: spec_["default"] for name, spec_ in first["spec"]["inputs"].items()}
    pipeline_check.check_pipeline("gitlab", yaml.safe_dump(ru.interpolate_inputs(second, defaults)))
    errors = pipeline_check.schema_errors(first, "vendor.gitlab-ci")
    if errors:
        raise pipeline_check.PipelineCheckError("; ".join(errors), where=COMPONENT_PATH)
    return text


def render_workflow(header: str) -> str:
    text = ru.environment().get_template("pipeline-github.yml.j2").render(
        **pipeline.github_context(None, PUBLISHED["github"], reusable=True, head=[header]))
    pipeline_check.check_pipeline("github", text)
    return text


def render_all(header: str) -> dict[str, str]:
    return {COMPONENT_PATH: render_component(header), WORKFLOW_PATH: render_workflow(header)}
