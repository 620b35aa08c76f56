"""Read a CSV or Parquet file with pyarrow, or explain in one paragraph why not.

Arrow reads CSV on every core and Parquet column by column; the pandas view the
checks use shares Arrow's buffers where it can (numbers) instead of copying twice.

Every failure is a :class:`~mlcicd.errors.DataError` (exit 2) that names the file as
the user wrote it, where that path came from, what is wrong and the exact fix; a
reader's traceback never reaches the log.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcicd.data.text import count, names
from mlcicd.errors import DataError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

CSV_SUFFIXES = {".csv": ",", ".tsv": "\t"}
PARQUET_SUFFIXES = (".parquet", ".pq")
# Compressed CSV is as good as plain: Arrow decompresses gz, bz2 and zst itself, pandas the rest.
COMPRESSION_SUFFIXES = (".gz", ".bz2", ".zip", ".xz", ".zst")
PANDAS_ONLY_COMPRESSION = (".zip", ".xz")


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
    """Read ``file`` into pandas; when ``label`` is given the column must exist."""
    return to_frame(read_checked(file, label=label, label_origin=label_origin))


def read_checked(file: DataFile, *, label: str | None, label_origin: str) -> pa.Table:
    """Read ``file`` with pyarrow and check it has a header, rows and (when given) the label."""
    table = read_table(file)
    if table.num_columns == 0:
        raise file.error(f"{file.role} data file has no columns",
                         "write a header row and the data, or point " + f"{file.origin} at the right file")
    if table.num_rows == 0:
        raise file.error(
            f"{file.role} data file has columns ({names(table.column_names, 8)}) but no rows",
            f"fill it with data, or point {file.origin} at the right file",
        )
    if label is not None and label not in table.column_names:
        raise _missing_label(file, table.column_names, table.num_rows, label, label_origin)
    return table


def to_frame(table: pa.Table) -> pd.DataFrame:
    """pandas view of an Arrow table: one block per column (no consolidation copy); numbers stay
    numpy arrays, text stays Arrow-backed. Integers with gaps become float64, as pandas reads them."""
    return table.to_pandas(split_blocks=True)


def read_table(file: DataFile, columns: list[str] | None = None) -> pa.Table:
    """The file as an Arrow table (multithreaded), or a DataError that says what is wrong.

    ``columns`` limits the read to those columns (Parquet reads only their pages).
    """
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
    table = _read(file, fmt, columns)
    try:
        _check_names(file, table.column_names)
    except UnicodeDecodeError:
        raise file.error("is not a UTF-8 text file (the header is not UTF-8 text); it may be binary or in another "
                         "encoding", "re-save it as UTF-8 CSV, or as .parquet if it is Parquet") from None
    return table


def _read(file: DataFile, fmt: str, columns: list[str] | None) -> pa.Table:
    import pyarrow as pa

    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            # ParquetFile, not read_table: the latter imports pyarrow.dataset, and with it pandas (~1 s).
            return pq.ParquetFile(file.path).read(columns=columns, use_threads=True)
        if file.path.suffix.lower() in PANDAS_ONLY_COMPRESSION:
            return _read_with_pandas(file, fmt, columns)
        table = _read_csv(file.path, CSV_SUFFIXES["." + fmt], columns)
    except pa.ArrowInvalid as exc:
        raise _unreadable(file, fmt, exc) from None
    except OSError as exc:
        detail = " ".join(str(exc).split())[:300]
        raise file.error(
            f"cannot be read as {fmt.upper()}: {detail}",
            f"check that the file is complete and really is {fmt.upper()} (re-export it), "
            f"or point {file.origin} at the right file",
        ) from None
    if fmt != "parquet" and any(pa.types.is_binary(t) or pa.types.is_large_binary(t) for t in table.schema.types):
        # Arrow keeps bytes that are not UTF-8 as binary instead of failing: a text file has none.
        raise file.error(
            "is not a UTF-8 text file (some cells are bytes that are not UTF-8 text); "
            "it may be binary or in another encoding",
            "re-save it as UTF-8 CSV, or as .parquet if it is Parquet",
        )
    return table


def _read_csv(path: Path, delimiter: str, columns: list[str] | None) -> pa.Table:
    import pyarrow.csv as pacsv

    return pacsv.read_csv(
        path,
        read_options=pacsv.ReadOptions(use_threads=True),
        parse_options=pacsv.ParseOptions(delimiter=delimiter),
        # As pandas does: an empty or NA cell in a text column is missing, not the text "" or "NA".
        convert_options=pacsv.ConvertOptions(strings_can_be_null=True, include_columns=columns),
    )


def _read_with_pandas(file: DataFile, fmt: str, columns: list[str] | None) -> pa.Table:
    """zip and xz archives, which Arrow's CSV reader does not open."""
    import pandas as pd
    import pyarrow as pa

    try:
        frame = pd.read_csv(file.path, sep=CSV_SUFFIXES["." + fmt], usecols=columns, low_memory=False)
    except pd.errors.EmptyDataError:
        raise pa.ArrowInvalid("Empty CSV file") from None
    except pd.errors.ParserError as exc:
        raise pa.ArrowInvalid(f"CSV parse error: {exc}") from None
    return pa.Table.from_pandas(frame, preserve_index=False)


