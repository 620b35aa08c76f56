"""Graceful cancellation: CI stops a job with SIGINT (GitHub) or SIGTERM (GitLab, most runners).

Inside :class:`Cancellation` the first such signal only records itself and wakes whoever
waits on :meth:`wait` or on a call made through :func:`unless_cancelled`: the canary walk
stops at once, even in the middle of a metric read, leaves traffic where it is and reports
how to resume or roll back. A second signal means "now": the default behaviour comes back
and the process ends at once.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any, TypeVar

SIGNALS = (signal.SIGINT, signal.SIGTERM)
T = TypeVar("T")
# How often a caller waiting for a call looks at the cancellation (two events cannot be waited on together).
POLL_SECONDS = 0.05


class Cancelled(Exception):
    """The cancellation came before the call returned: the call was abandoned (see :func:`unless_cancelled`)."""


def unless_cancelled(call: Callable[[], T], cancelled: threading.Event | None) -> T:
    """``call()``, unless ``cancelled`` is set first: then raise :class:`Cancelled` at once.

    A metric read can block for its source's whole timeout (10 s for CloudWatch, more when it is
    slow to answer), while a cancelled CI job has seconds before it is killed. So the call runs in
    a daemon thread and the caller waits for whichever comes first. An abandoned call runs on
    unseen: its result or error is dropped, and a daemon thread never keeps the process alive, so
    only calls that merely read may be abandoned. A call that returns in time behaves exactly as if
    made here: its value is returned, its exception raised. Without an event it is made here.
    """
    if cancelled is None:
        return call()
    if cancelled.is_set():
        raise Cancelled
    done = threading.Event()
    value: list[T] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            value.append(call())
        except BaseException as exc:  # handed to the caller, who raises it as if it had made the call
            error.append(exc)
        finally:
            done.set()

    threading.Thread(target=run, name="mlci-read", daemon=True).start()
    while not done.wait(POLL_SECONDS):
        if cancelled.is_set():
            raise Cancelled
    if error:
        raise error[0]
    return value[0]


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
