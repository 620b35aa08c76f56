"""The validate-data stage end to end: real files, the runner, exit codes and the JSON report."""

import io
import json

import numpy as np
import pandas as pd
import pytest

from mlcicd.ci.local import LocalAdapter
from mlcicd.runner import execute

CONFIG = """\
version: 1
data:
  train: data/train.csv
  eval: data/eval.csv
  reference: data/reference.csv
  label: default
  sensitive: [gender]
  id_columns: [customer_id]
  columns:
    age: {type: integer, nullable: false, min: 18, max: 100}
    employment: {type: category, allowed: [salaried, self-employed, unemployed]}
mlflow:
  model_name: credit
"""


def make(n: int, seed: int, income_shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "customer_id": seed * 1_000_000 + np.arange(n),
        "age": rng.integers(21, 75, n),
        "income": (rng.lognormal(np.log(40_000), 0.35, n) * (1 + income_shift)).round(2),
        "debt_ratio": rng.beta(2, 5, n).round(4),
        "employment": rng.choice(["salaried", "self-employed", "unemployed"], n, p=[0.7, 0.2, 0.1]),
        "gender": rng.choice(["female", "male"], n),
        "default": (rng.random(n) < 0.25).astype(int),
    })


@pytest.fixture
def project(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "mlci.yaml").write_text(CONFIG)
    make(4000, 1).to_csv(tmp_path / "data/train.csv", index=False)
    make(1000, 2).to_csv(tmp_path / "data/eval.csv", index=False)
    make(3000, 3).to_csv(tmp_path / "data/reference.csv", index=False)
    return tmp_path


def run(project, **inputs):
    stream = io.StringIO()
    values = {"config": str(project / "mlci.yaml"), "report-dir": str(project / "r"), **inputs}
    code, _ = execute("validate-data", values, env=inputs.pop("env", {}), ci=LocalAdapter({}, stream))
    path = project / "r" / "validate-data.json"
    report = json.loads(path.read_text()) if path.exists() else None
    return code, report, stream.getvalue()


def checks(report, status=None):
    return {c["name"]: c for c in report["checks"] if status is None or c["status"] == status}


def test_clean_data_passes(project):
    code, report, log = run(project)
    assert code == 0, log
    assert report["verdict"] == "pass" and report["schema"] == 1
    assert report["outputs"] == {"drifted-features": "", "rows": "4000"}
    assert report["summary"].startswith("All data checks passed on train 4,000 rows, eval 1,000 rows")
    assert set(checks(report)) >= {
        "schema", "quality:missing", "quality:duplicates", "quality:label-balance", "quality:outliers", "drift",
        "schema@eval", "drift@eval", "schema@reference",
    }
    assert len(report["checks"]) < 20
    figures = report["figures"]
    assert figures["datasets"]["train"] == {"rows": 4000, "columns": 7, "path": "data/train.csv"}
    assert figures["datasets"]["reference"]["rows"] == 3000
    # Ids are excluded from drift; the label (label shift) and the sensitive column are in it.
    assert set(figures["drift"]["train"]) == {"age", "income", "debt_ratio", "employment", "gender", "default"}
    assert figures["drift"]["train"]["income"]["test"] == "ks"
    assert figures["drift"]["train"]["default"]["test"] == "chi2"
    assert figures["drift_histograms"] == {"train": {}, "eval": {}}  # histograms only of drifted features
    assert (project / "r" / "validate-data.junit.xml").exists() and (project / "r" / "validate-data.env").exists()


def test_drift_fails_with_exit_1(project):
    make(4000, 4, income_shift=0.3).to_csv(project / "data/train.csv", index=False)
    code, report, log = run(project)
    assert code == 1
    assert report["verdict"] == "fail"
    assert report["outputs"]["drifted-features"] == "income"
    failed = checks(report, "fail")
    assert list(failed) == ["drift:income"]
    assert failed["drift:income"]["details"]["test"] == "ks" and failed["drift:income"]["observed"] < 0.01
    assert "2 of" not in report["summary"] and "drift:income" in report["summary"]
    assert "ERROR: validate-data: drift:income" in log
    # What the HTML report draws: the drifted feature in 20 shared bins, every sampled row counted.
    histogram = report["figures"]["drift_histograms"]["train"]
    assert list(histogram) == ["income"] and histogram["income"]["kind"] == "numeric"
    assert len(histogram["income"]["edges"]) == 21
    assert sum(histogram["income"]["reference"]) == 3000 and sum(histogram["income"]["current"]) == 4000


def test_drift_only_warns_when_fail_on_drift_is_false(project):
    make(4000, 4, income_shift=0.3).to_csv(project / "data/train.csv", index=False)
    code, report, _ = run(project, **{"fail-on-drift": "false"})
    assert code == 0
    assert checks(report)["drift:income"]["status"] == "warn"
    assert report["outputs"]["drifted-features"] == "income"
    assert report["figures"]["drift_settings"]["fail_on_drift"] is False
    assert "1 warning(s): drift:income" in report["summary"]


