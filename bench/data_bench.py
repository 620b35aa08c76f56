"""Data benchmarks: the expectation evaluator against Great Expectations, and validate-data against a bare read.

1. GE vs the fast evaluator: 1,000,000 rows x 20 columns, a suite of 10 expectations of the
   types the evaluator implements, end to end in a fresh Python process each (interpreter,
   imports, reading the file, validating), on Parquet and on CSV. GE reads through its own
   pandas data source (``read_parquet`` / ``read_csv``); the evaluator reads with pyarrow, only
   the columns the suite uses. Target: >= 10x faster on Parquet, with identical verdicts.
2. validate-data on one 1M x 20 file (train data only, inferred schema, every quality check)
   against a bare ``pyarrow`` read of the same file, both in one warm process (imports done),
   best of --reps runs. Target: at most 1.5x the read.

Usage: .venv/bin/python bench/data_bench.py [--rows N] [--reps R] [--dir DIR]
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

SUITE = {"name": "bench", "expectations": [
    {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1000, "max_value": None}},
    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "x0", "mostly": 0.95}},
    {"type": "expect_column_values_to_be_between", "kwargs": {"column": "x1", "min_value": -6, "max_value": 6}},
    {"type": "expect_column_values_to_be_in_set",
     "kwargs": {"column": "c0", "value_set": ["north", "south", "east", "west", "centre"]}},
    {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "id"}},
    {"type": "expect_column_mean_to_be_between", "kwargs": {"column": "x2", "min_value": -0.1, "max_value": 0.1}},
    {"type": "expect_column_stdev_to_be_between", "kwargs": {"column": "x3", "min_value": 0.9, "max_value": 1.1}},
    {"type": "expect_column_quantile_values_to_be_between", "kwargs": {"column": "x4", "quantile_ranges": {
        "quantiles": [0.05, 0.5, 0.95], "value_ranges": [[-1.8, -1.5], [-0.1, 0.1], [1.5, 1.8]]}}},
    {"type": "expect_column_values_to_be_in_type_list", "kwargs": {"column": "k0", "type_list": ["int64"]}},
    {"type": "expect_compound_columns_to_be_unique", "kwargs": {"column_list": ["k0", "k1", "c1"]}},
]}

GE_SCRIPT = """
import json, os, sys, time
os.environ["GX_ANALYTICS_ENABLED"] = "false"
import great_expectations as gx
from great_expectations.data_context.types.base import ProgressBarsConfig
path, suite_path = sys.argv[1], sys.argv[2]
context = gx.get_context(mode="ephemeral")
context.variables.progress_bars = ProgressBarsConfig(globally=False)
source = context.data_sources.pandas_default
batch = source.read_parquet(path) if path.endswith(".parquet") else source.read_csv(path)
suite = gx.ExpectationSuite(**{k: v for k, v in json.load(open(suite_path)).items() if k != "meta"})
result = batch.validate(suite)
key = lambda t, kw: t + str(kw.get("column") or kw.get("column_list") or "")
print(json.dumps({key(r.expectation_config.type, r.expectation_config.kwargs): bool(r.success)
                  for r in result.results}))
