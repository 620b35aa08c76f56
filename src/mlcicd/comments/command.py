"""``mlci comment``: put the stage reports of this job into the pull request's pipeline comment."""

from __future__ import annotations

import traceback
from collections.abc import Callable, Mapping
from pathlib import Path

from mlcicd.comments import context
from mlcicd.comments.body import from_reports
from mlcicd.comments.sync import upsert
from mlcicd.errors import EXIT_PASS, EXIT_UNEXPECTED, REPORT_HINT, MlciError, UsageError
from mlcicd.httpretry import Policy


def comment(dirs: list[str], env: Mapping[str, str], *, ci: str | None = None, key: str | None = None,
            report_url: str | None = None, settle: float = 1.0, policy: Policy | None = None,
            echo: Callable[[str], None] = print, err: Callable[[str], None] = print) -> int:
    """Exit code: 0 done, 2 no reports / no pull request / no token, 4 the API kept failing."""
    paths = [Path(d) for d in dirs or ["mlci-report"]]
    try:
        missing = [str(p) for p in paths if not p.is_dir()]
        if missing:
            raise UsageError(f"no report directory {', '.join(missing)}", where="--dir",
                             fix="pass the directory stages wrote their reports to (input report-dir, default "
                             "mlci-report); in a separate job, download the report artifact first")
        pr = context.detect(env, ci, policy)
        ours = from_reports(paths, key or pr.key, pr.run, pr.run_url, report_url or pr.report_url)
        if not ours.stages:
            raise UsageError(f"no stage reports (<stage>.json) in {', '.join(map(str, paths))}", where="--dir",
                             fix="run a stage first (`mlci run <stage>` writes mlci-report/<stage>.json), or point "
                             "--dir at the directory it wrote")
        outcome = upsert(pr.thread, ours, settle=settle, log=echo)
    except MlciError as exc:
        err(f"error: {exc}")
        return exc.exit_code
    except Exception:
        err(traceback.format_exc())
        err(f"error: unexpected error in mlci comment. {REPORT_HINT}")
        return EXIT_UNEXPECTED
    action = "created" if outcome.created else "updated"
    where = outcome.note.url or pr.where
    echo(f"comment {action} on {pr.where} ({', '.join(sorted(ours.stages))}): {where}")
    return EXIT_PASS
