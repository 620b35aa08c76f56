"""Graceful cancellation: CI stops a job with SIGINT (GitHub) or SIGTERM (GitLab, most runners).

Inside :class:`Cancellation` the first such signal only records itself and wakes whoever
waits on :meth:`wait`: the canary walk stops at its next check (at most one metric read
later), leaves traffic where it is and reports how to resume or roll back. A second signal
means "now": the default behaviour comes back and the process ends at once.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Cancellation:
    def __init__(self) -> None:
        self.event = threading.Event()
        self.signal: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> Cancellation:
        if threading.current_thread() is threading.main_thread():  # handlers can only be set there
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signal is not None:  # the second one: stop waiting for the walk
            for sig, handler in self._previous.items():
                signal.signal(sig, handler)
            signal.raise_signal(signum)
            return
        self.signal = signal.Signals(signum).name
        self.event.set()

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True when cancelled (at once, whenever the signal comes)."""
        return self.event.wait(seconds)

    def stopped(self) -> str | None:
        """The signal's name once cancelled."""
        return self.signal
