"""Turns: requests beyond the permits wait, and go in the order they arrived (threading.Lock does not)."""

from __future__ import annotations

import threading
import time

import pytest

from mlcicd.serving.server import Turns


@pytest.mark.parametrize("permits", [1, 3])
def test_waiting_requests_are_served_in_arrival_order_and_never_more_than_the_permits(permits: int) -> None:
    turns, order, inside, most = Turns(permits), [], [0], [0]
    guard = threading.Lock()
    release = threading.Event()

    def request(i: int) -> None:
        with turns:
            with guard:
                order.append(i)
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            release.wait(5)
            time.sleep(0.002)
            with guard:
                inside[0] -= 1

    threads = []
    for i in range(12):  # one at a time, so the arrival order is known
        threads.append(threading.Thread(target=request, args=(i,)))
        threads[-1].start()
        time.sleep(0.02)
    release.set()
    for t in threads:
        t.join(10)
    assert most[0] == permits
    assert sorted(order[:permits]) == list(range(permits))
    # Turns are granted in arrival order; two granted together may then start in either order.
    assert sorted(order) == list(range(12)) and all(abs(pos - i) < permits for pos, i in enumerate(order)), order
