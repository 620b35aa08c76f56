"""THE stage catalogue: the single source of truth for every stage's interface and the graph.

The CLI options, the GitHub composite actions, the GitLab components, the user pipelines
and the README tables are all rendered from :data:`STAGES`; nothing is written twice.
Input names are kebab-case on every surface and arrive in the process as
``MLCI_<NAME>`` environment variables (``model-uri`` -> ``MLCI_MODEL_URI``).

The stage graph lives here too: which stages a stage needs (``Stage.needs``), which
earlier output feeds an input (``Input.fed_by``), which stages change what serves
traffic (``Stage.deploys``), which wait for a human (``Stage.approval``) and when a
stage runs by default (``Stage.when``).

Besides the eight stages, two tools work on their reports (:data:`TOOLS`): ``report`` (one
HTML report of a pipeline) and ``comment`` (the pull / merge request comment). They are
published as actions and the report as a GitLab component too, but they are not stages: no
verdict, no place in the stage graph.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mlcicd.errors import UsageError

InputType = Literal["string", "boolean", "integer", "number", "choice"]
When = Literal["on_success", "on_failure"]


@dataclass(frozen=True)
class Input:
    name: str
    description: str
    type: InputType = "string"
    default: str | None = None
    options: tuple[str, ...] = ()
    required: bool = False
    # Dotted key in mlci.yaml that supplies the value when the input is not given.
    config_key: str | None = None
    secret: bool = False
    # (stage, output) whose value a rendered pipeline passes to this input.
    fed_by: tuple[str, str] | None = None

    @property
    def env_var(self) -> str:
        return env_var(self.name)


@dataclass(frozen=True)
class Output:
    name: str
    description: str


@dataclass(frozen=True)
class Published:
    """What an action / component publishes: a stage, or a tool working on the stages' reports."""

    id: str
    summary: str
    inputs: tuple[Input, ...]
    outputs: tuple[Output, ...]
    # pip extra of ml-cicd that a CI job running only this installs ("core": none).
    extra: str


@dataclass(frozen=True)
class Stage(Published):
    # Pipeline stage (GitLab `stages:` entry) its job runs in.
    job_stage: str
    # Stages whose jobs must finish first (their outputs are visible to this one).
    needs: tuple[str, ...] = ()
    # Changes what serves traffic: a deployment environment, serialised per environment, OIDC tokens.
    deploys: bool = False
    # Reads the deploy target (and its metric source) without changing what serves: OIDC tokens too.
    watches: bool = False
    # A rendered pipeline waits for a human before it runs (protected environment / when: manual).
    approval: bool = False
    # on_failure: runs only when a stage it needs failed (rollback follows a failed canary judgement).
    when: When = "on_success"
    # Debian packages (each also the command it provides) a job in a bare Python image installs
    # first: GitLab components run in python:3.11-slim; GitHub's ubuntu-latest already has them.
    os_packages: tuple[str, ...] = ()
    # Environment the job needs for them (e.g. how buildah runs inside an unprivileged container).
    os_env: tuple[tuple[str, str], ...] = ()

    @property
    def module(self) -> str:
        return "mlcicd.stages." + self.id.replace("-", "_")

    def input(self, name: str) -> Input:
        for item in self.inputs:
            if item.name == name:
                return item
        raise KeyError(name)


def env_var(input_name: str) -> str:
    return "MLCI_" + input_name.upper().replace("-", "_")


# Inputs every stage takes.
COMMON_INPUTS: tuple[Input, ...] = (
    Input("config", "Path of the ml-cicd config file.", default="mlci.yaml"),
    Input("report-dir", "Directory for the stage's JSON, Markdown and JUnit reports.", default="mlci-report"),
)
TRACKING_URI = Input(
    "tracking-uri",
    "MLflow tracking URI (defaults to a local SQLite store under .mlci/).",
    config_key="mlflow.tracking_uri",
)
MODEL_NAME = Input("model-name", "Registered model name in the MLflow registry.", config_key="mlflow.model_name")
TARGET = Input("target", "Deploy target plugin.", config_key="deploy.target")
VERDICT_OUT = Output("verdict", "pass, fail or inconclusive.")

