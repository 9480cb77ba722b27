"""Reading and validating PaySim-schema files: the genuine samples, every container, every malformed case."""

from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from fraud import schema
from fraud.data.adapters import get_adapter
from fraud.data.fingerprint import Fingerprinter
from fraud.data.readers import validated_batches
from fraud.errors import DataValidationError, SourceError
from samples import PAYSIM_STEP1, PAYSIM_STEPS1TO9

STEP1 = PAYSIM_STEP1
STEPS1TO9 = PAYSIM_STEPS1TO9
ADAPTER = get_adapter("paysim")
HEADER = ",".join(schema.COLUMNS)
GOOD_ROW = "1,PAYMENT,9839.64,C1231006815,170136.0,160296.36,M1979787155,0.0,0.0,0,0"


def read_all(path: Path) -> pa.Table:
    return pa.Table.from_batches(list(validated_batches(path, ADAPTER)), schema=schema.ARROW_SCHEMA)


def fingerprint(path: Path) -> str:
    fp = Fingerprinter(schema.ARROW_SCHEMA)
    for batch in validated_batches(path, ADAPTER):
        fp.update(batch)
    return fp.hexdigest()


def write_csv(tmp_path: Path, *rows: str, header: str = HEADER, name: str = "data.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_genuine_files_read_with_their_published_counts() -> None:
    # given the genuine heads of the Kaggle file / when read / then the row and fraud counts of samples/README.md
    step1 = read_all(STEP1)
    assert step1.num_rows == 2_688
    assert pc.sum(step1["isFraud"]).as_py() == 16
    steps = read_all(STEPS1TO9)
    assert steps.num_rows == 44_598
    assert pc.sum(steps["isFraud"]).as_py() == 94
    assert steps.schema == schema.ARROW_SCHEMA


def test_java_scientific_notation_is_parsed_exactly() -> None:
    # the published file writes some large values as 1.916920493E7
    raw = STEP1.read_text().splitlines()
    row_index = next(i for i, line in enumerate(raw) if "1.916920493E7" in line)
    column = raw[row_index].split(",").index("1.916920493E7")
    table = read_all(STEP1)
    assert table.column(schema.COLUMNS[column])[row_index - 1].as_py() == pytest.approx(19_169_204.93)


@pytest.mark.parametrize("container", ["csv", "csv.gz", "zip", "parquet"])
def test_every_container_gives_the_same_content_fingerprint(tmp_path: Path, container: str) -> None:
    text = STEP1.read_bytes()
    if container == "csv":
        path = tmp_path / "log.csv"
        path.write_bytes(text)
    elif container == "csv.gz":
        path = tmp_path / "log.csv.gz"
        path.write_bytes(gzip.compress(text))
    elif container == "zip":
        path = tmp_path / "log.zip"
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("PS_log.csv", text)
    else:
        path = tmp_path / "log.parquet"
        pq.write_table(read_all(STEP1), path)
    assert fingerprint(path) == fingerprint(STEP1)


def test_fingerprint_changes_when_one_value_changes(tmp_path: Path) -> None:
    lines = STEP1.read_text().splitlines()
    lines[5] = lines[5].replace("PAYMENT", "DEBIT", 1) if "PAYMENT" in lines[5] else lines[5].replace(",0,0", ",1,0")
    changed = tmp_path / "changed.csv"
    changed.write_text("\n".join(lines) + "\n")
    assert fingerprint(changed) != fingerprint(STEP1)


def test_fingerprint_does_not_depend_on_batch_boundaries() -> None:
    table = read_all(STEPS1TO9)
    whole, pieces = Fingerprinter(schema.ARROW_SCHEMA), Fingerprinter(schema.ARROW_SCHEMA)
    whole.update(table.combine_chunks().to_batches()[0])
    for batch in table.to_batches(max_chunksize=777):
        pieces.update(batch)
    assert whole.hexdigest() == pieces.hexdigest()


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (HEADER.replace(",amount", ""), "missing column 'amount'"),
        (HEADER + ",extra", "unexpected column 'extra'"),
        (HEADER.replace("step,type", "type,step"), "column 1 is 'type' where paysim has 'step'"),
        (HEADER.replace("oldbalanceOrg", "oldbalanceOrig"), "missing column 'oldbalanceOrg'"),
    ],
)
def test_header_is_checked_exactly(tmp_path: Path, header: str, expected: str) -> None:
    path = write_csv(tmp_path, GOOD_ROW, header=header)
    with pytest.raises(DataValidationError, match=expected):
        read_all(path)


