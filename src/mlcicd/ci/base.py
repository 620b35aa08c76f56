"""The adapter interface shared by GitHub, GitLab and local runs."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Literal, TextIO

Level = Literal["error", "warning", "notice"]


class CIAdapter:
    """Default behaviour prints to the log; subclasses route to their CI's files and commands."""

    name = "base"

    def __init__(self, env: Mapping[str, str], stream: TextIO | None = None) -> None:
        self.env = env
        self.stream = stream or sys.stdout

    def log(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def run_url(self) -> str | None:
        """Where people see this run: the link in notifications and pull-request comments.
        ``MLCI_RUN_URL`` wins, for runners this adapter cannot know the address of."""
        return self.env.get("MLCI_RUN_URL") or None

    def set_outputs(self, stage: str, outputs: Mapping[str, str], report_dir: Path) -> None:
        raise NotImplementedError

    def summary(self, stage: str, markdown: str) -> None:
        self.log(markdown)

    def annotate(self, level: Level, message: str, *, title: str | None = None) -> None:
        prefix = f"{title}: " if title else ""
        self.log(f"{level.upper()}: {prefix}{message}")

    def mask(self, value: str) -> None:
        """Hide a value from the log where the CI supports it."""

    def start_group(self, title: str) -> None:
        self.log(f"--- {title}")

    def end_group(self) -> None:
        pass


def dotenv_name(stage: str, output: str) -> str:
    """``gate`` + ``model-version`` -> ``MLCI_GATE_MODEL_VERSION`` (valid in every shell and dotenv)."""
    return f"MLCI_{stage}_{output}".upper().replace("-", "_")


def single_line(value: str) -> str:
    return value.replace("\r", " ").replace("\n", " ")