STAGES: tuple[Stage, ...] = (
    Stage(
        "validate-data",
        "Schema, quality and drift checks on the training and evaluation data.",
        (
            Input("train-data", "Training data file (CSV or Parquet).", config_key="data.train"),
            Input("eval-data", "Evaluation data file (CSV or Parquet).", config_key="data.eval"),
            Input("reference-data", "Reference data that drift is measured against.", config_key="data.reference"),
            Input(
                "fail-on-drift",
                "Fail the stage when a feature drifts (otherwise warn).",
                type="boolean",
                config_key="data.drift.fail",
            ),
            Input("write-suite", "Also write the Great Expectations suite inferred from the reference data to "
                  "this path (to edit, commit and set as data.expectations)."),
        ),
        (VERDICT_OUT, Output("drifted-features", "Comma-separated features that drifted."),
         Output("rows", "Rows checked in the training data.")),
        extra="data",
        job_stage="validate",
    ),
    Stage(
        "train",
        "Run the training command under a new MLflow run with lineage (git commit, data hashes, config).",
        (
            Input("command", "Training command; it sees MLFLOW_RUN_ID and MLFLOW_TRACKING_URI.",
                  config_key="train.command"),
            Input("experiment", "MLflow experiment name.", config_key="train.experiment"),
            TRACKING_URI,
        ),
        (Output("run-id", "MLflow run id of the training run."),
         Output("model-uri", "URI of the model the run logged (runs:/<id>/model)."), VERDICT_OUT),
        extra="train",
        job_stage="train",
        needs=("validate-data",),
    ),
    Stage(
        "gate",
        "Judge the candidate against thresholds, the current champion and fairness; register it as challenger.",
        (
            Input("model-uri", "Candidate model URI (the train stage's model-uri output).", required=True,
                  fed_by=("train", "model-uri")),
            Input("eval-data", "Evaluation data file.", config_key="data.eval"),
            MODEL_NAME,
            TRACKING_URI,
            Input("register", "Register the candidate and set alias challenger when it passes.",
                  type="boolean", default="true"),
        ),
        (VERDICT_OUT, Output("model-version", "Registered model version (empty when not registered)."),
         Output("model-uri", "models:/<name>/<version> of the registered challenger.")),
        extra="gate",
        job_stage="gate",
        needs=("train",),
    ),
    Stage(
        "build-image",
        "Build a model-server image with the model baked in, push it and report its digest.",
        (
            # Build and deploy take gate's models:/<name>/<version>, not the @challenger alias: a
            # concurrent run that moves the alias cannot swap the model between build and deploy.
            Input("model-uri", "Model to bake in.", default="models:/{model_name}@challenger",
                  fed_by=("gate", "model-uri")),
            Input("builder", "Image builder.", type="choice", options=("auto", "buildah", "docker", "podman"),
                  config_key="image.builder"),
            Input("registry", "Registry host[:port] to push to.", config_key="image.registry"),
            Input("repository", "Image repository.", config_key="image.repository"),
            Input("tag", "Image tag (defaults to the model version).", config_key="image.tag"),
            Input("base-image", "Base image of the model server.", config_key="image.base"),
            Input("push", "Push the image to the registry.", type="boolean", config_key="image.push"),
            MODEL_NAME,
            TRACKING_URI,
        ),
        (Output("image", "Image reference by tag."), Output("digest", "Manifest digest (sha256:…)."),
         Output("image-ref", "Image reference pinned by digest."), VERDICT_OUT),
        extra="deploy",
        job_stage="build",
        needs=("gate",),
        # Daemonless and without privileges: chroot isolation and vfs storage work in a container.
        os_packages=("buildah",),
        os_env=(("BUILDAH_ISOLATION", "chroot"), ("STORAGE_DRIVER", "vfs")),
    ),
    Stage(
        "deploy-canary",
        "Start the challenger next to the serving champion and send it a weighted share of traffic.",
        (
            Input("model-uri", "Model to deploy as canary.", default="models:/{model_name}@challenger",
                  fed_by=("gate", "model-uri")),
            TARGET,
            Input("canary-weight", "Percent of traffic the canary receives.", type="integer",
                  config_key="deploy.canary.weight"),
            Input("image", "Image reference for image-based targets (build-image's image-ref).",
                  fed_by=("build-image", "image-ref")),
            MODEL_NAME,
            TRACKING_URI,
        ),
        (Output("endpoint", "URL that serves the traffic split."),
         Output("canary-version", "Model version of the canary."),
         Output("stable-version", "Model version of the stable release (empty on a first release)."), VERDICT_OUT),
        extra="deploy",
        job_stage="deploy",
        needs=("gate", "build-image"),
        deploys=True,
    ),
    Stage(
        "monitor-canary",
        "Walk the traffic steps, judging canary against stable with anytime-valid tests: "
        "promote, rollback or inconclusive.",
        (
            TARGET,
            Input("duration", "Maximum analysis time in seconds (all steps).", type="number",
                  config_key="deploy.canary.duration"),
            Input("interval", "Seconds between metric reads.", type="number", config_key="deploy.canary.interval"),
            Input("min-requests", "Canary requests each traffic step needs before the canary advances.",
                  type="integer",
                  config_key="deploy.canary.min_requests"),
            Input("generate-traffic", "Send synthetic requests (rows of the eval data) at this rate per second; "
                  "0 relies on real traffic.", type="number", default="0"),
            Input("eval-data", "Rows used for synthetic traffic.", config_key="data.eval"),
        ),
        (Output("decision", "promote, rollback, or hold (inconclusive with deploy.canary.on_inconclusive: hold)."),
         VERDICT_OUT),
        # The target's SDK and the registry: it reads the target and records its decision on the version.
        extra="deploy",
        job_stage="monitor",
        needs=("deploy-canary",),
        watches=True,
    ),
    Stage(
        "promote",
        "Shift all traffic to the canary, make it champion and retire the old release.",
        (TARGET, MODEL_NAME, TRACKING_URI,
         Input("force", "Promote even though monitor-canary decided to roll back (a human's decision).",
               type="boolean", default="false")),
        (Output("champion-version", "Model version now serving as champion."),
         Output("previous-champion-version", "Model version it replaced (empty on a first release)."), VERDICT_OUT),
        extra="deploy",
        job_stage="release",
        needs=("monitor-canary",),
        deploys=True,
        approval=True,
    ),
    Stage(
        "rollback",
        "Send all traffic back to the stable release and stop the canary; or restore the previous champion.",
        (
            Input("to", "stable: undo a canary. previous-champion: undo a promotion.", type="choice",
                  options=("stable", "previous-champion"), default="stable"),
            Input("reason", "Why; recorded on the model version in the registry.", default="manual rollback"),
            TARGET,
            MODEL_NAME,
            TRACKING_URI,
        ),
        (Output("champion-version", "Model version serving after the rollback."),
         Output("rolled-back-version", "Model version taken out of service."), VERDICT_OUT),
        extra="deploy",
        job_stage="release",
        needs=("monitor-canary",),
        deploys=True,
        when="on_failure",
    ),
)

