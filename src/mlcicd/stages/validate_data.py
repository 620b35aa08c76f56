"""validate-data: schema, quality and drift checks on the training and evaluation data.

Order: load every file with pyarrow (a file that cannot be read is exit 2, before any
check) -> schema expectations from data.columns, else inferred from the reference (else
the training) data -> per dataset: columns, types and rules, missing values, duplicate
rows, label balance, outliers, and the Great Expectations suite of data.expectations ->
drift of train and eval against the reference. ``--write-suite PATH`` also writes the
suite inferred from the reference data, for the user to edit and commit.
Passing per-column checks are folded into one check per family so the report stays
readable; every failure and warning stays its own check with the fix in its message.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from mlcicd.data import drift, drift_plots, quality
from mlcicd.data.load import DataFile, read_checked, to_frame
from mlcicd.data.schema import NUMERIC, Schema, build_schema, check_columns, check_values
from mlcicd.data.text import count, names
from mlcicd.errors import UsageError
from mlcicd.inputs import Origin
from mlcicd.report import Check, StageResult, Status, Verdict
from mlcicd.stages import StageContext

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from mlcicd.data.expectations.outcome import Outcome

ROLES = (("train", "train-data"), ("eval", "eval-data"), ("reference", "reference-data"))
_DRIFT_KIND: dict[str | None, drift.Kind] = {
    "integer": "numeric", "number": "numeric", "boolean": "categorical", "category": "categorical", "string": "text",
}
_FAMILY_PASS = {
    "schema": "schema checks passed (columns, types and declared rules)",
    "quality:missing": "columns within the missing-value limit",
    "quality:outliers": "numeric features within the outlier limit",
    "drift": "features match the reference distribution",
}


def run(ctx: StageContext) -> StageResult:
    started = time.perf_counter()
    data = ctx.config.data
    config_name = ctx.config.source.name if ctx.config.source else "mlci.yaml"
    files = _data_files(ctx, config_name)
    label_origin = f"data.label in {config_name}"
    tables: dict[str, pa.Table] = {}
    frames: dict[str, pd.DataFrame] = {}
    for role, file in files.items():
        # The reference may be unlabelled production data; train and eval need the label.
        tables[role] = read_checked(file, label=None if role == "reference" else data.label,
                                    label_origin=label_origin)
        frames[role] = to_frame(tables[role])
        ctx.ci.log(f"{role}: {file.shown} ({count(frames[role].shape[0])} rows x {frames[role].shape[1]} columns)")
    loaded = time.perf_counter()

    schema = build_schema({r: frames[r] for r in ("reference", "train", "eval") if r in frames}, data, config_name)
    checks: list[Check] = []
    written = _write_suite(ctx, tables, files, schema)
    suite_figures = _suite_checks(ctx, tables, checks, config_name)
    clean: dict[str, pd.DataFrame] = {}
    for role in ("train", "eval"):
        if role in frames:
            role_checks, clean[role] = _dataset_checks(frames[role], role, schema, ctx)
            checks += _tag(role_checks, role)

    fail_on_drift = ctx.inputs.values.get("fail-on-drift")
    if fail_on_drift is None:
        fail_on_drift = data.drift.fail
    drift_figures: dict[str, dict[str, object]] = {}
    drift_histograms: dict[str, dict[str, dict[str, Any]]] = {}
    drifted: list[str] = []
    drift_text = "drift not measured (no reference data)"
    if "reference" in frames:
        ref_checks, clean["reference"] = check_values(frames["reference"], schema, explicit_only=True)
        checks += _tag(_collapse("schema", ref_checks), "reference")
        kinds = _drift_kinds(schema, ctx, clean["reference"])
        texts = []
        for role in ("train", "eval"):
            if role not in clean:
                continue
            results = drift.compare(clean["reference"], clean[role], kinds,
                                    p_value=data.drift.p_value, max_rows=data.drift.max_rows)
            checks += _tag(_collapse("drift", drift.to_checks(
                results, role=role, alpha=data.drift.p_value, fail=bool(fail_on_drift), label=data.label)), role)
            drift_figures[role] = {r.feature: r.to_dict() for r in results}
            # The same seeded sample the tests ran on, so the plot shows what the test saw.
            drift_histograms[role] = drift_plots.histograms(
                drift.sample(clean["reference"], data.drift.max_rows), drift.sample(clean[role], data.drift.max_rows),
                results)
            drifted += [f for f in drift.drifted(results) if f not in drifted]
            texts.append(f"{role}: {drift.describe(results)}")
        drift_text = "drift vs reference: " + "; ".join(texts)
    else:
        checks.append(Check(
            "drift", Status.SKIP,
            "no reference data, so drift was not measured. Fix: set data.reference in "
            f"{config_name} (or the reference-data input) to data the current model is known to work on, "
            "e.g. the training data of the release in production.",
        ))
    finished = time.perf_counter()

    datasets = ", ".join(f"{role} {count(f.shape[0])} rows" for role, f in frames.items())
    failures = [c.name for c in checks if c.status is Status.FAIL]
    warnings = [c.name for c in checks if c.status is Status.WARN]
    if failures:
        summary = (f"{len(failures)} data check(s) failed: {names(failures, 10)}. Each failed check says how to fix "
                   f"it. Checked {datasets}; {drift_text}.")
    else:
        summary = f"All data checks passed on {datasets}; {drift_text}."
    if warnings:
        summary += f" {len(warnings)} warning(s): {names(warnings, 10)}."
    if written:
        summary += f" {written}"
    return StageResult(
        ctx.stage.id,
        Verdict.FAIL if failures else Verdict.PASS,
        summary,
        checks=checks,
        outputs={"drifted-features": ",".join(drifted), "rows": str(frames["train"].shape[0])},
        figures={
            "datasets": {role: {"rows": f.shape[0], "columns": f.shape[1], "path": files[role].shown}
                         for role, f in frames.items()},
            "drift": drift_figures,
            "drift_histograms": drift_histograms,
            "drift_settings": {"p_value": data.drift.p_value, "max_rows": data.drift.max_rows,
                               "seed": drift.SEED, "fail_on_drift": bool(fail_on_drift)},
            "seconds": {"load": round(loaded - started, 3), "checks": round(finished - loaded, 3)},
            **suite_figures,
        },
        evidence={"files": {role: str(f.path.resolve()) for role, f in files.items()}},
    )


def _data_files(ctx: StageContext, config_name: str) -> dict[str, DataFile]:
    files = {}
    for role, input_name in ROLES:
        path = ctx.input_path(input_name)
        if path is not None:
            shown = str(ctx.inputs.values[input_name])
            files[role] = DataFile(role, path, shown, _origin(ctx, input_name))
    if "train" not in files:
        raise UsageError(
            "no training data given",
            where="input train-data / data.train",
            fix=f"set `data.train: data/train.csv` in {config_name}, or pass the train-data input "
            "(--train-data PATH to mlci run, MLCI_TRAIN_DATA in the environment)",
        )
    return files


def _write_suite(ctx: StageContext, tables: dict[str, pa.Table], files: dict[str, DataFile], schema: Schema) -> str:
    """``--write-suite PATH``: the suite inferred from the reference (else training) data."""
    path = ctx.input_path("write-suite")
    if path is None:
        return ""
    from mlcicd.data.expectations.infer import infer_suite
    from mlcicd.data.expectations.suite import write_suite

    role = "reference" if "reference" in tables else "train"
    name = ctx.config.project or (ctx.config.root.name if ctx.config.root else "data")
    suite = infer_suite(tables[role], schema, ctx.config.data, name=name,
                        source=f"the {role} data ({files[role].shown})")
    try:
        write_suite(suite, path)
    except OSError as exc:
        raise UsageError(f"cannot write the suite: {exc.strerror or exc}", where=f"input write-suite {path}",
                         fix="pass a writable path, e.g. --write-suite expectations.json") from None
    ctx.ci.log(f"wrote {len(suite.expectations)} expectations inferred from the {role} data to {path}")
    return (f"Wrote {len(suite.expectations)} expectations inferred from the {role} data to {path}: edit them, "
            f"commit the file and set data.expectations to it.")


def _suite_checks(ctx: StageContext, tables: dict[str, pa.Table], checks: list[Check],
                  config_name: str) -> dict[str, object]:
    """The Great Expectations suite of ``data.expectations`` on the train and eval data."""
    shown = ctx.config.data.expectations
    path = ctx.config.path(shown)
    if path is None or shown is None:
        return {}
    from mlcicd.data.expectations import evaluate
    from mlcicd.data.expectations.suite import load_suite

    started = time.perf_counter()
    suite = load_suite(path, f"{shown} in {config_name}")
    outcomes: dict[str, list[Outcome]] = {}
    for role in ("train", "eval"):
        if role in tables:
            outcomes[role] = evaluate.validate(tables[role], suite, where=f"{shown} (data.expectations)")
            checks += _tag(evaluate.to_checks(outcomes[role], shown), role)
    return {"expectations": {"suite": shown, "name": suite.name,
                             **{role: evaluate.figures(o) for role, o in outcomes.items()}},
            "expectations_seconds": round(time.perf_counter() - started, 3)}


def _origin(ctx: StageContext, input_name: str) -> str:
    """Where a path came from, in the words the user would search for."""
    origin = ctx.inputs.origins.get(input_name)
    if origin is Origin.CONFIG:
        config = ctx.config.source.name if ctx.config.source else "mlci.yaml"
        return f"{ctx.stage.input(input_name).config_key} in {config}"
    if origin is Origin.INPUT:
        return f"the --{input_name} option"
    if origin is Origin.ENVIRONMENT:
        return f"the {input_name} input ({ctx.inputs.sources[input_name]})"
    return f"the {input_name} input"


def _dataset_checks(
    frame: pd.DataFrame, role: str, schema: Schema, ctx: StageContext
) -> tuple[list[Check], pd.DataFrame]:
    data = ctx.config.data
    cfg = data.quality
    value_checks, clean = check_values(frame, schema)
    checks = _collapse("schema", check_columns(frame, schema, role) + value_checks)
    checks += _collapse("quality:missing", quality.missing(frame, cfg))
    checks.append(quality.duplicate_rows(frame, data.id_columns, cfg))
    checks.append(quality.label_balance(clean, data.label, cfg))
    numeric = [c for c, rule in schema.rules.items()
               if rule.type in NUMERIC and c in clean.columns and c not in data.id_columns and c != data.label]
    checks += _collapse("quality:outliers", quality.outliers(clean, numeric, cfg))
    return checks, clean


def _drift_kinds(schema: Schema, ctx: StageContext, reference: pd.DataFrame) -> dict[str, drift.Kind | None]:
    """Which test each column gets; ids are unique per row, so they have no distribution to compare."""
    data = ctx.config.data
    kinds: dict[str, drift.Kind | None] = {}
    for col, rule in schema.rules.items():
        if col in data.id_columns:
            continue
        if col == data.label and col in reference.columns:
            # A class label coded 0/1 is categorical whatever its dtype: label shift is a change in class shares.
            kinds[col] = "categorical" if quality.is_classification(reference[col]) else "numeric"
        else:
            kinds[col] = _DRIFT_KIND.get(rule.type)
    return kinds


def _collapse(family: str, checks: list[Check]) -> list[Check]:
    """Fold the passing checks of one family into a single check; keep the rest as they are."""
    passed = [c for c in checks if c.status is Status.PASS]
    rest = [c for c in checks if c.status is not Status.PASS]
    if not passed:
        return rest
    folded = Check(
        family, Status.PASS, f"{len(passed)} {_FAMILY_PASS[family]}",
        observed=len(passed), details={c.name: c.observed for c in passed},
    )
    return [folded, *rest]


def _tag(checks: list[Check], role: str) -> list[Check]:
    """Train checks keep plain names; eval and reference ones get a suffix so names stay unique."""
    if role != "train":
        for check in checks:
            check.name = f"{check.name}@{role}"
    return checks
