"""Run one stage end to end: config, inputs, stage, reports, outputs, exit code."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlcicd.ci import detect
from mlcicd.ci.base import CIAdapter
from mlcicd.config import DEFAULT_CONFIG, load_config
from mlcicd.errors import EXIT_UNEXPECTED, REPORT_HINT, MlciError, UsageError
from mlcicd.inputs import apply_overrides, resolve_inputs
from mlcicd.notify import notify_result
from mlcicd.report import StageResult, Status, to_markdown, write_report
from mlcicd.stages import StageContext, load_stage


def execute(
    stage_id: str,
    cli_values: Mapping[str, Any] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    ci: CIAdapter | None = None,
) -> tuple[int, StageResult | None]:
    """Run a stage; never raises. Returns (exit code, result or None on error)."""
    env = dict(os.environ) if env is None else env
    cli_values = cli_values or {}
    try:
        ci = ci or detect(env)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code, None
    try:
        stage, run = load_stage(stage_id)
        config_path = cli_values.get("config") or env.get("MLCI_CONFIG") or DEFAULT_CONFIG
        config = load_config(config_path)
        inputs = resolve_inputs(stage, cli_values, env, config)
        apply_overrides(stage, inputs, config)
        report_dir = Path(inputs.report_dir)
        ctx = StageContext(stage, inputs, config, ci, report_dir)
        ci.start_group(f"mlci {stage.id}")
        try:
            result = run(ctx)
        finally:
            ci.end_group()
    except MlciError as exc:
        ci.annotate("error", str(exc), title=f"mlci {stage_id}")
        return exc.exit_code, None
    except Exception:
        traceback.print_exc()
        ci.annotate("error", f"unexpected error in stage {stage_id}. {REPORT_HINT}", title=f"mlci {stage_id}")
        return EXIT_UNEXPECTED, None
    # Before publishing, so a notification that failed is in the report as a warning.
    notify_result(result, config.notify, ci, env, model=config.mlflow.model_name, project=config.project)
    publish(result, ci, report_dir)
    return result.verdict.exit_code, result


def publish(result: StageResult, ci: CIAdapter, report_dir: Path) -> None:
    """Hand a result to every place a user reads it: files, outputs, summary, annotations."""
    write_report(result, report_dir)
    outputs = dict(result.outputs)
    outputs.setdefault("verdict", result.verdict.value)
    ci.set_outputs(result.stage, outputs, report_dir)
    ci.summary(result.stage, to_markdown(result))
    for check in result.checks:
        if check.status is Status.FAIL:
            ci.annotate("error", check.message, title=f"{result.stage}: {check.name}")
        elif check.status is Status.WARN:
            ci.annotate("warning", check.message, title=f"{result.stage}: {check.name}")
