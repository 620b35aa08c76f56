"""train: run the user's training command under an MLflow run that ml-cicd creates.

The command gets the run through ``MLFLOW_RUN_ID`` (MLflow's own convention, so
``mlflow.start_run()`` and ``mlcicd.log_model`` join it) and the data paths as
``MLCI_*`` variables. The run records the git revision, the data files' hashes and
the config, so every model version can be traced back to what made it.
"""

from __future__ import annotations

import collections
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from mlcicd.errors import UsageError
from mlcicd.lineage import file_sha256, git_revision
from mlcicd.report import Check, StageResult, Status, Verdict
from mlcicd.stages import StageContext

TAIL_LINES = 30


def _data_files(ctx: StageContext) -> dict[str, Path]:
    data = ctx.config.data
    files = {}
    for role, rel in (("train", data.train), ("eval", data.eval), ("reference", data.reference)):
        path = ctx.config.path(rel)
        if path is not None:
            files[role] = path
    return files


def _run_command(
    argv: list[str], cwd: Path, env: dict[str, str], timeout: float, ctx: StageContext
) -> tuple[int, list[str]]:
    """Stream the command's output to the log and keep its tail for the report."""
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    try:
        proc = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        )
    except FileNotFoundError:
        raise UsageError(
            f"training command not found: {argv[0]!r}",
            where="input command / mlci.yaml: train.command",
            fix="use a command that exists on this runner, e.g. `command: python train.py`",
        ) from None
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    for line in proc.stdout:
        ctx.ci.log(line.rstrip("\n"))
        tail.append(line.rstrip("\n"))
        if time.monotonic() > deadline:
            proc.kill()
            tail.append(f"[mlci] killed after the {timeout:.0f} s timeout (train.timeout)")
            break
    return proc.wait(), list(tail)


def run(ctx: StageContext) -> StageResult:
    from mlflow.tracking import MlflowClient

    command = ctx.inputs.require("command", "set train.command in mlci.yaml, e.g. `command: python train.py`")
    argv = shlex.split(command)
    if not argv:
        raise UsageError("training command is empty", where="train.command", fix="e.g. `command: python train.py`")
    tracking_uri = ctx.config.tracking_uri()
    _ensure_sqlite_dir(tracking_uri)
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment_name = ctx.inputs.experiment or ctx.config.project or ctx.config.mlflow.model_name
    experiment = client.get_experiment_by_name(experiment_name)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(experiment_name)

    files = _data_files(ctx)
    missing = [f"{role} ({p})" for role, p in files.items() if not p.is_file()]
    if "train" not in files or missing:
        raise UsageError(
            f"training data not found: {', '.join(missing) or 'data.train is not set'}",
            where=str(ctx.config.source),
            fix="point data.train (and data.eval/data.reference) at existing files, relative to mlci.yaml",
        )
    tags = {f"mlci.{k}": v for k, v in git_revision(ctx.config.root).items()}
    if "mlci.git.commit" in tags:
        tags["mlflow.source.git.commit"] = tags["mlci.git.commit"]
    tags["mlci.stage"] = "train"
    tags["mlci.command"] = command
    run = client.create_run(experiment_id, tags=tags, run_name=f"{ctx.config.mlflow.model_name}-train")
    run_id = run.info.run_id
    for role, path in files.items():
        client.log_param(run_id, f"data.{role}.sha256", file_sha256(path))
        client.log_param(run_id, f"data.{role}.path", str(path.relative_to(ctx.config.root))
                         if path.is_relative_to(ctx.config.root) else str(path))
    if ctx.config.source is not None:
        client.log_artifact(run_id, str(ctx.config.source), artifact_path="mlci")

    env = dict(os.environ)
    # `python` in the command means the interpreter running ml-cicd (a venv need not be activated).
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(ctx.config.train.env)
    env.update(
        MLFLOW_RUN_ID=run_id,
        MLFLOW_TRACKING_URI=tracking_uri,
        MLFLOW_EXPERIMENT_ID=experiment_id,
        MLCI_LABEL=ctx.config.data.label,
        **{f"MLCI_{role.upper()}_DATA": str(path) for role, path in files.items()},
    )
    started = time.monotonic()
    code, tail = _run_command(argv, ctx.config.root, env, ctx.config.train.timeout, ctx)
    seconds = time.monotonic() - started
    model_uri = _logged_model_uri(client, experiment_id, run_id) if code == 0 else None
    status = "FINISHED" if code == 0 and model_uri else "FAILED"
    client.set_terminated(run_id, status)

    figures = {"seconds": round(seconds, 2), "exit_code": code, "experiment_id": experiment_id}
    if code != 0:
        check = Check("command", Status.FAIL, f"`{command}` exited with {code}", observed=code, expected=0,
                      details={"tail": tail})
        return StageResult("train", Verdict.FAIL, f"training command failed (exit {code}); last lines:\n"
                           + "\n".join(tail[-10:]), checks=[check], outputs={"run-id": run_id, "model-uri": ""},
                           figures=figures)
    if model_uri is None:
        check = Check("model-logged", Status.FAIL, "the training command finished but logged no model",
                      expected="a model named 'model' in the run")
        return StageResult(
            "train", Verdict.FAIL,
            "training finished but logged no model; in train.py call `mlcicd.log_model(model)` "
            "or `mlflow.sklearn.log_model(model, name=\"model\", pip_requirements=[...])`",
            checks=[check], outputs={"run-id": run_id, "model-uri": ""}, figures=figures,
        )
    metrics = client.get_run(run_id).data.metrics
    checks = [
        Check("command", Status.PASS, f"`{command}` finished in {seconds:.1f} s", observed=0, expected=0),
        Check("model-logged", Status.PASS, f"model logged at {model_uri}"),
    ]
    return StageResult(
        "train", Verdict.PASS, f"trained and logged {model_uri} in {seconds:.1f} s",
        checks=checks, outputs={"run-id": run_id, "model-uri": model_uri},
        figures={**figures, "metrics": metrics},
        evidence={"tags": tags, "data": {role: str(p) for role, p in files.items()}},
    )


def _ensure_sqlite_dir(uri: str) -> None:
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)


def _logged_model_uri(client: Any, experiment_id: str, run_id: str) -> str | None:
    """The model the command logged: ``runs:/<id>/model`` when MLflow knows a model of that run."""
    found = client.search_logged_models(
        experiment_ids=[experiment_id], filter_string=f"source_run_id = '{run_id}'"
    )
    names = [m.name for m in found]
    if not names:
        return None
    name = "model" if "model" in names else names[0]
    return f"runs:/{run_id}/{name}"
