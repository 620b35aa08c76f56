"""What each column should look like, and whether a dataset does.

Expectations come from ``data.columns`` in mlci.yaml when declared, otherwise they
are inferred from a baseline dataset (the reference data, else the training data),
so a project gets useful schema checks with zero configuration. The classic
failure this catches: a numeric column that suddenly holds strings because an
upstream export started writing ``"unknown"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from mlcicd.data.text import count, examples, names, number, pct
from mlcicd.report import Check, Status

if TYPE_CHECKING:
    import pandas as pd

    from mlcicd.config import DataConfig

ColumnType = Literal["integer", "number", "string", "boolean", "category"]
NUMERIC: tuple[str, ...] = ("integer", "number")
# Text columns with few distinct values are categories (testable for drift); with many
# they are free text or identifiers, where a frequency test says nothing useful.
MAX_CATEGORY_LEVELS = 100
_BOOLEAN_TEXT = {"true", "false", "t", "f", "yes", "no", "y", "n", "1", "0", "1.0", "0.0"}


@dataclass(frozen=True)
class ColumnRule:
    name: str
    type: ColumnType | None  # None: no values to infer from and nothing declared
    origin: str  # where the expected type comes from, quoted in messages
    explicit: bool = False
    nullable: bool = True
    min: float | None = None
    max: float | None = None
    unique: bool = False
    unique_reason: str = ""
    allowed: tuple[str, ...] | None = None


@dataclass
class Schema:
    rules: dict[str, ColumnRule]
    # Column -> why every checked dataset must have it (for the message).
    required: dict[str, str]
    baseline: str  # the dataset types were inferred from


def infer_type(series: pd.Series) -> ColumnType | None:
    import pandas as pd
    from pandas.api import types as pt

    if not series.notna().any():
        return None
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return "category"
    if pt.is_bool_dtype(dtype):
        return "boolean"
    if pt.is_integer_dtype(dtype):
        return "integer"
    if pt.is_float_dtype(dtype):
        # Integer columns with gaps are read as float, so "integer" cannot be told
        # apart here; "number" accepts both and never raises a false type alarm.
        return "number"
    if pt.is_datetime64_any_dtype(dtype) or pt.is_timedelta64_dtype(dtype):
        return "string"
    kind = pt.infer_dtype(series, skipna=True)
    if kind == "boolean":
        return "boolean"  # a boolean column with gaps is read as object
    if kind == "integer":
        return "integer"
    if kind in ("floating", "mixed-integer-float", "decimal"):
        return "number"
    levels = int(series.nunique(dropna=True))
    if levels <= MAX_CATEGORY_LEVELS and levels <= 0.5 * int(series.notna().sum()):
        return "category"
    return "string"


def build_schema(frames: dict[str, pd.DataFrame], data: DataConfig, config_name: str) -> Schema:
    """Rules for every column; ``frames`` in baseline-first order (reference, train, eval)."""
    baseline_name, baseline = next(iter(frames.items()))
    required: dict[str, str] = {c: f"it is in the {baseline_name} data" for c in baseline.columns}
    for col in data.columns:
        required.setdefault(col, f"it is declared in data.columns of {config_name}")
    # The reference may be unlabelled production data: the label's type then comes from
    # the training data, and train and eval must still have it.
    required.setdefault(data.label, f"it is data.label in {config_name}")
    for col in data.sensitive:
        required.setdefault(col, f"it is listed in data.sensitive of {config_name}")
    for col in data.id_columns:
        required.setdefault(col, f"it is listed in data.id_columns of {config_name}")
    rules: dict[str, ColumnRule] = {}
    for col in required:
        spec = data.columns.get(col)
        source = next(((name, f) for name, f in frames.items() if col in f.columns), None)
        inferred = infer_type(source[1][col]) if source and not (spec and spec.type) else None
        if spec and spec.type:
            origin = f"data.columns.{col}.type in {config_name}"
        else:
            origin = f"inferred from the {source[0]} data" if source else "no data to infer from"
        unique_reason = f"data.columns.{col}.unique in {config_name}" if spec and spec.unique else (
            f"listed in data.id_columns of {config_name}")
        rules[col] = ColumnRule(
            name=col,
            type=spec.type if spec and spec.type else inferred,
            origin=origin,
            explicit=spec is not None,
            nullable=spec.nullable if spec else True,
            min=spec.min if spec else None,
            max=spec.max if spec else None,
            unique=(spec.unique if spec else False) or col in data.id_columns,
            unique_reason=unique_reason,
            allowed=tuple(spec.allowed) if spec and spec.allowed is not None else None,
        )
    return Schema(rules, required, baseline_name)


def check_columns(frame: pd.DataFrame, schema: Schema, role: str) -> list[Check]:
    """Missing columns fail (models and later stages need them); extra ones only warn."""
    present = set(frame.columns)
    missing = [c for c in schema.required if c not in present]
    extra = [c for c in frame.columns if c not in schema.required]
    checks = []
    if missing:
        why = "; ".join(f"{c!r}: {schema.required[c]}" for c in missing[:10])
        checks.append(Check(
            "schema:columns:missing", Status.FAIL,
            f"the {role} data lacks {len(missing)} expected column(s): {names(missing)} ({why}). "
            "Fix: add them to the data, or remove them from mlci.yaml / the reference data if they were dropped "
            "on purpose.",
            observed=len(missing), expected=0, details={"missing": missing},
        ))
    else:
        checks.append(Check("schema:columns", Status.PASS, f"all {len(schema.required)} expected columns present",
                            observed=len(schema.required)))
    if extra:
        checks.append(Check(
            "schema:columns:unexpected", Status.WARN,
            f"the {role} data has {len(extra)} column(s) not in the {schema.baseline} data or mlci.yaml: "
            f"{names(extra)}; they are not checked for type or drift. Fix: add them to the reference data "
            "(or declare them under data.columns), or drop them.",
            observed=len(extra), expected=0, details={"unexpected": extra},
        ))
    return checks


def check_values(
    frame: pd.DataFrame, schema: Schema, *, explicit_only: bool = False
) -> tuple[list[Check], pd.DataFrame]:
    """Per-column rule checks, and the frame with numeric columns made numeric.

    Values that fail to parse become missing in the returned frame, so quality and
    drift checks still run on the parsable part instead of stopping at the first error.
    """
    checks: list[Check] = []
    replaced: dict[str, pd.Series] = {}
    for col, rule in schema.rules.items():
        if col not in frame.columns or (explicit_only and not rule.explicit):
            continue
        series = frame[col]
        col_checks, numeric = _check_column(series, rule)
        checks += col_checks
        if numeric is not None and numeric is not series:
            replaced[col] = numeric
    if replaced:
        frame = frame.assign(**replaced)
    return checks, frame


def _check_column(series: pd.Series, rule: ColumnRule) -> tuple[list[Check], pd.Series | None]:
    checks: list[Check] = []
    numeric: pd.Series | None = None
    if rule.type in NUMERIC:
        check, numeric = _numeric_type(series, rule)
        checks.append(check)
    elif rule.type == "boolean":
        checks.append(_boolean_type(series, rule))
    elif rule.type is not None:
        checks.append(Check(f"schema:{rule.name}:type", Status.PASS, f"{rule.type} ({rule.origin})",
                            observed=rule.type, expected=rule.type))
    if not rule.nullable:
        checks.append(_nulls(series, rule))
    if rule.min is not None or rule.max is not None:
        if numeric is None:
            import pandas as pd

            numeric = pd.to_numeric(series, errors="coerce")
        checks.append(_range(numeric, rule))
    if rule.unique:
        checks.append(_unique(series, rule))
    if rule.allowed is not None:
        checks.append(_allowed(series, rule))
    return checks, numeric


def _numeric_type(series: pd.Series, rule: ColumnRule) -> tuple[Check, pd.Series]:
    import numpy as np
    import pandas as pd
    from pandas.api import types as pt

    name = f"schema:{rule.name}:type"
    declare = f"declare data.columns.{rule.name}.type: string in mlci.yaml if the column really changed"
    if pt.is_bool_dtype(series.dtype):
        return Check(
            name, Status.FAIL,
            f"column {rule.name!r} should hold {rule.type} values ({rule.origin}) but holds true/false. "
            f"Fix: write numbers, or {declare.replace('string', 'boolean')}.",
            observed="boolean", expected=rule.type,
        ), series.astype("float64")
    if pt.is_numeric_dtype(series.dtype):
        numeric = series
    else:
        numeric = pd.to_numeric(series, errors="coerce")
        bad = series.notna().to_numpy() & numeric.isna().to_numpy()
        n_bad = int(bad.sum())
        if n_bad:
            offenders = pd.unique(series[bad])
            return Check(
                name, Status.FAIL,
                f"column {rule.name!r} should hold {rule.type} values ({rule.origin}) but {count(n_bad)} of "
                f"{count(len(series))} values ({pct(n_bad / len(series))}) are not numbers, e.g. "
                f"{examples(offenders)}. Fix: clean or drop those rows upstream (empty cells count as missing), "
                f"or {declare}.",
                observed=f"{count(n_bad)} non-numeric", expected=rule.type,
                details={"bad_values": n_bad, "examples": [str(v) for v in offenders[:5]]},
            ), numeric
    if rule.type == "integer" and pt.is_float_dtype(numeric.dtype):
        values = numeric.to_numpy(dtype="float64", na_value=np.nan)
        fractional = np.isfinite(values) & (values != np.floor(values))
        n_frac = int(fractional.sum())
        if n_frac:
            return Check(
                name, Status.FAIL,
                f"column {rule.name!r} should hold whole numbers ({rule.origin}) but {count(n_frac)} values have a "
                f"fractional part, e.g. {examples(pd.unique(values[fractional]))}. Fix: round them upstream, or "
                f"declare data.columns.{rule.name}.type: number.",
                observed=f"{count(n_frac)} fractional", expected="integer", details={"bad_values": n_frac},
            ), numeric
    return Check(name, Status.PASS, f"{rule.type} ({rule.origin})", observed=rule.type, expected=rule.type), numeric


def _boolean_type(series: pd.Series, rule: ColumnRule) -> Check:
    import pandas as pd
    from pandas.api import types as pt

    name = f"schema:{rule.name}:type"
    if pt.is_bool_dtype(series.dtype):
        return Check(name, Status.PASS, f"boolean ({rule.origin})", observed="boolean", expected="boolean")
    # Judge distinct values, not rows: a boolean column has two, so this stays cheap.
    distinct = pd.Series(pd.unique(series.dropna()))
    if pt.is_numeric_dtype(distinct.dtype):
        ok = distinct.isin([0, 1])
    else:
        ok = distinct.astype(str).str.strip().str.lower().isin(_BOOLEAN_TEXT)
    offenders = distinct[~ok.to_numpy()]
    if len(offenders):
        n_bad = int(series.isin(offenders.tolist()).sum())
        return Check(
            name, Status.FAIL,
            f"column {rule.name!r} should hold true/false ({rule.origin}) but {count(n_bad)} values are not "
            f"boolean, e.g. {examples(offenders)}. Fix: write true/false (or 1/0) upstream, or declare "
            f"data.columns.{rule.name}.type: category.",
            observed=f"{count(n_bad)} non-boolean", expected="boolean", details={"bad_values": n_bad},
        )
    return Check(name, Status.PASS, f"boolean ({rule.origin})", observed="boolean", expected="boolean")


def _nulls(series: pd.Series, rule: ColumnRule) -> Check:
    n_null = int(series.isna().sum())
    name = f"schema:{rule.name}:nulls"
    if n_null:
        return Check(
            name, Status.FAIL,
            f"column {rule.name!r} has {count(n_null)} missing values ({pct(n_null / len(series))}) but "
            f"data.columns.{rule.name}.nullable is false. Fix: fill or drop those rows upstream, or set "
            "nullable: true.",
            observed=n_null, expected=0,
        )
    return Check(name, Status.PASS, "no missing values", observed=0, expected=0)


def _range(numeric: pd.Series, rule: ColumnRule) -> Check:
    import numpy as np

    values = numeric.to_numpy(dtype="float64", na_value=np.nan)
    outside = np.zeros(len(values), dtype=bool)
    if rule.min is not None:
        outside |= values < rule.min
    if rule.max is not None:
        outside |= values > rule.max
    n_out = int(outside.sum())
    bounds = f"[{number(rule.min) if rule.min is not None else '-inf'}, " \
             f"{number(rule.max) if rule.max is not None else 'inf'}]"
    finite = values[np.isfinite(values)]
    seen = f"[{number(float(finite.min()))}, {number(float(finite.max()))}]" if finite.size else "no values"
    name = f"schema:{rule.name}:range"
    if n_out:
        return Check(
            name, Status.FAIL,
            f"{count(n_out)} values of {rule.name!r} ({pct(n_out / len(values))}) lie outside {bounds} "
            f"(data.columns.{rule.name}.min/max); observed range {seen}. Fix: correct those rows upstream, or widen "
            "the bounds if the range really grew.",
            observed=seen, expected=bounds, details={"outside": n_out},
        )
    return Check(name, Status.PASS, f"all values within {bounds}", observed=seen, expected=bounds)


def _unique(series: pd.Series, rule: ColumnRule) -> Check:
    import pandas as pd

    present = series.dropna()
    dup = present.duplicated(keep="first").to_numpy()
    n_dup = int(dup.sum())
    name = f"schema:{rule.name}:unique"
    if n_dup:
        return Check(
            name, Status.FAIL,
            f"column {rule.name!r} must be unique ({rule.unique_reason}) but {count(n_dup)} rows repeat an earlier "
            f"value, e.g. {examples(pd.unique(present[dup]))}. Fix: remove the duplicated rows upstream, or drop "
            f"the column from data.id_columns / set data.columns.{rule.name}.unique: false.",
            observed=n_dup, expected=0,
        )
    return Check(name, Status.PASS, "all values unique", observed=0, expected=0)


def _allowed(series: pd.Series, rule: ColumnRule) -> Check:
    import numpy as np
    import pandas as pd
    from pandas.api import types as pt

    assert rule.allowed is not None
    present = series.dropna()
    # YAML gives the allowed values as text while the data may hold 1, 1.0 or True:
    # compare in the column's own type so the test stays one vectorised isin.
    if pt.is_bool_dtype(present.dtype):
        ok = present.map({True: "true", False: "false"}).isin([a.lower() for a in rule.allowed])
    elif pt.is_numeric_dtype(present.dtype):
        numbers = pd.to_numeric(pd.Series(list(rule.allowed), dtype="object"), errors="coerce").dropna()
        ok = present.isin(numbers.astype("float64").tolist())
    elif pt.is_string_dtype(present.dtype) and pt.infer_dtype(present, skipna=True) == "string":
        ok = present.isin(list(rule.allowed))
    else:
        ok = present.astype(str).isin(list(rule.allowed))
    bad = ~ok.to_numpy(dtype=bool)
    n_bad = int(bad.sum())
    name = f"schema:{rule.name}:allowed"
    if n_bad:
        offenders = pd.unique(present[bad])
        return Check(
            name, Status.FAIL,
            f"{count(n_bad)} values of {rule.name!r} are not in data.columns.{rule.name}.allowed, e.g. "
            f"{examples(offenders)}. Fix: map them to an allowed value upstream, or add them to allowed.",
            observed=[_as_text(v) for v in offenders[:10]], expected=list(rule.allowed),
            details={"bad_values": n_bad, "distinct_bad": int(np.size(offenders))},
        )
    return Check(name, Status.PASS, f"all values in {names(rule.allowed, 10)}", observed=0, expected=0)


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
