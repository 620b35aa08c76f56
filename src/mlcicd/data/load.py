"""Read a CSV or Parquet file into a DataFrame, or explain in one paragraph why not.

Every failure is a :class:`~mlcicd.errors.DataError` (exit 2) that names the file as
the user wrote it, where that path came from, what is wrong and the exact fix; a
reader's traceback never reaches the log.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mlcicd.data.text import count, names
from mlcicd.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

CSV_SUFFIXES = {".csv": ",", ".tsv": "\t"}
PARQUET_SUFFIXES = (".parquet", ".pq")
# pandas decompresses these transparently, so data.csv.gz is as good as data.csv.
COMPRESSION_SUFFIXES = (".gz", ".bz2", ".zip", ".xz", ".zst")


@dataclass(frozen=True)
class DataFile:
    """One data file of the stage and how to point the user back at its setting."""

    role: str  # train, eval or reference
    path: Path  # resolved, ready to open
    shown: str  # as the user wrote it, so messages match what they typed
    origin: str  # the option, variable or mlci.yaml key the value came from

    def error(self, what: str, fix: str) -> DataError:
        return DataError(what, where=self.shown, fix=fix)


def file_format(path: Path) -> str | None:
    """``csv``, ``tsv`` or ``parquet`` from the file name; None when unknown."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSION_SUFFIXES:
        suffixes = suffixes[:-1]
    last = suffixes[-1] if suffixes else ""
    if last in PARQUET_SUFFIXES:
        return "parquet"
    if last in CSV_SUFFIXES:
        return last.lstrip(".")
    return None


def load_table(file: DataFile, *, label: str | None, label_origin: str) -> pd.DataFrame:
    """Read ``file``; when ``label`` is given the column must exist."""
    path = file.path
    if not path.exists():
        raise file.error(
            f"{file.role} data file not found (looked for {path})",
            f"check the path in {file.origin}; paths in mlci.yaml are relative to its directory, "
            "paths given as inputs are relative to the working directory",
        )
    if path.is_dir():
        raise file.error(
            f"{file.role} data path is a directory, not a file",
            f"point {file.origin} at one CSV or Parquet file inside it",
        )
    fmt = file_format(path)
    if fmt is None:
        raise file.error(
            f"unknown data file type {''.join(path.suffixes) or '(no extension)'!r}",
            f"save the {file.role} data as .csv, .tsv or .parquet (optionally .gz-compressed CSV) "
            f"and update {file.origin}",
        )
    if path.stat().st_size == 0:
        raise file.error(f"{file.role} data file is empty (0 bytes)",
                         "write the data into it (with a header row), or point "
                         f"{file.origin} at the right file")
    frame = _read(file, fmt)
    if frame.shape[1] == 0:
        raise file.error(f"{file.role} data file has no columns",
                         "write a header row and the data, or point " + f"{file.origin} at the right file")
    if frame.shape[0] == 0:
        raise file.error(
            f"{file.role} data file has columns ({names(map(str, frame.columns), 8)}) but no rows",
            f"fill it with data, or point {file.origin} at the right file",
        )
    frame.columns = [str(c) for c in frame.columns]
    if label is not None and label not in frame.columns:
        raise _missing_label(file, frame, label, label_origin)
    return frame


def _read(file: DataFile, fmt: str) -> pd.DataFrame:
    import pandas as pd

    try:
        if fmt == "parquet":
            return pd.read_parquet(file.path)
        # low_memory=False: chunked type inference gives one column mixed types per chunk.
        return pd.read_csv(file.path, sep=CSV_SUFFIXES["." + fmt], low_memory=False)
    except ImportError as exc:
        raise file.error(
            f"reading Parquet needs a Parquet engine ({exc})",
            "install one: pip install pyarrow  (or save the data as CSV)",
        ) from None
    except pd.errors.EmptyDataError:
        raise file.error(f"{file.role} data file holds no header and no data (only blank lines)",
                         f"write a header row and the data, or point {file.origin} at the right file") from None
    except UnicodeDecodeError as exc:
        raise file.error(
            f"is not a UTF-8 text file (byte {exc.start}: {exc.reason}); it may be binary or in another encoding",
            "re-save it as UTF-8 CSV, or as .parquet if it is Parquet",
        ) from None
    except pd.errors.ParserError as exc:
        detail = " ".join(str(exc).split())
        raise file.error(
            f"cannot be parsed as {fmt.upper()}: {detail}",
            "make every row have as many fields as the header; quote fields that contain the separator",
        ) from None
    except (ValueError, OSError) as exc:
        # pyarrow's ArrowInvalid/ArrowIOError derive from these: a truncated or foreign file.
        detail = " ".join(str(exc).split())[:300]
        raise file.error(
            f"cannot be read as {fmt.upper()}: {detail}",
            f"check that the file is complete and really is {fmt.upper()} (re-export it), "
            f"or point {file.origin} at the right file",
        ) from None


def _missing_label(file: DataFile, frame: pd.DataFrame, label: str, label_origin: str) -> DataError:
    columns = [str(c) for c in frame.columns]
    close = difflib.get_close_matches(label, columns, n=1)
    fix = f"set data.label to the label column (did you mean {close[0]!r}?)" if close else \
        "set data.label to the column that holds the label"
    hint = ""
    if len(columns) == 1 and any(sep in columns[0] for sep in ";|\t,"):
        hint = " The whole header was read as one column, so the file likely uses another separator"
        fix = "save the file comma-separated (.csv) or tab-separated (.tsv)"
    elif all(_looks_numeric(c) for c in columns):
        hint = " The header looks like data, so the file probably has no header row"
        fix = "add a header row naming the columns"
    return file.error(
        f"column {label!r} ({label_origin}) not found in the {file.role} data "
        f"({count(frame.shape[0])} rows); columns are: {names(columns)}.{hint}",
        fix,
    )


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
