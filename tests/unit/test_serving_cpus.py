"""How many workers "auto" starts: the CPUs the process may use, cgroup quotas included."""

from __future__ import annotations

import os

import pytest

from mlcicd.serving.cpus import cgroup_cpu_limit, parse_workers, usable_cpus


def test_cgroup_v2_quota(tmp_path):
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cgroup_cpu_limit(tmp_path) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_limit(tmp_path) is None


def test_cgroup_v1_quota(tmp_path):
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("50000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_cpu_limit(tmp_path) == 0.5
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert cgroup_cpu_limit(tmp_path) is None


def test_usable_cpus_rounds_a_quota_up_and_never_exceeds_the_affinity(tmp_path):
    affinity = len(os.sched_getaffinity(0))
    assert usable_cpus(tmp_path) == affinity  # no cgroup files: the CPUs this process may run on
    (tmp_path / "cpu.max").write_text("50000 100000\n")
    assert usable_cpus(tmp_path) == 1
    (tmp_path / "cpu.max").write_text(f"{(affinity + 3) * 100000} 100000\n")
    assert usable_cpus(tmp_path) == affinity


def test_parse_workers():
    assert parse_workers("3", where="--workers") == 3
    assert parse_workers(None, where="x") == parse_workers("auto", where="x") == usable_cpus()
    for bad in ("0", "-2", "two", "1.5"):
        with pytest.raises(ValueError, match="--workers: expected a whole number"):
            parse_workers(bad, where="--workers")


def test_parse_concurrency():
    from mlcicd.serving.cpus import parse_concurrency

    assert parse_concurrency(None, where="x") == 1 and parse_concurrency(" 8 ", where="x") == 8
    for bad in ("0", "-1", "many", "1.5"):
        with pytest.raises(ValueError, match=r"\$MLCI_SERVE_CONCURRENCY: expected a whole number"):
            parse_concurrency(bad, where="$MLCI_SERVE_CONCURRENCY")
