"""validate-data with a Great Expectations suite: write one from the reference data, edit it, run it whole."""

import json
import subprocess
import sys

import pytest
from test_stage_validate_data import CONFIG, make, run

SUITE_KEY = "  expectations: expectations.json\n"


@pytest.fixture
def project(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "mlci.yaml").write_text(CONFIG)
    for name, n, seed in (("train", 4000, 1), ("eval", 1000, 2), ("reference", 3000, 3)):
        make(n, seed).to_csv(tmp_path / f"data/{name}.csv", index=False)
    return tmp_path


def with_suite(project, suite: dict) -> None:
    (project / "expectations.json").write_text(json.dumps(suite))
    text = (project / "mlci.yaml").read_text().replace("  label: default\n", "  label: default\n" + SUITE_KEY)
    (project / "mlci.yaml").write_text(text)


def test_write_suite_infers_from_reference_and_the_written_suite_passes(project):
    code, report, log = run(project, **{"write-suite": str(project / "expectations.json")})
    assert code == 0, log
    suite = json.loads((project / "expectations.json").read_text())
    assert "Wrote" in report["summary"] and "data.expectations" in report["summary"]
    kinds = {(e["type"], e["kwargs"].get("column")) for e in suite["expectations"]}
    assert ("expect_column_values_to_be_unique", "customer_id") in kinds  # an id column
    assert ("expect_column_values_to_be_in_set", "employment") in kinds
    assert ("expect_column_mean_to_be_between", "income") in kinds
    age = next(e for e in suite["expectations"] if e["type"] == "expect_column_values_to_be_between"
               and e["kwargs"]["column"] == "age")
    assert age["kwargs"] == {"column": "age", "min_value": 18, "max_value": 100}  # declared in data.columns
    assert suite["meta"]["mlci"]["inferred_from"] == "the reference data (data/reference.csv)"
    with_suite(project, suite)
    code, report, log = run(project)
    assert code == 0, log
    met = next(c for c in report["checks"] if c["name"] == "expectations")
    assert met["observed"] == met["expected"] == len(suite["expectations"])
    listed = report["figures"]["expectations"]["train"]
    assert len(listed) == len(suite["expectations"]) and {e["engine"] for e in listed} == {"mlci"}
    assert listed[0]["type"] == "expect_table_row_count_to_be_between" and listed[0]["observed"] == 4000


def test_unmet_expectation_fails_naming_type_kwargs_and_observed_value(project):
    with_suite(project, {"name": "s", "expectations": [
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "age", "min_value": 30}},
        {"type": "expect_column_mean_to_be_between", "kwargs": {"column": "income", "max_value": 1000},
         "severity": "warning"},
    ]})
    code, report, log = run(project)
    assert code == 1, log
    checks = {c["name"]: c for c in report["checks"]}
    between = checks["expectations[0]:expect_column_values_to_be_between(age)"]
    assert between["status"] == "fail" and "rows unexpected" in between["message"]
    assert "expectations[0] in expectations.json" in between["message"]
    assert between["details"]["kwargs"] == {"column": "age", "min_value": 30}
    assert between["observed"]["unexpected_count"] > 0
    mean = checks["expectations[1]:expect_column_mean_to_be_between(income)"]
    assert mean["status"] == "warn" and mean["observed"] > 30_000  # severity warning only warns
    assert "expectations[0]:expect_column_values_to_be_between(age)@eval" in checks


def test_types_the_fast_evaluator_lacks_run_through_great_expectations(project):
    pytest.importorskip("great_expectations")
    with_suite(project, {"name": "s", "expectations": [
        {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "employment", "regex": "^[a-z-]+$"}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "income"}},
        {"type": "expect_column_max_to_be_between", "kwargs": {"column": "age", "max_value": 50}},
    ]})
    code, report, log = run(project)
    assert code == 1, log
    listed = report["figures"]["expectations"]["train"]
    assert [e["engine"] for e in listed] == ["great_expectations", "mlci", "great_expectations"]
    assert [e["success"] for e in listed] == [True, True, False]
    assert listed[2]["observed"] == 74 and listed[2]["kwargs"] == {"column": "age", "max_value": 50}