@pytest.mark.parametrize(
    ("bad_row", "column", "problem"),
    [
        (GOOD_ROW.replace("9839.64", "abc"), "amount", "'abc' is not a number"),
        (GOOD_ROW.replace("9839.64", "-5.0"), "amount", "-5.0 is negative"),
        (GOOD_ROW.replace("9839.64", "nan"), "amount", "not a finite number"),
        (GOOD_ROW.replace("9839.64", ""), "amount", "value is missing"),
        (GOOD_ROW.replace("PAYMENT", "BITCOIN"), "type", "'BITCOIN' is not one of CASH_IN"),
        (GOOD_ROW[: -len("0,0")] + "2,0", "isFraud", "2 is outside|2 is not one of 0, 1"),
        (GOOD_ROW[: -len("0,0")] + "0,yes", "isFlaggedFraud", "'yes' is not a whole number"),
        (GOOD_ROW.replace("1,PAYMENT", "1.5,PAYMENT", 1), "step", "'1.5' is not a whole number"),
        (GOOD_ROW.replace("C1231006815", ""), "nameOrig", "value is missing"),
        (GOOD_ROW.replace("M1979787155", "M" * 257), "nameDest", "is longer than 256 characters"),
    ],
)
def test_bad_value_names_column_row_and_problem(tmp_path: Path, bad_row: str, column: str, problem: str) -> None:
    # given three good rows then a bad one: the error names data row 4
    path = write_csv(tmp_path, GOOD_ROW, GOOD_ROW, GOOD_ROW, bad_row)
    with pytest.raises(DataValidationError, match=problem) as caught:
        read_all(path)
    assert caught.value.row == 4
    assert caught.value.column == column
    assert f"row 4, column '{column}'" in str(caught.value)


def test_cut_off_last_row_is_reported_as_truncation(tmp_path: Path) -> None:
    path = tmp_path / "cut.csv"
    path.write_text("\n".join([HEADER, GOOD_ROW, GOOD_ROW]) + "\n" + GOOD_ROW[:25])
    with pytest.raises(DataValidationError, match=r"row 3: has 4 fields, expected 11 .*cut off") as caught:
        read_all(path)
    assert caught.value.row == 3


def test_row_numbers_count_across_batches(tmp_path: Path) -> None:
    # the bad value sits far beyond the first CSV block, so the offset of later batches must be right
    rows = [GOOD_ROW] * 200_000
    rows[150_000] = GOOD_ROW.replace("PAYMENT", "PAYMNT")
    path = write_csv(tmp_path, *rows)
    with pytest.raises(DataValidationError) as caught:
        read_all(path)
    assert caught.value.row == 150_001


def test_empty_and_header_only_files_are_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataValidationError, match="empty"):
        read_all(empty)
    with pytest.raises(DataValidationError, match="no data rows"):
        read_all(write_csv(tmp_path, name="header_only.csv"))


def test_parquet_with_a_text_amount_fails_naming_the_column(tmp_path: Path) -> None:
    # a Parquet column carries its type: text where the contract has a number is the file's error, not parsed
    table = read_all(STEP1).slice(0, 10)
    bad = table.set_column(2, "amount", pc.cast(table["amount"], pa.string()))
    path = tmp_path / "bad.parquet"
    pq.write_table(bad, path)
    with pytest.raises(DataValidationError, match="column 'amount': stored as string; expected double") as caught:
        read_all(path)
    assert caught.value.column == "amount"


def test_parquet_whose_columns_are_all_text_fails_naming_the_first_column(tmp_path: Path) -> None:
    table = read_all(STEP1).slice(0, 10)
    text = pa.table({name: pc.cast(table[name], pa.string()) for name in table.column_names})
    path = tmp_path / "text.parquet"
    pq.write_table(text, path)
    with pytest.raises(DataValidationError, match="column 'step': stored as string; expected an integer type"):
        read_all(path)


def test_parquet_with_float32_amounts_fails_instead_of_storing_them_rounded(tmp_path: Path) -> None:
    # float32 keeps ~7 digits: 181,000.37 would be stored as 181,000.375
    table = read_all(STEP1).slice(0, 10)
    bad = table.set_column(2, "amount", pc.cast(table["amount"], pa.float32()))
    path = tmp_path / "float32.parquet"
    pq.write_table(bad, path)
    with pytest.raises(DataValidationError, match="column 'amount': stored as float; expected double") as caught:
        read_all(path)
    assert caught.value.column == "amount"


def test_parquet_with_other_exact_types_is_accepted(tmp_path: Path) -> None:
    # int64 steps and flags (what pandas writes), dictionary-encoded text: exact, so accepted and normalised
    table = read_all(STEP1).slice(0, 10)
    wide = (
        table.set_column(0, "step", pc.cast(table["step"], pa.int64()))
        .set_column(1, "type", pc.dictionary_encode(table["type"]))
        .set_column(9, "isFraud", pc.cast(table["isFraud"], pa.int64()))
    )
    path = tmp_path / "wide.parquet"
    pq.write_table(wide, path)
    assert read_all(path).equals(table)


def test_unreadable_inputs_say_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such file"):
        read_all(tmp_path / "missing.csv")
    odd = tmp_path / "data.xlsx"
    odd.write_text("x")
    with pytest.raises(SourceError, match=r"use one of .*\.parquet"):
        read_all(odd)
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 not really")
    with pytest.raises(SourceError, match="not a readable Parquet file"):
        read_all(broken)
    two = tmp_path / "two.zip"
    with zipfile.ZipFile(two, "w") as archive:
        archive.writestr("a.csv", HEADER)
        archive.writestr("b.csv", HEADER)
    with pytest.raises(SourceError, match=r"exactly one \.csv file, found 2"):
        read_all(two)
