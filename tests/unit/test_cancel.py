"""Graceful cancellation: the first SIGINT/SIGTERM is recorded and wakes the walk; handlers are restored after."""

import os
import signal
import time

import pytest

from mlcicd.delivery.cancel import Cancellation


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
