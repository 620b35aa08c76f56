"""Graceful cancellation: the first SIGINT/SIGTERM is recorded and wakes the walk, even mid-read; handlers are
restored after."""

import os
import signal
import threading
import time

import pytest

from mlcicd.delivery.cancel import Cancellation, Cancelled, unless_cancelled
from mlcicd.delivery.metrics.base import MeasurementError


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_the_first_signal_wakes_the_wait_at_once_and_names_itself(sig):
    before = signal.getsignal(sig)
    with Cancellation() as cancel:
        assert cancel.stopped() is None and not cancel.wait(0.01)
        os.kill(os.getpid(), sig)
        started = time.monotonic()
        assert cancel.wait(30)  # returns at once, not after 30 s
        assert time.monotonic() - started < 1
        assert cancel.stopped() == sig.name
    assert signal.getsignal(sig) is before


def test_a_second_signal_ends_the_process_the_default_way():
    seen = []
    previous = signal.signal(signal.SIGUSR1, lambda *_: seen.append("outer"))
    try:
        cancel = Cancellation()
        cancel._previous[signal.SIGUSR1] = signal.signal(signal.SIGUSR1, cancel._handle)
        os.kill(os.getpid(), signal.SIGUSR1)
        assert cancel.stopped() == "SIGUSR1" and not seen
        os.kill(os.getpid(), signal.SIGUSR1)  # the second one goes to what was there before
        assert seen == ["outer"]
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_a_call_that_returns_in_time_behaves_as_if_made_here():
    event = threading.Event()
    assert unless_cancelled(lambda: 42, event) == 42
    assert unless_cancelled(lambda: threading.current_thread().name, None) == threading.current_thread().name
    error = MeasurementError("source down")

    def fail() -> None:
        raise error

    with pytest.raises(MeasurementError) as raised:
        unless_cancelled(fail, event)
    assert raised.value is error  # the very exception, so callers catch it as before


def test_a_cancellation_abandons_a_call_that_hangs():
    event, release = threading.Event(), threading.Event()
    threading.Timer(0.2, event.set).start()
    started = time.monotonic()
    try:
        with pytest.raises(Cancelled):
            unless_cancelled(lambda: release.wait(30), event)  # a read stuck in a slow source
        assert time.monotonic() - started < 1
        with pytest.raises(Cancelled):
            unless_cancelled(lambda: pytest.fail("never started once cancelled"), event)
    finally:
        release.set()
