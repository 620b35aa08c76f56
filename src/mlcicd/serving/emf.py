"""The prediction mix as CloudWatch embedded-metric-format (EMF) log lines.

On ECS with the ``awslogs`` log driver, CloudWatch Logs turns these JSON lines into metrics
(``Predictions`` by ``ModelName``, ``ModelVersion`` and ``Label``), which the ``cloudwatch``
metric source reads. EMF rather than ``PutMetricData``: no API call or credentials in the
server, no latency on the request path, and a CloudWatch outage cannot slow serving.

Enabled by ``MLCI_EMF_NAMESPACE`` (the namespace); counts are summed in memory and written
once per ``MLCI_EMF_INTERVAL`` seconds (default 10) and at shutdown, one line per label.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import TextIO

NAMESPACE_ENV = "MLCI_EMF_NAMESPACE"
# Where the ecs target's tasks publish and the cloudwatch source reads unless configured otherwise.
DEFAULT_NAMESPACE = "mlci/Serving"
INTERVAL_ENV = "MLCI_EMF_INTERVAL"


class EmfPublisher:
    def __init__(self, namespace: str, model_name: str, model_version: str, *, interval: float = 10.0,
                 out: TextIO | None = None, clock: Callable[[], float] = time.time) -> None:
        self.namespace, self.model_name, self.model_version = namespace, model_name, model_version
        self.interval, self.clock = interval, clock
        self.out = out or sys.stdout
        self._tally: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_env(cls, model_name: str, model_version: str) -> EmfPublisher | None:
        namespace = os.environ.get(NAMESPACE_ENV, "").strip()
        if not namespace:
            return None
        interval = float(os.environ.get(INTERVAL_ENV, "10") or 10)
        return cls(namespace, model_name, model_version, interval=max(interval, 0.1)).start()

    def add(self, labels: Iterable[str]) -> None:
        with self._lock:
            self._tally.update(labels)

    def lines(self) -> list[str]:
        """The pending counts as EMF documents (and forget them)."""
        with self._lock:
            tally, self._tally = self._tally, Counter()
        stamp = int(self.clock() * 1000)
        resolution = 1 if self.interval < 60 else 60
        docs = []
        for label, count in sorted(tally.items()):
            docs.append(json.dumps({
                "_aws": {"Timestamp": stamp, "CloudWatchMetrics": [{
                    "Namespace": self.namespace, "Dimensions": [["ModelName", "ModelVersion", "Label"]],
                    "Metrics": [{"Name": "Predictions", "Unit": "Count", "StorageResolution": resolution}]}]},
                "ModelName": self.model_name, "ModelVersion": self.model_version, "Label": label,
                "Predictions": count}, separators=(",", ":")))
        return docs

    def flush(self) -> None:
        docs = self.lines()
        if docs:
            self.out.write("\n".join(docs) + "\n")
            self.out.flush()

    def start(self) -> EmfPublisher:
        def loop() -> None:
            while not self._stop.wait(self.interval):
                self.flush()

        self._thread = threading.Thread(target=loop, name="emf", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + 1)
        self.flush()
