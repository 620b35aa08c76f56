"""A stage pays only for its own libraries: importing the CLI and stage modules is cheap."""

import json
import subprocess
import sys

import pytest

HEAVY = ("mlflow", "pandas", "sklearn", "fairlearn", "great_expectations", "boto3", "scipy", "prometheus_client",
         "matplotlib")


@pytest.mark.parametrize(
    "modules",
    [
        ["mlcicd", "mlcicd.cli", "mlcicd.runner"],
        ["mlcicd.stages.monitor_canary", "mlcicd.delivery.targets.local"],
        ["mlcicd.stages.gate", "mlcicd.stages.train", "mlcicd.stages.validate_data", "mlcicd.stages.build_image"],
        ["mlcicd.stages.deploy_canary", "mlcicd.stages.promote", "mlcicd.stages.rollback"],
        # matplotlib is the report command's alone, and it too loads it only when it draws.
        ["mlcicd.reporting", "mlcicd.reporting.page", "mlcicd.data.drift_plots", "mlcicd.evaluation.curves"],
    ],
)
def test_importing_does_not_load_heavy_libraries(modules):
    code = (
        "import importlib, json, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"print(json.dumps(sorted(h for h in {HEAVY!r} if h in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == []
