"""One verdict schema, rendered as JSON, Markdown and JUnit."""

import json
import math
import xml.etree.ElementTree as ET

import numpy as np

from mlcicd.report import MARKER, Check, StageResult, Status, Verdict, to_junit, to_markdown, write_report


def _result():
    checks = [Check("accuracy", Status.PASS, "0.84 >= 0.7", observed=np.float64(0.84), expected=">= 0.7"),
              Check("fairness", Status.FAIL, "gap 0.2 | too big", observed=math.nan)]
    return StageResult.from_checks("gate", checks, passed="ok", failed="gate failed", outputs={"model-version": ""})


def test_from_checks_names_failures():
    r = _result()
    assert r.verdict is Verdict.FAIL and r.summary == "gate failed: fairness"
    assert r.verdict.exit_code == 1


def test_json_is_valid_and_safe(tmp_path):
    paths = write_report(_result(), tmp_path)
    data = json.loads(paths["json"].read_text())
    assert data["verdict"] == "fail" and data["schema"] == 1
    assert data["checks"][0]["observed"] == 0.84
    assert data["checks"][1]["observed"] is None  # NaN is not JSON


def test_markdown_has_marker_and_escapes_pipes():
    md = to_markdown(_result())
    assert md.startswith(MARKER.format(stage="gate"))
    assert "gap 0.2 \\| too big" in md


def test_junit_counts_failures():
    root = ET.fromstring(to_junit(_result()))
    assert root.get("tests") == "2" and root.get("failures") == "1"
    assert root.find("testcase[@name='fairness']/failure") is not None
