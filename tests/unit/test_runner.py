"""The runner turns every failure into the documented exit code and a teaching message."""

import io

from click.testing import CliRunner

from mlcicd.ci.local import LocalAdapter
from mlcicd.cli import mlci
from mlcicd.runner import execute


def test_missing_config_is_exit_2_with_fix(tmp_path):
    stream = io.StringIO()
    code, result = execute("gate", {"config": str(tmp_path / "nope.yaml")}, env={}, ci=LocalAdapter({}, stream))
    assert code == 2 and result is None
    assert "config file not found" in stream.getvalue() and "mlci-gen init" in stream.getvalue()


def test_bad_key_is_exit_2(tmp_path):
    cfg = tmp_path / "mlci.yaml"
    cfg.write_text("data: {label: y}\nmlflow: {model_name: m}\ndeploy: {canary: {wieght: 5}}\n")
    stream = io.StringIO()
    code, _ = execute("monitor-canary", {"config": str(cfg)}, env={}, ci=LocalAdapter({}, stream))
    assert code == 2
    assert "deploy.canary.wieght: unknown key" in stream.getvalue() and "did you mean `weight`" in stream.getvalue()


def test_cli_run_exits_with_stage_code(tmp_path):
    result = CliRunner().invoke(mlci, ["run", "promote", "--config", str(tmp_path / "missing.yaml"), "--ci", "local"])
    assert result.exit_code == 2
    assert "config file not found" in result.output


def test_cli_lists_every_stage():
    result = CliRunner().invoke(mlci, ["run", "--help"])
    for stage in ("validate-data", "train", "gate", "build-image", "deploy-canary", "monitor-canary", "promote",
                  "rollback"):
        assert stage in result.output
