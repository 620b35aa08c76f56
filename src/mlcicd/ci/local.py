"""A laptop or any other runner: outputs go to the log and a dotenv file for scripts."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from mlcicd.ci.base import CIAdapter, dotenv_name, single_line


class LocalAdapter(CIAdapter):
    name = "local"

    def set_outputs(self, stage: str, outputs: Mapping[str, str], report_dir: Path) -> None:
        report_dir.mkdir(parents=True, exist_ok=True)
        lines = [f"{dotenv_name(stage, k)}={single_line(v)}" for k, v in outputs.items()]
        (report_dir / f"{stage}.env").write_text("\n".join(lines) + ("\n" if lines else ""))
        for key, value in outputs.items():
            self.log(f"output {key}={value}")