STAGE_IDS: tuple[str, ...] = tuple(s.id for s in STAGES)
# What a pull / merge request runs: the checks and the gate, never a build or a deploy (and the
# gate does not register: a proposed change never moves the challenger alias).
PULL_REQUEST_STAGES: tuple[str, ...] = ("validate-data", "train", "gate")


def get_stage(stage_id: str) -> Stage:
    for stage in STAGES:
        if stage.id == stage_id:
            return stage
    raise UsageError(
        f"unknown stage {stage_id!r}",
        where="stage",
        fix=f"use one of: {', '.join(STAGE_IDS)}",
    )


def all_inputs(stage: Stage) -> tuple[Input, ...]:
    return COMMON_INPUTS + stage.inputs


@dataclass(frozen=True)
class Tool(Published):
    """A command that works on the stages' reports (``mlci <id>``), published like a stage."""

    # Its action passes the job's GITHUB_TOKEN in the step's environment (never as an input).
    github_token: bool = False


REPORT_DIR = Input("report-dir", "Directory of the stage reports (<stage>.json; downloaded artifacts merged into it).",
                   default="mlci-report")
TOOLS: tuple[Tool, ...] = (
    Tool(
        "report",
        "Write one self-contained HTML report (verdicts and plots) of the stages' reports in a directory.",
        (REPORT_DIR,
         Input("output", "Where to write the HTML.", default="{report_dir}/report.html")),
        (Output("path", "Path of the HTML report written."),),
        extra="report",
    ),
    Tool(
        "comment",
        "Create or update the pipeline's comment on the pull request with every stage's verdict "
        "(needs pull-requests: write).",
        (REPORT_DIR,
         Input("report-url", "Link to the full report (e.g. the uploaded report artifact). Default: the run's "
               "artifacts."),
         Input("key", "Names the pipeline: one comment per key per pull request. Default: the workflow's name.")),
        (),
        extra="core",
        github_token=True,
    ),
)
TOOL_IDS: tuple[str, ...] = tuple(t.id for t in TOOLS)


def get_tool(tool_id: str) -> Tool:
    for tool in TOOLS:
        if tool.id == tool_id:
            return tool
    raise UsageError(f"unknown tool {tool_id!r}", where="tool", fix=f"use one of: {', '.join(TOOL_IDS)}")
