"""The eight stages. Each module exposes ``run(ctx: StageContext) -> StageResult``.

Stages are pure orchestration: they read typed inputs and config, call the
domain modules, and return a result; the runner writes reports and outputs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlcicd.catalog import Stage, get_stage
from mlcicd.ci.base import CIAdapter
from mlcicd.config import Config
from mlcicd.inputs import Origin, StageInputs
from mlcicd.report import StageResult


@dataclass
class StageContext:
    """One stage run. ``config`` already holds the inputs given for this run (``tracking-uri``
    is ``config.mlflow.tracking_uri``, ``model-name`` is ``config.mlflow.model_name``), so the
    stage, the registry and the target all read the same values from it."""

    stage: Stage
    inputs: StageInputs
    config: Config
    ci: CIAdapter
    report_dir: Path

    def input_path(self, name: str) -> Path | None:
        """A path input: values from mlci.yaml are relative to its directory, others to the cwd."""
        value = self.inputs.values.get(name)
        if not value:
            return None
        path = Path(str(value))
        if path.is_absolute():
            return path
        from_config = self.inputs.origins.get(name) is Origin.CONFIG
        return self.config.root / path if from_config else Path.cwd() / path


StageFn = Callable[[StageContext], StageResult]


def load_stage(stage_id: str) -> tuple[Stage, StageFn]:
    """Import only the stage that runs, so it pays only for its own libraries."""
    stage = get_stage(stage_id)
    module = importlib.import_module(stage.module)
    return stage, module.run
