"""Stream a dataset file (CSV, gzip/zip CSV, Parquet) as validated Arrow record batches.

Files are read in chunks with pyarrow, never whole into pandas, so the full 6.36M-row PaySim log (470 MB of
CSV) streams in bounded memory. Every batch goes through the dataset adapter, which either returns the
canonical schema or raises naming the column and the data row (1-based, header not counted).
"""

from __future__ import annotations

import csv
import gzip
import io
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, cast

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from fraud.data.adapters import DatasetAdapter
from fraud.errors import DataValidationError, SourceError

CSV_BLOCK_BYTES = 8 << 20
PARQUET_BATCH_ROWS = 500_000

_CSV_SUFFIXES = (".csv", ".csv.gz", ".gz", ".zip")
_PARQUET_SUFFIXES = (".parquet", ".pq")
SUPPORTED_SUFFIXES = _CSV_SUFFIXES + _PARQUET_SUFFIXES


def file_format(path: Path) -> str:
    """'csv' or 'parquet', from the file name; raises SourceError for anything else."""
    name = path.name.lower()
    if name.endswith(_PARQUET_SUFFIXES):
        return "parquet"
    if name.endswith(_CSV_SUFFIXES):
        return "csv"
    raise SourceError(
        f"cannot tell the format of '{path.name}': use one of {', '.join(SUPPORTED_SUFFIXES)} as the extension"
    )


@contextmanager
def _open_csv_bytes(path: Path, *, native: bool = True) -> Iterator[IO[bytes]]:
    """The file's decompressed CSV bytes, whatever the container.

    ``native`` streams plain and gzip files through Arrow's C++ readers (fast, no readline); the slow paths
    that read line by line ask for a Python file object instead.
    """
    name = path.name.lower()
    if name.endswith(".zip"):
        try:
            archive = zipfile.ZipFile(path)
        except zipfile.BadZipFile as exc:
            raise SourceError(f"'{path}' is not a valid zip archive ({exc})") from exc
        with archive:
            members = [m for m in archive.namelist() if m.lower().endswith(".csv") and not m.startswith("__MACOSX")]
            if len(members) != 1:
                raise SourceError(
                    f"'{path}' must hold exactly one .csv file, found {len(members)}: {', '.join(members) or '-'}"
                )
            with archive.open(members[0]) as member:
                yield member
        return
    if not native:
        opener = gzip.open if name.endswith(".gz") else open
        with opener(path, "rb") as handle:
            yield cast(IO[bytes], handle)
        return
    stream = pa.input_stream(str(path), compression="gzip" if name.endswith(".gz") else None)
    with stream:
        yield stream


def _read_header(path: Path) -> list[str]:
    with _open_csv_bytes(path, native=False) as raw:
        try:
            line = raw.readline(1 << 16)
        except (OSError, EOFError, zipfile.BadZipFile) as exc:
            raise SourceError(f"cannot read '{path}': {exc}") from exc
    text = line.decode("utf-8-sig", errors="replace").rstrip("\r\n")
    if not text:
        raise DataValidationError(f"{path.name}: the file is empty (no header line)")
    return next(csv.reader([text]))


def _locate_malformed_row(path: Path, width: int) -> DataValidationError:
    """Slow path, run only after the fast parser failed: find the first row with the wrong number of fields."""
    with _open_csv_bytes(path, native=False) as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="")
        reader = csv.reader(text)
        next(reader, None)
        for row_number, fields in enumerate(reader, start=1):
            if len(fields) != width:
                # A short final row is what an interrupted download or copy leaves behind.
                is_last = next(reader, None) is None
                hint = " (the last row is cut off: the file looks truncated)" if is_last else ""
                return DataValidationError(
                    f"has {len(fields)} fields, expected {width}{hint}: '{','.join(fields)[:80]}'",
                    row=row_number,
                )
    return DataValidationError(f"{path.name}: the CSV cannot be parsed")


def _csv_batches(path: Path, adapter: DatasetAdapter) -> Iterator[pa.RecordBatch]:
    names = _read_header(path)
    adapter.check_header(names, path.name)
    text_types = {name: pa.string() for name in names}
    with _open_csv_bytes(path) as raw:
        try:
            reader = pacsv.open_csv(
                raw,
                read_options=pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES, use_threads=True),
                convert_options=pacsv.ConvertOptions(
                    column_types=text_types, strings_can_be_null=False, quoted_strings_can_be_null=False
                ),
            )
            yield from reader
        except pa.ArrowInvalid as exc:
            if "CSV parse error" in str(exc):
                raise _locate_malformed_row(path, len(names)) from exc
            raise DataValidationError(f"{path.name}: {exc}") from exc
        except (OSError, EOFError, zipfile.BadZipFile) as exc:
            raise SourceError(f"cannot read '{path}': {exc} (is the file complete?)") from exc


def _parquet_batches(path: Path, adapter: DatasetAdapter) -> Iterator[pa.RecordBatch]:
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise SourceError(f"'{path}' is not a readable Parquet file ({exc})") from exc
    names = parquet.schema_arrow.names
    if sorted(names) != sorted(adapter.header):
        adapter.check_header(names, path.name)
    adapter.check_stored_types(parquet.schema_arrow, path.name)
    try:
        yield from parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=list(adapter.header))
    except (pa.ArrowInvalid, OSError) as exc:
        raise SourceError(f"cannot read '{path}': {exc} (is the file complete?)") from exc


def raw_batches(path: Path, adapter: DatasetAdapter) -> Iterator[pa.RecordBatch]:
    """The file's batches as stored (text for CSV), header already checked."""
    if not path.is_file():
        raise SourceError(f"no such file: '{path}'")
    if file_format(path) == "parquet":
        return _parquet_batches(path, adapter)
    return _csv_batches(path, adapter)


def validated_batches(path: Path, adapter: DatasetAdapter) -> Iterator[pa.RecordBatch]:
    """The file's rows in the adapter's canonical schema; raises on the first invalid row."""
    first_row = 1
    seen_any = False
    for batch in raw_batches(path, adapter):
        if batch.num_rows == 0:
            continue
        seen_any = True
        yield adapter.normalize(batch, first_row)
        first_row += batch.num_rows
    if not seen_any:
        raise DataValidationError(f"{path.name}: the file has a header but no data rows")
