"""Directories that every pytest worker of one session shares, built once under a file lock.

Each xdist worker has a base temp directory of its own (``.../pytest-N/popen-gwK``); their parent
belongs to the session. What is expensive and the same for all workers (a venv with ml-cicd and
every extra, ~2 to 3 min of pip on two cores) is built there once, by whichever worker needs it
first, while the others wait on the lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

DONE = ".built"


def session_dir(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """``name`` under the session's directory, shared by all its workers (just the base temp without xdist)."""
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    path = root / name
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    with open(path.with_name(path.name + ".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def built_once(path: Path, build: Callable[[Path], None]) -> Path:
    """``path`` as ``build(path)`` made it, in this session: built by the first caller, reused after.

    A build that failed half-way leaves no mark, so the next caller starts it again from scratch.
    """
    with locked(path):
        if not (path / DONE).is_file():
            shutil.rmtree(path, ignore_errors=True)
            path.mkdir(parents=True)
            build(path)
            (path / DONE).touch()
    return path