"""

MLCI_SCRIPT = """
import json, sys
from pathlib import Path
from mlcicd.data.expectations import evaluate
from mlcicd.data.expectations.suite import load_suite
from mlcicd.data.load import DataFile, read_table
path, suite_path = Path(sys.argv[1]), Path(sys.argv[2])
suite = load_suite(suite_path, suite_path.name)
table = read_table(DataFile("train", path, path.name, "bench"), columns=suite.columns())
outcomes = evaluate.validate(table, suite, where=suite_path.name)
key = lambda t, kw: t + str(kw.get("column") or kw.get("column_list") or "")
print(json.dumps({key(o.expectation.type, o.expectation.kwargs): o.success for o in outcomes}))
print(",".join(sorted({o.engine for o in outcomes})))
"""


def make_data(rows: int, directory: Path) -> tuple[Path, Path]:
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    parquet, csv = directory / f"data-{rows}.parquet", directory / f"data-{rows}.csv"
    if parquet.exists() and csv.exists():
        return parquet, csv
    rng = np.random.default_rng(0)
    columns: dict[str, object] = {"id": np.arange(rows)}
    for i in range(14):
        values = rng.normal(size=rows).round(5)
        columns[f"x{i}"] = pa.array(values, mask=rng.random(rows) < 0.01) if i == 0 else values
    for i in range(2):
        columns[f"k{i}"] = rng.integers(0, 100, rows)
    regions = np.array(["north", "south", "east", "west", "centre"])
    for i in range(2):
        columns[f"c{i}"] = regions[rng.integers(0, 5, rows)]
    columns["label"] = rng.integers(0, 2, rows)
    table = pa.table(columns)
    pq.write_table(table, parquet)
    pacsv.write_csv(table, csv)
    return parquet, csv


def timed_process(script: str, *args: str) -> tuple[float, str]:
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin",
                              "GX_ANALYTICS_ENABLED": "false"})
    return time.perf_counter() - started, out.stdout.strip()


def ge_vs_evaluator(files: dict[str, Path], suite_path: Path, reps: int) -> list[str]:
    lines = [f"{'file':<8} {'GE s':>7} {'mlci s':>7} {'ratio':>6}  verdicts"]
    verdicts = []
    for fmt, path in files.items():
        ge_times, mlci_times, same = [], [], True
        for _ in range(reps):
            seconds, ge_out = timed_process(GE_SCRIPT, str(path), str(suite_path))
            ge_times.append(seconds)
            seconds, mlci_out = timed_process(MLCI_SCRIPT, str(path), str(suite_path))
            mlci_times.append(seconds)
            same &= json.loads(ge_out) == json.loads(mlci_out.splitlines()[0])
        ge_s, mlci_s = statistics.median(ge_times), statistics.median(mlci_times)
        ratio = ge_s / mlci_s
        engines = mlci_out.splitlines()[1]
        met = sum(json.loads(ge_out).values())
        lines.append(f"{fmt:<8} {ge_s:7.2f} {mlci_s:7.2f} {ratio:5.1f}x  "
                     f"{'identical' if same else 'DIFFERENT'} ({met}/{len(SUITE['expectations'])} met; "
                     f"evaluated by: {engines})")
        verdicts.append((fmt, ratio, same))
    for fmt, ratio, same in verdicts:
        target = 10.0 if fmt == "parquet" else None
        if target:
            ok = ratio >= target and same
            lines.append(f"{'PASS' if ok else 'FAIL'} GE / evaluator on {fmt}: {ratio:.1f}x (target >= {target:g}x), "
                         f"verdicts {'identical' if same else 'different'}")
    return lines


def validate_vs_read(files: dict[str, Path], reps: int) -> list[str]:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from mlcicd.ci.local import LocalAdapter
    from mlcicd.runner import execute

    lines = [f"{'file':<8} {'read s':>7} {'validate-data s':>16} {'ratio':>6}"]
    for fmt, path in files.items():
        project = Path(tempfile.mkdtemp(prefix="mlci-bench-"))
        (project / "mlci.yaml").write_text(f"version: 1\ndata:\n  train: {path}\n  label: label\n"
                                           "  id_columns: [id]\nmlflow:\n  model_name: bench\n")
        reads, runs = [], []
        for _ in range(reps):
            started = time.perf_counter()
            pq.read_table(path) if fmt == "parquet" else pacsv.read_csv(path)
            reads.append(time.perf_counter() - started)
            started = time.perf_counter()
            code, result = execute("validate-data", {"config": str(project / "mlci.yaml"),
                                                     "report-dir": str(project / "r")},
                                   env={}, ci=LocalAdapter({}, io.StringIO()))
            runs.append(time.perf_counter() - started)
            assert result is not None, code
        read_s, run_s = min(reads), min(runs)
        lines.append(f"{fmt:<8} {read_s:7.2f} {run_s:16.2f} {run_s / read_s:5.2f}x   "
                     f"(phases of the last run: {result.figures['seconds']})")
        lines.append(f"{'PASS' if run_s / read_s <= 1.5 else 'FAIL'} validate-data / bare read on {fmt}: "
                     f"{run_s / read_s:.2f}x (target <= 1.5x)")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "mlci-bench-data")
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    parquet, csv = make_data(args.rows, args.dir)
    suite_path = args.dir / "suite.json"
    suite_path.write_text(json.dumps(SUITE))
    files = {"parquet": parquet, "csv": csv}
    print(f"{args.rows:,} rows x 20 columns; {len(SUITE['expectations'])} expectations; median of {args.reps} "
          "fresh processes each (interpreter, imports, read, validate)\n")
    print("\n".join(ge_vs_evaluator(files, suite_path, args.reps)))
    print(f"\nvalidate-data (train file only, all checks) vs a bare pyarrow read, warm process, best of {args.reps}\n")
    print("\n".join(validate_vs_read(files, args.reps)))


if __name__ == "__main__":
    main()
