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


def test_missing_file_names_the_setting(tmp_path):
    message = load_error(tmp_path / "train.csv")
    assert "train data file not found" in message
    assert "data.train in mlci.yaml" in message and "relative to its directory" in message


def test_directory_instead_of_file(tmp_path):
    (tmp_path / "train.csv").mkdir()
    assert "is a directory" in load_error(tmp_path / "train.csv")


def test_unknown_extension(tmp_path):
    path = tmp_path / "train.json"
    path.write_text('{"a": 1}')
    message = load_error(path)
    assert "unknown data file type '.json'" in message and ".parquet" in message


def test_empty_file(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("")
    assert "is empty (0 bytes)" in load_error(path)


def test_blank_lines_only(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("\n\n")
    assert "no header and no data" in load_error(path)


def test_header_without_rows(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("a,b,y\n")
    message = load_error(path)
    assert "has columns (a, b, y) but no rows" in message and "fill it with data" in message


def test_ragged_csv(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("a,b,y\n1,2,0\n1,2,3,4\n")
    message = load_error(path)
    assert "cannot be parsed as CSV" in message and "line 3" in message
    assert "as many fields as the header" in message


def test_binary_file_with_csv_name(tmp_path):
    path = tmp_path / "train.csv"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe\x00")
    message = load_error(path)
    assert "not a UTF-8 text file" in message and "re-save it as UTF-8" in message


def test_corrupt_parquet(tmp_path):
    path = tmp_path / "train.parquet"
    pd.DataFrame({"a": range(100), "y": 0}).to_parquet(path)
    path.write_bytes(path.read_bytes()[:50])  # truncated upload
    message = load_error(path)
    assert "cannot be read as PARQUET" in message and "re-export it" in message


def test_missing_label_lists_columns_and_suggests_close_match(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("a,b,Default\n1,2,0\n")
    message = load_error(path, label="default")
    assert "column 'default' (data.label in mlci.yaml) not found in the train data" in message
    assert "columns are: a, b, Default" in message
    assert "Fix: set data.label to the label column (did you mean 'Default'?)" in message


def test_missing_label_hints_at_wrong_separator(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("a;b;y\n1;2;0\n")
    message = load_error(path)
    assert "another separator" in message and "comma-separated" in message


def test_missing_label_hints_at_missing_header(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("1,2,0\n3,4,1\n")
    assert "no header row" in load_error(path)


def test_reference_may_be_unlabelled(tmp_path):
    path = tmp_path / "reference.csv"
    path.write_text("a,b\n1,2\n")
    assert list(load(path, label=None, role="reference").columns) == ["a", "b"]
