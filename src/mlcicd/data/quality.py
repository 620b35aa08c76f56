"""Quality checks with the limits of ``data.quality``: missing values, duplicate rows,
label balance and IQR outliers. Each returns report checks; failures say what to fix."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlcicd.data.text import count, examples, number, pct
from mlcicd.report import Check, Status

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from mlcicd.config import QualityConfig

# A label with more distinct values than this is treated as a regression target.
MAX_CLASSES = 50


def missing(frame: pd.DataFrame, cfg: QualityConfig) -> list[Check]:
    shares = frame.isna().mean()
    limit = cfg.max_missing_pct / 100
    checks = []
    for col, share in shares.items():
        share = float(share)
        name = f"quality:missing:{col}"
        if share > limit:
            checks.append(Check(
                name, Status.FAIL,
                f"{pct(share)} of {col!r} is missing (limit data.quality.max_missing_pct = "
                f"{number(cfg.max_missing_pct)}). Fix: repair the upstream source of the gaps, drop the rows, "
                "or raise the limit if the model imputes this column.",
                observed=round(100 * share, 4), expected=f"<= {number(cfg.max_missing_pct)}",
            ))
        else:
            checks.append(Check(name, Status.PASS, f"{pct(share)} missing", observed=round(100 * share, 4),
                                expected=f"<= {number(cfg.max_missing_pct)}"))
    return checks


def duplicate_rows(frame: pd.DataFrame, id_columns: list[str], cfg: QualityConfig) -> Check:
    """Share of rows that repeat an earlier row, ignoring id columns.

    Ids make every row unique, so comparing them would hide the very duplicates
    (one record exported twice under two ids) this check exists to find.
    """
    content = frame.drop(columns=[c for c in id_columns if c in frame.columns])
    n_dup = _count_duplicates(content) if content.shape[1] else 0
    share = n_dup / len(frame)
    limit = cfg.max_duplicate_pct / 100
    observed, expected = round(100 * share, 4), f"<= {number(cfg.max_duplicate_pct)}"
    if share > limit:
        return Check(
            "quality:duplicates", Status.FAIL,
            f"{count(n_dup)} rows ({pct(share)}) repeat an earlier row exactly (limit data.quality.max_duplicate_pct"
            f" = {number(cfg.max_duplicate_pct)}). Duplicates over-weight those records and leak between train "
            "and eval splits. Fix: deduplicate upstream (e.g. DataFrame.drop_duplicates()), or raise the limit.",
            observed=observed, expected=expected, details={"duplicate_rows": n_dup},
        )
    return Check("quality:duplicates", Status.PASS, f"{count(n_dup)} duplicate rows ({pct(share)})",
                 observed=observed, expected=expected)


def _count_duplicates(frame: pd.DataFrame) -> int:
    """Exact count of rows that repeat an earlier row, without hashing whole rows up front.

    A row that repeats another repeats it in every column, so columns narrow the
    candidates a few at a time (the most distinct kinds first: floats, then integers,
    then text): each step mixes the next columns into a 64-bit key of the columns so far
    (cheap, vectorised) and keeps only rows whose key occurs more than once (one hash
    table). On typical data the first step leaves a handful of rows, which pandas then
    compares exactly, so a hash collision can never create a duplicate and ~1M rows cost
    one hash table instead of twenty.
    """
    import numpy as np
    import pandas as pd

    order = sorted(frame.columns, key=lambda c: _DISTINCT_FIRST.get(frame[c].dtype.kind, 3))
    rows = np.arange(len(frame))
    key = np.zeros(len(frame), dtype=np.uint64)
    for start in range(0, len(order), COLUMNS_PER_STEP):
        for col in order[start:start + COLUMNS_PER_STEP]:
            key = _mix(key, _column_key(frame[col].iloc[rows] if len(rows) < len(frame) else frame[col]))
        keep = pd.Series(key).duplicated(keep=False).to_numpy()
        rows, key = rows[keep], key[keep]
        if len(rows) <= EXACT_BELOW:
            break
    if len(rows) == 0:
        return 0
    return int(frame.iloc[rows].duplicated().sum())


# Columns mixed into the key before each hash-table pass.
COLUMNS_PER_STEP = 4
# Candidate rows few enough to compare exactly with DataFrame.duplicated.
EXACT_BELOW = 5_000
_DISTINCT_FIRST = {"f": 0, "i": 1, "u": 1, "M": 1, "m": 1}
_PRIME = 0x100000001B3


def _column_key(series: pd.Series) -> np.ndarray:
    """64-bit values that are equal wherever pandas' ``duplicated`` calls two cells equal."""
    import numpy as np
    import pandas as pd

    kind = series.dtype.kind
    if kind == "f":
        values = series.to_numpy(dtype="float64") + 0.0  # -0.0 + 0.0 is 0.0: equal to pandas
        values[np.isnan(values)] = np.nan  # one NaN bit pattern
        return values.view(np.uint64)
    if kind in "iub":
        return series.to_numpy().astype(np.int64, copy=False).view(np.uint64)
    codes, _ = pd.factorize(series, use_na_sentinel=False)
    return codes.astype(np.int64, copy=False).view(np.uint64)


def _mix(key: np.ndarray, column: np.ndarray) -> np.ndarray:
    import numpy as np

    key = (key ^ column) * np.uint64(_PRIME)
    key ^= key >> np.uint64(29)
    return key