@pytest.mark.parametrize(("suite", "expected"), [
    ("{not json", "is not valid JSON (line 1"),
    (json.dumps({"expectation_suite_name": "x", "expectations": []}), "Great Expectations 0.x suite"),
    (json.dumps({"name": "x", "expectations": [{"type": "check_age"}]}), "expectations[0]"),
    (json.dumps({"name": "x", "expectations": [{"type": "expect_column_to_exist", "kwargs": [1]}]}),
     "`kwargs` must be an object"),
    (json.dumps({"name": "x", "expectations": [{"type": "expect_nothing_at_all", "kwargs": {}}]}),
     "Great Expectations rejects this expectation"),
])
def test_bad_suite_is_exit_2_naming_the_file_and_entry(project, suite, expected):
    if "rejects" in expected:
        pytest.importorskip("great_expectations")
    (project / "expectations.json").write_text(suite)
    text = (project / "mlci.yaml").read_text().replace("  label: default\n", "  label: default\n" + SUITE_KEY)
    (project / "mlci.yaml").write_text(text)
    code, report, log = run(project)
    assert code == 2 and report is None, log
    assert expected in log and "expectations.json" in log and "Fix:" in log


def test_fast_only_suite_never_imports_great_expectations(project):
    with_suite(project, {"name": "s", "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "age"}},
        {"type": "expect_column_values_to_be_in_set",
         "kwargs": {"column": "employment", "value_set": ["salaried", "self-employed", "unemployed"]}},
    ]})
    code = (
        "import io, sys\n"
        "from mlcicd.ci.local import LocalAdapter\n"
        "from mlcicd.runner import execute\n"
        f"code, _ = execute('validate-data', {{'config': {str(project / 'mlci.yaml')!r}, "
        f"'report-dir': {str(project / 'r')!r}}}, env={{}}, ci=LocalAdapter({{}}, io.StringIO()))\n"
        "print(code, 'great_expectations' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["0", "False"]


def test_evaluator_never_imports_pandas(tmp_path):
    """pyarrow's converters import pandas (~1 s); the evaluator reads Arrow buffers itself."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    pq.write_table(pa.table({"x": pa.array(rng.normal(size=100), mask=rng.random(100) < 0.1),
                             "k": rng.integers(0, 3, 100), "s": rng.choice(["a", "b"], 100)}), tmp_path / "d.parquet")
    suite = {"name": "s", "expectations": [
        {"type": t, "kwargs": kw} for t, kw in [
            ("expect_column_values_to_not_be_null", {"column": "x"}),
            ("expect_column_values_to_be_between", {"column": "x", "min_value": 0}),
            ("expect_column_values_to_be_in_set", {"column": "s", "value_set": ["a"]}),
            ("expect_column_values_to_be_unique", {"column": "k"}),
            ("expect_compound_columns_to_be_unique", {"column_list": ["k", "s", "x"]}),
            ("expect_column_quantile_values_to_be_between",
             {"column": "x", "quantile_ranges": {"quantiles": [0.5], "value_ranges": [[-1, 1]]}}),
            ("expect_column_values_to_be_in_type_list", {"column": "s", "type_list": ["str"]}),
        ]]}
    (tmp_path / "suite.json").write_text(json.dumps(suite))
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from mlcicd.data.expectations import evaluate\n"
        "from mlcicd.data.expectations.suite import load_suite\n"
        "from mlcicd.data.load import DataFile, read_table\n"
        f"suite = load_suite(Path({str(tmp_path / 'suite.json')!r}), 'suite.json')\n"
        f"table = read_table(DataFile('train', Path({str(tmp_path / 'd.parquet')!r}), 'd', 'x'))\n"
        "outcomes = evaluate.validate(table, suite, where='suite.json')\n"
        "print([o.engine for o in outcomes].count('mlci'), [o.success for o in outcomes].count(False), "
        "'pandas' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["7", "6", "False"]  # only the median is in range
