"""How many worker processes "auto" means: the CPUs this process may really use.

``os.cpu_count()`` is the host's count. A container limited by a CPU quota (an ECS task
with ``cpu: 1024`` on a 4-vCPU host, ``docker run --cpus 1``) or a process pinned by
``taskset`` gets less; one GIL-bound worker per usable CPU is what scales, more workers
only add memory and context switches.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

WORKERS_ENV = "MLCI_SERVE_WORKERS"
CONCURRENCY_ENV = "MLCI_SERVE_CONCURRENCY"
CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_cpu_limit(root: Path = CGROUP_ROOT) -> float | None:
    """CPUs allowed by the cgroup's quota (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``), None if unlimited."""
    try:
        quota, _, period = (root / "cpu.max").read_text().strip().partition(" ")
        if quota != "max" and period:
            return int(quota) / int(period)
        return None
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


def usable_cpus(root: Path = CGROUP_ROOT) -> int:
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        count = os.cpu_count() or 1
    limit = cgroup_cpu_limit(root)
    if limit is not None:
        # 1.5 CPUs of quota still keep two workers busy part of the time: round up.
        count = min(count, math.ceil(limit))
    return max(1, count)


def parse_workers(value: str | None, *, where: str) -> int:
    """``auto`` (or nothing) -> usable CPUs; otherwise a whole number >= 1. ValueError names ``where``."""
    text = (value or "auto").strip().lower()
    if text == "auto":
        return usable_cpus()
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise ValueError(f"{where}: expected a whole number of worker processes >= 1 or `auto`, got {value!r}")
    return count


def parse_concurrency(value: str | None, *, where: str) -> int:
    """Requests a worker predicts at once: nothing -> 1; otherwise a whole number >= 1. ValueError names ``where``."""
    text = (value or "1").strip()
    count = int(text) if text.isdigit() else 0
    if count < 1:
        raise ValueError(f"{where}: expected a whole number of requests at once >= 1, got {value!r}")
    return count
