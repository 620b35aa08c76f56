"""The model server's prediction mix as CloudWatch embedded-metric-format lines."""

from __future__ import annotations

import io
import json

from mlcicd.serving.emf import EmfPublisher


def test_counts_become_one_emf_document_per_label_and_are_forgotten() -> None:
    out = io.StringIO()
    emf = EmfPublisher("mlci/Serving", "credit-risk", "3", interval=1.0, out=out, clock=lambda: 1_700_000_000.5)
    emf.add(["1", "0", "1"])
    emf.add(["1"])
    emf.flush()
    docs = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(d["Label"], d["Predictions"]) for d in docs] == [("0", 1), ("1", 3)]
    meta = docs[0]["_aws"]
    assert meta["Timestamp"] == 1_700_000_000_500
    directive = meta["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "mlci/Serving"
    assert directive["Dimensions"] == [["ModelName", "ModelVersion", "Label"]]
    assert directive["Metrics"][0]["Name"] == "Predictions" and directive["Metrics"][0]["StorageResolution"] == 1
    assert all(d["ModelName"] == "credit-risk" and d["ModelVersion"] == "3" for d in docs)
    emf.flush()  # nothing new: nothing written
    assert len(out.getvalue().splitlines()) == 2


def test_off_unless_a_namespace_is_set(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("MLCI_EMF_NAMESPACE", raising=False)
    assert EmfPublisher.from_env("m", "1") is None
