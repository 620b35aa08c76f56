"""One self-contained HTML report per pipeline run, built from the stages' ``<stage>.json``.

:mod:`.collect` finds the verdict files (several report directories: on hosted runners every
job's report arrives as its own artifact), :mod:`.extract` turns their figures into plot data
(plain Python, tested without drawing), :mod:`.plots` draws them as inline SVG and
:mod:`.page` writes the HTML. Only ``mlci report`` imports this package: the stages never
pay for matplotlib.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from mlcicd.errors import UsageError
from mlcicd.reporting.collect import StageDoc, collect

__all__ = ["StageDoc", "build", "collect"]


def build(dirs: Sequence[Path], out: Path) -> tuple[Path, list[StageDoc], float]:
    """Write the report for the stage JSONs in ``dirs`` to ``out``; return it, the stages and the seconds taken."""
    from mlcicd.reporting.page import render

    started = time.perf_counter()
    docs = collect(dirs)
    html = render(docs, sources=[str(d) for d in dirs])
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(html, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write the report: {exc.strerror or exc}", where=f"--out {out}",
                         fix="pass a writable file path, e.g. --out mlci-report/report.html") from None
    return out, docs, time.perf_counter() - started
