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