def test_string_in_numeric_column_fails(project):
    frame = make(4000, 1).astype({"income": object})
    frame.loc[[10, 20], "income"] = "unknown"
    frame.to_csv(project / "data/train.csv", index=False)
    code, report, _ = run(project)
    assert code == 1
    failed = checks(report, "fail")
    assert list(failed) == ["schema:income:type"]
    assert "inferred from the reference data" in failed["schema:income:type"]["message"]
    # The remaining values are still numbers to the drift test.
    assert report["figures"]["drift"]["train"]["income"]["n_current"] == 3998


def test_eval_failures_are_tagged(project):
    frame = make(1000, 2)
    frame.loc[:79, "age"] = 150  # 8%: out of range and a shift
    frame.loc[:2, "employment"] = "retired"
    frame.drop(columns=["gender"]).to_csv(project / "data/eval.csv", index=False)
    code, report, _ = run(project)
    assert code == 1
    assert set(checks(report, "fail")) == {
        "schema:columns:missing@eval", "schema:age:range@eval", "schema:employment:allowed@eval",
        "drift:age@eval",
    }


def test_bad_file_is_exit_2_with_fix(project):
    (project / "data/train.csv").write_bytes(b"\x00\x01\xff\xfe binary junk")
    code, report, log = run(project)
    assert code == 2 and report is None
    assert "data/train.csv: is not a UTF-8 text file" in log and "Fix: re-save it as UTF-8" in log


def test_missing_label_is_exit_2(project):
    make(4000, 1).drop(columns=["default"]).to_csv(project / "data/train.csv", index=False)
    code, _, log = run(project)
    assert code == 2
    assert "data/train.csv: column 'default' (data.label in mlci.yaml) not found in the train data" in log
    assert "columns are: customer_id, age, income" in log and "Fix: set data.label" in log


def test_no_training_data_is_exit_2(project):
    (project / "mlci.yaml").write_text(CONFIG.replace("  train: data/train.csv\n", ""))
    code, _, log = run(project)
    assert code == 2
    assert "input train-data / data.train: no training data given" in log and "MLCI_TRAIN_DATA" in log


def test_no_reference_skips_drift_with_how_to_enable(project):
    (project / "mlci.yaml").write_text(CONFIG.replace("  reference: data/reference.csv\n", ""))
    code, report, _ = run(project)
    assert code == 0
    skip = checks(report)["drift"]
    assert skip["status"] == "skip" and "set data.reference" in skip["message"]
    assert "drift not measured (no reference data)" in report["summary"]


def test_config_paths_are_relative_to_the_config_and_inputs_to_the_cwd(project, tmp_path_factory, monkeypatch):
    elsewhere = tmp_path_factory.mktemp("cwd")
    make(4000, 4, income_shift=0.3).to_csv(elsewhere / "new.csv", index=False)
    monkeypatch.chdir(elsewhere)
    code, report, log = run(project, env={"MLCI_TRAIN_DATA": "new.csv"})
    assert code == 1, log
    assert report["figures"]["datasets"]["train"]["path"] == "new.csv"
    assert report["figures"]["datasets"]["eval"]["path"] == "data/eval.csv"
    assert report["outputs"]["drifted-features"] == "income"


def test_missing_input_file_names_its_source(project, tmp_path_factory, monkeypatch):
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))
    code, _, log = run(project, **{"eval-data": "nope.parquet"})
    assert code == 2
    assert "nope.parquet: eval data file not found" in log and "the --eval-data option" in log


def test_parquet_with_nullable_dtypes_against_csv_reference(project):
    frame = make(4000, 1)
    frame = frame.astype({"age": "Int64", "employment": "category", "gender": "string", "default": "Int64"})
    frame["member"] = pd.array(np.arange(4000) % 3 == 0, dtype="boolean")
    frame.loc[:9, ["age", "income", "member"]] = pd.NA
    frame.to_parquet(project / "data/train.parquet")
    for role, n, seed in (("reference", 3000, 3), ("eval", 1000, 2)):
        other = make(n, seed).assign(member=lambda d: np.arange(len(d)) % 3 == 0)
        other.to_csv(project / f"data/{role}.csv", index=False)
    code, report, log = run(project, **{"train-data": str(project / "data/train.parquet")})
    failed = checks(report, "fail")
    # Only the 10 nulls injected into age, which mlci.yaml declares nullable: false.
    assert code == 1 and list(failed) == ["schema:age:nulls"], log
    train_drift = report["figures"]["drift"]["train"]
    assert train_drift["member"]["test"] == "chi2" and not train_drift["member"]["drifted"]
    assert train_drift["age"]["test"] == "ks" and train_drift["age"]["n_current"] == 3990
