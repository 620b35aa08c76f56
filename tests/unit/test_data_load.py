"""Loading: every unusable file is a one-paragraph DataError naming the file and the fix."""

from pathlib import Path

import pandas as pd
import pytest

from mlcicd.data.load import DataFile, file_format, load_table
from mlcicd.errors import EXIT_USAGE, DataError

LABEL_ORIGIN = "data.label in mlci.yaml"


def data_file(path: Path, role: str = "train") -> DataFile:
    return DataFile(role, path, f"data/{path.name}", f"data.{role} in mlci.yaml")


def load(path: Path, label: str | None = "y", role: str = "train") -> pd.DataFrame:
    return load_table(data_file(path, role), label=label, label_origin=LABEL_ORIGIN)


def load_error(path: Path, label: str | None = "y") -> str:
    with pytest.raises(DataError) as info:
        load(path, label)
    assert info.value.exit_code == EXIT_USAGE
    message = str(info.value)
    assert message.startswith(f"data/{path.name}: ")
    assert "\nFix: " in message and "Traceback" not in message
    return message


def test_reads_csv_tsv_gzip_and_parquet(tmp_path):
    frame = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"], "y": [0, 1, 0]})
    frame.to_csv(tmp_path / "d.csv", index=False)
    frame.to_csv(tmp_path / "d.tsv", index=False, sep="\t")
    frame.to_csv(tmp_path / "d.csv.gz", index=False)
    frame.to_parquet(tmp_path / "d.parquet")
    for name in ("d.csv", "d.tsv", "d.csv.gz", "d.parquet"):
        loaded = load(tmp_path / name)
        assert list(loaded.columns) == ["a", "b", "y"] and len(loaded) == 3, name
        assert loaded["a"].tolist() == [1, 2, 3]


def test_file_format_by_extension():
    assert file_format(Path("x.CSV")) == "csv"
    assert file_format(Path("x.csv.gz")) == "csv"
    assert file_format(Path("x.pq")) == "parquet"
    assert file_format(Path("x.json")) is None
    assert file_format(Path("x")) is None


def _truncated_parquet(path: Path) -> None:
    pd.DataFrame({"a": range(100), "y": 0}).to_parquet(path)
    path.write_bytes(path.read_bytes()[:50])  # truncated upload


# (case, file name, how to write it (None: no file), label, what the message must say)
LOAD_ERRORS = [
    ("missing file", "train.csv", None, "y",
     ["train data file not found", "data.train in mlci.yaml", "relative to its directory"]),
    ("directory", "train.csv", Path.mkdir, "y", ["is a directory"]),
    ("unknown extension", "train.json", lambda p: p.write_text('{"a": 1}'), "y",
     ["unknown data file type '.json'", ".parquet"]),
    ("empty", "train.csv", lambda p: p.write_text(""), "y", ["is empty (0 bytes)"]),
    ("blank lines", "train.csv", lambda p: p.write_text("\n\n"), "y", ["no header and no data"]),
    ("header only", "train.csv", lambda p: p.write_text("a,b,y\n"), "y",
     ["has columns (a, b, y) but no rows", "fill it with data"]),
    ("ragged", "train.csv", lambda p: p.write_text("a,b,y\n1,2,0\n1,2,3,4\n"), "y",
     ["cannot be parsed as CSV", "line 3", "as many fields as the header"]),
    ("binary", "train.csv", lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe\x00"), "y",
     ["not a UTF-8 text file", "re-save it as UTF-8"]),
    ("corrupt parquet", "train.parquet", _truncated_parquet, "y", ["cannot be read as PARQUET", "re-export it"]),
    ("label missing", "train.csv", lambda p: p.write_text("a,b,Default\n1,2,0\n"), "default",
     ["column 'default' (data.label in mlci.yaml) not found in the train data", "columns are: a, b, Default",
      "Fix: set data.label to the label column (did you mean 'Default'?)"]),
    ("wrong separator", "train.csv", lambda p: p.write_text("a;b;y\n1;2;0\n"), "y",
     ["another separator", "comma-separated"]),
    ("no header", "train.csv", lambda p: p.write_text("1,2,0\n3,4,1\n"), "y", ["no header row"]),
]


@pytest.mark.parametrize(("name", "write", "label", "expected"), [c[1:] for c in LOAD_ERRORS],
                         ids=[c[0] for c in LOAD_ERRORS])
def test_an_unusable_file_is_one_error_naming_it_and_the_fix(tmp_path, name, write, label, expected):
    path = tmp_path / name
    if write is not None:
        write(path)
    message = load_error(path, label=label)
    for text in expected:
        assert text in message


def test_reference_may_be_unlabelled(tmp_path):
    path = tmp_path / "reference.csv"
    path.write_text("a,b\n1,2\n")
    assert list(load(path, label=None, role="reference").columns) == ["a", "b"]
