"""Last-resort cleanup of the processes a test started (by PID, never by name)."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterable

from mlcicd.delivery.targets.processes import pid_alive


class Reaper:
    """Last-resort cleanup: SIGKILL every tracked PID that still runs when the test ends."""

    def __init__(self) -> None:
        self.pids: set[int] = set()

    def track(self, *pids: int | None) -> None:
        self.pids.update(p for p in pids if p)

    def kill(self, pids: Iterable[int] | None = None) -> list[int]:
        """Kill ``pids`` (default: all tracked); return those that were still running."""
        survivors = [pid for pid in (self.pids if pids is None else pids) if pid_alive(pid)]
        for pid in survivors:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                # Our servers and nginx's master lead their own process group: take nginx's workers too.
                if os.getpgid(pid) == pid:
                    os.killpg(pid, signal.SIGKILL)
                else:
                    os.kill(pid, signal.SIGKILL)
        return survivors
