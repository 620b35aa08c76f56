"""GitLab CI: outputs as a dotenv report, summaries as collapsible log sections.

The component declares ``artifacts: reports: dotenv: <report-dir>/<stage>.env`` so the
values reach later jobs as ``MLCI_<STAGE>_<OUTPUT>`` variables.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from pathlib import Path

from mlcicd.ci.base import CIAdapter, Level, dotenv_name, single_line

_ESC = "\x1b[0K"


class GitLabAdapter(CIAdapter):
    name = "gitlab"
    _section = 0

    def run_url(self) -> str | None:
        # The pipeline, not the job: it shows every stage and the exposed report artifacts.
        return self.env.get("MLCI_RUN_URL") or self.env.get("CI_PIPELINE_URL") or self.env.get("CI_JOB_URL") or None

    def set_outputs(self, stage: str, outputs: Mapping[str, str], report_dir: Path) -> None:
        report_dir.mkdir(parents=True, exist_ok=True)
        path = report_dir / f"{stage}.env"
        # Dotenv reports take one KEY=VALUE per line; GitLab rejects multiline values.
        lines = [f"{dotenv_name(stage, k)}={single_line(v)}" for k, v in outputs.items()]
        path.write_text("\n".join(lines) + ("\n" if lines else ""))

    def summary(self, stage: str, markdown: str) -> None:
        self.start_group(f"mlci {stage} report")
        self.log(markdown)
        self.end_group()

    def annotate(self, level: Level, message: str, *, title: str | None = None) -> None:
        color = {"error": "31", "warning": "33", "notice": "36"}[level]
        prefix = f"{title}: " if title else ""
        self.log(f"\x1b[{color}m{level.upper()}\x1b[0m {prefix}{message}")

    def mask(self, value: str) -> None:
        # GitLab masks only CI/CD variables defined in settings; values made at run time
        # cannot be masked, so never print them in the first place.
        pass

    def start_group(self, title: str) -> None:
        self._section += 1
        name = re.sub(r"[^a-z0-9_]", "_", title.lower())[:40] + f"_{self._section}"
        self._open = name
        self.log(f"{_ESC}section_start:{int(time.time())}:{name}[collapsed=false]\r{_ESC}{title}")

    def end_group(self) -> None:
        name = getattr(self, "_open", "mlci")
        self.log(f"{_ESC}section_end:{int(time.time())}:{name}\r{_ESC}")
