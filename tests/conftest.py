"""Fixtures every test shares.

MLflow keeps its tracking/registry URIs and the active experiment in module globals. A test that pins them and
forgets to unpin (or "restores" the resolved default, which pins ``sqlite:///mlflow.db``
of the cwd) silently redirects every later test's ``mlflow.start_run``. The autouse
guard below puts the raw globals and the environment back after every test.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest

_ENV_KEYS = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


def _mlflow_globals() -> tuple[object, object] | None:
    if "mlflow" not in sys.modules:
        return None  # never imported: nothing to restore, and no import cost for unit tests
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    return getattr(tracking_utils, "_tracking_uri", None), getattr(registry_utils, "_registry_uri", None)


@pytest.fixture(autouse=True)
def _restore_mlflow_uris() -> Iterator[None]:
    before = _mlflow_globals()
    env = {k: os.environ.get(k) for k in _ENV_KEYS}
    yield
    if "mlflow" in sys.modules:
        from mlflow.tracking._model_registry import utils as registry_utils
        from mlflow.tracking._tracking_service import utils as tracking_utils

        tracking_utils._tracking_uri, registry_utils._registry_uri = before or (None, None)
        # mlflow.set_experiment() is global too: an experiment id of one store breaks start_run on the next.
        import mlflow.tracking.fluent as fluent

        fluent._active_experiment_id = None
    for key, value in env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


# The long test files, in the order pytest-xdist should start them (`make test` runs --dist loadfile
# --no-loadscope-reorder: whole files, in collection order). The two single-test files first: a
# worker takes a second file as soon as it has two tests or fewer left, so each of them shares a
# worker with one more long file, and the third worker takes the longest file of several tests.
# Then the rest longest first, so that the short files fill the gaps at the end rather than a long
# one starting last. Figures: `--durations` of `make test` on a 2-core machine.
LONG_FILES_FIRST = (
    "tests/e2e/test_gitlab_ecs.py",
    "tests/e2e/test_github_act_ecs.py",
    "tests/e2e/test_gitlab_ci_local.py",
    "tests/e2e/test_github_act.py",
    "tests/e2e/test_release.py",
    "tests/integration/test_build_image.py",
    "tests/integration/test_ecs_faults.py",
    "tests/integration/test_ecs_stages.py",
    "tests/integration/test_demo_pipeline.py",
    "tests/integration/test_blue_green.py",
    "tests/integration/test_bench_serve.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = config.rootpath
    missing = [path for path in LONG_FILES_FIRST if not (root / path).is_file()]
    if missing:  # a renamed file would silently start last
        raise pytest.UsageError(f"tests/conftest.py LONG_FILES_FIRST names files that do not exist: {missing}")
    rank = {path: i for i, path in enumerate(LONG_FILES_FIRST)}

    def order(item: pytest.Item) -> int:
        return rank.get(item.path.relative_to(root).as_posix(), len(rank))

    items.sort(key=order)  # stable: the tests of a file, and the other files, keep their order


def _cpu_seconds() -> float:
    """CPU of this process and of the children it has reaped (servers, runners, jobs), user + system."""
    import resource

    own, reaped = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + reaped.ru_utime + reaped.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """With MLCI_TEST_CPU_LOG=<file>, append each test's CPU seconds and wall seconds to it (JSON lines).

    Set beside the wall seconds, it says which tests compute (cheaper work shortens them) and which
    mostly wait (on bakes, on jobs in sequence: shorter waits shorten them).
    A module fixture's work counts to the file's first test; a process still running when the test
    ends (a session's server) counts to the test that reaps it.
    """
    log = os.environ.get("MLCI_TEST_CPU_LOG")
    if not log:
        yield
        return
    import json
    import time

    cpu, wall = _cpu_seconds(), time.monotonic()
    yield
    record = {"test": item.nodeid, "cpu": round(_cpu_seconds() - cpu, 1), "wall": round(time.monotonic() - wall, 1),
              "worker": os.environ.get("PYTEST_XDIST_WORKER", "")}
    with open(log, "a", encoding="utf-8") as out:
        out.write(json.dumps(record) + "\n")