def is_classification(label: pd.Series) -> bool:
    """Whether the label is a class (balance matters) or a continuous target."""
    import numpy as np
    from pandas.api import types as pt

    present = label.dropna()
    if pt.is_bool_dtype(present.dtype) or not pt.is_numeric_dtype(present.dtype):
        return True
    if present.nunique() > MAX_CLASSES:
        return False
    values = present.to_numpy(dtype="float64")
    return bool(np.all(values == np.floor(values)))


def label_balance(frame: pd.DataFrame, label: str, cfg: QualityConfig) -> Check:
    name = "quality:label-balance"
    series = frame[label]
    expected = f">= {number(cfg.min_label_pct)}"
    if not is_classification(series):
        return Check(name, Status.SKIP,
                     f"{label!r} looks continuous ({count(int(series.nunique()))} distinct values): class balance "
                     "applies to classification labels only", expected=expected)
    shares = series.value_counts(normalize=True, dropna=True)
    if len(shares) == 0:
        return Check(name, Status.FAIL, f"{label!r} has no values. Fix: fill in the labels upstream.",
                     observed=0, expected=expected)
    distribution = {_key(k): round(float(v) * 100, 4) for k, v in shares.items()}
    if len(shares) < 2:
        only = shares.index[0]
        return Check(
            name, Status.FAIL,
            f"{label!r} holds a single class ({examples([only])}): a model cannot learn to separate classes. "
            "Fix: include examples of the other class(es), or check that data.label names the right column.",
            observed=1, expected=">= 2 classes", details={"distribution_pct": distribution},
        )
    rarest = shares.index[-1]
    share = float(shares.iloc[-1])
    observed = round(100 * share, 4)
    if share * 100 < cfg.min_label_pct:
        return Check(
            name, Status.FAIL,
            f"the rarest class of {label!r}, {examples([rarest])}, is only {pct(share)} of rows (limit "
            f"data.quality.min_label_pct = {number(cfg.min_label_pct)}). Fix: collect more examples of it, "
            "resample or weight the classes, or lower the limit.",
            observed=observed, expected=expected, details={"distribution_pct": distribution},
        )
    return Check(name, Status.PASS, f"rarest class {examples([rarest])} is {pct(share)} of rows",
                 observed=observed, expected=expected, details={"distribution_pct": distribution})


def outliers(frame: pd.DataFrame, columns: list[str], cfg: QualityConfig) -> list[Check]:
    """Tukey's fences per numeric column: beyond Q1 - k*IQR or Q3 + k*IQR.

    The quartiles come from at most :data:`QUARTILE_ROWS` rows drawn with a fixed seed
    (exact below that): they are estimated to well under 1% of the IQR there, and
    selecting quartiles of a million values per column would cost more than every
    other check together. Outliers are then counted on every row.
    """
    import numpy as np

    k = cfg.iqr_factor
    limit = cfg.max_outlier_pct / 100
    expected = f"<= {number(cfg.max_outlier_pct)}"
    sample = None
    if len(frame) > QUARTILE_ROWS:
        sample = np.sort(np.random.default_rng(QUARTILE_SEED).choice(len(frame), QUARTILE_ROWS, replace=False))
    checks = []
    for col in columns:
        values = frame[col].to_numpy(dtype="float64", na_value=np.nan)
        drawn = values if sample is None else values[sample]
        drawn = drawn[np.isfinite(drawn)]
        finite = int(np.count_nonzero(np.isfinite(values)))
        name = f"quality:outliers:{col}"
        if finite == 0:
            continue
        if drawn.size == 0:  # every sampled value missing: fall back to all values
            drawn = values[np.isfinite(values)]
        q1, q3 = np.quantile(drawn, [0.25, 0.75])
        iqr = q3 - q1
        if iqr == 0:
            # Over half the values are one number (a flag, a zero-inflated count): every
            # other value would sit outside zero-width fences, which says nothing.
            checks.append(Check(name, Status.PASS, "not applicable: the interquartile range is 0",
                                observed=0.0, expected=expected))
            continue
        low, high = q1 - k * iqr, q3 + k * iqr
        outside = (values < low) | (values > high)  # NaN compares False: missing is never an outlier
        n_out = int(np.count_nonzero(outside))
        share = n_out / finite
        fences = [float(low), float(high)]
        details: dict[str, Any] = {"fences": fences}
        if sample is not None:
            details["quartiles_from_rows"] = QUARTILE_ROWS
        if share > limit:
            extreme = values[outside]
            checks.append(Check(
                name, Status.FAIL,
                f"{pct(share)} of {col!r} ({count(n_out)} values) lies outside [{number(float(low))}, "
                f"{number(float(high))}] (Tukey fences, k = data.quality.iqr_factor = {number(k)}), e.g. "
                f"{examples(np.unique(extreme)[[0, -1]] if extreme.size > 1 else extreme)}. Fix: look for unit "
                "errors or sentinel values such as -999 and correct or drop them upstream, or raise "
                "data.quality.max_outlier_pct.",
                observed=round(100 * share, 4), expected=expected, details={**details, "outliers": n_out},
            ))
        else:
            checks.append(Check(name, Status.PASS, f"{pct(share)} outside the Tukey fences",
                                observed=round(100 * share, 4), expected=expected, details=details))
    return checks


# Rows the quartiles of the outlier check are estimated from (fixed seed: same data, same verdict).
QUARTILE_ROWS = 100_000
QUARTILE_SEED = 20240607


def _key(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
