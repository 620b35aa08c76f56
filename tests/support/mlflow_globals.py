"""Pin MLflow's process-wide URIs for one block (fluent calls such as ``start_run`` and
``pyfunc.load_model`` read only those), and unpin them afterwards."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from mlcicd.registry import Registry


@contextlib.contextmanager
def mlflow_uri(uri: str) -> Iterator[None]:
    with Registry(uri, "unused").pinned_uris():
        yield
