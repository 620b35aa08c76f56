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
from mlcicd.inputs import StageInputs
from mlcicd.report import StageResult


@dataclass
class StageContext:
    stage: Stage
    inputs: StageInputs
    config: Config
    ci: CIAdapter
    report_dir: Path

    def tracking_uri(self) -> str:
        """The tracking-uri input, with relative SQLite paths anchored at the project root."""
        from mlcicd.config import absolutize_sqlite_uri

        uri = self.inputs.values.get("tracking-uri") or self.config.mlflow.tracking_uri
        return absolutize_sqlite_uri(uri, self.config.root)

    def input_path(self, name: str) -> Path | None:
        """A path input: values from mlci.yaml are relative to its directory, others to the cwd."""
        value = self.inputs.values.get(name)
        if not value:
            return None
        path = Path(str(value))
        if path.is_absolute():
            return path
        from_config = self.inputs.sources.get(name, "").startswith(str(self.config.source or "mlci.yaml"))
        return self.config.root / path if from_config else Path.cwd() / path

    def model_name(self) -> str:
        return str(self.inputs.values.get("model-name") or self.config.mlflow.model_name)


StageFn = Callable[[StageContext], StageResult]


def load_stage(stage_id: str) -> tuple[Stage, StageFn]:
    """Import only the stage that runs, so it pays only for its own libraries."""
    stage = get_stage(stage_id)
    module = importlib.import_module(stage.module)
    return stage, module.run
