"""The Sparkov card transactions through the data layer: a second dataset added as a contract and an adapter."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from fraud.contracts import SPARKOV
from fraud.data.adapters import get_adapter
from fraud.data.readers import validated_batches
from fraud.errors import DataValidationError
from samples import SPARKOV_TEST, SPARKOV_TRAIN

ADAPTER = get_adapter("sparkov")


def read_all(path: Path) -> pa.Table:
    return pa.Table.from_batches(list(validated_batches(path, ADAPTER)), schema=SPARKOV.arrow_schema)


@pytest.mark.parametrize(("path", "rows", "frauds"), [(SPARKOV_TRAIN, 5_039, 22), (SPARKOV_TEST, 2_145, 11)])
def test_genuine_files_read_with_their_published_counts(path: Path, rows: int, frauds: int) -> None:
    table = read_all(path)
    assert table.num_rows == rows
    assert pc.sum(table["is_fraud"]).as_py() == frauds
    assert table.column_names == list(SPARKOV.columns)  # the unnamed row index is dropped
    assert set(pc.unique(table["category"]).to_pylist()) == set(SPARKOV.field("category").choices)


def test_times_dates_and_card_numbers_are_read_as_written() -> None:
    first = read_all(SPARKOV_TRAIN).slice(0, 1).to_pylist()[0]
    assert first["trans_date_trans_time"] == dt.datetime(2019, 1, 1, 0, 0, 18)
    assert first["dob"] == dt.date(1988, 3, 9)
    assert first["cc_num"] == "2703186189652095"
    assert first["merchant"] == "fraud_Rippin, Kub and Mann"
    assert first["unix_time"] == 1_325_376_018


def _with_value(tmp_path: Path, column: str, value: str) -> Path:
    """The first three rows of the training head with one value of the third row replaced."""
    with SPARKOV_TRAIN.open(newline="") as handle:
        rows = [row for _, row in zip(range(4), csv.reader(handle), strict=False)]
    rows[3][rows[0].index(column)] = value
    path = tmp_path / "sparkov.csv"
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return path


@pytest.mark.parametrize(
    ("column", "value", "problem"),
    [
        ("category", "crypto", "'crypto' is not one of entertainment"),
        ("trans_date_trans_time", "2019-13-01 00:00:18", "is not a time written YYYY-MM-DD HH:MM:SS"),
        ("dob", "09/03/1988", "'09/03/1988' is not a time written YYYY-MM-DD"),
        ("amt", "-4.97", "-4.97 is negative"),
        ("lat", "95.5", r"95.5 is outside -90.0\.\.90.0"),
        ("is_fraud", "2", "2 is not one of 0, 1"),
        ("state", "North Carolina", "is longer than 2 characters"),
    ],
)
def test_bad_value_names_column_row_and_problem(tmp_path: Path, column: str, value: str, problem: str) -> None:
    with pytest.raises(DataValidationError, match=problem) as caught:
        read_all(_with_value(tmp_path, column, value))
    assert (caught.value.column, caught.value.row) == (column, 3)


def test_the_published_header_is_required(tmp_path: Path) -> None:
    lines = SPARKOV_TEST.read_text().splitlines()[:3]
    path = tmp_path / "no_index.csv"
    path.write_text("\n".join(line.split(",", 1)[1] for line in lines) + "\n")
    with pytest.raises(DataValidationError, match="missing column ''"):
        read_all(path)
