"""GitHub Actions: ``$GITHUB_OUTPUT``, ``$GITHUB_STEP_SUMMARY`` and workflow commands."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from pathlib import Path

from mlcicd.ci.base import CIAdapter, Level


def _escape_data(value: str) -> str:
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(value: str) -> str:
    return _escape_data(value).replace(":", "%3A").replace(",", "%2C")


class GitHubAdapter(CIAdapter):
    name = "github"

    def _append(self, var: str, text: str) -> bool:
        path = self.env.get(var)
        if not path:
            return False
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(text)
        return True

    def run_url(self) -> str | None:
        env = self.env
        if env.get("MLCI_RUN_URL"):
            return env["MLCI_RUN_URL"]
        if not (env.get("GITHUB_REPOSITORY") and env.get("GITHUB_RUN_ID")):
            return None
        server = env.get("GITHUB_SERVER_URL") or "https://github.com"
        return f"{server}/{env['GITHUB_REPOSITORY']}/actions/runs/{env['GITHUB_RUN_ID']}"

    def set_outputs(self, stage: str, outputs: Mapping[str, str], report_dir: Path) -> None:
        chunks = []
        for key, value in outputs.items():
            if "\n" in value:
                # Multiline values need a delimiter that cannot occur in the value.
                delim = f"ghadelim_{uuid.uuid4().hex}"
                chunks.append(f"{key}<<{delim}\n{value}\n{delim}\n")
            else:
                chunks.append(f"{key}={value}\n")
        if not self._append("GITHUB_OUTPUT", "".join(chunks)):
            self.annotate("warning", "GITHUB_OUTPUT is not set; step outputs were not written")

    def summary(self, stage: str, markdown: str) -> None:
        if not self._append("GITHUB_STEP_SUMMARY", markdown + "\n"):
            self.log(markdown)

    def annotate(self, level: Level, message: str, *, title: str | None = None) -> None:
        props = f" title={_escape_property(title)}" if title else ""
        self.log(f"::{level}{props}::{_escape_data(message)}")

    def mask(self, value: str) -> None:
        for line in value.splitlines():
            if line.strip():
                self.log(f"::add-mask::{line}")

    def start_group(self, title: str) -> None:
        self.log(f"::group::{title}")

    def end_group(self) -> None:
        self.log("::endgroup::")