def _unreadable(file: DataFile, fmt: str, exc: Exception) -> DataError:
    detail = " ".join(str(exc).split())
    if fmt != "parquet" and _looks_binary(file.path):
        detail = "invalid UTF8"
    if fmt != "parquet" and "Empty CSV file" in detail:
        return file.error(f"{file.role} data file holds no header and no data (only blank lines)",
                          f"write a header row and the data, or point {file.origin} at the right file")
    if fmt != "parquet" and "CSV parse error" in detail:
        line = _ragged_line(file.path, CSV_SUFFIXES["." + fmt])
        where = f" (line {line})" if line else ""
        return file.error(
            f"cannot be parsed as {fmt.upper()}{where}: {detail[:300]}",
            "make every row have as many fields as the header; quote fields that contain the separator",
        )
    if "invalid UTF8" in detail or "UTF-8" in detail:
        return file.error(
            "is not a UTF-8 text file; it may be binary or in another encoding",
            "re-save it as UTF-8 CSV, or as .parquet if it is Parquet",
        )
    return file.error(
        f"cannot be read as {fmt.upper()}: {detail[:300]}",
        f"check that the file is complete and really is {fmt.upper()} (re-export it), "
        f"or point {file.origin} at the right file",
    )


def _looks_binary(path: Path) -> bool:
    """NUL bytes or undecodable text in the first 4 KiB (only read on the error path)."""
    if path.suffix.lower() in COMPRESSION_SUFFIXES:
        return False
    with path.open("rb") as handle:
        head = handle.read(4096)
    if b"\x00" in head:
        return True
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start < len(head) - 4  # a multi-byte character cut at the 4 KiB boundary is fine
    return False


def _ragged_line(path: Path, delimiter: str) -> int | None:
    """The first line whose field count differs from the header's (only read on the error path)."""
    import csv
    import gzip

    opener: Any = gzip.open if path.suffix.lower() == ".gz" else open
    try:
        with opener(path, "rt", newline="", encoding="utf-8", errors="replace") as handle:
            reader = csv.reader(handle, delimiter=delimiter)
            width = None
            for row in reader:
                if not row:
                    continue
                if width is None:
                    width = len(row)
                elif len(row) != width:
                    return reader.line_num
    except (OSError, csv.Error):
        return None
    return None


def _check_names(file: DataFile, columns: list[str]) -> None:
    seen: set[str] = set()
    for name in columns:
        if name in seen:
            raise file.error(f"column {name!r} appears twice in the header",
                             "give every column its own name (rename or drop the copy)")
        seen.add(name)


def _missing_label(file: DataFile, columns: list[str], rows: int, label: str, label_origin: str) -> DataError:
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
        f"({count(rows)} rows); columns are: {names(columns)}.{hint}",
        fix,
    )


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
