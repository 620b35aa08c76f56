"""Find the stages' verdict files: ``<stage>.json`` in one or more report directories.

On hosted runners every job uploads its own report directory, so a pipeline's report is
assembled from several; a stage that ran twice (a re-run job, a retried monitor) appears in
more than one, and the latest file wins. "Latest" is the ``written_at`` time in the file
(a downloaded artifact's file times are the download's), else, for files written before it
existed, the file's modification time.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from mlcicd.catalog import STAGE_IDS
from mlcicd.errors import UsageError


@dataclass(frozen=True)
class StageDoc:
    stage: str
    path: Path
    data: dict[str, Any]
    written: float  # seconds since the epoch

    @property
    def verdict(self) -> str:
        return str(self.data.get("verdict", "unknown"))


def collect(dirs: Sequence[Path]) -> list[StageDoc]:
    """The latest verdict of every stage found, in pipeline order (unknown stages last, by name)."""
    found: dict[str, StageDoc] = {}
    for directory in dirs:
        if not directory.is_dir():
            raise UsageError(f"{directory} is not a directory", where=f"--dir {directory}",
                             fix="pass the report directory the stages wrote (their report-dir input, default "
                             "mlci-report), or each downloaded artifact directory with its own --dir")
        for path in sorted(directory.glob("*.json")):
            doc = _read(path)
            if doc is None:
                continue
            kept = found.get(doc.stage)
            if kept is None or doc.written >= kept.written:
                found[doc.stage] = doc
    if not found:
        shown = " ".join(f"--dir {d}" for d in dirs)
        raise UsageError(
            "no stage verdict (<stage>.json) found", where=shown,
            fix="run a stage first (mlci run validate-data writes mlci-report/validate-data.json), or pass the "
            "directories the stages wrote with --dir (repeat --dir for several artifact directories)")
    order = {stage: i for i, stage in enumerate(STAGE_IDS)}
    return sorted(found.values(), key=lambda d: (order.get(d.stage, len(order)), d.stage))


def _read(path: Path) -> StageDoc | None:
    """A stage's verdict file, or None for any other JSON in the directory (e.g. a notification log)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        # Only files that claim to be a stage's verdict are reported broken; stray files are ignored.
        if path.stem in STAGE_IDS:
            raise UsageError(f"{path} is not valid JSON", where=str(path),
                             fix="re-run the stage, or remove the damaged file") from None
        return None
    if not isinstance(data, dict) or data.get("stage") != path.stem or "verdict" not in data:
        return None
    return StageDoc(path.stem, path, data, _written(data) or path.stat().st_mtime)


def _written(data: dict[str, Any]) -> float | None:
    try:
        return datetime.fromisoformat(str(data["written_at"])).timestamp()
    except (KeyError, ValueError):
        return None
