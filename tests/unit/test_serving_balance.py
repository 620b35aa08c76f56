"""The shared connection table that lets the least busy worker accept first."""

from __future__ import annotations

import pytest

from mlcicd.serving.balance import Balance


def test_workers_see_each_others_counts(tmp_path):
    table = tmp_path / "connections"
    Balance.create(table, 3)
    first, second, third = (Balance(table, slot) for slot in range(3))
    first.publish(4)
    second.publish(2)
    third.publish(3)
    assert first.counts() == second.counts() == [4, 2, 3]
    assert first.busier_than_least(4) and third.busier_than_least(3)
    assert not second.busier_than_least(2)  # the least busy accepts at once
    second.publish(5)
    assert not third.busier_than_least(3) and first.busier_than_least(4)


def test_a_slot_outside_the_table_is_refused(tmp_path):
    Balance.create(tmp_path / "t", 2)
    with pytest.raises(ValueError, match="slot 2 outside the 2 slots"):
        Balance(tmp_path / "t", 2)
