"""mlci-gen init writes a config that loads, detects columns, and never clobbers."""

from click.testing import CliRunner

from mlcicd.cli import mlci_gen
from mlcicd.config import load_config


def _project(tmp_path):
    (tmp_path / "data").mkdir()
    for name in ("train", "test", "reference"):
        (tmp_path / "data" / f"{name}.csv").write_text("age,gender,income,churn\n30,f,10.0,0\n")
    return tmp_path


def test_init_detects_files_label_and_sensitive(tmp_path):
    root = _project(tmp_path)
    result = CliRunner().invoke(mlci_gen, ["init", "--dir", str(root)])
    assert result.exit_code == 0, result.output
    cfg = load_config(root / "mlci.yaml")
    assert cfg.data.label == "churn"
    assert cfg.data.sensitive == ["gender"]
    assert cfg.data.train == "data/train.csv" and cfg.data.eval == "data/test.csv"


def test_init_refuses_to_overwrite(tmp_path):
    root = _project(tmp_path)
    (root / "mlci.yaml").write_text("keep me\n")
    result = CliRunner().invoke(mlci_gen, ["init", "--dir", str(root)])
    assert result.exit_code == 2 and "--force" in result.output
    assert (root / "mlci.yaml").read_text() == "keep me\n"
    assert CliRunner().invoke(mlci_gen, ["init", "--dir", str(root), "--force"]).exit_code == 0


def test_init_without_label_says_how(tmp_path):
    (tmp_path / "train.csv").write_text("a,b\n1,2\n")
    result = CliRunner().invoke(mlci_gen, ["init", "--dir", str(tmp_path)])
    assert result.exit_code == 2 and "--label COLUMN" in result.output and "columns: a, b" in result.output


def test_init_scaffolds_a_commented_notify_example_that_loads_when_uncommented(tmp_path):
    root = _project(tmp_path)
    assert CliRunner().invoke(mlci_gen, ["init", "--dir", str(root)]).exit_code == 0
    text = (root / "mlci.yaml").read_text()
    assert "# notify:" in text and load_config(root / "mlci.yaml").notify.slack is None
    lines = text.splitlines()
    start = lines.index("# notify:")
    block = [line[2:] for line in lines[start:] if line.startswith("# ")]
    (root / "mlci.yaml").write_text("\n".join(lines[:start] + block) + "\n")
    notify = load_config(root / "mlci.yaml").notify
    assert notify.slack is not None and notify.slack.on == ["rollback", "inconclusive", "gate-failed"]
    assert notify.webhook is not None and notify.webhook.secret_env == "MLCI_WEBHOOK_SECRET"
    assert notify.sns is not None and notify.sns.topic_arn.endswith(":ml-alerts")
